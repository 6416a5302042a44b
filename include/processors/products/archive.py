"""Safe extraction of product archives (zip, tar, tar.gz/bz2/xz) into a folder.

Product archives come from providers we do not control, so every member is checked before a
byte is written: absolute names, ``..`` components, drive letters and backslash tricks that would
land outside the target are refused; so are symbolic and hard links, devices and FIFOs, more
than ``max_members`` members, a declared total above ``max_total_bytes``, a member whose
declared compression ratio is absurd (a zip bomb), and a stream that turns out larger than it
declared. Extraction goes into a temporary sibling folder that is renamed into place, so the
target either holds the whole archive or does not exist; a completed extraction is marked with
the archive's name, size and modification time and reused by the next call while the archive
is the same (a new download, ``force`` included, is extracted again).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from include.common.errors import FieldProblem, IntegrityError, InvalidInputError

log = logging.getLogger(__name__)

DEFAULT_MAX_TOTAL_BYTES = 20 * 1024**3
"""20 GiB: a Sentinel-2 SAFE is about 1 GB, a Landsat C2 bundle about 1-2 GB."""
DEFAULT_MAX_MEMBERS = 20_000
DEFAULT_MAX_RATIO = 200.0
"""Uncompressed/compressed size above which a (large) zip member is taken for a bomb."""
_RATIO_MIN_BYTES = 10 * 1024**2
"""Members below this size are never judged by their ratio (small XML compresses very well)."""
_DONE_MARKER = ".extracted"
_CHUNK_BYTES = 1024 * 1024


class UnsafeArchiveError(IntegrityError):
    """An archive member would escape the target, is a link or device, or is absurdly large."""

    def __init__(self, archive: Path, member: str, reason: str) -> None:
        self.archive = archive
        self.member = member
        self.reason = reason
        super().__init__(
            f"{archive.name}: member {member!r} {reason}; the archive was not extracted "
            "(download it again from a trusted provider, or inspect it by hand)"
        )


@dataclass(frozen=True, slots=True)
class ExtractionLimits:
    """Bounds an archive must respect to be extracted."""

    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    max_members: int = DEFAULT_MAX_MEMBERS
    max_ratio: float = DEFAULT_MAX_RATIO


@dataclass(frozen=True, slots=True)
class _Member:
    name: str
    """The normalised relative POSIX path."""
    is_dir: bool
    size_bytes: int


def unpacked_folder(archive: Path) -> Path:
    """Return where ``archive`` is extracted: beside it, shared by every step that reads it."""
    return archive.with_name(archive.name + ".d")


def is_archive(path: Path) -> bool:
    """Return whether ``path`` is a file that is a zip or tar archive (by content)."""
    if not path.is_file():
        return False
    if zipfile.is_zipfile(path):
        return True
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def safe_member_name(archive: Path, raw_name: str) -> str:
    """Return ``raw_name`` as a relative POSIX path that stays inside the target folder.

    Raises:
        UnsafeArchiveError: for absolute names, drive letters, backslashes, NUL bytes or
            ``..`` components.
    """
    if "\x00" in raw_name:
        raise UnsafeArchiveError(archive, raw_name, "contains a NUL byte")
    if "\\" in raw_name:
        raise UnsafeArchiveError(archive, raw_name, "uses backslashes (a Windows path)")
    if raw_name.startswith("/") or (len(raw_name) > 1 and raw_name[1] == ":"):
        raise UnsafeArchiveError(archive, raw_name, "is an absolute path")
    parts = [part for part in PurePosixPath(raw_name).parts if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise UnsafeArchiveError(archive, raw_name, "escapes the target folder with '..'")
    if not parts:
        raise UnsafeArchiveError(archive, raw_name, "has an empty name")
    return "/".join(parts)


def _zip_members(archive: Path, handle: zipfile.ZipFile, limits: ExtractionLimits) -> list[_Member]:
    members: list[_Member] = []
    for info in handle.infolist():
        name = safe_member_name(archive, info.filename)
        file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the writer set no type
        if file_type and file_type not in (stat.S_IFREG, stat.S_IFDIR):
            kind = "a symbolic link" if file_type == stat.S_IFLNK else "a special file"
            raise UnsafeArchiveError(archive, info.filename, f"is {kind}")
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError(archive, info.filename, "is encrypted")
        if info.file_size > _RATIO_MIN_BYTES and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            raise UnsafeArchiveError(
                archive,
                info.filename,
                f"declares a compression ratio above {limits.max_ratio:g} (a zip bomb?)",
            )
        members.append(_Member(name, info.is_dir(), 0 if info.is_dir() else info.file_size))
    return members


def _tar_members(archive: Path, handle: tarfile.TarFile) -> list[_Member]:
    members: list[_Member] = []
    for info in handle.getmembers():
        name = safe_member_name(archive, info.name)
        if info.issym() or info.islnk():
            raise UnsafeArchiveError(archive, info.name, "is a link")
        if not (info.isfile() or info.isdir()):
            raise UnsafeArchiveError(archive, info.name, "is a device, FIFO or other special file")
        members.append(_Member(name, info.isdir(), 0 if info.isdir() else info.size))
    return members


def _check_totals(archive: Path, members: list[_Member], limits: ExtractionLimits) -> None:
    if len(members) > limits.max_members:
        raise UnsafeArchiveError(
            archive, "*", f"is one of {len(members)} members (limit {limits.max_members})"
        )
    total = sum(member.size_bytes for member in members)
    if total > limits.max_total_bytes:
        raise UnsafeArchiveError(
            archive,
            "*",
            f"makes the archive expand to {total} bytes (limit {limits.max_total_bytes})",
        )
    names: set[str] = set()
    for member in members:
        key = member.name.lower()
        if key in names and not member.is_dir:
            raise UnsafeArchiveError(archive, member.name, "appears twice")
        names.add(key)


def _copy_limited(
    archive: Path, name: str, source: IO[bytes], dest: Path, declared_bytes: int
) -> int:
    written = 0
    with dest.open("wb") as out:
        while True:
            chunk = source.read(_CHUNK_BYTES)
            if not chunk:
                break
            written += len(chunk)
            if written > declared_bytes:
                raise UnsafeArchiveError(archive, name, "is larger than it declares")
            out.write(chunk)
    return written


def _within(root: Path, name: str) -> Path:
    target = (root / name).resolve()
    if root.resolve() not in (target, *target.parents):  # belt and braces after name checks
        raise UnsafeArchiveError(root, name, "resolves outside the target folder")
    return target


def extract_archive(archive: Path, dest: Path, *, limits: ExtractionLimits | None = None) -> Path:
    """Extract ``archive`` (zip or tar, any compression tarfile reads) into the folder ``dest``.

    Idempotent: a ``dest`` left by a completed extraction is reused as is. Atomic: members go
    to a temporary sibling folder renamed to ``dest`` at the end; on any failure nothing is
    left at ``dest``.

    Args:
        archive: the archive file.
        dest: the folder to create (must not exist, or hold a completed extraction).
        limits: member count, total size and compression-ratio bounds.

    Returns:
        ``dest``.

    Raises:
        InvalidInputError: ``archive`` is missing or neither a zip nor a tar file.
        UnsafeArchiveError: a member breaks a rule (see the module docstring).
        IntegrityError: the archive is truncated or corrupt.
    """
    limits = limits or ExtractionLimits()
    if archive.is_file() and _extracted_from(dest, archive):
        log.info("archive.reused archive=%s dest=%s", archive.name, dest)
        return dest
    if not archive.is_file():
        raise InvalidInputError(
            FieldProblem(f"files[{archive.name}]", f"{archive} does not exist", "download again")
        )
    if dest.exists():
        shutil.rmtree(dest)  # an interrupted earlier attempt never got its marker
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    tmp.mkdir()
    try:
        count, size = _extract_into(archive, tmp, limits)
        (tmp / _DONE_MARKER).write_text(_marker_text(archive), encoding="utf-8")
        _move_into_place(tmp, dest, archive)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
        raise IntegrityError(
            f"{archive.name}: the archive is corrupt or truncated ({err}); download it again"
        ) from err
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "archive.extracted archive=%s dest=%s members=%d size_bytes=%d",
        archive.name,
        dest,
        count,
        size,
    )
    return dest


def _marker_text(archive: Path) -> str:
    info = archive.stat()
    return f"{archive.name}\n{info.st_size}\n{info.st_mtime_ns}\n"


def _extracted_from(dest: Path, archive: Path) -> bool:
    """Return whether ``dest`` holds a completed extraction of this very ``archive`` file."""
    marker = dest / _DONE_MARKER
    try:
        return marker.read_text(encoding="utf-8") == _marker_text(archive)
    except OSError:
        return False


def _move_into_place(tmp: Path, dest: Path, archive: Path) -> None:
    """Rename ``tmp`` to ``dest``; another process that finished the same extraction first wins."""
    try:
        os.replace(tmp, dest)
    except OSError:
        if not _extracted_from(dest, archive):
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(tmp, dest)


def _extract_into(archive: Path, root: Path, limits: ExtractionLimits) -> tuple[int, int]:
    written_total = 0
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as handle:
            members = _zip_members(archive, handle, limits)
            _check_totals(archive, members, limits)
            infos = handle.infolist()
            for member, zip_info in zip(members, infos, strict=True):
                target = _within(root, member.name)
                if member.is_dir:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with handle.open(zip_info) as source:
                    written_total += _copy_limited(
                        archive, member.name, source, target, member.size_bytes
                    )
        return len(members), written_total
    try:
        handle_tar = tarfile.open(archive)  # noqa: SIM115 - closed below
    except tarfile.ReadError as err:
        raise InvalidInputError(
            FieldProblem(
                f"files[{archive.name}]",
                "is neither a zip nor a tar archive",
                "give the provider's product archive (.zip SAFE or .tar bundle) or a folder",
            )
        ) from err
    with handle_tar:
        members = _tar_members(archive, handle_tar)
        _check_totals(archive, members, limits)
        for member, tar_info in zip(members, handle_tar.getmembers(), strict=True):
            target = _within(root, member.name)
            if member.is_dir:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            stream = handle_tar.extractfile(tar_info)
            if stream is None:  # pragma: no cover - regular files always have a stream
                raise UnsafeArchiveError(archive, member.name, "has no data")
            with stream:
                written_total += _copy_limited(
                    archive, member.name, stream, target, member.size_bytes
                )
    return len(members), written_total
