"""The transport adapter: attaches the manager's bearer token to the requests it serves.

It wraps an inner transport adapter (a plain ``HTTPAdapter`` by default) and knows
nothing of how tokens are obtained: it asks its manager. What to do with a request and
its answers is :mod:`reqcc.policy`'s (contract item 36): the adapter sends what the policy
says and does the requests-specific part (the copy that carries the token, the redirect
guard, rewinding a body and letting go of an answer before a replay, exceptions that carry
the caller's request). Only the warm path of a Bearer token is inline: the policy's check
(:meth:`~reqcc.policy.RequestPolicy.admit`, cached per origin), one copy, one send; a 401
enters the policy's :meth:`~reqcc.policy.RequestPolicy.answered`, a DPoP token its
:meth:`~reqcc.policy.RequestPolicy.present`.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.structures import CaseInsensitiveDict

from ._body import read_capped
from ._keywords import passes_keywords
from ._log import log
from ._urls import NO_TOKEN_ATTRIBUTE, origin
from .cooldown import REJECTION_COOLDOWN as REJECTION_COOLDOWN
from .cooldown import REJECTION_COOLDOWN_SIZE as REJECTION_COOLDOWN_SIZE
from .cooldown import RejectionCooldown as RejectionCooldown
from .manager import ClientCredentialsManager
from .oauth_token import OAuthToken
from .policy import Obtain, RequestPolicy, Send, Step
from .policy import Response as PolicyResponse

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

    from .config import ManagerKeywords

__all__ = ["ClientCredentialsAdapter", "NO_TOKEN_ATTRIBUTE"]

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


class _Rewind:
    """The ``replayable`` of a request's policy flow: makes ``request``'s body ready to send again.

    Called just before a replay; returns False when the body cannot be replayed (a stream
    read once, a file that cannot seek back to where it started).
    """

    __slots__ = ("request",)

    def __init__(self, request: requests.PreparedRequest) -> None:
        self.request = request

    def __call__(self) -> bool:
        request = self.request
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

    These rules, but for the redirect hops and the copy, are :class:`reqcc.policy.RequestPolicy`'s,
    the same code as the httpx front end's (see :mod:`reqcc.adapter`).
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
        # The request policy (contract item 36); this adapter sends what it says, and inlines
        # only the warm path of a Bearer token (one copy, one send).
        self._policy = RequestPolicy(self.manager)
        # The "scheme://host:port/" of the last URL the policy admitted: send() asks the
        # policy again only for a URL that does not start with it (or when proxies apply).
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
        if proxies or not url.startswith(self._secure_prefix):  # see RequestPolicy.admit
            self._secure_prefix = self._policy.admit(url, proxies)
        token = self.manager.get_token()
        if token.token_type != "Bearer":
            flow = self._policy.present(request.method or "GET", url, token, replayable=_Rewind(request))
            return self._drive(flow, request, None, (stream, timeout, verify, cert, proxies))
        try:  # the warm path, inlined: one copy, one send (free unless raised: zero-cost exceptions)
            response = self.inner.send(
                _copy(request, f"Bearer {token.access_token}"),
                stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies,
            )
        except requests.RequestException as exc:
            _hand_back(exc, request)
            raise
        response.request = request
        if response.status_code == 401:
            flow = self._policy.answered(
                request.method or "GET", url, token, (401, response.headers), replayable=_Rewind(request)
            )
            return self._drive(flow, request, response, (stream, timeout, verify, cert, proxies))
        return response

    def _drive(
        self,
        flow: Generator[Step, OAuthToken | PolicyResponse, None],
        request: requests.PreparedRequest,
        response: requests.Response | None,
        options: tuple[Any, Any, Any, Any, Any],
    ) -> requests.Response:
        """Run the request policy's ``flow`` to its end; return the last response (to ``request``).

        ``response`` is the answer the flow was entered with (or ``None``). Each :data:`OBTAIN`
        gets the manager's token; each :class:`~reqcc.policy.Send` sends a copy of ``request``
        with its headers. An answer the flow replays is let go of first (:func:`_discard`).
        """
        step = next(flow, None)
        while step is not None:
            if response is not None:  # the flow goes on: that answer is not the one returned
                _discard(response)
                response = None
            answer: OAuthToken | PolicyResponse
            if isinstance(step, Obtain):
                answer = self.manager.get_token()
            else:
                response = self._send(step, request, options)
                answer = (response.status_code, response.headers)
            try:
                step = flow.send(answer)
            except StopIteration:
                step = None
        assert response is not None, "the request policy ended on a token, not an answer"
        return response

    def _send(
        self, step: Send, request: requests.PreparedRequest, options: tuple[Any, Any, Any, Any, Any]
    ) -> requests.Response:
        """Send a copy of ``request`` with the step's headers; return the response to ``request``."""
        outgoing = _copy(request)
        headers = outgoing.headers
        for name, value in step.headers.items():
            headers[name] = value
        stream, timeout, verify, cert, proxies = options
        try:
            response = self.inner.send(
                outgoing, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
            )
        except requests.RequestException as exc:
            _hand_back(exc, request)
            raise
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
