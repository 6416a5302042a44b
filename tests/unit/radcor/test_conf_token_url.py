"""``catalog_args.token_url``: accepted only for catalogs that declare one, on the url's host or
loopback (the token request carries the Connection's password)."""

from __future__ import annotations

from typing import Any

import pytest

from include.common.errors import InvalidInputError
from include.radcor.conf import params_schema, validate_conf

BASE: dict[str, Any] = {
    "w": -45.9,
    "s": -12.74,
    "e": -45.8,
    "n": -12.6,
    "catalog": "CDSE",
    "dataset": "S2MSI1C",
    "start": "2020-01-09",
    "end": "2020-01-10",
    "tasks": [{"type": "download", "collection": "S2_L1C-1"}],
}


def conf(catalog_args: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**BASE, "catalog_args": catalog_args, **changes}


def problem_of(raw: dict[str, Any]) -> tuple[str, str, str]:
    with pytest.raises(InvalidInputError) as caught:
        validate_conf(raw)
    problems = [p for p in caught.value.problems if p.field == "catalog_args.token_url"]
    assert len(problems) == 1, caught.value.problems
    return problems[0].field, problems[0].message, problems[0].fix


@pytest.mark.parametrize(
    "catalog_args",
    [
        {"url": "http://127.0.0.1:8123/odata/v1", "token_url": "http://127.0.0.1:8123/token"},
        {"token_url": "http://localhost:9/auth/realms/CDSE/protocol/openid-connect/token"},
        {"token_url": "https://catalogue.dataspace.copernicus.eu/auth/token"},
    ],
)
def test_validate_conf_token_url_on_url_host_or_loopback_is_kept(
    catalog_args: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a mirror is reachable only when the deployment lists it (issue 23: outbound allowlist)
    monkeypatch.setenv("COLLECTION_BUILDER_ALLOWED_HOSTS", "mirror.example.org")
    assert validate_conf(conf(catalog_args)).catalog_args.given() == catalog_args


def test_validate_conf_listed_mirror_of_a_catalog_with_a_connection_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # listed, but cdse logs in with its Connection: the search would send the credentials
    # there and refuse (registry.make_driver), so validation refuses it before any run exists
    monkeypatch.setenv("COLLECTION_BUILDER_ALLOWED_HOSTS", "mirror.example.org")
    args = {
        "url": "https://mirror.example.org/odata/v1",
        "token_url": "https://mirror.example.org/token",
    }
    with pytest.raises(InvalidInputError) as caught:
        validate_conf(conf(args))
    problem = next(p for p in caught.value.problems if p.field == "catalog_args.url")
    assert "mirror.example.org" in problem.message and "credentials" in problem.message
    assert "config/catalogs.yaml" in problem.fix


def test_validate_conf_mirror_not_listed_by_the_deployment_is_refused() -> None:
    args = {
        "url": "https://mirror.example.org/odata/v1",
        "token_url": "https://mirror.example.org/t",
    }
    with pytest.raises(InvalidInputError, match="mirror.example.org.*allowed_hosts"):
        validate_conf(conf(args))


def test_validate_conf_token_url_with_scihub_alias_is_kept() -> None:
    args = {"url": "http://127.0.0.1:1/odata/v1", "token_url": "http://127.0.0.1:1/token"}
    validated = validate_conf(conf(args, catalog="SciHub"))
    assert validated.catalog == "cdse"
    assert validated.catalog_args.token_url == args["token_url"]


def test_validate_conf_token_url_on_another_host_refused_with_fix() -> None:
    field, message, fix = problem_of(conf({"token_url": "https://evil.example.net/token"}))
    assert "evil.example.net" in message
    assert "credentials" in message
    assert "config/catalogs.yaml" in fix


@pytest.mark.parametrize("token_url", ["ftp://127.0.0.1/token", "not a url", "http:///x"])
def test_validate_conf_token_url_not_http_refused(token_url: str) -> None:
    _, message, _ = problem_of(conf({"token_url": token_url}))
    assert "http(s)" in message


def test_validate_conf_token_url_with_credentials_in_it_refused_without_echo() -> None:
    _, message, fix = problem_of(
        conf({"token_url": "http://127.0.0.1/token?access_token=Sup3rSecret"})
    )
    assert "Sup3rSecret" not in message + fix
    assert "Connection" in fix


def test_validate_conf_token_url_for_catalog_without_one_refused() -> None:
    _, message, _ = problem_of(conf({"token_url": "http://127.0.0.1/token"}, catalog="demo"))
    assert "takes no token_url" in message


def test_validate_conf_token_url_wrong_type_refused() -> None:
    _, message, _ = problem_of(conf({"token_url": 42}))
    assert "string" in message


def test_params_schema_catalog_args_still_an_object() -> None:
    assert "object" in params_schema()["catalog_args"]["type"]


def test_validate_conf_cdse_stac_takes_token_url_on_loopback_or_its_host() -> None:
    args = {
        "url": "http://127.0.0.1:8123/v1",
        "token_url": "http://127.0.0.1:8123/auth/realms/CDSE/protocol/openid-connect/token",
    }
    validated = validate_conf(conf(args, catalog="CDSE-STAC"))
    assert validated.catalog == "cdse-stac"
    assert validated.catalog_args.given() == args
    on_host = {"token_url": "https://stac.dataspace.copernicus.eu/token"}
    assert validate_conf(conf(on_host, catalog="cdse-stac")).catalog_args.given() == on_host


def test_validate_conf_cdse_stac_token_url_on_another_host_refused() -> None:
    _, message, fix = problem_of(
        conf({"token_url": "https://evil.example.net/token"}, catalog="CDSE-STAC")
    )
    assert "evil.example.net" in message and "stac.dataspace.copernicus.eu" in message
    assert "config/catalogs.yaml" in fix
