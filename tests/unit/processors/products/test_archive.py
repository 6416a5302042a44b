"""Safe archive extraction: traversal, links, devices, bombs and limits are refused."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from include.common.errors import IntegrityError, InvalidInputError
from include.processors.products import (
    ExtractionLimits,
    UnsafeArchiveError,
    extract_archive,
    is_archive,
)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        for name, data in members.items():
            handle.writestr(name, data)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(path, "w") as handle:
        for info in members:
            payload = (data or {}).get(info.name)
            if payload is not None:
                info.size = len(payload)
                handle.addfile(info, io.BytesIO(payload))
            else:
                handle.addfile(info)
    return path


def test_extract_zip_writes_members_and_reuses_a_complete_extraction(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "p.zip", {"P.SAFE/MTD.xml": b"<x/>", "P.SAFE/G/b.jp2": b"12"})
    dest = extract_archive(archive, tmp_path / "out")
    assert (dest / "P.SAFE" / "MTD.xml").read_bytes() == b"<x/>"
    assert (dest / "P.SAFE" / "G" / "b.jp2").read_bytes() == b"12"
    (dest / "P.SAFE" / "MTD.xml").write_bytes(b"kept")
    assert extract_archive(archive, tmp_path / "out") == dest
    assert (dest / "P.SAFE" / "MTD.xml").read_bytes() == b"kept"  # reused, not redone


def test_extract_tar_gz_writes_members(tmp_path: Path) -> None:
    archive = tmp_path / "b.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        info = tarfile.TarInfo("X_MTL.txt")
        info.size = 3
        handle.addfile(info, io.BytesIO(b"abc"))
    assert is_archive(archive)
    assert (extract_archive(archive, tmp_path / "o") / "X_MTL.txt").read_bytes() == b"abc"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../evil.txt", "escapes the target folder"),
        ("ok/../../evil.txt", "escapes the target folder"),
        ("/etc/passwd", "is an absolute path"),
        ("C:/windows.txt", "is an absolute path"),
        ("a\\..\\b.txt", "uses backslashes"),
    ],
)
def test_extract_zip_member_escaping_the_target_is_refused(
    tmp_path: Path, name: str, reason: str
) -> None:
    archive = _zip(tmp_path / "bad.zip", {"fine.txt": b"1", name: b"2"})
    with pytest.raises(UnsafeArchiveError, match=reason):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.zip"]  # no temporary folder left


def test_extract_zip_symlink_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        handle.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract_archive(archive, tmp_path / "out")


@pytest.mark.parametrize(
    ("kind", "reason"),
    [(tarfile.SYMTYPE, "is a link"), (tarfile.LNKTYPE, "is a link"), (tarfile.FIFOTYPE, "device")],
)
def test_extract_tar_links_and_devices_are_refused(
    tmp_path: Path, kind: bytes, reason: str
) -> None:
    info = tarfile.TarInfo("odd")
    info.type = kind
    info.linkname = "/etc/passwd"
    archive = _tar(tmp_path / "odd.tar", [info])
    with pytest.raises(UnsafeArchiveError, match=reason):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_extract_tar_traversal_is_refused(tmp_path: Path) -> None:
    info = tarfile.TarInfo("../../x.txt")
    archive = _tar(tmp_path / "t.tar", [info], {"../../x.txt": b"x"})
    with pytest.raises(UnsafeArchiveError, match="escapes"):
        extract_archive(archive, tmp_path / "out")


def test_extract_zip_bomb_ratio_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "bomb.zip", {"zeros.bin": bytes(32 * 1024 * 1024)})
    assert archive.stat().st_size < 200_000
    with pytest.raises(UnsafeArchiveError, match="compression ratio"):
        extract_archive(archive, tmp_path / "out")


def test_extract_beyond_size_or_member_limits_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {f"f{i}.txt": b"x" * 100 for i in range(5)})
    with pytest.raises(UnsafeArchiveError, match="expand to 500 bytes"):
        extract_archive(archive, tmp_path / "o1", limits=ExtractionLimits(max_total_bytes=499))
    with pytest.raises(UnsafeArchiveError, match="one of 5 members"):
        extract_archive(archive, tmp_path / "o2", limits=ExtractionLimits(max_members=4))


def test_extract_corrupt_or_unknown_files(tmp_path: Path) -> None:
    good = _zip(tmp_path / "g.zip", {"a.txt": b"hello world" * 100})
    corrupt = tmp_path / "c.zip"
    data = bytearray(good.read_bytes())
    data[40:60] = bytes(20)  # damage the compressed stream, keep the directory
    corrupt.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        extract_archive(corrupt, tmp_path / "o")
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"not an archive")
    assert not is_archive(plain)
    with pytest.raises(InvalidInputError, match="neither a zip nor a tar"):
        extract_archive(plain, tmp_path / "o2")
    with pytest.raises(InvalidInputError, match="does not exist"):
        extract_archive(tmp_path / "missing.zip", tmp_path / "o3")
