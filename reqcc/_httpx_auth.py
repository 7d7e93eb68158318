"""The httpx front end's code, shared by :mod:`reqcc.httpx` and :mod:`reqcc.httpx2` (contract item 36).

:class:`AuthFlows` drives the :class:`~reqcc.policy.RequestPolicy` generator from httpx's
``sync_auth_flow`` and ``async_auth_flow``; it imports neither httpx nor httpx2 (it uses
only the parts of a request and a response the two share, and the header list
``Headers._list`` both keep, read only when it is a list). Each of the two modules makes
its ``ClientCredentialsAuth`` from it and its own ``Auth`` class, and gives it its own
``ByteStream``.

The warm path, which is measured (``benchmarks/async_load.py``), is inline, as the requests
adapter's is: for a usable Bearer token held, a request without ``Authorization`` under
``base_url`` and fit to carry it (the policy's ``admit``, remembered for the last https
prefix) gets the header and is sent without the policy's generator (``AuthFlows._warm``);
the policy's :meth:`~reqcc.policy.RequestPolicy.answered` is entered only for a 401, a
followed redirect or a ``next_request``. Anything else (a DPoP token, an explicit header, outside
``base_url``, no usable token) goes through :meth:`~reqcc.policy.RequestPolicy.flow`.

httpx follows redirects outside the auth flow and, on a hop to another origin, strips
``Authorization`` (not on an http-to-https upgrade of one host) but copies every other
header, a ``DPoP`` proof included. So each request the flow sends with a credential is
stamped, in its ``extensions`` (a dict httpx shares with its redirect hops), with the URL
and the credential headers it got; :meth:`AuthFlows.keep_home`, a request event hook,
strips those from a hop to another origin (it passes the stamped request itself by its URL
object, without parsing a URL), and the flow itself strips them from a
``next_request`` (``follow_redirects=False``) to another origin. An answer from another
origin (after redirects were followed) neither retires the token nor gives it a nonce.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import AsyncGenerator, Generator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ._keywords import passes_keywords
from ._log import log
from ._urls import origin
from .async_token import AsyncTokenWait
from .dpop import DPOP_HEADER
from .manager import ClientCredentialsManager
from .oauth_token import OAuthToken
from .policy import OBTAIN, RequestPolicy, Send, Step
from .session import _normalize_prefix

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

    from .config import ManagerKeywords

__all__ = ["AuthFlows", "STAMP"]

#: The key, in a request's ``extensions``, of what a reqcc flow set on it:
#: ``(url, Authorization value, DPoP proof or None, the request's URL object)``. The URL
#: object lets :meth:`AuthFlows.keep_home` pass the request the flow stamped (the first
#: hop: the same object) without parsing its URL; a redirect hop has a URL object of its own.
STAMP = "reqcc.credential"
#: Set in a request's ``extensions`` by :meth:`AuthFlows.keep_home` (it runs for that client).
GUARDED = "reqcc.redirects_guarded"
#: An answer the policy must learn nothing from (it came from another origin).
_ELSEWHERE: tuple[int, Mapping[str, str]] = (0, {})


class _Done:
    """An awaitable that is already done: what :meth:`AuthFlows.keep_home` returns."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return iter(())  # type: ignore[return-value]


_DONE = _Done()


#: The environment variables a plain-http request's proxy comes from, lower case first
#: (urllib's order, which httpx follows with ``trust_env``).
_PROXY_VARIABLES = (
    ("http", "http_proxy"), ("http", "HTTP_PROXY"), ("all", "all_proxy"), ("all", "ALL_PROXY"),
)


def _environment_proxies(url: str) -> dict[str, str] | None:
    """The proxies httpx (``trust_env``) may take from the environment for plain-http ``url``.

    Four look-ups, not ``urllib.request.getproxies()``, which decodes the whole environment
    (about 0.1 ms, more than httpx spends on a request).
    """
    if url[:5].lower() != "http:":
        return None
    environ = os.environ
    proxies: dict[str, str] = {}
    for scheme, name in _PROXY_VARIABLES:
        value = environ.get(name)
        if value and scheme not in proxies:
            proxies[scheme] = value
    if not proxies:
        return None
    no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY")
    host = url.split("://", 1)[-1].split("/", 1)[0]
    if no_proxy and urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
        host, {"no": no_proxy}
    ):
        return None
    return proxies


class AuthFlows:
    """An httpx ``Auth`` that sends each request with the manager's token (sync and async).

    :param base_url: the URL prefix whose requests get a token (e.g. the API's root).
        Without it every request this auth serves gets one, and a plain-http request to a
        host other than loopback is refused (:class:`~reqcc.InsecureTransportError`).
    :param manager: a :class:`~reqcc.ClientCredentialsManager` to share (with a
        :class:`~reqcc.ClientCredentialsSession`, another auth, sync threads): one token
        for all. Otherwise the manager's keywords (``token_url``, ``client_id``, …)
        configure a new one, owned by this auth.

    Rules (contract items 9-24, 36): an ``Authorization`` header the caller set is sent
    untouched; a token goes only under ``base_url``, over https or plain http to loopback
    with no environment proxy applying; a DPoP token with a fresh proof per request; a 401
    ``use_dpop_nonce`` is replayed once with the nonce; a 401 saying the token is bad
    retires it and replays once with a fresh token (the body is kept for it:
    ``requires_request_body``; the 401's body is not read: its connection is closed),
    unless the endpoint is in the manager's 401 cool-down. Token errors are reqcc's
    exceptions (:class:`~reqcc.ReqccError`, which derive from requests'
    ``RequestException``, not from ``httpx.HTTPError``).

    Async (item 37): the warm path is the manager's lock-free look-up; a fetch runs in a
    worker thread, one per event loop for all the coroutines waiting (see
    :mod:`reqcc.async_token`). A request that enters while others of its event loop are
    in flight first passes that loop's admission gate, so a burst of coroutines enters the
    client one per loop iteration (a caller alone passes none: see ``_Gate``).

    Redirects: install :meth:`keep_home` as a request event hook so that no credential
    crosses to another origin when the client follows redirects.

    The request httpx hands the flow is the one sent: like httpx's own auths, the flow sets
    the token on it, so ``response.request`` shows it. When sending fails, the flow takes
    the token off again: the exception's ``request`` does not carry it (item 31).
    """

    requires_request_body = True
    requires_response_body = False
    #: The module's ``ByteStream`` (set by :mod:`reqcc.httpx` and :mod:`reqcc.httpx2`).
    _byte_stream: ClassVar[Any]

    @passes_keywords(ClientCredentialsManager)
    def __init__(
        self,
        *,
        base_url: str | None = None,
        manager: ClientCredentialsManager | None = None,
        **manager_kwargs: Unpack[ManagerKeywords],
    ) -> None:
        if manager is not None and manager_kwargs:
            raise TypeError(
                "pass either manager= or the manager's keywords, not both: "
                f"{', '.join(sorted(manager_kwargs))}"
            )
        self.base_url = _normalize_prefix(base_url, "base_url") if base_url is not None else None
        self._owns_manager = manager is None
        self.manager = manager if manager is not None else ClientCredentialsManager(**manager_kwargs)
        self._policy = RequestPolicy(self.manager, base_url=self.base_url)
        self._base_prefix = self.base_url.lower() if self.base_url is not None else None
        # The warm path's URL prefix (see _warm): a URL that starts with it is under base_url
        # and admitted, over https; and the header of the last Bearer token it sent.
        self._warm_prefix: tuple[str, ...] = ()
        self._header: tuple[OAuthToken, str, bytes] | None = None
        self._tokens = AsyncTokenWait(self.manager)
        self._warned_redirects = False
        #: Per running event loop, its requests in this auth's async flow and their admission.
        self._gates: dict[object, _Gate] = {}

    # -- the flows -------------------------------------------------------------------

    def sync_auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        """Send ``request`` with the token, for ``httpx.Client`` (see the class docstring)."""
        request.read()
        flow: Generator[Step, Any, None] | None = None
        try:
            warm = self._warm(request)
            if warm is not None:  # the warm path: the Bearer token held is set, no policy generator
                url, token = warm
                response = yield request
                if response.status_code != 401 and not response.history and response.next_request is None:
                    return  # done: most answers (the check inline, on the measured warm path)
                replay = self._after_warm(request, response, url, token)
                if replay is None:
                    return
                flow, step = replay
                _discard(response, self._byte_stream)
            else:
                url, flow, step = self._begin(request)
            while True:
                if step is OBTAIN:
                    step = flow.send(self.manager.get_token())
                    continue
                assert isinstance(step, Send)
                self._apply(request, step, url)
                response = yield request
                following = self._answer(flow, request, response, url)
                if following is None:
                    return
                _discard(response, self._byte_stream)
                step = following
        except BaseException:
            # httpx closes the flow (GeneratorExit here) when sending failed: the exception
            # carries this request, which must not carry the token (contract item 31).
            _strip(request)
            raise
        finally:
            if flow is not None:
                flow.close()

    async def async_auth_flow(self, request: Any) -> AsyncGenerator[Any, Any]:
        """Send ``request`` with the token, for ``httpx.AsyncClient`` (see the class docstring)."""
        if not hasattr(request, "_content"):  # already read (the usual case): no coroutine for it
            await request.aread()
        gates = self._gates
        loop = _running_loop()
        gate = gates.get(loop)
        if gate is None:
            if len(gates) >= _MAX_GATES:  # mostly loops that have ended: start afresh
                gates.clear()
            gate = gates[loop] = _Gate()
        gate.in_flight += 1
        flow: Generator[Step, Any, None] | None = None
        try:
            if gate.in_flight > 1:  # others of this loop are in flight: one enters per iteration
                await gate.admit()
            warm = self._warm(request)
            if warm is not None:  # as in sync_auth_flow
                url, token = warm
                response = yield request
                if response.status_code != 401 and not response.history and response.next_request is None:
                    return  # done: most answers (the check inline, on the measured warm path)
                replay = self._after_warm(request, response, url, token)
                if replay is None:
                    return
                flow, step = replay
                await _adiscard(response, self._byte_stream)
            else:
                url, flow, step = self._begin(request)
            while True:
                if step is OBTAIN:
                    fresh = self.manager.usable_token()
                    step = flow.send(fresh if fresh is not None else await self._tokens.token())
                    continue
                assert isinstance(step, Send)
                self._apply(request, step, url)
                response = yield request
                following = self._answer(flow, request, response, url)
                if following is None:
                    return
                await _adiscard(response, self._byte_stream)
                step = following
        except BaseException:
            _strip(request)  # as in sync_auth_flow
            raise
        finally:
            if flow is not None:
                flow.close()
            gate.in_flight -= 1

    def _warm(self, request: Any) -> tuple[str, OAuthToken] | None:
        """Set the Bearer token held on ``request`` when the policy would, without its generator.

        The warm path (the requests adapter has the same): ``request`` has no
        ``Authorization`` header, its URL is under ``base_url`` and fit to carry a token
        (:meth:`~reqcc.policy.RequestPolicy.admit`, skipped for a URL under the https
        prefix last admitted, where no environment proxy applies), and the manager holds a
        usable Bearer token. Then the header is appended to the list httpx and httpx2 keep
        (the item ``Headers.__setitem__`` would store, its bytes made once per token), the request
        is stamped, and ``(url, token)`` returned. Otherwise nothing is changed and
        ``None`` returned: the policy's :meth:`~reqcc.policy.RequestPolicy.flow` decides
        (an explicit header, outside ``base_url``, a DPoP token, no usable token, headers
        of another kind). Raises :class:`~reqcc.InsecureTransportError` as ``admit`` does.
        """
        headers = request.headers
        items = getattr(headers, "_list", None)
        if type(items) is not list:
            return None
        for item in items:
            if item[1] == b"authorization":
                return None
        url = str(request.url)
        if not url.startswith(self._warm_prefix):
            policy = self._policy
            if not policy.covers(url):
                return None
            proxies = _environment_proxies(url)
            admitted = policy.admit(url, proxies)
            if admitted and url.startswith("https:"):
                base = self._base_prefix
                # Any URL under base_url (or, without one, on that origin) is covered and admitted.
                if base is None:
                    self._warm_prefix = admitted
                elif base.startswith(admitted[0]):
                    self._warm_prefix = (base,)
        token = self.manager.usable_token()
        if token is None or token.token_type != "Bearer":
            return None
        header = self._header
        if header is None or header[0] is not token:
            value = f"Bearer {token.access_token}"
            # Visible ASCII (an OAuthToken holds no other): the bytes Headers.__setitem__
            # stores, in any encoding the headers may have that httpx itself can work with.
            header = self._header = (token, value, value.encode("ascii"))
        items.append((b"Authorization", b"authorization", header[2]))
        request.extensions[STAMP] = (url, header[1], None, request.url)
        return url, token

    def _begin(self, request: Any) -> tuple[str, Generator[Step, Any, None], Step]:
        """Start the policy's flow for ``request`` (off the warm path): its URL, the flow, its first step."""
        url = str(request.url)
        stamp = request.extensions.get(STAMP)
        authorization = _authorization(request.headers)
        explicit = authorization is not None and (stamp is None or authorization != stamp[1])
        flow = self._policy.flow(
            request.method, url, explicit=explicit, replayable=True, proxies=_environment_proxies(url)
        )
        return url, flow, next(flow)  # a flow that raises at its first step is closed already

    def _after_warm(
        self, request: Any, response: Any, url: str, token: OAuthToken
    ) -> tuple[Generator[Step, Any, None], Step] | None:
        """What follows a 401 or a redirect answer to a request sent on the warm path with ``token``.

        The policy's flow from that answer on and its next step (a replay), or ``None``
        when the policy wants none.
        """
        flow = self._policy.answered(request.method, url, token, self._observe(request, response, url))
        step = next(flow, None)
        return None if step is None else (flow, step)

    def _apply(self, request: Any, send: Send, url: str) -> None:
        """Set the step's credential headers on ``request`` (or remove reqcc's stale ones)."""
        headers = request.headers
        if send.headers:
            for name, value in send.headers.items():
                headers[name] = value
            request.extensions[STAMP] = (
                url, send.headers["Authorization"], send.headers.get(DPOP_HEADER), request.url
            )
        else:
            _strip(request)

    def _answer(
        self, flow: Generator[Step, Any, None], request: Any, response: Any, url: str
    ) -> Step | None:
        """Tell the policy what came back; return its next step (a replay), or ``None`` when done."""
        try:
            return flow.send(self._observe(request, response, url))
        except StopIteration:
            return None

    def _observe(self, request: Any, response: Any, url: str) -> tuple[int, Mapping[str, str]]:
        """The answer to ``request`` (sent to ``url``) as the policy is to see it.

        :data:`_ELSEWHERE` when redirects were followed to another origin (and a warning,
        once, when they were followed without :meth:`keep_home`); a ``next_request`` to
        another origin loses reqcc's credential headers.
        """
        if response.history:
            extensions = request.extensions
            if STAMP in extensions and not extensions.get(GUARDED) and not self._warned_redirects:
                self._warned_redirects = True
                log.warning(
                    "an httpx client followed a redirect of a request carrying a reqcc credential "
                    "without reqcc's redirect guard: install auth.keep_home as a request event hook "
                    "(event_hooks={'request': [auth.keep_home]}) so that no DPoP proof crosses origins"
                )
            final = str(response.request.url)
            answer = (response.status_code, response.headers) if origin(final) == origin(url) else _ELSEWHERE
        else:
            answer = (response.status_code, response.headers)
        following = response.next_request
        if following is not None and origin(str(following.url)) != origin(url):
            _strip(following)
        return answer

    # -- redirects -------------------------------------------------------------------

    def keep_home(self, request: Any) -> Any:
        """A request event hook for ``httpx.Client`` and ``httpx.AsyncClient`` alike.

        On a redirect hop to another origin than the one a reqcc flow sent the request to,
        it removes the credential headers that flow set (``Authorization`` on an
        http-to-https upgrade, which httpx keeps; ``DPoP`` always). Install it as
        ``event_hooks={"request": [auth.keep_home]}``. Returns an awaitable that is already
        done, so the async client can await it.
        """
        extensions = request.extensions
        stamp = extensions.get(STAMP)
        if stamp is not None:
            extensions[GUARDED] = True
            url = request.url
            # The request the flow stamped (its URL object, unchanged: httpx's URLs are
            # immutable) is at home; a hop is compared by origin.
            if (len(stamp) < 4 or stamp[3] is not url) and origin(str(url)) != origin(stamp[0]):
                _strip(request)
        return _DONE

    # -- the rest --------------------------------------------------------------------

    def close(self) -> None:
        """Close the manager if this auth created it."""
        if self._owns_manager:
            self.manager.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, manager={self.manager!r})"


#: Event loops whose gates an auth keeps: a program that runs more loops (one after another,
#: or one per thread) starts afresh then (a gate of a loop still running is only replaced,
#: and its requests in flight finish with it).
_MAX_GATES = 64


class _Gate:
    """Admission of one event loop's requests into an async client, under contention.

    A request that enters the async flow while others of the same loop are in flight
    passes an ``anyio.Lock`` that yields once while held, so a burst of coroutines enters
    the client one per loop iteration instead of all in one: each iteration's work stays
    bounded, and so does the client's connection pool's (httpcore's bookkeeping grows with
    the requests waiting in it). Measured in ``benchmarks/async_load.py``: with 200
    coroutines on one client, loop lag p99 from about 110 ms to about 3 ms and 40 % more
    requests a second (Authlib's client gets the same from the token lock every request
    takes). A request alone in flight (the warm path of a sequential caller) passes no lock
    and no checkpoint. The token look-up itself stays lock-free (contract item 37).
    """

    __slots__ = ("in_flight", "lock")

    def __init__(self) -> None:
        self.in_flight = 0
        self.lock: Any = None

    async def admit(self) -> None:
        """Wait for this request's turn: one per loop iteration while others wait too."""
        lock = self.lock
        if lock is None:
            import anyio

            lock = self.lock = anyio.Lock()
        async with lock:
            pass


def _running_loop() -> object:
    """The running event loop (asyncio's loop object, or the native token of anyio's loop).

    asyncio is not imported here: when nothing imported it, no asyncio loop runs.
    """
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:  # another loop: trio, through anyio
            pass
    import anyio.lowlevel

    return anyio.lowlevel.current_token().native_token


def _authorization(headers: Any) -> str | None:
    """The ``Authorization`` value of httpx ``headers``, or ``None``.

    Read from the list httpx and httpx2 keep (``(name, lowered name, value)`` bytes) when it
    is there: ``headers.get`` of a missing name raises and catches a ``KeyError`` inside,
    the larger part of this auth's cost per request.
    """
    items = getattr(headers, "_list", None)
    if type(items) is not list:
        value = headers.get("Authorization")
        return value if isinstance(value, str) else None
    for item in items:
        if item[1] == b"authorization":
            return str(item[2].decode(headers.encoding))
    return None


def _strip(request: Any) -> None:
    """Remove from ``request`` the credential headers a reqcc flow set on it, if it still has them."""
    stamp = request.extensions.get(STAMP)
    if stamp is None:
        return
    headers = request.headers
    if headers.get("Authorization") == stamp[1]:
        del headers["Authorization"]
    if stamp[2] is not None and headers.get(DPOP_HEADER) == stamp[2]:
        del headers[DPOP_HEADER]


def _discard(response: Any, byte_stream: Any) -> None:
    """Let go of an answer before its replay: its body is not read, its connection is closed."""
    stream = response.stream
    response.stream = byte_stream(b"")
    stream.close()


async def _adiscard(response: Any, byte_stream: Any) -> None:
    """:func:`_discard` for the async client."""
    stream = response.stream
    response.stream = byte_stream(b"")
    await stream.aclose()
