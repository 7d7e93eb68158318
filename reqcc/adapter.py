"""The transport adapter: attaches the manager's bearer token to the requests it serves.

It wraps an inner transport adapter (a plain ``HTTPAdapter`` by default) and knows
nothing of how tokens are obtained: it asks its manager.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.structures import CaseInsensitiveDict

from ._keywords import passes_keywords
from ._log import log
from ._urls import NO_TOKEN_ATTRIBUTE, require_secure_url
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

_WWW_AUTH_ERROR = re.compile(r'\berror\s*=\s*"?([A-Za-z0-9_.-]+)"?', re.IGNORECASE)


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
        # The ("scheme:", "host:port") of the URLs already found fit to carry a token.
        self._secure_origins: dict[tuple[str, str], bool] = {}

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
        headers = request.headers
        if type(headers) is CaseInsensitiveDict:  # the usual case, looked up without lower() and raise
            explicit = "authorization" in headers._store  # type: ignore[attr-defined]
        else:
            explicit = "Authorization" in headers
        if explicit or getattr(request, NO_TOKEN_ATTRIBUTE, False):
            return self.inner.send(
                request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
            )
        self._require_secure(request.url or "")
        token = self.manager.get_token()
        response = self._send_with(token, request, stream, timeout, verify, cert, proxies)
        if response.status_code == 401 and token_rejected(response):
            retired = self.manager.invalidate(token)
            if _rewind(request):
                log.info(
                    "401 for token %s%s; replaying the request once with a fresh token",
                    token.fingerprint, "" if retired else " (already replaced)",
                )
                _discard(response)
                response = self._send_with(
                    self.manager.get_token(), request, stream, timeout, verify, cert, proxies
                )
            else:
                log.info(
                    "401 for token %s; the body cannot be replayed: returning the 401",
                    token.fingerprint,
                )
        return response

    def _require_secure(self, url: str) -> None:
        """Raise :class:`~reqcc.InsecureTransportError` unless a token may travel to ``url``.

        Decided once per origin. In ``scheme://host:port/…`` the parts before the third
        ``/`` fix the scheme and the host the rule reads (the host ends there, or earlier
        at a ``?`` or ``#`` inside them), so they are the key of the decision. Only
        origins found secure are remembered, at most ``_MAX_SECURE_ORIGINS`` of them;
        anything else is decided on the whole URL every time.
        """
        parts = url.split("/", 3)
        if len(parts) < 3 or parts[1]:
            require_secure_url(url, _TOKEN_REQUEST)
            return
        origin = (parts[0], parts[2])
        secure = self._secure_origins
        if origin in secure:
            return
        require_secure_url(url, _TOKEN_REQUEST)
        if len(secure) >= _MAX_SECURE_ORIGINS:
            secure.clear()
        secure[origin] = True

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
        response = self.inner.send(
            _copy(request, f"Bearer {token.access_token}"),
            stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies,
        )
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
                outgoing = _copy(request)
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


def _copy(request: requests.PreparedRequest, authorization: str | None = None) -> requests.PreparedRequest:
    """Return a copy of ``request`` to send in its place, with ``Authorization`` set if given.

    ``request`` itself is never changed. Cheaper than ``PreparedRequest.copy()``, which
    also copies the cookie jar: the copy shares every attribute but the headers (the
    body, the hooks, the cookie jar, which the ``Cookie`` header already reflects) and
    gets headers of its own.
    """
    outgoing = requests.PreparedRequest.__new__(requests.PreparedRequest)
    outgoing.__dict__ = request.__dict__.copy()
    headers = request.headers
    if type(headers) is CaseInsensitiveDict:
        # CaseInsensitiveDict keeps {lowered name: (name, value)}; the tuples are immutable.
        copied: CaseInsensitiveDict[str] = CaseInsensitiveDict.__new__(CaseInsensitiveDict)
        store = copied._store = headers._store.copy()  # type: ignore[attr-defined]
        if authorization is not None:
            store["authorization"] = ("Authorization", authorization)
    else:
        copied = CaseInsensitiveDict(headers)
        if authorization is not None:
            copied["Authorization"] = authorization
    outgoing.headers = copied
    return outgoing


def _discard(response: requests.Response) -> None:
    try:
        _ = response.content  # read the (small) 401 body so the connection can be reused
    except (requests.RequestException, OSError):
        pass
    response.close()
