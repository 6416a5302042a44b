"""Outbound requests: catalog URL overrides and every request stay on hosts the deployment allows.

``include/collectors/outbound.py``; the checks act through ``make_driver`` (``catalog_args``),
``endpoint_override_problem`` (conf validation) and ``build_http_client`` (each request and
redirect hop).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from include.collectors import outbound
from include.collectors.base import Credentials
from include.collectors.http import build_http_client
from include.collectors.outbound import OutboundPolicy
from include.collectors.registry import endpoint_override_problem, make_driver
from include.collectors.settings import DriverSettings
from include.common.config import CatalogConfig, outbound_settings
from include.common.errors import InvalidInputError, ProviderError

CATALOGS = {
    "open": CatalogConfig(
        driver="stac", url="https://stac.example.org/v1", allowed_hosts=("mirror.example.org",)
    ),
    "cdse": CatalogConfig(
        driver="cdse",
        url="https://catalogue.dataspace.copernicus.eu/odata/v1",
        allowed_hosts=("*.dataspace.copernicus.eu",),
        conn_id="cdse_default",
        options={"token_url": "https://identity.dataspace.copernicus.eu/auth/token"},
    ),
}


@pytest.fixture
def no_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """A production deployment: the loopback switch off (tests/conftest.py turns it on)."""
    monkeypatch.setenv("COLLECTION_BUILDER_ALLOW_LOOPBACK", "false")


def refusal(catalog: str, args: dict[str, Any], **kwargs: Any) -> str:
    """Return the text of the one problem ``make_driver`` raises for ``args``."""
    with pytest.raises(InvalidInputError) as caught:
        make_driver(catalog, catalog_args=args, catalogs=CATALOGS, **kwargs)
    (problem,) = caught.value.problems
    return f"{problem.field}: {problem.message}; {problem.fix}"


# -- refusals --------------------------------------------------------------------------------


def test_make_driver_url_on_other_host_without_credentials_is_refused() -> None:
    text = refusal("open", {"url": "https://evil.example.net/v1"})
    assert text.startswith("catalog_args.url: points to host 'evil.example.net'")
    assert "allowed_hosts" in text
    assert "COLLECTION_BUILDER_ALLOWED_HOSTS" in text


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local (cloud metadata)"),
        ("http://10.0.0.5:8080/v1", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fd00:ec2::254]/", "private"),
        ("http://169.254.10.1/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://0.0.0.0:8080/", "unspecified"),
        ("http://[::ffff:169.254.169.254]/", "link-local (cloud metadata)"),
    ],
)
def test_make_driver_url_on_internal_address_is_refused(url: str, kind: str) -> None:
    text = refusal("open", {"url": url})
    assert f"is a {kind} address not in the allowed hosts of catalog 'open'" in text


def test_make_driver_loopback_without_switch_is_refused(no_loopback: None) -> None:
    for url in ("http://127.0.0.1:8123/v1", "http://localhost:8123/v1", "http://[::1]:9/"):
        text = refusal("open", {"url": url})
        assert "is loopback and allow_loopback is off" in text
        assert "COLLECTION_BUILDER_ALLOW_LOOPBACK=true" in text


def test_make_driver_token_url_on_loopback_without_switch_is_refused(no_loopback: None) -> None:
    text = refusal("cdse", {"token_url": "http://127.0.0.1:8123/token"})
    assert text.startswith("catalog_args.token_url: points to host '127.0.0.1'")
    assert "allow_loopback" in text


def test_make_driver_token_url_on_other_host_is_refused() -> None:
    text = refusal("cdse", {"token_url": "https://evil.example.net/token"})
    assert text.startswith("catalog_args.token_url: points to host 'evil.example.net'")


def test_make_driver_wildcard_host_resolving_to_private_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        outbound, "resolve_host", lambda host: [outbound.ipaddress.ip_address("10.1.2.3")]
    )
    text = refusal("cdse", {"url": "https://rebind.dataspace.copernicus.eu/odata/v1"})
    assert "resolves to 10.1.2.3, a private address that is not listed" in text


def test_endpoint_override_problem_without_catalog_refuses_unlisted_host() -> None:
    problem = endpoint_override_problem(
        "catalog_args.token_url",
        "https://mirror.invalid/token",
        home_url="https://mirror.invalid/odata/v1",
    )
    assert problem is not None
    assert problem.field == "catalog_args.token_url"
    assert "'mirror.invalid'" in problem.message
    assert "allowed_hosts" in problem.fix


# -- acceptances ---------------------------------------------------------------------------


@pytest.mark.usefixtures("no_loopback")
@pytest.mark.parametrize(
    "url",
    [
        "https://stac.example.org/other/v1",  # the catalog's own host
        "https://mirror.example.org/v1",  # listed in allowed_hosts
    ],
)
def test_make_driver_url_on_catalog_or_listed_host_is_kept(url: str) -> None:
    driver = make_driver("open", catalog_args={"url": url}, catalogs=CATALOGS)
    assert driver.url == url


def test_make_driver_url_on_deployment_listed_host_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW__COLLECTION_BUILDER__ALLOWED_HOSTS", "a.example.net, 10.9.0.0/16")
    for url in ("https://a.example.net/v1", "http://10.9.3.4/v1"):
        assert make_driver("open", catalog_args={"url": url}, catalogs=CATALOGS).url == url


def test_make_driver_loopback_with_switch_is_kept() -> None:
    args = {"url": "http://127.0.0.1:8123/odata/v1", "token_url": "http://127.0.0.1:8123/token"}
    driver = make_driver(
        "cdse", catalog_args=args, catalogs=CATALOGS, credentials=Credentials("u", "p")
    )
    assert driver.url == args["url"]


def test_make_driver_listed_metadata_address_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTION_BUILDER_ALLOWED_HOSTS", "169.254.169.254")
    url = "http://169.254.169.254/v1"
    assert make_driver("open", catalog_args={"url": url}, catalogs=CATALOGS).url == url


def test_cdse_redirect_hosts_are_allowed_by_configured_catalogs(no_loopback: None) -> None:
    from include.common.config import load_catalogs

    catalogs = load_catalogs()
    for name in ("cdse", "cdse-stac"):
        policy = outbound.catalog_policy(name, catalogs[name])
        for host in (
            "catalogue.dataspace.copernicus.eu",
            "identity.dataspace.copernicus.eu",
            "zipper.dataspace.copernicus.eu",
            "download.dataspace.copernicus.eu",
        ):
            assert policy.host_problem(host) is None, (name, host)
        assert policy.host_problem("dataspace.copernicus.eu.evil.net") is not None


# -- settings --------------------------------------------------------------------------------


def test_outbound_settings_default_is_closed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in (
        "COLLECTION_BUILDER_ALLOW_LOOPBACK",
        "AIRFLOW__COLLECTION_BUILDER__ALLOW_LOOPBACK",
        "COLLECTION_BUILDER_ALLOWED_HOSTS",
        "AIRFLOW__COLLECTION_BUILDER__ALLOWED_HOSTS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_CONFIG", str(tmp_path / "missing.cfg"))
    settings = outbound_settings()
    assert settings.allowed_hosts == ()
    assert settings.allow_loopback is False


def test_outbound_settings_read_airflow_cfg(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("COLLECTION_BUILDER_ALLOW_LOOPBACK")
    monkeypatch.delenv("COLLECTION_BUILDER_ALLOWED_HOSTS", raising=False)
    monkeypatch.delenv("AIRFLOW__COLLECTION_BUILDER__ALLOWED_HOSTS", raising=False)
    cfg = tmp_path / "airflow.cfg"
    cfg.write_text(
        "[collection_builder]\nallowed_hosts = Mirror.example.org,*.corp.example\n"
        "allow_loopback = True\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("AIRFLOW_CONFIG", str(cfg))
    settings = outbound_settings()
    assert settings.allowed_hosts == ("mirror.example.org", "*.corp.example")
    assert settings.allow_loopback is True


# -- every request and redirect hop ----------------------------------------------------------


class _Redirecting(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/ok":
            body = b"{}"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(302)
        self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        """Keep test output quiet."""


@pytest.fixture
def loopback_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_build_http_client_redirect_to_refused_host_raises(loopback_server: str) -> None:
    policy = OutboundPolicy.from_entries("open", ["stac.example.org"], allow_loopback=True)
    with build_http_client(outbound=policy) as client:
        assert client.get(f"{loopback_server}/ok").status_code == 200
        with pytest.raises(ProviderError) as caught:
            client.get(f"{loopback_server}/redirect")
    message = str(caught.value)
    assert "refused a request or redirect to http://169.254.169.254/latest/meta-data/" in message
    assert "link-local (cloud metadata)" in message


def test_build_http_client_request_to_unlisted_host_raises_before_sending() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    policy = OutboundPolicy.from_entries("open", ["stac.example.org"], allow_loopback=False)
    with build_http_client(outbound=policy) as client:
        client._transport = httpx.MockTransport(answer)  # no network: record what is sent
        assert client.get("https://stac.example.org/v1").status_code == 200
        for url in ("https://evil.example.net/", "http://127.0.0.1:9/", "http://10.0.0.1/"):
            with pytest.raises(ProviderError, match="refused a request or redirect"):
                client.get(url)
    assert [str(request.url) for request in sent] == ["https://stac.example.org/v1"]


def test_make_driver_client_refuses_hosts_outside_the_catalog(no_loopback: None) -> None:
    driver = make_driver("open", catalogs=CATALOGS)
    settings = DriverSettings.from_options(driver.options, catalog="open")
    policy = settings.outbound_policy()
    assert policy is not None
    assert policy.host_problem("stac.example.org") is None
    assert policy.host_problem("mirror.example.org") is None
    assert policy.host_problem("127.0.0.1") == "is loopback and allow_loopback is off"


def test_driver_built_by_hand_has_no_outbound_check() -> None:
    assert DriverSettings.from_options({}, catalog="x").outbound_policy() is None
