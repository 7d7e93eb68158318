"""Client assertions reqcc does not sign: a platform's JWT from a file, or from a callable (RFC 7523).

Workload identity (a Kubernetes projected service-account token, Entra workload identity's
federated token file, a SPIFFE JWT-SVID) gives a service a short-lived JWT signed by its
platform, not a secret. Each token request presents it as the client assertion::

    client_id=<client_id>
    client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
    client_assertion=<the platform's JWT>

The authorization server verifies it (signature, issuer, subject, audience, expiry). reqcc
checks locally only what spares a doomed request: that it is there, is JWT-shaped, is not
larger than :data:`MAX_ASSERTION_SIZE`, and that its ``exp`` (read from the payload without
verifying the signature) is still :data:`EXPIRY_MARGIN` seconds away. Anything else is a
:class:`ClientAssertionError` naming the file (or the callable) and what is wrong, raised
before any request is sent.

A file is read again when it changes: each fetch stats its path (following symlinks, as the
kubelet's ``..data`` link is swapped) and re-reads it when the inode, size or mtime of what
the path resolves to differ from the copy held, or when the copy held has expired.

The assertion is a secret: no repr, log record or error carries it; the token-store key
holds its source (the path, or the callable's qualified name), never its value.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from typing import Any

from .auth_base import AuthParts, ClientAuth
from .errors import ConfigurationError, ReqccError

__all__ = [
    "ASSERTION_TYPE",
    "EXPIRY_MARGIN",
    "MAX_ASSERTION_SIZE",
    "AssertionCallable",
    "AssertionFile",
    "AssertionPath",
    "ClientAssertionError",
    "ExternalAssertion",
]

#: The ``client_assertion_type`` of a JWT assertion (RFC 7523 §2.2).
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: The largest assertion accepted, in bytes (platform tokens are 1-2 KiB).
MAX_ASSERTION_SIZE = 64 * 1024
#: Seconds an assertion must still have before its ``exp`` to be sent: it must reach the
#: server, and be checked there, before it expires.
EXPIRY_MARGIN = 5.0

#: ``(audience) -> str``: returns a fresh assertion for a token endpoint (the audience).
AssertionCallable = Callable[[str], str]

_UTF8_BOM = b"\xef\xbb\xbf"
# Three base64url parts; the signature may be empty only in an unsecured JWT (which a
# server refuses, but that is its call). Visible ASCII only, so always header- and form-safe.
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class ClientAssertionError(ReqccError):
    """The client assertion cannot be used: missing, empty, unreadable, malformed or expired.

    An operational failure, not a configuration one (a rotated file that is late, a
    platform that stopped writing it): raised when a token is needed, before any token
    request is sent, and retried after the failure backoff like a failed fetch.
    ``source`` names the file (or the callable); the message says what is wrong and never
    quotes the assertion.
    """

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(message)
        self.source = source


def callable_name(function: object) -> str:
    """Return ``module.qualname`` of ``function`` (its type's for an object without one)."""
    named = function if hasattr(function, "__qualname__") else type(function)
    module = getattr(named, "__module__", None) or "?"
    return f"{module}.{getattr(named, '__qualname__', type(function).__name__)}"


def _b64url_json(part: str) -> Any:
    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def assertion_expiry(assertion: str, source: str, *, audience: str | None = None) -> float:
    """Return the ``exp`` of ``assertion`` (read, not verified), checking its shape.

    :param audience: if given, the payload's ``aud`` (a string or a list) must hold it.
    :raises ClientAssertionError: not a JWT, no numeric ``exp`` in its payload, or another
        audience.
    """
    if not _JWT_SHAPE.fullmatch(assertion):
        raise ClientAssertionError(
            f"client assertion from {source} is not a JWT (three base64url parts separated by dots)",
            source=source,
        )
    try:
        payload = _b64url_json(assertion.split(".", 2)[1])
    except (ValueError, binascii.Error, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        raise ClientAssertionError(
            f"client assertion from {source} is not a JWT (its payload is not a JSON object)", source=source
        )
    claim = payload.get("exp")
    exp = math.nan
    if not isinstance(claim, bool) and isinstance(claim, (int, float)):
        try:
            exp = float(claim)
        except OverflowError:  # an int too large for a float
            pass
    if not math.isfinite(exp):
        raise ClientAssertionError(
            f"client assertion from {source} has no numeric 'exp' claim (RFC 7523 §3 requires one)",
            source=source,
        )
    if audience is not None:
        aud = payload.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if audience not in auds:
            shown = [a[:100] for a in auds if isinstance(a, str)][:5]
            raise ClientAssertionError(
                f"client assertion from {source} is for audience {shown!r}, not {audience!r}: set "
                "the projected token's audience to it (serviceAccountToken.audience in the pod spec)",
                source=source,
            )
    return exp


def _check_expiry(expiry: float, now: float, source: str) -> None:
    if expiry - EXPIRY_MARGIN <= now:
        raise ClientAssertionError(
            f"client assertion from {source} has expired (exp {expiry:.0f}, now {now:.0f}, margin "
            f"{EXPIRY_MARGIN:g}s): the platform did not rotate it in time; no token request was sent",
            source=source,
        )


class AssertionPath(os.PathLike[str]):
    """A ``client_assertion_file`` path whose JWT must name ``audience`` in its ``aud``.

    A projected service-account token carries the audience its pod spec asked for
    (``serviceAccountToken.audience``); the pod's default token carries the API server's.
    With ``audience`` set, a token for another audience is a :class:`ClientAssertionError`
    naming both, instead of an ``invalid_client`` from the server. The store key is the path.

    :param path: the file.
    :param audience: the audience the authorization server expects of the platform's JWT.
    """

    def __init__(self, path: str | os.PathLike[str], *, audience: str | None = None) -> None:
        if audience is not None and (not isinstance(audience, str) or not audience):
            raise ConfigurationError("the audience of a client assertion file must be a non-empty string")
        self.path = os.fspath(path)
        self.audience = audience

    def __fspath__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"AssertionPath({self.path!r}, audience={self.audience!r})"


class AssertionFile:
    """A JWT file the platform writes and rotates, read again when it changes.

    :param path: the file (a symlink is followed at every look: the kubelet swaps one).
    :param clock: the wall clock in Unix seconds, to judge the assertion's ``exp``.
    """

    def __init__(self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time) -> None:
        audience = path.audience if isinstance(path, AssertionPath) else None
        try:
            path = os.fspath(path)
        except TypeError:
            raise ConfigurationError(
                f"client_assertion_file must be a file path, got {type(path).__name__}"
            ) from None
        if not isinstance(path, str) or not path:
            raise ConfigurationError("client_assertion_file must be a non-empty file path (str)")
        self.path = os.path.abspath(path)
        self.audience = audience
        self._clock = clock
        #: (device, inode, size, mtime_ns) of what was read, its text and its expiry.
        self._held: tuple[tuple[int, int, int, int], str, float] | None = None
        #: The assertions read so far, newest last (two at most), for redaction.
        self.recent: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        """How errors and the store key name this assertion: ``file:<absolute path>``."""
        return f"file:{self.path}"

    def read(self) -> str:
        """Return the current assertion, re-reading the file if it changed or expired.

        :raises ClientAssertionError: missing, unreadable, empty, too large, not a JWT, or expired.
        """
        held = self._held
        now = self._clock()
        if held is not None and held[2] - EXPIRY_MARGIN > now:
            try:
                info = os.stat(self.path)
            except OSError:
                info = None
            if info is not None and _identity(info) == held[0]:
                return held[1]
        identity, text = self._load()
        expiry = assertion_expiry(text, self.path, audience=self.audience)
        self._held = (identity, text, expiry)
        if text not in self.recent:
            self.recent = (*self.recent[-1:], text)
        _check_expiry(expiry, now, self.path)
        return text

    def _load(self) -> tuple[tuple[int, int, int, int], str]:
        try:
            # O_NONBLOCK: a FIFO at the path must not hang the fetch (it is refused below).
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            raise self._error("does not exist (is the volume with the platform's token mounted?)") from None
        except OSError as exc:
            raise self._error(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
        # (A ClientAssertionError is an OSError too, through requests' RequestException:
        # none is raised inside the try.)
        problem = None
        chunks: list[bytes] = []
        size = 0
        try:
            info = os.fstat(fd)
            if not _is_regular(info):
                problem = "is not a regular file"
            elif info.st_size <= MAX_ASSERTION_SIZE:
                while size <= MAX_ASSERTION_SIZE:
                    chunk = os.read(fd, MAX_ASSERTION_SIZE + 1 - size)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
            else:
                size = info.st_size
        except OSError as exc:
            problem = f"cannot be read ({exc.strerror or type(exc).__name__})"
        finally:
            os.close(fd)
        if problem is not None:
            raise self._error(problem)
        if size > MAX_ASSERTION_SIZE:
            raise self._error(f"is larger than {MAX_ASSERTION_SIZE} bytes: not a client assertion")
        data = b"".join(chunks)
        if data.startswith(_UTF8_BOM):  # a hand-written file saved by an editor that adds one
            data = data[len(_UTF8_BOM) :]
        try:
            text = data.decode("ascii").strip()
        except UnicodeDecodeError:
            raise self._error("is not a JWT (it holds non-ASCII bytes)") from None
        if not text:
            raise self._error("is empty")
        return _identity(info), text

    def _error(self, problem: str) -> ClientAssertionError:
        return ClientAssertionError(
            f"client_assertion_file {self.path} {problem}; no token request was sent", source=self.path
        )

    def __repr__(self) -> str:
        return f"AssertionFile({self.path!r})"


def _identity(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _is_regular(info: os.stat_result) -> bool:
    return stat.S_ISREG(info.st_mode)


class ExternalAssertion(ClientAuth):
    """``private_key_jwt`` with an assertion the platform signed: from a file or a callable.

    The method is the registered ``private_key_jwt`` (RFC 7591): to the server this is a
    JWT signed by a key it trusts for the client; that the platform holds the key is not
    the server's concern. ``client_id`` goes in the form too (Entra requires it).

    :param client_id: the client identifier.
    :param assertion_file: the platform's JWT file (:class:`AssertionFile`); or
    :param assertion: ``(audience) -> str``, called with the token endpoint URL (RFC 7523
        §3: the ``aud`` a server accepts is its token endpoint, or its issuer) once per token
        request; it may ignore the audience when the platform fixes one.
    :param clock: the wall clock in Unix seconds, to judge the assertion's ``exp``.
    """

    method = "private_key_jwt"

    def __init__(
        self,
        client_id: str,
        *,
        assertion_file: str | os.PathLike[str] | None = None,
        assertion: AssertionCallable | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(client_id)
        if (assertion_file is None) == (assertion is None):
            raise ConfigurationError("give client_assertion_file= or client_assertion=, not both")
        if assertion is not None and not callable(assertion):
            raise ConfigurationError("client_assertion must be callable: (audience) -> str")
        self._file = None if assertion_file is None else AssertionFile(assertion_file, clock=clock)
        self._callable = assertion
        self._clock = clock
        self._recent: tuple[str, ...] = ()
        # What check_ready obtained for the same thread's next prepare().
        self._pending = threading.local()
        #: Where the assertion comes from: ``file:<path>`` or ``callable:<module.qualname>``.
        self.source = self._file.source if self._file is not None else f"callable:{callable_name(assertion)}"

    def check_ready(self, token_url: str) -> None:
        """Obtain the assertion for the next :meth:`prepare` now, before any request is counted.

        :raises ClientAssertionError: the assertion is missing, malformed or expired.
        """
        self._pending.value = self._assertion(token_url)

    def prepare(self, token_url: str) -> AuthParts:
        """Return ``client_id``, ``client_assertion_type`` and the current ``client_assertion``."""
        assertion: str | None = getattr(self._pending, "value", None)
        self._pending.value = None
        if assertion is None:
            assertion = self._assertion(token_url)
        return AuthParts(
            form={
                "client_id": self.client_id,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            }
        )

    def _assertion(self, audience: str) -> str:
        if self._file is not None:
            return self._file.read()
        assert self._callable is not None
        name = self.source.partition(":")[2]
        try:
            value = self._callable(audience)
        except Exception as exc:
            raise ClientAssertionError(
                f"client_assertion callable {name} raised {type(exc).__name__}; no token request was sent",
                source=name,
            ) from exc
        if not isinstance(value, str) or not value.strip():
            raise ClientAssertionError(
                f"client_assertion callable {name} returned "
                f"{'an empty string' if isinstance(value, str) else type(value).__name__}, not a JWT",
                source=name,
            )
        value = value.strip()
        if value not in self._recent:
            self._recent = (*self._recent[-1:], value)
        _check_expiry(assertion_expiry(value, f"callable {name}"), self._clock(), f"callable {name}")
        return value

    def secrets(self) -> tuple[str, ...]:
        """The assertions seen lately (the current and the one before), to redact from errors."""
        return self._file.recent if self._file is not None else self._recent

    def key_secrets(self) -> tuple[str, ...]:
        """The source, not the value: the store key outlives every rotation of the assertion."""
        return (self.source,)

    def __repr__(self) -> str:
        return f"ExternalAssertion(client_id={self.client_id!r}, source={self.source!r})"
