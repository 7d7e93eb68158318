"""A token store in one JSON file, shared by the processes of one host (or one shared disk)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .._log import log
from ..errors import ConfigurationError
from ..oauth_token import OAuthToken
from .base import DEFAULT_LEASE_TIMEOUT, DEFAULT_POLL_INTERVAL, OUTAGE_RECORD_TTL, Outage
from .sealing import EncryptionKey, Sealer

__all__ = ["FileTokenStore"]

_T = TypeVar("_T")
_FORMAT = "reqcc_token_store"
_VERSION = 1
#: A store file larger than this is not a token store (and is not read whole); none is written.
_MAX_SIZE = 1 << 20
#: A token whose JSON is larger than this is not stored (it would crowd out the other clients).
_MAX_TOKEN_SIZE = 64 * 1024
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _seconds(value: Any, keyword: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"{keyword} must be a number of seconds > 0, got {value!r}")
    return float(value)


class FileTokenStore:
    """Shares tokens through one JSON file: every process of a host uses the same token.

    The file maps each key to its token, its lease and the token endpoint's outage record
    (:meth:`read_outage`; the fleet's next probe and last failure, contract item 29). Reads
    take no lock (the file is only ever replaced whole: written to a temporary file in the
    same folder, then renamed over it with ``os.replace``); changes are made under a
    cross-process lock on ``PATH.lock`` (the ``filelock`` package). Files are created with
    mode 0600 in a folder created 0700.

    A corrupt or unreadable file, one that is not a regular file, or one that other users
    can read or write or that another user owns, is logged and not trusted: it reads as
    empty and is replaced by a private file at the next change. Failing to take the lock
    or to write (a read-only or full disk) raises, so the manager falls back to fetching
    for itself.

    The file never grows past the 1 MiB its readers accept: a token whose JSON exceeds
    64 KiB is not stored (a WARNING; the process keeps using it; an entry that large is
    not read either), and a change that would make the file larger than 1 MiB raises
    ``OSError(EFBIG)`` and leaves the file as it was (the other clients' entries are kept).
    Missing folders on the way to ``path`` are all created with mode 0700, whatever the umask.

    :param path: the store file (e.g. ``/run/myapp/tokens.json``; a folder every process of
        the service can write, and that other users cannot).
    :param lease_timeout: seconds a lease lasts if its holder never releases it (default 10).
    :param poll_interval: seconds between two reads while another process fetches.
    :param lock_timeout: the longest one change waits for the file lock (default 5 s).
    :param clock: the wall clock in Unix seconds, for lease expiry (default ``time.time``).
    :param encryption_key: seal each token at rest (AES-256-GCM, :mod:`reqcc.stores.sealing`):
        32 bytes, or a sequence of them for rotation (the first seals, all open). Needs
        ``reqcc[seal]``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        lock_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        encryption_key: EncryptionKey | None = None,
    ) -> None:
        try:
            self.path = os.path.abspath(os.fspath(path))
        except TypeError:
            raise ConfigurationError(f"path must be a file path, got {type(path).__name__}") from None
        self.lock_path = self.path + ".lock"
        self.lease_timeout = _seconds(lease_timeout, "lease_timeout")
        self.poll_interval = _seconds(poll_interval, "poll_interval")
        self.lock_timeout = _seconds(lock_timeout, "lock_timeout")
        self._clock = clock
        self._sealer = None if encryption_key is None else Sealer(encryption_key, where=repr(self))

    # -- the TokenStore protocol ----------------------------------------------------------

    def read(self, key: str) -> OAuthToken | None:
        """Return the token stored under ``key``, or ``None``."""
        entry = self._load().get(key)
        data = entry.get("token") if isinstance(entry, dict) else None
        if data is not None and self._sealer is not None:
            data = self._sealer.open(key, data)
        if data is None:
            return None
        if len(json.dumps(data, separators=(",", ":"))) > _MAX_TOKEN_SIZE:
            # Never written by a store (write() refuses it): altered. Adopted, it would be sent
            # as a header no server takes (431) on every request until it expires.
            log.warning("token store %s: the entry for key %s… is larger than a stored token may be "
                        "(%d bytes); ignored", self.path, key[:8], _MAX_TOKEN_SIZE)
            return None
        try:
            return OAuthToken.from_dict(data)
        except ValueError as exc:
            log.warning("token store %s: the entry for key %s… is not a token (%s); ignored", self.path,
                        key[:8], exc)
            return None

    def write(self, key: str, token: OAuthToken) -> None:
        """Store ``token`` under ``key`` (atomically; other keys' entries are kept).

        A token larger than 64 KiB as JSON is not stored: a WARNING is logged instead.
        """
        data: Any = token.to_dict()
        if self._sealer is not None:
            data = self._sealer.seal(key, data)
        size = len(json.dumps(data, separators=(",", ":")).encode("utf-8"))
        if size > _MAX_TOKEN_SIZE:
            log.warning(
                "token store %s: token %s is %d bytes as JSON, more than the %d a stored token may "
                "take; not stored (this process keeps using it, others fetch their own)",
                self.path, token.fingerprint, size, _MAX_TOKEN_SIZE,
            )
            return

        def change(entries: dict[str, Any]) -> tuple[None, bool]:
            entry = entries.get(key)
            if not isinstance(entry, dict):
                entry = entries[key] = {}
            entry["token"] = data
            entry.pop("outage", None)  # a token was obtained: the outage is over
            return None, True

        self._update(change)

    def read_outage(self, key: str) -> Outage | None:
        """Return the token endpoint's outage recorded under ``key`` (contract item 29), or ``None``."""
        entry = self._load().get(key)
        return Outage.from_dict(entry.get("outage")) if isinstance(entry, dict) else None

    def write_outage(self, key: str, outage: Outage) -> None:
        """Record the token endpoint's outage under ``key``, beside its token; a token written ends it."""

        def change(entries: dict[str, Any]) -> tuple[None, bool]:
            entry = entries.get(key)
            if not isinstance(entry, dict):
                entry = entries[key] = {}
            entry["outage"] = outage.to_dict()
            return None, True

        self._update(change)

    def acquire_lease(self, key: str) -> str | None:
        """Take the lease on ``key`` unless another holder's lease is still running."""
        holder = uuid.uuid4().hex

        def change(entries: dict[str, Any]) -> tuple[str | None, bool]:
            entry = entries.get(key)
            if not isinstance(entry, dict):
                entry = entries[key] = {}
            if self._live(entry.get("lease")):
                return None, False
            entry["lease"] = {"holder": holder, "until": self._clock() + self.lease_timeout}
            return holder, True

        return self._update(change)

    def release_lease(self, key: str, holder: str) -> None:
        """Give back the lease on ``key`` if ``holder`` still holds it."""

        def change(entries: dict[str, Any]) -> tuple[None, bool]:
            entry = entries.get(key)
            if not isinstance(entry, dict):
                return None, False
            lease = entry.get("lease")
            if not isinstance(lease, dict) or lease.get("holder") != holder:
                return None, False
            del entry["lease"]
            return None, True

        self._update(change)

    # -- the file -------------------------------------------------------------------------

    def _live(self, lease: Any) -> bool:
        """Whether ``lease`` still runs: until its ``until``, and never past ``lease_timeout`` from now.

        A lease whose ``until`` is further ahead than ``lease_timeout`` was not taken by a
        reqcc with this store's settings and clock (a clock that jumped back, a corrupt or
        forged file): it is not honoured, or it would hold every token request for as long
        as it claims (contract item 29).
        """
        if not isinstance(lease, dict):
            return False
        until = lease.get("until")
        if not isinstance(until, (int, float)) or isinstance(until, bool):
            return False
        now = self._clock()
        return now < until <= now + self.lease_timeout

    def _load(self) -> dict[str, Any]:
        """Return the file's entries; ``{}`` when it is missing, or logged as not trustworthy."""
        try:
            fd = os.open(self.path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            if isinstance(exc, PermissionError) or exc.errno == errno.ELOOP:
                reason = "it is a symbolic link" if exc.errno == errno.ELOOP else "permission denied"
                log.warning("token store %s is unreadable (%s); it will be replaced", self.path, reason)
                return {}
            raise
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            problem = self._untrusted(info)
            if problem:
                log.warning(
                    "token store %s %s; its tokens are not used, and it will be replaced by a "
                    "file only this user can read (mode 0600)", self.path, problem,
                )
                return {}
            raw = file.read(_MAX_SIZE + 1)
        try:
            document = json.loads(raw.decode("utf-8")) if len(raw) <= _MAX_SIZE else None
        except (ValueError, RecursionError):  # RecursionError: deep nesting, within the 1 MiB
            document = None
        if (
            not isinstance(document, dict)
            or document.get(_FORMAT) != _VERSION
            or not isinstance(document.get("entries"), dict)
        ):
            log.warning("token store %s is corrupt (not a reqcc token store); it will be replaced",
                        self.path)
            return {}
        entries: dict[str, Any] = document["entries"]
        return entries

    @staticmethod
    def _untrusted(info: os.stat_result) -> str | None:
        if not stat.S_ISREG(info.st_mode):
            return "is not a regular file"
        if os.name != "posix":
            return None
        if info.st_mode & 0o077:
            return f"has mode {stat.S_IMODE(info.st_mode):04o}, open to other users"
        if info.st_uid != os.geteuid():
            return f"belongs to another user (uid {info.st_uid})"
        return None

    def _update(self, change: Callable[[dict[str, Any]], tuple[_T, bool]]) -> _T:
        """Apply ``change`` to the entries under the file lock; rewrite the file if it changed."""
        directory = os.path.dirname(self.path)
        _make_private_dirs(directory)
        with self._locked():
            entries = self._load()
            result, changed = change(entries)
            if changed:
                self._prune(entries)
                self._dump(directory, entries)
        return result

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        from filelock import FileLock  # a dependency of reqcc; imported when first needed

        # A new lock object per change: nothing is shared between threads, or kept across fork.
        with FileLock(self.lock_path, timeout=self.lock_timeout, mode=0o600):
            yield

    def _prune(self, entries: dict[str, Any]) -> None:
        now = self._clock()
        for key in list(entries):
            entry = entries[key]
            if not isinstance(entry, dict):
                del entries[key]
                continue
            if not self._live(entry.get("lease")):
                entry.pop("lease", None)
            outage = Outage.from_dict(entry.get("outage"))
            if "outage" in entry and (outage is None or outage.next_probe + OUTAGE_RECORD_TTL <= now):
                del entry["outage"]
            token = entry.get("token")
            if isinstance(token, str) and self._sealer is not None:
                # Sealed: its expiry is read by opening it (an entry no key opens is left alone,
                # it may be another fleet's on the same file).
                token = self._sealer.unseal(key, token)
                if token is None:
                    continue
            expiry = token.get("expiry") if isinstance(token, dict) else None
            if token is not None and isinstance(expiry, (int, float)) and expiry <= now:
                del entry["token"]
            if not entry:
                del entries[key]

    def _dump(self, directory: str, entries: dict[str, Any]) -> None:
        document = {_FORMAT: _VERSION, "entries": entries}
        encoded = json.dumps(document, separators=(",", ":")).encode("utf-8")
        if len(encoded) > _MAX_SIZE:
            # Written, it would read as corrupt everywhere and be replaced by one entry.
            raise OSError(
                errno.EFBIG,
                f"token store {self.path} would grow to {len(encoded)} bytes, more than the "
                f"{_MAX_SIZE} its readers accept; left unchanged",
            )
        fd, temporary = tempfile.mkstemp(  # created with mode 0600
            prefix="." + os.path.basename(self.path) + ".", suffix=".tmp", dir=directory
        )
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(encoded)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def __repr__(self) -> str:
        return f"FileTokenStore({self.path!r})"


def _make_private_dirs(directory: str) -> None:
    """Create ``directory`` and every missing parent with mode 0700 (umask-proof).

    ``os.makedirs(mode=0o700)`` applies the mode to the leaf only, and through the umask.
    Folders that already exist are left as they are.
    """
    missing: list[str] = []
    current = directory
    while current and not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue  # made meanwhile by another process: not ours to change
        os.chmod(folder, 0o700)
