"""Fixtures for every test layer."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_token_store(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Give each test its own worker token cache (include/collectors/token_store.py).

    Task processes of one machine share tokens through that directory; without this, a test
    (or a loopback server on a reused port) would pick up a token stored by an earlier test.
    """
    directory = tmp_path_factory.mktemp("token-store")
    directory.chmod(0o700)
    monkeypatch.setenv("COLLECTION_BUILDER_TOKEN_CACHE_DIR", str(directory))


@pytest.fixture(autouse=True)
def _allow_loopback_catalogs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let catalogs reach the tests' loopback servers, as scripts/env.sh does (docs/catalogs.md)."""
    monkeypatch.setenv("COLLECTION_BUILDER_ALLOW_LOOPBACK", "true")
