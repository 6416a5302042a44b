"""A file-backed token store shared by the task processes of one machine and user.

Airflow 3 runs every task instance in its own process, so a per-process token cache logs in once
per task. This store lets the task processes of one worker reuse one login: one file per login
in a private directory, encrypted with a key derived from the password, written atomically, and
guarded by a per-login lock file so that processes starting together do one login between them.

Directory: ``$COLLECTION_BUILDER_TOKEN_CACHE_DIR`` when set (``off`` disables the store: tokens
are then cached per process only); else ``$XDG_RUNTIME_DIR/collection-builder/tokens``; else
``<tempdir>/collection-builder-<uid>/tokens``. Directories are created with mode 0700; one that
is not a directory owned by the current user, or that group or others may access, is refused
(one warning per process, then the per-process cache only). Files are 0600.

A file holds a Fernet token (``cryptography``) of the JSON ``{"access_token", "expires_at",
"refresh_token", "refresh_expires_at"}``. The Fernet key and the file name both come from
PBKDF2-HMAC-SHA256 of the password salted with the token URL, client id and username, so a file
is useless, and its name says nothing, without the password; a changed password (a new Connection)
gets another file. The derivation runs once per process per login (about 10 ms). A file that
fails to decrypt or parse reads as absent and is replaced by the next login. Store failures
(a full disk, a removed directory) are logged without secrets and never fail a token request.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

log = logging.getLogger(__name__)

STORE_DIR_ENV = "COLLECTION_BUILDER_TOKEN_CACHE_DIR"
"""Environment variable naming the store's directory; ``off`` disables the store."""
STORE_OFF = "off"
KDF_ITERATIONS = 50_000
"""PBKDF2 rounds: cheap once per process (about 10 ms), costly for guessing a password."""

_WARNED: set[tuple[str, str]] = set()
_DERIVED: dict[tuple[str, str, str, str], tuple[str, bytes]] = {}
_DERIVED_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True, slots=True)
class TokenRecord:
    """An access token with its refresh token; times are seconds since the epoch."""

    access_token: str
    expires_at: float
    refresh_token: str | None
    refresh_expires_at: float


def token_cache_dir() -> Path | None:
    """Return the store's directory, created if needed; None when off or refused.

    A refused directory (wrong owner, group/other access, not a directory) or one that cannot be
    created logs one warning per process and reason.
    """
    configured = os.environ.get(STORE_DIR_ENV, "").strip()
    if configured.lower() == STORE_OFF:
        return None
    if configured:
        chosen = Path(os.path.realpath(Path(configured).expanduser()))
        private = [chosen]  # the user chose where; its parents are theirs to keep
    else:
        runtime = os.environ.get("XDG_RUNTIME_DIR", "").strip()
        if runtime:
            base = Path(runtime) / "collection-builder"
        else:  # a shared temp dir: our own subdirectory must be private too
            base = Path(tempfile.gettempdir()) / f"collection-builder-{os.getuid()}"
        private = [base, base / "tokens"]
    directory = private[0]
    try:
        if configured:
            directory.parent.mkdir(parents=True, exist_ok=True)
        for directory in private:
            directory.mkdir(mode=0o700, exist_ok=True)
            problem = _private_dir_problem(directory)
            if problem is not None:
                _warn_once(directory, problem)
                return None
    except OSError as err:
        _warn_once(directory, f"cannot be created ({err.strerror or type(err).__name__})")
        return None
    return private[-1]


def _private_dir_problem(directory: Path) -> str | None:
    """Return why ``directory`` may not hold tokens, or None when it is private to this user."""
    try:
        info = os.lstat(directory)
    except OSError as err:
        return f"cannot be read ({err.strerror or type(err).__name__})"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    if info.st_uid != os.getuid():
        return f"is owned by uid {info.st_uid}, not by this user (uid {os.getuid()})"
    if info.st_mode & 0o077:
        return f"is accessible by group or others (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


def _warn_once(directory: Path, problem: str) -> None:
    if (str(directory), problem) in _WARNED:
        return
    _WARNED.add((str(directory), problem))
    log.warning(
        "token.store_refused dir=%s reason=%r; caching tokens per process only (fix the "
        "directory to mode 0700 owned by this user, or set %s)",
        directory,
        problem,
        STORE_DIR_ENV,
    )


def _derive(token_url: str, client_id: str, username: str, password: str) -> tuple[str, bytes]:
    """Return (file name stem, Fernet key) of one login, derived once per process."""
    fingerprint = hashlib.sha256(password.encode("utf-8")).hexdigest()
    memo_key = (token_url, client_id, username, fingerprint)
    with _DERIVED_LOCK:
        derived = _DERIVED.get(memo_key)
        if derived is None:
            salt = json.dumps(["collection-builder-token", token_url, client_id, username])
            material = hashlib.pbkdf2_hmac(
                "sha256", password.encode("utf-8"), salt.encode("utf-8"), KDF_ITERATIONS, dklen=64
            )
            derived = (material[32:].hex()[:40], base64.urlsafe_b64encode(material[:32]))
            _DERIVED[memo_key] = derived
        return derived


class TokenStore:
    """The stored token of one login (token URL, client id, username, password).

    Args:
        directory: a private directory (from ``token_cache_dir``).
        token_url: the token endpoint the login is for.
        client_id: the client the login is for.
        username: the account.
        password: the account's password (never stored; it keys the encryption).
    """

    def __init__(
        self, directory: Path, *, token_url: str, client_id: str, username: str, password: str
    ) -> None:
        stem, key = _derive(token_url, client_id, username, password)
        self.directory = directory
        self.path = directory / f"{stem}.token"
        self.lock_path = directory / f"{stem}.lock"
        self._fernet = Fernet(key)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold this login's lock (other processes wait); unlocked if the lock file fails."""
        try:
            fd = os.open(
                self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
        except OSError as err:
            self._log_failure("lock", err)
            yield
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as err:
                self._log_failure("lock", err)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def read(self) -> TokenRecord | None:
        """Return the stored token; None when absent, unreadable or not a token of this login."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as file:
                sealed = file.read()
        except FileNotFoundError:
            return None
        except OSError as err:
            self._log_failure("read", err)
            return None
        try:
            record = _record(json.loads(self._fernet.decrypt(sealed)))
        except (InvalidToken, ValueError):
            record = None
        if record is None:
            log.info("token.store_unreadable file=%s; logging in again", self.path.name)
        return record

    def write(self, record: TokenRecord) -> None:
        """Store ``record`` atomically (a 0600 temporary file renamed over the old one)."""
        plain = json.dumps(dataclasses.asdict(record)).encode("utf-8")
        sealed = self._fernet.encrypt(plain)
        temporary: str | None = None
        try:
            fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
            with os.fdopen(fd, "wb") as file:
                file.write(sealed)
            os.replace(temporary, self.path)
            temporary = None
        except OSError as err:
            self._log_failure("write", err)
        finally:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)

    def discard(self, access_token: str) -> bool:
        """Remove the stored token if it is ``access_token``; return whether it was removed.

        Takes the lock itself: call it outside ``locked()``.
        """
        with self.locked():
            stored = self.read()
            if stored is None or stored.access_token != access_token:
                return False
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                return False
            except OSError as err:
                self._log_failure("remove", err)
                return False
            return True

    def _log_failure(self, action: str, err: OSError) -> None:
        log.warning(
            "token.store_failed action=%s file=%s reason=%r; continuing without the worker cache",
            action,
            self.path.name,
            err.strerror or type(err).__name__,
        )


def open_token_store(
    *, token_url: str, client_id: str, username: str, password: str
) -> TokenStore | None:
    """Return the store of one login in ``token_cache_dir()``; None when off or refused."""
    directory = token_cache_dir()
    if directory is None:
        return None
    return TokenStore(
        directory, token_url=token_url, client_id=client_id, username=username, password=password
    )


def _record(data: Any) -> TokenRecord | None:
    if not isinstance(data, dict):
        return None
    access = data.get("access_token")
    refresh = data.get("refresh_token")
    expires_at = _epoch(data.get("expires_at"))
    refresh_expires_at = _epoch(data.get("refresh_expires_at"))
    if not isinstance(access, str) or not access or expires_at is None:
        return None
    if (refresh is not None and not isinstance(refresh, str)) or refresh_expires_at is None:
        return None
    return TokenRecord(
        access_token=access,
        expires_at=expires_at,
        refresh_token=refresh or None,
        refresh_expires_at=refresh_expires_at,
    )


def _epoch(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


__all__ = [
    "KDF_ITERATIONS",
    "STORE_DIR_ENV",
    "STORE_OFF",
    "TokenRecord",
    "TokenStore",
    "open_token_store",
    "token_cache_dir",
]
