"""The transport adapter: attaches the manager's bearer token to the requests it serves.

It wraps an inner transport adapter (a plain ``HTTPAdapter`` by default) and knows
nothing of how tokens are obtained: it asks its manager.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.structures import CaseInsensitiveDict

from ._body import read_capped
from ._keywords import passes_keywords
from ._log import log
from ._urls import NO_TOKEN_ATTRIBUTE, origin, require_no_cleartext_proxy, require_secure_url
from .challenges import error_code
from .cooldown import REJECTION_COOLDOWN as REJECTION_COOLDOWN
from .cooldown import REJECTION_COOLDOWN_SIZE as REJECTION_COOLDOWN_SIZE
from .cooldown import RejectionCooldown as RejectionCooldown
from .dpop import resource_demands_nonce
from .manager import ClientCredentialsManager
from .oauth_token import OAuthToken

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

    from .config import ManagerKeywords

__all__ = ["ClientCredentialsAdapter", "NO_TOKEN_ATTRIBUTE"]

#: How many origins an adapter remembers as fit to carry a token (then it starts afresh).
_MAX_SECURE_ORIGINS = 64
_TOKEN_REQUEST = "a request carrying a bearer token"
# Globals, so that the warm path looks up no attribute of a class to make a copy.
_PreparedRequest = requests.PreparedRequest
_new = object.__new__

#: Where the adapter notes, in a ``PreparedRequest``'s ``hooks`` dict, the URL of the
#: request it was first asked to send. requests builds each redirect hop as a copy of
#: the request before it, and that copy shares the same ``hooks`` dict: a hop finds the
#: URL of the request its chain started with, and gets a token only on that origin.
#: (requests reads only the ``"response"`` key of that dict.)
CHAIN_URL_KEY = "reqcc.chain_url"
#: The most bytes of a 401 body read before a replay (a longer one closes the connection).
DISCARD_LIMIT = 64 * 1024
#: The longest a 401 body before a replay is read, in seconds (a dripping one is cut off).
DISCARD_SECONDS = 2.0


def token_rejected(response: requests.Response) -> bool:
    """Return whether a 401 says the bearer token itself is bad (RFC 6750 §3.1).

    True when ``WWW-Authenticate`` is absent or carries ``error="invalid_token"`` (read
    within bounds: :func:`reqcc.challenges.error_code`).
    """
    if response.status_code != 401:
        return False
    challenge = response.headers.get("WWW-Authenticate")
    if not challenge:
        return True
    return error_code(challenge) == "invalid_token"


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
    caller's ``PreparedRequest`` never gets the token (a copy carries it; the only thing
    noted on it is its URL, in its ``hooks`` dict, which its redirect hops share: a hop to
    another origin goes out without the token); bearer tokens go only over https, or
    loopback http with no proxy applying to it, else :class:`~reqcc.InsecureTransportError`
    before sending; a 401 saying the token is bad retires it and replays the request once
    with a fresh token when the body can be replayed (its 401 body read capped), unless
    the endpoint refused a fresh token within the last minute (:class:`RejectionCooldown`).

    A DPoP token (a manager with ``dpop=True`` or ``dpop_key=``) is sent as
    ``Authorization: DPoP <token>`` with a fresh ``DPoP`` proof for each request, replay and
    redirect hop it is sent with; a 401 asking for a DPoP nonce is replayed once with it.
    """

    @passes_keywords(ClientCredentialsManager)
    def __init__(
        self,
        inner: BaseAdapter | None = None,
        *,
        manager: ClientCredentialsManager | None = None,
        **manager_kwargs: Unpack[ManagerKeywords],
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
        # The "scheme://host:port" of the URLs already found fit to carry a token.
        self._secure_origins: dict[str, bool] = {}
        # The last of them to be used, with the "/" after it: the one send() checks first.
        self._secure_prefix: tuple[str, ...] = ()

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
        :raises requests.RequestException: sending failed; its ``request`` (and its
            ``response.request``) is ``request``, never the copy holding the token (item 31).
        """
        headers = request.headers
        if type(headers) is CaseInsensitiveDict:  # the usual case, looked up without lower() and raise
            explicit = "authorization" in headers._store  # type: ignore[attr-defined]
        else:  # a plain dict (a request built by hand): header names are case-insensitive still
            explicit = any(name.lower() == "authorization" for name in headers)
        if explicit or getattr(request, NO_TOKEN_ATTRIBUTE, False):
            return self.inner.send(
                request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
            )
        url = request.url or ""
        hooks = request.hooks
        if type(hooks) is dict:  # requests' own: shared by the request and its redirect hops
            home = hooks.setdefault(CHAIN_URL_KEY, url)
            if home is not url and home != url and origin(home) != origin(url):
                log.debug("a redirect hop to another origin goes out without the token")
                return self.inner.send(
                    request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
                )
        if not url.startswith(self._secure_prefix):  # see _require_secure
            self._require_secure(url)
        if proxies:
            require_no_cleartext_proxy(url, proxies, _TOKEN_REQUEST)
        token = self.manager.get_token()
        if token.token_type == "Bearer":  # the warm path, inlined: one copy, one send
            try:  # free unless raised (Python 3.11's zero-cost exceptions)
                response = self.inner.send(
                    _copy(request, f"Bearer {token.access_token}"),
                    stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies,
                )
            except requests.RequestException as exc:
                _hand_back(exc, request)
                raise
            response.request = request
        else:
            response = self._send_with(token, request, stream, timeout, verify, cert, proxies)
        if response.status_code == 401 and token_rejected(response):
            response = self._rejected(token, request, response, (stream, timeout, verify, cert, proxies))
        return response

    def _rejected(
        self,
        token: OAuthToken,
        request: requests.PreparedRequest,
        response: requests.Response,
        options: tuple[Any, Any, Any, Any, Any],
    ) -> requests.Response:
        """A 401 says ``token`` is bad: retire it and replay once, unless the endpoint cools down.

        When the replay with a freshly fetched token is refused too, the endpoint enters the
        401 cool-down (:class:`RejectionCooldown`): its 401s retire no token meanwhile; a few
        such endpoints in a row cool their whole origin down. The cool-down is the
        manager's, shared by every adapter that uses it.
        """
        cooldown = self.manager.rejection_cooldown
        endpoint = cooldown.key(request)
        if cooldown.active(endpoint):
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
        response = self._send_with(fresh, request, *options)
        if fresh.access_token != token.access_token:
            if response.status_code == 401 and token_rejected(response):
                cooldown.start(endpoint)
            else:
                cooldown.accepted(endpoint)
        return response

    def _require_secure(self, url: str) -> None:
        """Raise :class:`~reqcc.InsecureTransportError` unless a token may travel to ``url``.

        Decided once per origin. In a URL that starts with ``http://`` or ``https://``
        (as every URL requests prepares does) the first ``/`` from index 8 on ends the
        host, or comes after a ``?`` or ``#`` that ended it earlier: the text before that
        slash fixes the scheme and the host the rule reads, and is the key of the
        decision. Only such origins found secure are remembered, at most
        ``_MAX_SECURE_ORIGINS`` of them; anything else is decided on the whole URL every
        time. The last remembered origin used, with its ``/``, is ``_secure_prefix``:
        ``send`` calls this only for a URL that does not start with it. (A URL starts
        with ``key + "/"`` exactly when its first ``/`` from index 8 on ends ``key``,
        since a key holds no ``/`` from index 8 on.)
        """
        end = url.find("/", 8)
        key = url[:end] if end >= 0 and url.startswith(("https://", "http://")) else None
        secure = self._secure_origins
        if key is None or key not in secure:
            require_secure_url(url, _TOKEN_REQUEST)
            if key is None:
                return
            if len(secure) >= _MAX_SECURE_ORIGINS:
                secure.clear()
            secure[key] = True
        self._secure_prefix = (key + "/",)

    def _send_with(
        self,
        token: OAuthToken,
        request: requests.PreparedRequest,
        stream: bool,
        timeout: Any,
        verify: bool | str,
        cert: Any,
        proxies: Mapping[str, str] | None,
    ) -> requests.Response:
        """Send a copy of ``request`` that presents ``token``; return the response to ``request``."""
        if token.token_type != "Bearer":
            kwargs = {
                "stream": stream, "timeout": timeout, "verify": verify, "cert": cert, "proxies": proxies,
            }
            return self._send_dpop(token, request, _copy(request), kwargs)
        try:
            response = self.inner.send(
                _copy(request, f"Bearer {token.access_token}"),
                stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies,
            )
        except requests.RequestException as exc:
            _hand_back(exc, request)
            raise
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
        the token's fault: it is not retired. Every answer's ``DPoP-Nonce`` is remembered;
        the replay signs with the nonce of the 401 itself, not the store's latest (another
        thread's answer may have put an older or a different one there meanwhile).
        """
        manager = self.manager
        manager.authorize(outgoing, token)  # raises if the manager has no DPoP key
        try:
            response = self.inner.send(outgoing, **kwargs)
        except requests.RequestException as exc:
            _hand_back(exc, request)
            raise
        dpop = manager.dpop
        if dpop is None:
            response.request = request
            return response
        url = outgoing.url or ""
        nonce = dpop.update(url, response.headers)
        if nonce is not None and resource_demands_nonce(
            response.status_code, response.headers.get("WWW-Authenticate")
        ) and _rewind(request):
            log.info("the resource server asked for a DPoP nonce; replaying the request once with it")
            _discard(response)
            outgoing = _copy(request)
            dpop.authorize(outgoing.headers, outgoing.method or "GET", url, token.access_token, nonce=nonce)
            try:
                response = self.inner.send(outgoing, **kwargs)
            except requests.RequestException as exc:
                _hand_back(exc, request)
                raise
            dpop.update(url, response.headers)
        response.request = request
        return response

    def close(self) -> None:
        """Close the inner adapter, and the manager if this adapter created it."""
        self.inner.close()
        if self._owns_manager:
            self.manager.close()

    def __repr__(self) -> str:
        return f"ClientCredentialsAdapter(inner={type(self.inner).__name__}, manager={self.manager!r})"


def _copy(request: requests.PreparedRequest, authorization: str | None = None) -> requests.PreparedRequest:
    """Return a copy of ``request`` to send in its place, with ``Authorization`` set if given.

    ``request`` itself is never changed. A ``PreparedRequest`` is copied as
    ``PreparedRequest.copy()`` copies one (the attributes requests gives it), minus the
    cookie jar's copy: the copy shares the body, the hooks and the cookie jar (which the
    ``Cookie`` header already reflects) and gets headers of its own. Attribute by attribute,
    not through ``__dict__``: reading an instance's ``__dict__`` turns its compact attribute
    storage into a dict for good, and each later attribute access on it costs more (a
    measurable part of the per-request cost). A subclass's instance is copied with every
    attribute it has.
    """
    headers = request.headers
    copied: CaseInsensitiveDict[str]
    if type(headers) is CaseInsensitiveDict:
        # CaseInsensitiveDict keeps {lowered name: (name, value)}; the tuples are immutable.
        copied = _new(CaseInsensitiveDict)
        store = copied._store = headers._store.copy()  # type: ignore[attr-defined]
        if authorization is not None:
            store["authorization"] = ("Authorization", authorization)
    else:
        copied = CaseInsensitiveDict(headers)
        if authorization is not None:
            copied["Authorization"] = authorization
    outgoing: requests.PreparedRequest = _new(_PreparedRequest)
    if type(request) is _PreparedRequest:  # in PreparedRequest.__init__'s order: its compact layout
        outgoing.method = request.method
        outgoing.url = request.url
        outgoing.headers = copied
        outgoing._cookies = request._cookies  # type: ignore[attr-defined]
        outgoing.body = request.body
        outgoing.hooks = request.hooks
        outgoing._body_position = request._body_position  # type: ignore[attr-defined]
    else:
        outgoing.__dict__.update(request.__dict__)
        outgoing.headers = copied
    return outgoing


def _hand_back(exc: requests.RequestException, request: requests.PreparedRequest) -> None:
    """Make ``exc``, raised while sending a copy of ``request``, carry ``request`` instead (item 31).

    The copy holds the token (and the DPoP proof); error reporters print
    ``exc.request.headers``. Both ``exc.request`` and ``exc.response.request`` are replaced.
    """
    if exc.request is not None:
        exc.request = request
    response = exc.response
    if response is not None and getattr(response, "request", None) is not None:
        response.request = request


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
