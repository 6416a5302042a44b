"""File checksums as catalogs give them: STAC ``file:checksum`` multihashes and ``<algo>:<hex>``.

A STAC ``file:checksum`` is a hex-encoded multihash: an unsigned-varint hash function code, an
unsigned-varint digest length, then the digest (``1220<64 hex>`` is SHA2-256, ``d50110<32 hex>``
is MD5). Other catalogs give ``<algo>:<hex>`` (``md5:...``, ``sha256:...``, ``blake3:...``).
Both parse to one canonical :class:`Checksum`, printed as ``<algo>:<hex>``.
"""

from __future__ import annotations

import hashlib
import importlib
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

MULTIHASH_CODES: dict[int, str] = {
    0x11: "sha1",
    0x12: "sha256",
    0x13: "sha512",
    0x14: "sha3-512",
    0x16: "sha3-256",
    0x1E: "blake3",
    0xD5: "md5",
}
"""Multihash function codes we verify, from the multiformats multicodec table."""

_CODE_OF = {name: code for code, name in MULTIHASH_CODES.items()}

DIGEST_BYTES: dict[str, int | None] = {
    "md5": 16,
    "sha1": 20,
    "sha256": 32,
    "sha512": 64,
    "sha3-256": 32,
    "sha3-512": 64,
    "blake3": None,
}
"""Digest length per algorithm; None where the length is variable (BLAKE3 is an XOF)."""

_ALIASES = {
    "md5": "md5",
    "sha1": "sha1",
    "sha-1": "sha1",
    "sha256": "sha256",
    "sha-256": "sha256",
    "sha2-256": "sha256",
    "sha512": "sha512",
    "sha-512": "sha512",
    "sha2-512": "sha512",
    "sha3-256": "sha3-256",
    "sha3-512": "sha3-512",
    "blake3": "blake3",
}

_HEX = frozenset(string.hexdigits)


class UnsupportedChecksumError(ValueError):
    """A well-formed checksum whose algorithm cannot be computed here (unknown, or no blake3)."""


class Hasher(Protocol):
    """What we need of a hash object: ``update`` then ``hexdigest``."""

    def update(self, data: bytes | memoryview, /) -> None:
        """Feed bytes."""

    def hexdigest(self) -> str:
        """Return the digest as lowercase hex."""


@dataclass(frozen=True, slots=True)
class Checksum:
    """A digest with its algorithm; ``str()`` gives ``<algo>:<hex>``."""

    algorithm: str
    hex_digest: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex_digest}"

    @property
    def digest_bytes(self) -> int:
        """Length of the digest in bytes."""
        return len(self.hex_digest) // 2

    def to_multihash(self) -> str:
        """Return the hex multihash (the STAC ``file:checksum`` form)."""
        return (
            _varint(_CODE_OF[self.algorithm]).hex()
            + _varint(self.digest_bytes).hex()
            + self.hex_digest
        )

    def matches(self, other: Checksum) -> bool:
        """Return whether both name the same algorithm and digest (case-insensitive hex)."""
        return self.algorithm == other.algorithm and self.hex_digest == other.hex_digest


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Return ``(value, next position)`` of the unsigned varint at ``pos``."""
    value = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("multihash ends inside a varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("multihash varint is longer than 9 bytes")


def _check_hex(value: str, what: str) -> str:
    if not value or len(value) % 2 or not set(value) <= _HEX:
        raise ValueError(f"{what} {value!r} is not an even-length hex string")
    return value.lower()


def _check_length(algorithm: str, hex_digest: str) -> None:
    wanted = DIGEST_BYTES[algorithm]
    if wanted is not None and len(hex_digest) != 2 * wanted:
        raise ValueError(f"{algorithm} digest has {len(hex_digest) // 2} bytes, expected {wanted}")


def decode_multihash(value: str) -> Checksum:
    """Decode a hex multihash (STAC ``file:checksum``).

    Raises:
        UnsupportedChecksumError: for a hash function code we do not know.
        ValueError: when the value is not a well-formed multihash.
    """
    data = bytes.fromhex(_check_hex(value.strip(), "multihash"))
    code, pos = _read_varint(data, 0)
    length, pos = _read_varint(data, pos)
    digest = data[pos:]
    if len(digest) != length:
        raise ValueError(f"multihash announces {length} digest bytes but holds {len(digest)}")
    algorithm = MULTIHASH_CODES.get(code)
    if algorithm is None:
        raise UnsupportedChecksumError(f"multihash function code 0x{code:x} is not supported")
    _check_length(algorithm, digest.hex())
    return Checksum(algorithm, digest.hex())


def parse_checksum(value: str) -> Checksum:
    """Parse ``<algo>:<hex>`` or a hex multihash into a :class:`Checksum`.

    Raises:
        UnsupportedChecksumError: for an algorithm we do not know.
        ValueError: when the value is malformed (bad hex, wrong digest length).
    """
    text = value.strip()
    if ":" not in text:
        return decode_multihash(text)
    name, _, hex_digest = text.partition(":")
    algorithm = _ALIASES.get(name.strip().lower())
    if algorithm is None:
        raise UnsupportedChecksumError(f"checksum algorithm {name!r} is not supported")
    hex_digest = _check_hex(hex_digest.strip(), f"{algorithm} digest")
    _check_length(algorithm, hex_digest)
    return Checksum(algorithm, hex_digest)


class _Blake3Hasher:
    """Adapts ``blake3.blake3`` to :class:`Hasher` with a fixed output length."""

    def __init__(self, module: Any, digest_bytes: int) -> None:
        self._hash = module.blake3()
        self._digest_bytes = digest_bytes

    def update(self, data: bytes | memoryview, /) -> None:
        self._hash.update(data)

    def hexdigest(self) -> str:
        return str(self._hash.hexdigest(length=self._digest_bytes))


def is_available(algorithm: str) -> bool:
    """Return whether ``algorithm`` can be computed here (BLAKE3 needs the ``blake3`` module)."""
    if algorithm != "blake3":
        return algorithm in DIGEST_BYTES
    try:
        importlib.import_module("blake3")
    except ImportError:
        return False
    return True


def new_hasher(algorithm: str, digest_bytes: int | None = None) -> Hasher:
    """Return a fresh hash object for ``algorithm``.

    Raises:
        UnsupportedChecksumError: when the algorithm is unknown or its module is not installed.
    """
    if algorithm == "blake3":
        try:
            module = importlib.import_module("blake3")
        except ImportError as err:
            raise UnsupportedChecksumError(
                "blake3 checksums need the 'blake3' package, which is not installed"
            ) from err
        return _Blake3Hasher(module, digest_bytes or 32)
    if algorithm not in DIGEST_BYTES:
        raise UnsupportedChecksumError(f"checksum algorithm {algorithm!r} is not supported")
    return hashlib.new(algorithm.replace("-", "_"))


def hash_file(
    path: Path, algorithm: str, *, digest_bytes: int | None = None, chunk_bytes: int = 1 << 20
) -> Checksum:
    """Return the checksum of the file at ``path``.

    Raises:
        UnsupportedChecksumError: when the algorithm cannot be computed here.
        OSError: when the file cannot be read.
    """
    hasher = new_hasher(algorithm, digest_bytes)
    update_from_file(hasher, path, chunk_bytes=chunk_bytes)
    return Checksum(algorithm, hasher.hexdigest())


def update_from_file(hasher: Hasher, path: Path, *, chunk_bytes: int = 1 << 20) -> int:
    """Feed the whole file at ``path`` to ``hasher``; return the number of bytes read.

    Raises:
        OSError: when the file cannot be read.
    """
    total = 0
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            hasher.update(chunk)
            total += len(chunk)
    return total
