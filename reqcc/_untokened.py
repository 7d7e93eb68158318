"""Never silent: say when a session's request goes out without the bearer token it may expect.

A :class:`~reqcc.ClientCredentialsSession` without ``base_url`` attaches tokens to https
URLs and to plain http on ``localhost``, ``127.0.0.1`` and ``[::1]``. Its plain-http
requests go through :class:`UntokenedNotice`, which hands those to this machine to the token
adapter and sends any other as it is, logging a WARNING, once per origin, saying why it
has no token and what to set.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import requests
from requests.adapters import BaseAdapter

from . import fork_safety
from ._log import log
from ._urls import NO_TOKEN_ATTRIBUTE, is_loopback_host, origin

__all__ = ["LOOPBACK_PREFIXES", "UntokenedNotice"]

#: The URL prefixes of plain http to this machine that a session without ``base_url``
#: attaches tokens to, as it may send the token request there (a ``:`` or ``/`` right
#: after the host, so that ``http://localhost.example/`` is not one of them).
LOOPBACK_PREFIXES = tuple(
    f"http://{host}{end}" for host in ("localhost", "127.0.0.1", "[::1]") for end in (":", "/")
)

#: Origins remembered per session; past this many, no more warnings (memory stays bounded).
MAX_ORIGINS = 256


class UntokenedNotice(BaseAdapter):
    """Sends through ``inner`` and logs a WARNING once per origin: these requests carry no token.

    A request that already has an ``Authorization`` header (the caller's choice, or a
    reqcc adapter's further up) or that is a redirect hop to another origin (sent without
    the token on purpose) is sent without a warning.

    :param inner: the adapter that really sends.
    :param tokened: the adapter that sends the requests under :data:`LOOPBACK_PREFIXES`
        (the session's token adapter). One ``http://`` mount that hands those on costs
        less than six more mounts, which ``requests`` would try, longest first, for every
        https request of the session too.
    """

    def __init__(self, inner: BaseAdapter, tokened: BaseAdapter | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.tokened = tokened
        self._warned: set[tuple[str, str, int | None]] = set()
        self._lock = threading.Lock()
        fork_safety.register(self._after_fork)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send ``request`` through the inner adapter, after the warning if it is due.

        A request under :data:`LOOPBACK_PREFIXES` (matched as ``requests`` matches a mount
        prefix) goes to ``tokened`` instead, if given.
        """
        if self.tokened is not None and (request.url or "").lower().startswith(LOOPBACK_PREFIXES):
            return self.tokened.send(
                request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
            )
        if "Authorization" not in request.headers and not getattr(request, NO_TOKEN_ATTRIBUTE, False):
            self._notice(request.url or "")
        return self.inner.send(
            request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )

    def _notice(self, url: str) -> None:
        key = origin(url)
        with self._lock:
            if key in self._warned or len(self._warned) >= MAX_ORIGINS:
                return
            self._warned.add(key)
        scheme, host, port = key
        where = f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"
        if is_loopback_host(host):
            fix = f"pass base_url={where + '/'!r} to attach tokens to its requests"
        else:
            fix = (
                "bearer tokens travel only over https (plain http only to a loopback host): "
                "use https:// for this API, and base_url= to say where tokens go"
            )
        log.warning(
            "requests to %s go out without a bearer token: with no base_url, a "
            "ClientCredentialsSession attaches tokens to https URLs and to http://localhost, "
            "127.0.0.1 and [::1] only; %s",
            where, fix,
        )

    def _after_fork(self) -> None:
        """In a forked child: a lock of its own (a parent thread may have held the parent's)."""
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the inner adapter (``tokened`` is closed by its own mount)."""
        self.inner.close()

    def __repr__(self) -> str:
        return f"UntokenedNotice(inner={type(self.inner).__name__})"
