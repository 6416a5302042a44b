"""The safe band-math evaluator: whitelist parsing, errors naming the token, numpy evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from include.common.errors import ConfigError
from include.processors.publish.expressions import evaluate, parse_expression

BANDS = ("B02", "B04", "B08", "B12")


def parse(text: str, **kwargs: object):  # noqa: ANN201 - Expression
    return parse_expression(text, bands=BANDS, collection="S2_L2A-1", index="IDX", **kwargs)


def test_parse_expression_ndvi_lists_bands_in_order_of_use() -> None:
    expression = parse("(B08 - B04) / (B08 + B04)")
    assert expression.bands == ("B08", "B04")


def test_evaluate_matches_numpy_in_float32() -> None:
    rng = np.random.default_rng(1)
    values = {b: rng.uniform(0.01, 0.6, (4, 5)).astype(np.float32) for b in BANDS}
    expression = parse("2.5 * (B08 - B04) / (B08 + 6 * B04 - 7.5 * B02 + 1) + sqrt(abs(-B12))")
    result = evaluate(expression, values)
    b02, b04, b08, b12 = (values[b] for b in BANDS)
    expected = 2.5 * (b08 - b04) / (b08 + 6 * b04 - 7.5 * b02 + 1) + np.sqrt(b12)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_evaluate_functions_power_and_constants() -> None:
    values = {"B04": np.array([0.2, 0.5], np.float32), "B08": np.array([0.4, 0.1], np.float32)}
    expression = parse("max(B04, B08) - min(B04, B08) + B08 ** 2 + L", constants={"L": 0.5})
    np.testing.assert_allclose(evaluate(expression, values), [0.2 + 0.16 + 0.5, 0.4 + 0.01 + 0.5])


def test_evaluate_division_by_zero_gives_non_finite_without_warning() -> None:
    values = {"B04": np.array([0.0, 0.3], np.float32), "B08": np.array([0.0, 0.3], np.float32)}
    result = evaluate(parse("(B08 - B04) / (B08 + B04)"), values)
    assert not np.isfinite(result[0]) and result[1] == 0.0


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("__import__('os').system('id')", "__import__('os').system"),
        ("open('x')", "open('x')"),
        ("B04.real", "B04.real"),
        ("B04[0]", "B04[0]"),
        ("B04 if B08 else B02", "B04 if B08 else B02"),
        ("(lambda: B04)()", "lambda"),
        ("B04 < B08", "B04 < B08"),
        ("B04 // B08", "B04 // B08"),
        ("B04 % 2", "B04 % 2"),
        ("B04 @ B08", "B04 @ B08"),
        ("~B04", "~B04"),
        ("B05 + B04", "'B05'"),
        ("B04 + 'a'", "'a'"),
        ("B04 + True", "True"),
        ("sqrt(B04, B08)", "sqrt() takes 1"),
        ("max(B04, other=B08)", "max(B04, other=B08)"),
        ("[B04 for B04 in B08]", "B04 for B04 in B08"),
        ("3 + 4", "reads no band"),
        ("B04 +", "syntax error"),
        ("", "empty"),
    ],
)
def test_parse_expression_forbidden_token_raises_config_error_naming_it(
    text: str, token: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    message = str(caught.value)
    assert "collections.S2_L2A-1.indices.IDX.expression" in message
    assert token in message


def test_parse_expression_too_long_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="longer than"):
        parse(" + ".join(["B04"] * 600))
