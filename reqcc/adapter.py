"""The transport adapter: attaches the manager's bearer token to the requests it serves.

It wraps an inner transport adapter (a plain ``HTTPAdapter`` by default) and knows
nothing of how tokens are obtained: it asks its manager.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import requests
from requests.adapters import BaseAdapter, HTTPAdapter

from ._body import read_capped
from ._log import log
from ._urls import NO_TOKEN_ATTRIBUTE, origin, require_no_cleartext_proxy, require_secure_url
from .dpop import resource_demands_nonce
from .manager import ClientCredentialsManager
from .oauth_token import OAuthToken

__all__ = ["ClientCredentialsAdapter", "NO_TOKEN_ATTRIBUTE"]

_WWW_AUTH_ERROR = re.compile(r'\berror\s*=\s*"?([A-Za-z0-9_.-]+)"?', re.IGNORECASE)

#: Where the adapter notes, in a ``PreparedRequest``'s ``hooks`` dict, the URL of the
#: request it was first asked to send. requests builds each redirect hop as a copy of
#: the request before it, and that copy shares the same ``hooks`` dict: a hop finds the
#: URL of the request its chain started with, and gets a token only on that origin.
#: (requests reads only the ``"response"`` key of that dict.)
CHAIN_ORIGIN_KEY = "reqcc.chain_url"
#: Seconds an endpoint that rejected a freshly fetched token stays in the 401 cool-down.
REJECTION_COOLDOWN = 60.0
#: Endpoints remembered in the 401 cool-down at most (the oldest is forgotten first).
REJECTION_COOLDOWN_SIZE = 256
#: The most bytes of a 401 body read before a replay (a longer one closes the connection).
DISCARD_LIMIT = 64 * 1024
#: The longest a 401 body before a replay is read, in seconds (a dripping one is cut off).
DISCARD_SECONDS = 2.0


class RejectionCooldown:
    """Endpoints whose 401s are not the token's fault (DESIGN item 19).

    When the replay of a rejected request with a freshly fetched token is rejected too,
    the endpoint (method and URL without query) answers 401 whatever the token: retiring
    tokens on its 401s would cost a token request per call. It is remembered for
    ``seconds`` on ``monotonic`` (at most ``size`` endpoints), and its 401s are returned
    as they are meanwhile. Only 401 answers consult it: the fast path never does.
    """

    def __init__(
        self,
        monotonic: Callable[[], float],
        seconds: float = REJECTION_COOLDOWN,
        size: int = REJECTION_COOLDOWN_SIZE,
    ) -> None:
        self._monotonic = monotonic
        self.seconds = seconds
        self.size = size
        self._until: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(request: requests.PreparedRequest) -> str:
        """The endpoint of ``request``: its method and its URL without query and fragment."""
        url = (request.url or "").partition("#")[0].partition("?")[0]
        return f"{request.method or 'GET'} {url}"

    def active(self, key: str) -> bool:
        """Whether ``key`` is cooling down (an expired entry is forgotten)."""
        with self._lock:
            until = self._until.get(key)
            if until is None:
                return False
            if self._monotonic() < until:
                return True
            del self._until[key]
            return False

    def start(self, key: str) -> None:
        """Put ``key`` in the cool-down (a WARNING when it was not in it yet)."""
        with self._lock:
            new = key not in self._until
            self._until[key] = self._monotonic() + self.seconds
            self._until.move_to_end(key)
            while len(self._until) > self.size:
                self._until.popitem(last=False)
        if new:
            log.warning(
                "%s answered 401 to a freshly fetched token too: not the token's fault (a missing "
                "permission or a broken endpoint?). Its 401s retire no token for the next %gs",
                key, self.seconds,
            )


def token_rejected(response: requests.Response) -> bool:
    """Return whether a 401 says the bearer token itself is bad (RFC 6750 §3.1).

    True when ``WWW-Authenticate`` is absent or carries ``error="invalid_token"``.
    """
    if response.status_code != 401:
        return False
    challenge = response.headers.get("WWW-Authenticate")
    if not challenge:
        return True
    match = _WWW_AUTH_ERROR.search(challenge)
    return match is not None and match.group(1).lower() == "invalid_token"


def _rewind(request: requests.PreparedRequest) -> bool:
    """Make ``request``'s body ready to send again; return False if it cannot be replayed."""
    body = request.body
    if body is None or isinstance(body, (bytes, str)):
        return True
    position = getattr(request, "_body_position", None)
    seek = getattr(body, "seek", None)
    if seek is None or not isinstance(position, int):
        return False
    try:
        seek(position)
    except (OSError, ValueError):
        return False
    return True


class ClientCredentialsAdapter(BaseAdapter):
    """A transport adapter that sends each request with ``Authorization: Bearer <token>``.

    :param inner: the adapter that really sends (default: a new ``HTTPAdapter``). Its
        connection pool, retries and TLS settings are kept.
    :param manager: a :class:`~reqcc.ClientCredentialsManager` to share; or give the
        manager's keywords (``token_url``, ``client_id``, …) and one is created and owned.

    Rules: a request that already has an ``Authorization`` header is sent untouched; the
    caller's ``PreparedRequest`` is never modified (a copy carries the token); bearer
    tokens go only over https or loopback http, else :class:`~reqcc.InsecureTransportError`
    before sending; a 401 saying the token is bad retires it and replays the request once
    with a fresh token when the body can be replayed.

    A DPoP token (a manager with ``dpop=True`` or ``dpop_key=``) is sent as
    ``Authorization: DPoP <token>`` with a fresh ``DPoP`` proof for each request, replay and
    redirect hop it is sent with; a 401 asking for a DPoP nonce is replayed once with it.
    """

    def __init__(
        self,
        inner: BaseAdapter | None = None,
        *,
        manager: ClientCredentialsManager | None = None,
        **manager_kwargs: Any,
    ) -> None:
        super().__init__()
        if manager is not None and manager_kwargs:
            raise TypeError(
                "pass either manager= or the manager's keywords, not both: "
                f"{', '.join(sorted(manager_kwargs))}"
            )
        self.inner: BaseAdapter = inner if inner is not None else HTTPAdapter()
        self._owns_manager = manager is None
        self.manager = manager if manager is not None else ClientCredentialsManager(**manager_kwargs)
        self.cooldown = RejectionCooldown(self.manager.monotonic)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send ``request`` through the inner adapter with the bearer token attached.

        Returns the inner adapter's response (``response.request`` is the caller's
        request, without the token).

        :raises InsecureTransportError: the URL is plain http to a non-loopback host.
        :raises ReqccError: no token could be obtained (the token endpoint's error).
        """
        kwargs: dict[str, Any] = {
            "stream": stream, "timeout": timeout, "verify": verify, "cert": cert, "proxies": proxies,
        }
        if "Authorization" in request.headers or getattr(request, NO_TOKEN_ATTRIBUTE, False):
            return self.inner.send(request, **kwargs)
        url = request.url or ""
        if not _chain_stays_home(request, url):
            return self.inner.send(request, **kwargs)  # a redirect hop to another origin
        require_secure_url(url, "a request carrying a bearer token")
        require_no_cleartext_proxy(url, proxies, "a request carrying a bearer token")
        token = self.manager.get_token()
        response = self._send_with(token, request, kwargs)
        if response.status_code == 401 and token_rejected(response):
            response = self._rejected(token, request, response, kwargs)
        return response

    def _rejected(
        self,
        token: OAuthToken,
        request: requests.PreparedRequest,
        response: requests.Response,
        kwargs: dict[str, Any],
    ) -> requests.Response:
        """A 401 says ``token`` is bad: retire it and replay once, unless the endpoint is cooling down."""
        endpoint = self.cooldown.key(request)
        if self.cooldown.active(endpoint):
            log.debug("401 from %s, in its cool-down: token %s stays in use", endpoint, token.fingerprint)
            return response
        retired = self.manager.invalidate(token)
        if not _rewind(request):
            log.info("401 for token %s; the body cannot be replayed: returning the 401", token.fingerprint)
            return response
        log.info(
            "401 for token %s%s; replaying the request once with a fresh token",
            token.fingerprint, "" if retired else " (already replaced)",
        )
        _discard(response)
        fresh = self.manager.get_token()
        response = self._send_with(fresh, request, kwargs)
        if (
            response.status_code == 401
            and token_rejected(response)
            and fresh.access_token != token.access_token
        ):
            self.cooldown.start(endpoint)
        return response

    def _send_with(
        self, token: OAuthToken, request: requests.PreparedRequest, kwargs: dict[str, Any]
    ) -> requests.Response:
        outgoing = request.copy()
        if token.token_type != "Bearer":
            return self._send_dpop(token, request, outgoing, kwargs)
        outgoing.headers["Authorization"] = f"Bearer {token.access_token}"
        response = self.inner.send(outgoing, **kwargs)
        response.request = request
        return response

    def _send_dpop(
        self,
        token: OAuthToken,
        request: requests.PreparedRequest,
        outgoing: requests.PreparedRequest,
        kwargs: dict[str, Any],
    ) -> requests.Response:
        """Send with a DPoP token: a fresh proof each time; one replay when asked for a nonce.

        RFC 9449 §9: a 401 whose ``DPoP`` challenge says ``use_dpop_nonce`` wants the same
        request with a proof carrying the nonce of its ``DPoP-Nonce`` header. That is not
        the token's fault: it is not retired. Every answer's ``DPoP-Nonce`` is remembered.
        """
        manager = self.manager
        manager.authorize(outgoing, token)  # raises if the manager has no DPoP key
        response = self.inner.send(outgoing, **kwargs)
        dpop = manager.dpop
        if dpop is not None and dpop.update(outgoing.url or "", response.headers) is not None:
            if resource_demands_nonce(response.status_code, response.headers.get("WWW-Authenticate")) and (
                _rewind(request)
            ):
                log.info("the resource server asked for a DPoP nonce; replaying the request once with it")
                _discard(response)
                outgoing = request.copy()
                manager.authorize(outgoing, token)
                response = self.inner.send(outgoing, **kwargs)
                dpop.update(outgoing.url or "", response.headers)
        response.request = request
        return response

    def close(self) -> None:
        """Close the inner adapter, and the manager if this adapter created it."""
        self.inner.close()
        if self._owns_manager:
            self.manager.close()

    def __repr__(self) -> str:
        return f"ClientCredentialsAdapter(inner={type(self.inner).__name__}, manager={self.manager!r})"


def _chain_stays_home(request: requests.PreparedRequest, url: str) -> bool:
    """Whether ``request`` may carry a token: not a redirect hop to another origin (DESIGN item 17).

    The first time the adapter sees a request chain, its URL is noted in the chain's
    ``hooks`` dict (shared by every redirect hop requests builds from it); a later request
    of the chain may carry the token only to that URL's origin. Costs one dict lookup and
    one store per request; the origins are compared only for a hop to another URL.
    """
    hooks = request.hooks
    if type(hooks) is not dict:  # not requests' own: no chain to follow
        return True
    home = hooks.get(CHAIN_ORIGIN_KEY)
    if home is None:
        hooks[CHAIN_ORIGIN_KEY] = url
        return True
    if home == url or origin(home) == origin(url):
        return True
    log.debug("a redirect hop to another origin goes out without the token")
    return False


def _discard(response: requests.Response) -> None:
    """Let go of a 401 before its replay: read a small body (to reuse the connection), else close it.

    At most :data:`DISCARD_LIMIT` bytes after decoding, for at most :data:`DISCARD_SECONDS`:
    a larger, endless, gzip-bomb or dripping body closes the connection instead.
    """
    try:
        read_capped(response, DISCARD_LIMIT, deadline=time.monotonic() + DISCARD_SECONDS)
    except (requests.RequestException, OSError):
        pass
    response.close()
