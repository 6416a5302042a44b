"""Safe band-math expressions: parsed with ``ast``, checked against a whitelist, run with numpy.

The upstream ``exec``-uted index expressions stored in its database (STYLE 3.1). Here an
expression is parsed once into a Python syntax tree and every node is checked: allowed are
numbers, names of bands (or named constants), ``+ - * / **``, unary ``-``/``+``, parentheses and
the functions in ``FUNCTIONS``. Anything else (attributes, subscripts, comparisons, lambdas,
keywords, strings, unknown names or functions) raises ``ConfigError`` naming the collection, the
index and the offending token. Evaluation walks the checked tree with numpy ufuncs on float32
arrays; ``eval``/``exec``/``compile`` are never called.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from include.common.errors import ConfigError

FloatArray = npt.NDArray[np.float32]
MAX_EXPRESSION_CHARS = 2000
MAX_NODES = 500

FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "sqrt": (1, np.sqrt),
    "abs": (1, np.abs),
    "exp": (1, np.exp),
    "log": (1, np.log),
    "min": (2, np.minimum),
    "max": (2, np.maximum),
}
"""Functions an expression may call: name -> (number of arguments, numpy function)."""

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.Pow: np.power,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: np.negative,
    ast.UAdd: np.positive,
}


@dataclass(frozen=True, slots=True)
class Expression:
    """A checked expression: its text, its syntax tree and the band names it reads."""

    text: str
    tree: ast.Expression
    bands: tuple[str, ...]
    constants: Mapping[str, float]


def _token(text: str, node: ast.AST) -> str:
    segment = ast.get_source_segment(text, node)
    return segment if segment is not None else type(node).__name__


def parse_expression(
    text: str,
    *,
    bands: Collection[str],
    collection: str,
    index: str,
    constants: Mapping[str, float] | None = None,
    source: str = "collections.yaml",
) -> Expression:
    """Parse and check an index expression.

    Args:
        text: the expression, e.g. ``(B08 - B04) / (B08 + B04)``.
        bands: the names it may read as arrays (case-sensitive).
        collection: the collection name, for error messages.
        index: the index name, for error messages.
        constants: named numbers it may use (``L``, ``g``...); a band of the same name wins.
        source: the config file, for error messages.

    Returns:
        The checked expression, with the bands it reads in order of first use.

    Raises:
        ConfigError: naming collection, index and the token that is not allowed.
    """
    field = f"collections.{collection}.indices.{index}.expression"
    consts = dict(constants or {})

    def fail(message: str) -> ConfigError:
        return ConfigError(source, field, f"{message} in {text!r}")

    if not isinstance(text, str) or not text.strip():
        raise fail("the expression is empty; write arithmetic over band names")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise fail(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise fail(f"syntax error at column {err.offset}: {err.msg}") from err
    text = text.strip()
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise fail(f"the expression has more than {MAX_NODES} parts")
    used: list[str] = []
    called = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
    for node in nodes:
        token = _token(text, node)
        if isinstance(node, (ast.Expression, ast.Load)):
            continue
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                raise fail(f"operator in {token!r} is not allowed (use + - * / **)")
        elif isinstance(node, ast.UnaryOp):
            if type(node.op) not in _UNARY:
                raise fail(f"operator in {token!r} is not allowed (use unary - or +)")
        elif isinstance(node, (ast.operator, ast.unaryop)):
            continue
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise fail(f"literal {token!r} is not allowed (only numbers)")
        elif isinstance(node, ast.Name):
            if id(node) in called:
                continue
            if node.id in bands:
                if node.id not in used:
                    used.append(node.id)
            elif node.id not in consts:
                known = ", ".join(sorted(bands))
                raise fail(f"name {node.id!r} is not a band of {collection} (bands: {known})")
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name is None or name not in FUNCTIONS:
                allowed = ", ".join(sorted(FUNCTIONS))
                raise fail(f"call {token!r} is not allowed (functions: {allowed})")
            if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
                raise fail(f"call {token!r} takes plain positional arguments only")
            arity = FUNCTIONS[name][0]
            if len(node.args) != arity:
                raise fail(f"{name}() takes {arity} argument(s), got {len(node.args)}")
        else:
            raise fail(f"{token!r} ({type(node).__name__}) is not allowed")
    if not used:
        raise fail("the expression reads no band")
    return Expression(
        text=text,
        tree=tree,
        bands=tuple(used),
        constants={k: float(v) for k, v in consts.items()},
    )


def _walk(node: ast.AST, values: Mapping[str, FloatArray], constants: Mapping[str, float]) -> Any:
    """Evaluate one node of a checked expression.

    A plain function on purpose: a closure that calls itself is a reference cycle that keeps
    every strip's arrays alive until the garbage collector happens to run (1.5 GB for one index
    of a full Sentinel-2 tile).
    """
    if isinstance(node, ast.Expression):
        return _walk(node.body, values, constants)
    if isinstance(node, ast.BinOp):
        left = _walk(node.left, values, constants)
        return _BINARY[type(node.op)](left, _walk(node.right, values, constants))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_walk(node.operand, values, constants))
    if isinstance(node, ast.Constant):
        return np.float32(cast(float, node.value))
    if isinstance(node, ast.Name):
        if node.id in values:
            return values[node.id]
        return np.float32(constants[node.id])
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        arguments = [_walk(arg, values, constants) for arg in node.args]
        return FUNCTIONS[node.func.id][1](*arguments)
    raise TypeError(f"unchecked node {type(node).__name__}")  # parse_expression forbids it


def evaluate(expression: Expression, values: Mapping[str, FloatArray]) -> FloatArray:
    """Evaluate a checked expression over float32 arrays of the same shape.

    Division by zero, overflow and invalid operations give inf/NaN (numpy's rules), with the
    warnings silenced: the caller turns non-finite results into nodata.

    Args:
        expression: the output of ``parse_expression``.
        values: an array per band the expression reads.

    Returns:
        A float32 array of the inputs' shape.

    Raises:
        KeyError: when ``values`` lacks a band the expression reads.
    """
    missing = [band for band in expression.bands if band not in values]
    if missing:
        raise KeyError(f"no array for band(s) {missing}")
    with np.errstate(all="ignore"):
        result = _walk(expression.tree, values, expression.constants)
    shape = np.shape(values[expression.bands[0]])
    return np.broadcast_to(np.asarray(result, dtype=np.float32), shape).astype(
        np.float32, copy=False
    )
