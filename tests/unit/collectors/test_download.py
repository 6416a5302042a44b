"""The download engine against a local HTTP server: resume, verify, retry, reuse, locking."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
import pytest

from include.collectors import download as engine
from include.collectors.base import Asset
from include.collectors.checksums import (
    Checksum,
    UnsupportedChecksumError,
    decode_multihash,
    parse_checksum,
)
from include.collectors.download import (
    DiskFullError,
    asset_filename,
    download_assets,
    download_file,
)
from include.collectors.http import parse_retry_after, redact_url
from include.common.errors import (
    ChecksumMismatchError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
)
from tests.helpers.http_server import (
    LocalHttpServer,
    Reply,
    Request,
    fail,
    sequence,
    serve_bytes,
)

DATA = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes, not a multiple of any chunk


def sha256_multihash(data: bytes) -> str:
    return "1220" + hashlib.sha256(data).hexdigest()


def md5_multihash(data: bytes) -> str:
    return "d50110" + hashlib.md5(data).hexdigest()  # noqa: S324 - the catalogs' own algorithm


# ----------------------------------------------------------------------------- checksums


def test_parse_checksum_multihash_sha256_decodes_code_and_length() -> None:
    parsed = parse_checksum(sha256_multihash(b"abc"))
    assert parsed == Checksum("sha256", hashlib.sha256(b"abc").hexdigest())
    assert parsed.to_multihash() == sha256_multihash(b"abc")


def test_parse_checksum_multihash_md5_reads_two_byte_varint() -> None:
    parsed = parse_checksum(md5_multihash(b"abc"))
    assert parsed.algorithm == "md5"
    assert parsed.to_multihash().startswith("d50110")


def test_parse_checksum_prefixed_forms_are_canonical() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    assert parse_checksum(f"SHA256:{digest.upper()}") == Checksum("sha256", digest)
    assert parse_checksum(f"sha2-256:{digest}").algorithm == "sha256"
    assert parse_checksum("md5:" + hashlib.md5(b"x").hexdigest()).algorithm == "md5"  # noqa: S324


@pytest.mark.parametrize(
    "value",
    ["1220abcd", "12", "zz", "md5:abc", "sha256:" + "0" * 10, "1220" + "0" * 66],
)
def test_parse_checksum_malformed_raises_value_error(value: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_checksum(value)


def test_parse_checksum_unknown_code_raises_unsupported() -> None:
    with pytest.raises(UnsupportedChecksumError):
        decode_multihash("2020" + "00" * 32)
    with pytest.raises(UnsupportedChecksumError):
        parse_checksum("crc32c:abcd")


# ----------------------------------------------------------------------------- helpers


def test_redact_url_signed_url_drops_query_and_userinfo() -> None:
    url = "https://user:pw@blob.example.net:8443/c/B04.tif?se=2025&sig=SECRET%3D#frag"
    assert redact_url(url) == "https://blob.example.net:8443/c/B04.tif"
    assert "SECRET" not in redact_url(httpx.URL(url))


def test_parse_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_asset_filename_key_plus_href_extension() -> None:
    assert asset_filename(Asset("red", "https://h/p/B04.TIF?sig=1")) == "red.TIF"
    assert asset_filename(Asset("mtl.txt", "https://h/p/LC08_MTL.txt")) == "mtl.txt"
    assert asset_filename(Asset("granule", "https://h/p/metadata")) == "granule"


# ----------------------------------------------------------------------------- download_file


@pytest.mark.parametrize("form", ["multihash-sha256", "multihash-md5", "md5-prefixed"])
def test_download_file_verified_checksum_renames_into_place(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path, form: str
) -> None:
    checksum = {
        "multihash-sha256": sha256_multihash(DATA),
        "multihash-md5": md5_multihash(DATA),
        "md5-prefixed": "md5:" + hashlib.md5(DATA).hexdigest(),  # noqa: S324
    }[form]
    url = http_server.route("/scene.zip", serve_bytes(DATA))
    dest = tmp_path / "scene.zip"

    result = download_file(client, url, dest, expected_size=len(DATA), checksum=checksum)

    assert dest.read_bytes() == DATA
    assert result.size_bytes == len(DATA)
    assert result.reused is False
    assert result.files == (dest,)
    assert str(result.checksum) == str(parse_checksum(checksum))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.zip"]


def test_download_file_no_checksum_records_blake3(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path
) -> None:
    blake3 = pytest.importorskip("blake3")
    url = http_server.route("/f", serve_bytes(DATA))
    result = download_file(client, url, tmp_path / "f")
    assert result.checksum == "blake3:" + blake3.blake3(DATA).hexdigest()


@pytest.mark.parametrize(
    ("env", "argument", "synced"),
    [("", None, True), ("0", None, False), ("off", True, True), ("1", False, False)],
)
def test_download_file_fsyncs_only_when_asked(
    http_server: LocalHttpServer,
    client: httpx.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: str,
    argument: bool | None,
    synced: bool,
) -> None:
    synced_fds: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced_fds.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(engine.os, "fsync", recording_fsync)
    if env:
        monkeypatch.setenv(engine.FSYNC_ENV, env)
    else:
        monkeypatch.delenv(engine.FSYNC_ENV, raising=False)
    url = http_server.route("/f", serve_bytes(DATA))

    download_file(client, url, tmp_path / "f", expected_size=len(DATA), fsync=argument)

    assert (tmp_path / "f").read_bytes() == DATA
    assert bool(synced_fds) is synced  # the file, then its folder


def test_socket_body_reads_plain_http11_bodies_straight_from_the_socket(
    http_server: LocalHttpServer, client: httpx.Client
) -> None:
    url = http_server.route("/f", serve_bytes(DATA))
    with client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
        chunks = engine._socket_body(response, bytearray(64 << 10))
        assert chunks is not None, "the pinned httpx/httpcore no longer allow the fast path"
        assert b"".join(bytes(chunk) for chunk in chunks) == DATA
    # the connection h11 did not see finish is closed, not reused: the next request works
    assert client.get(url).content == DATA


def test_socket_body_declines_encoded_bodies(
    http_server: LocalHttpServer, client: httpx.Client
) -> None:
    def chunked(request: Request) -> Reply:
        return Reply(200, b"4\r\nWiki\r\n0\r\n\r\n", {"Transfer-Encoding": "chunked"})

    url = http_server.route("/chunked", chunked)
    with client.stream("GET", url) as response:
        assert engine._socket_body(response, bytearray(1024)) is None
        assert response.read() == b"Wiki"


def test_download_file_fast_path_dropped_link_is_a_short_read_and_keeps_the_partial(
    http_server: LocalHttpServer, tmp_path: Path
) -> None:
    url = http_server.route("/f", serve_bytes(DATA, drop_after=len(DATA) // 2))
    dest = tmp_path / "f"
    with httpx.Client(timeout=5.0) as http:
        with pytest.raises(ProviderUnavailableError, match="short read"):
            download_file(http, url, dest, max_attempts=1)
    assert (tmp_path / "f.part").read_bytes() == DATA[: len(DATA) // 2]


def test_socket_reads_are_raised_to_one_mib() -> None:
    import httpcore

    assert httpcore._sync.http11.HTTP11Connection.READ_NUM_BYTES >= engine.SOCKET_READ_BYTES


def test_download_file_dropped_connection_resumes_with_range(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path, sleeps: list[float]
) -> None:
    half = len(DATA) // 2
    url = http_server.route(
        "/scene.zip", sequence(serve_bytes(DATA, drop_after=half), serve_bytes(DATA))
    )
    dest = tmp_path / "scene.zip"

    result = download_file(client, url, dest, checksum=sha256_multihash(DATA), sleep=sleeps.append)

    assert dest.read_bytes() == DATA
    assert result.size_bytes == len(DATA)
    first, second = http_server.requests_to("/scene.zip")
    assert "range" not in first.headers
    start = int(second.headers["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= half
    assert len(sleeps) == 1
    assert not dest.with_name("scene.zip.part").exists()


def test_download_file_server_ignores_range_restarts_from_zero(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path, sleeps: list[float]
) -> None:
    half = len(DATA) // 2
    url = http_server.route(
        "/f.bin",
        sequence(serve_bytes(DATA, drop_after=half, ranges=False), serve_bytes(DATA, ranges=False)),
    )
    dest = tmp_path / "f.bin"

    download_file(client, url, dest, checksum=sha256_multihash(DATA), sleep=sleeps.append)

    assert dest.read_bytes() == DATA
    assert "range" in http_server.requests_to("/f.bin")[1].headers


NEW_DATA = bytes(reversed(DATA))
"""Another version of DATA, of the same size: only a checksum would tell them apart."""


def half_of_version_one(server: LocalHttpServer, client: httpx.Client, dest: Path) -> str:
    """Leave the first half of DATA (ETag ``"v1"``) as ``dest``'s partial; return the URL."""
    url = server.route("/f.bin", serve_bytes(DATA, drop_after=len(DATA) // 2, etag='"v1"'))
    with pytest.raises(ProviderUnavailableError):
        download_file(client, url, dest, expected_size=len(DATA), max_attempts=1)
    assert dest.with_name(dest.name + ".part.validator").read_text() == '"v1"'
    return url


@pytest.mark.parametrize("honours_if_range", [True, False])
def test_download_file_changed_between_attempts_is_downloaded_again_not_spliced(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path, honours_if_range: bool
) -> None:
    dest = tmp_path / "f.bin"
    url = half_of_version_one(http_server, client, dest)
    # the provider reprocessed it; a server ignoring If-Range answers 206 of the new version
    http_server.route("/f.bin", serve_bytes(NEW_DATA, etag='"v2"', if_range=honours_if_range))

    download_file(client, url, dest, expected_size=len(NEW_DATA))

    assert dest.read_bytes() == NEW_DATA
    requests = http_server.requests_to("/f.bin")
    assert requests[1].headers["if-range"] == '"v1"' and requests[1].headers["range"] != ""
    if not honours_if_range:  # the 206 named "v2": restarted from zero
        assert "range" not in requests[-1].headers
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["f.bin"]


def test_download_file_same_version_resumes_with_if_range(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path, sleeps: list[float]
) -> None:
    half = len(DATA) // 2
    url = http_server.route(
        "/f.bin",
        sequence(serve_bytes(DATA, drop_after=half, etag='"v1"'), serve_bytes(DATA, etag='"v1"')),
    )
    dest = tmp_path / "f.bin"

    download_file(client, url, dest, checksum=sha256_multihash(DATA), sleep=sleeps.append)

    first, second = http_server.requests_to("/f.bin")
    assert second.headers["if-range"] == '"v1"'
    assert int(second.headers["range"].removeprefix("bytes=").rstrip("-")) > 0
    assert dest.read_bytes() == DATA
    assert not dest.with_name("f.bin.part.validator").exists()


def test_download_file_existing_partial_resumed_from_its_size(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path
) -> None:
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(DATA[:1000])
    url = http_server.route("/f.bin", serve_bytes(DATA))

    download_file(client, url, dest, expected_size=len(DATA), checksum=sha256_multihash(DATA))

    assert http_server.requests_to("/f.bin")[0].headers["range"] == "bytes=1000-"
    assert dest.read_bytes() == DATA


def test_download_file_complete_partial_with_416_is_verified_and_renamed(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path
) -> None:
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(DATA)
    url = http_server.route("/f.bin", serve_bytes(DATA))

    result = download_file(client, url, dest, checksum=sha256_multihash(DATA))

    assert result.size_bytes == len(DATA)
    assert dest.read_bytes() == DATA


def test_download_file_mismatched_content_range_restarts_from_zero(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path
) -> None:
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(b"garbage!")

    def wrong_range(request: Request) -> Reply:
        return Reply(206, DATA, {"Content-Range": f"bytes 0-{len(DATA) - 1}/{len(DATA)}"})

    url = http_server.route("/f.bin", sequence(wrong_range, serve_bytes(DATA)))

    download_file(client, url, dest, checksum=sha256_multihash(DATA))

    assert dest.read_bytes() == DATA
    assert "range" not in http_server.requests_to("/f.bin")[1].headers


def test_download_file_checksum_mismatch_leaves_nothing(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path
) -> None:
    url = http_server.route("/f.bin", serve_bytes(DATA))
    dest = tmp_path / "f.bin"

    with pytest.raises(ChecksumMismatchError) as caught:
        download_file(client, url, dest, checksum=sha256_multihash(b"another file"))

    assert caught.value.expected.startswith("sha256:")
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_download_file_size_mismatch_raises_and_leaves_nothing(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path
) -> None:
    url = http_server.route("/f.bin", serve_bytes(DATA))
    with pytest.raises(ChecksumMismatchError, match="size_bytes"):
        download_file(client, url, tmp_path / "f.bin", expected_size=len(DATA) + 1)
    assert list(tmp_path.iterdir()) == []


def test_download_file_500_then_success_retries(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path, sleeps: list[float]
) -> None:
    url = http_server.route("/f.bin", sequence(fail(500), fail(503), serve_bytes(DATA)))

    result = download_file(client, url, tmp_path / "f.bin", sleep=sleeps.append)

    assert result.size_bytes == len(DATA)
    assert len(sleeps) == 2
    assert sleeps[1] > sleeps[0] * 0.3  # exponential backoff with jitter


def test_download_file_persistent_500_raises_unavailable(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path, sleeps: list[float]
) -> None:
    url = http_server.route("/f.bin", fail(502, "bad gateway"))
    with pytest.raises(ProviderUnavailableError) as caught:
        download_file(client, url, tmp_path / "f.bin", sleep=sleeps.append)
    assert caught.value.status_code == 502
    assert http_server.count("/f.bin") == 3


def test_download_file_429_retry_after_exhausted_raises_rate_limited(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path, sleeps: list[float]
) -> None:
    url = http_server.route("/f.bin", fail(429, "slow down", {"Retry-After": "7"}))

    with pytest.raises(RateLimitedError) as caught:
        download_file(client, url, tmp_path / "f.bin", sleep=sleeps.append, max_attempts=3)

    assert caught.value.retry_after_s == 7.0
    assert sleeps == [7.0, 7.0]
    assert http_server.count("/f.bin") == 3


def test_download_file_long_retry_after_not_waited_in_task(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path, sleeps: list[float]
) -> None:
    url = http_server.route("/f.bin", fail(429, "", {"Retry-After": "3600"}))
    with pytest.raises(RateLimitedError):
        download_file(client, url, tmp_path / "f.bin", sleep=sleeps.append)
    assert sleeps == []
    assert http_server.count("/f.bin") == 1


@pytest.mark.parametrize("status", [401, 403, 404])
def test_download_file_4xx_raises_provider_error_without_retry(
    http_server: LocalHttpServer,
    client: httpx.Client,
    tmp_path: Path,
    sleeps: list[float],
    status: int,
) -> None:
    url = http_server.route("/f.bin", fail(status, '{"description": "Item gone"}'))

    with pytest.raises(ProviderError) as caught:
        download_file(client, url + "?sig=SECRET", tmp_path / "f.bin", sleep=sleeps.append)

    assert caught.value.status_code == status
    assert "Item gone" in str(caught.value)
    assert "SECRET" not in str(caught.value)
    assert http_server.count("/f.bin") == 1
    assert sleeps == []


def test_download_file_connection_refused_raises_unavailable(
    client: httpx.Client, tmp_path: Path, sleeps: list[float]
) -> None:
    with socket_bound_but_closed() as url:
        with pytest.raises(ProviderUnavailableError):
            download_file(client, url, tmp_path / "f.bin", sleep=sleeps.append, max_attempts=2)
    assert len(sleeps) == 1


def test_download_file_valid_existing_file_reused_without_requests(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path
) -> None:
    url = http_server.route("/f.bin", serve_bytes(DATA))
    dest = tmp_path / "f.bin"
    dest.write_bytes(DATA)
    seen: list[tuple[int, int | None]] = []

    result = download_file(
        client,
        url,
        dest,
        expected_size=len(DATA),
        checksum=sha256_multihash(DATA),
        progress=lambda done, total: seen.append((done, total)),
    )

    assert result.reused is True
    assert http_server.count() == 0
    assert seen == [(len(DATA), len(DATA))]


def test_download_file_corrupt_existing_file_downloaded_again(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path
) -> None:
    url = http_server.route("/f.bin", serve_bytes(DATA))
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"x" * len(DATA))

    result = download_file(client, url, dest, checksum=sha256_multihash(DATA))

    assert result.reused is False
    assert dest.read_bytes() == DATA


def test_download_file_progress_reaches_total(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path
) -> None:
    url = http_server.route("/f.bin", serve_bytes(DATA))
    seen: list[tuple[int, int | None]] = []

    download_file(client, url, tmp_path / "f.bin", progress=lambda d, t: seen.append((d, t)))

    assert seen[-1] == (len(DATA), len(DATA))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_download_file_concurrent_same_dest_one_correct_file(
    http_server: LocalHttpServer, tmp_path: Path
) -> None:
    url = http_server.route("/f.bin", serve_bytes(DATA))
    dest = tmp_path / "f.bin"
    results: list[object] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        with httpx.Client(timeout=5.0) as own_client:
            barrier.wait()
            try:
                results.append(download_file(own_client, url, dest, chunk_bytes=4096))
            except Exception as err:  # noqa: BLE001 - collected for the assertion below
                results.append(err)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert all(not isinstance(r, Exception) for r in results), results
    assert dest.read_bytes() == DATA
    assert sorted(r.reused for r in results) == [False, True]  # type: ignore[attr-defined]
    assert http_server.count("/f.bin") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_download_file_signed_url_never_logged(
    http_server: LocalHttpServer,
    client: httpx.Client,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = http_server.route("/f.bin", serve_bytes(DATA)) + "?sv=2021&sig=TOPSECRET"
    with caplog.at_level(logging.DEBUG):
        download_file(client, url, tmp_path / "f.bin")
    assert caplog.records
    assert all("TOPSECRET" not in record.getMessage() for record in caplog.records)


def test_download_file_disk_full_raises_naming_folder(
    http_server: LocalHttpServer,
    client: httpx.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = http_server.route("/f.bin", serve_bytes(DATA))

    def full(handle: IO[bytes], data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(engine, "_write", full)

    with pytest.raises(DiskFullError) as caught:
        download_file(client, url, tmp_path / "f.bin", expected_size=len(DATA))

    assert str(tmp_path) in str(caught.value)
    assert caught.value.needed_bytes == len(DATA)
    assert not (tmp_path / "f.bin").exists()


def test_download_file_unsupported_checksum_verifies_size_only(
    http_server: LocalHttpServer,
    client: httpx.Client,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = http_server.route("/f.bin", serve_bytes(DATA))
    with caplog.at_level(logging.WARNING):
        result = download_file(client, url, tmp_path / "f.bin", checksum="crc32c:abcd1234")
    assert result.size_bytes == len(DATA)
    assert "checksum_skipped" in caplog.text


def test_download_file_malformed_checksum_raises_provider_error(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path
) -> None:
    url = http_server.route("/f.bin", serve_bytes(DATA))
    with pytest.raises(ProviderError, match="malformed"):
        download_file(client, url, tmp_path / "f.bin", checksum="1220abcd")
    assert http_server.count() == 0


def test_download_file_redirect_followed(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path
) -> None:
    http_server.route("/f.bin", serve_bytes(DATA))
    url = http_server.route("/presign", fail(302, "", {"Location": http_server.url + "/f.bin"}))
    with httpx.Client(timeout=5.0) as no_redirect_client:  # the engine asks for redirects itself
        result = download_file(no_redirect_client, url, tmp_path / "f.bin")
    assert result.size_bytes == len(DATA)


def test_download_file_s3_href_raises_provider_error(client: httpx.Client, tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="not HTTP"):
        download_file(client, "s3://bucket/key.tif", tmp_path / "f.tif")


# ----------------------------------------------------------------------------- download_assets


def test_download_assets_parallel_aggregate_progress(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path
) -> None:
    blobs = {f"B0{i}": bytes([i]) * (100_000 + i) for i in range(1, 6)}
    assets = [
        Asset(
            key,
            http_server.route(f"/{key}.tif", serve_bytes(blob)) + "?sig=x",
            size_bytes=len(blob),
            checksum=sha256_multihash(blob),
        )
        for key, blob in blobs.items()
    ]
    seen: list[tuple[int, int | None]] = []
    lock = threading.Lock()

    def progress(done: int, total: int | None) -> None:
        with lock:
            seen.append((done, total))

    paths = download_assets(client, assets, tmp_path / "scene", max_workers=3, progress=progress)

    assert list(paths) == list(blobs)
    for key, blob in blobs.items():
        assert paths[key] == tmp_path / "scene" / f"{key}.tif"
        assert paths[key].read_bytes() == blob
    total = sum(len(blob) for blob in blobs.values())
    assert max(done for done, _ in seen) == total
    assert {t for _, t in seen} == {total}


def test_download_assets_one_failure_raises_it(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path
) -> None:
    good = Asset("good", http_server.route("/good.tif", serve_bytes(DATA)))
    bad = Asset("bad", http_server.route("/bad.tif", fail(404, "missing")))
    with pytest.raises(ProviderError, match="missing"):
        download_assets(client, [good, bad], tmp_path, max_workers=2)


# ----------------------------------------------------------------------------- test plumbing


@contextmanager
def socket_bound_but_closed() -> Iterator[str]:
    """A loopback URL whose port refuses connections."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    yield f"http://127.0.0.1:{port}/f.bin"


def test_download_file_gzip_encoded_answer_is_stored_decoded(
    http_server: LocalHttpServer, client: httpx.Client, tmp_path: Path
) -> None:
    import gzip

    encoded = gzip.compress(DATA)

    def handle(request: Request) -> Reply:
        return Reply(200, encoded, {"Content-Encoding": "gzip"})  # ignores our identity ask

    url = http_server.route("/f.bin", handle)

    result = download_file(client, url, tmp_path / "f.bin")

    assert (tmp_path / "f.bin").read_bytes() == DATA
    assert result.size_bytes == len(DATA)


OLD_DATE = "Mon, 01 Jan 2024 00:00:00 GMT"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"ETag": '"v1"'}, '"v1"'),
        ({"ETag": 'W/"v1"', "Last-Modified": OLD_DATE}, None),  # weak
        ({"Last-Modified": OLD_DATE, "Date": "Tue, 02 Jan 2024 00:00:00 GMT"}, OLD_DATE),
        # dated "now" (a file made on the fly): not a strong validator
        ({"Last-Modified": OLD_DATE, "Date": "Mon, 01 Jan 2024 00:00:30 GMT"}, None),
        ({"Last-Modified": OLD_DATE}, None),  # no Date to judge it by
        ({}, None),
    ],
)
def test_if_range_validator_follows_rfc9110(headers: dict[str, str], expected: str | None) -> None:
    assert engine._response_validator(httpx.Response(200, headers=headers)) == expected
