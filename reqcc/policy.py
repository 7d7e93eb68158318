"""The request policy: what happens to one API request, written once, without I/O (contract item 36).

:meth:`RequestPolicy.flow` is a generator in the shape of httpx's ``_auth.py`` auth flows:
it yields what to do and receives what came of it, and does no I/O itself, so a sync and
an async front end drive the same code (and tests drive it with ``next``/``send``):

- it yields :data:`OBTAIN` and receives a usable :class:`~reqcc.OAuthToken` (the driver
  calls the manager's blocking ``get_token()``, or awaits it in a worker thread);
- it yields a :class:`Send`: the credential headers to set on the outgoing request
  (``Authorization``, and ``DPoP`` for a DPoP token), or none ("send it as it is", with any
  credential a reqcc flow set earlier removed), and receives the response's
  ``(status, headers)``. A second :class:`Send` is a replay of the same request.

Front ends that do part of the work themselves enter it later: :meth:`RequestPolicy.present`
starts from a token in hand (after :meth:`RequestPolicy.admit`, the https/loopback/proxy
check), :meth:`RequestPolicy.answered` from a token sent and the answer that came back.
The requests adapter sends a Bearer token on its measured warm path itself and enters
``answered`` on a 401, ``present`` for a DPoP token; the httpx front end has the same warm
path (``answered`` on a 401 or a redirect answer) and drives ``flow`` for everything else.

The rules, for every front end: an ``Authorization`` header the caller
set wins (sent untouched); a request outside ``base_url`` goes without a token; a token
goes only over https or plain http to loopback with no proxy applying (item 10, 18); a
Bearer token as ``Authorization: Bearer``, a DPoP token with a fresh proof carrying
``ath`` (item 23); a 401 ``use_dpop_nonce`` is replayed once with the nonce; a 401 saying
the token is bad retires it (only if still current) and replays once with a fresh token
when the body can be replayed, unless the endpoint is in the manager's 401 cool-down
(item 11, 19); a replay refused too starts that cool-down (unless its token had expired by
the time the answer came: it waited in the client's connection pool).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Final

from ._log import log
from ._urls import require_no_cleartext_proxy, require_secure_url
from .challenges import error_code
from .dpop import resource_demands_nonce
from .errors import ConfigurationError
from .manager import ClientCredentialsManager
from .oauth_token import OAuthToken

__all__ = ["OBTAIN", "Obtain", "Replayable", "RequestPolicy", "Response", "Send", "Step", "rejects_token"]

_TOKEN_REQUEST = "a request carrying a bearer token"
#: How many origins a policy remembers as fit to carry a token (then it starts afresh).
MAX_SECURE_ORIGINS = 64


class Obtain:
    """The step "send me a usable token": the driver sends in ``manager.get_token()``'s result."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "OBTAIN"


#: The one :class:`Obtain` the policy yields.
OBTAIN: Final = Obtain()


class Send:
    """The step "send the request now", with the credential headers to set on it.

    :param headers: ``Authorization`` (and ``DPoP``) to set; empty: send the request
        without a credential of reqcc's (remove one a reqcc flow set on it earlier).
    :param token: the token those headers present, or ``None``.
    """

    __slots__ = ("headers", "token")

    def __init__(self, headers: Mapping[str, str], token: OAuthToken | None = None) -> None:
        self.headers = headers
        self.token = token

    def __repr__(self) -> str:  # never the headers: they hold the token
        fingerprint = self.token.fingerprint if self.token is not None else None
        return f"Send(headers={sorted(self.headers)!r}, token={fingerprint!r})"


#: A response as the policy sees it: its status code and its headers. ``(0, {})`` is an
#: answer the policy must learn nothing from (a front end that followed redirects got it
#: from another origin): it neither retires the token nor gives it a nonce.
Response = tuple[int, Mapping[str, str]]
#: What the policy yields.
Step = Obtain | Send
_Flow = Generator[Step, OAuthToken | Response, None]
#: Whether a request's body can be sent again: a bool, or a callable asked just before a
#: replay that makes the body ready to send again and says whether it could.
Replayable = bool | Callable[[], bool]

#: The step "send it as it is".
_UNTOUCHED: Final = Send({})


def rejects_token(status: int, www_authenticate: str | None) -> bool:
    """Return whether a response says the token itself is bad (RFC 6750 §3.1).

    A 401 whose ``WWW-Authenticate`` is absent or carries ``error="invalid_token"`` (read
    within bounds: :func:`reqcc.challenges.error_code`, as the requests adapter reads it).
    """
    if status != 401:
        return False
    if not www_authenticate:
        return True
    return error_code(www_authenticate) == "invalid_token"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return value if isinstance(value, str) else None


class RequestPolicy:
    """The request policy of one front end over one manager: see the module docstring.

    :param manager: the token manager (its token, its DPoP prover, its 401 cool-down).
    :param base_url: the URL prefix whose requests get a token (matched as requests
        matches a mount prefix: case-insensitively); ``None``: every request the front end
        serves (then a plain-http request to a host other than loopback is refused).
    """

    __slots__ = ("_prefix", "_secure", "base_url", "manager")

    def __init__(self, manager: ClientCredentialsManager, *, base_url: str | None = None) -> None:
        self.manager = manager
        self.base_url = base_url
        self._prefix = base_url.lower() if base_url is not None else None
        # The "scheme://host:port" texts of URLs already found fit to carry a token.
        self._secure: set[str] = set()

    def covers(self, url: str) -> bool:
        """Whether ``url`` is under ``base_url`` (always, without one)."""
        prefix = self._prefix
        return prefix is None or url[: len(prefix)].lower() == prefix

    def flow(
        self,
        method: str,
        url: str,
        *,
        explicit: bool = False,
        replayable: Replayable = True,
        proxies: Mapping[str, str] | None = None,
    ) -> _Flow:
        """Return the generator for one request: yields :data:`OBTAIN` or :class:`Send` steps.

        :param method: the request's method.
        :param url: the request's URL.
        :param explicit: the request carries an ``Authorization`` header of the caller's.
        :param replayable: its body can be sent again (for the replays); or a callable, asked
            just before each replay, that makes the body ready to send again and returns
            whether it could (the requests adapter rewinds a file body so).
        :param proxies: the proxies that may apply to it (``{"http": url, …}``), if known.
        :raises InsecureTransportError: (at the first ``next``) a token would go over plain
            http to a host other than loopback, or through a proxy in cleartext.
        """
        if explicit or not self.covers(url):
            yield _UNTOUCHED
            return
        self.admit(url, proxies)
        token = yield OBTAIN
        assert isinstance(token, OAuthToken)
        answer = yield self._credential(method, url, token)  # present(), without a generator more
        assert isinstance(answer, tuple)
        yield from self.answered(method, url, token, answer, replayable=replayable)

    def present(self, method: str, url: str, token: OAuthToken, *, replayable: Replayable = True) -> _Flow:
        """Return the rest of :meth:`flow` from "send the request with ``token``" on.

        For a front end that decided the request gets a token (:meth:`admit`) and obtained
        ``token`` itself: the first step is the :class:`Send` presenting it.
        """
        answer = yield self._credential(method, url, token)
        assert isinstance(answer, tuple)
        yield from self.answered(method, url, token, answer, replayable=replayable)

    def answered(
        self, method: str, url: str, token: OAuthToken, answer: Response, *, replayable: Replayable = True
    ) -> _Flow:
        """Return the rest of :meth:`flow` from "the request went with ``token``; ``answer`` came back" on.

        For a front end that sent the first request itself (the requests adapter's Bearer
        warm path, with the :class:`Send` :meth:`present` would have yielded): it yields
        the steps of the replays, if any (none for most answers: the generator just ends).
        """
        if token.token_type != "Bearer":
            nonce = self._demanded_nonce(url, token, answer, replayable)
            if nonce is not None:
                answer = yield from self._nonce_replay(method, url, token, nonce)
        status, headers = answer
        if status != 401 or not rejects_token(status, _header(headers, "WWW-Authenticate")):
            return
        cooldown = self.manager.rejection_cooldown
        endpoint = f"{method} {url.partition('#')[0].partition('?')[0]}"
        if cooldown.active(endpoint):
            log.debug("401 from %s, in its cool-down: token %s stays in use", endpoint, token.fingerprint)
            return
        retired = self.manager.invalidate(token)
        if not _can_replay(replayable):
            log.info("401 for token %s; the body cannot be replayed: returning the 401", token.fingerprint)
            return
        log.info(
            "401 for token %s%s; replaying the request once with a fresh token",
            token.fingerprint, "" if retired else " (already replaced)",
        )
        fresh = yield OBTAIN
        assert isinstance(fresh, OAuthToken)
        replayed = yield self._credential(method, url, fresh)
        assert isinstance(replayed, tuple)
        nonce = self._demanded_nonce(url, fresh, replayed, replayable)
        if nonce is not None:
            replayed = yield from self._nonce_replay(method, url, fresh, nonce)
        status, headers = replayed
        if fresh.access_token != token.access_token:
            # A fresh token refused too: not the token's fault (the endpoint cools down, and
            # a few such endpoints in a row cool their origin down, contract items 19, 34) --
            # unless it was no longer fresh when the answer came: a replay that waited in the
            # client's connection pool past the token's use-by time was refused for its age.
            if not rejects_token(status, _header(headers, "WWW-Authenticate")):
                cooldown.accepted(endpoint)
            elif self.manager.is_expired(fresh):
                log.info(
                    "401 for token %s, expired by the time of the answer: no cool-down",
                    fresh.fingerprint,
                )
            else:
                cooldown.start(endpoint)

    def admit(self, url: str, proxies: Mapping[str, str] | None = None) -> tuple[str, ...]:
        """Raise :class:`~reqcc.InsecureTransportError` unless a token may travel to ``url``.

        A token goes only over https, or plain http to loopback, and not through a proxy in
        ``proxies`` that would see it in cleartext (contract items 10, 18). Returns the
        ``"scheme://host:port/"`` prefix of ``url`` in a tuple when its origin was found fit
        (any URL that starts with it has the same scheme and host: a front end may skip
        this call for such a URL, as long as no proxy applies), else an empty tuple.

        The origin is decided once per origin text: in an ``http://`` or ``https://`` URL
        the first ``/`` from index 8 on ends the host (or comes after a ``?`` or ``#`` that
        ended it: the text before it then holds the whole host, and the rule reads the
        same). At most :data:`MAX_SECURE_ORIGINS` are remembered; any other URL is decided
        each time.
        """
        end = url.find("/", 8)
        key = url[:end] if end >= 0 and url[:8].lower().startswith(("https://", "http://")) else None
        secure = self._secure
        if key is None or key not in secure:
            require_secure_url(url, _TOKEN_REQUEST)
            if key is not None:
                if len(secure) >= MAX_SECURE_ORIGINS:
                    secure.clear()
                secure.add(key)
        if proxies:
            require_no_cleartext_proxy(url, proxies, _TOKEN_REQUEST)
        return (key + "/",) if key is not None else ()

    def _credential(self, method: str, url: str, token: OAuthToken, nonce: str | None = None) -> Send:
        """The step that sends the request with ``token`` (a DPoP token with a fresh proof)."""
        if token.token_type == "Bearer":
            return Send({"Authorization": f"Bearer {token.access_token}"}, token)
        dpop = self.manager.dpop
        if dpop is None:
            raise ConfigurationError(
                f"token {token.fingerprint} is a DPoP token, but this manager has no DPoP key "
                "(pass dpop=True or dpop_key=)"
            )
        headers: dict[str, str] = {}
        dpop.authorize(headers, method, url, token.access_token, nonce=nonce)
        return Send(headers, token)

    def _demanded_nonce(
        self, url: str, token: OAuthToken, answer: Response, replayable: Replayable
    ) -> str | None:
        """Note the nonce of a DPoP token's answer; return it when the answer wants a replay with it.

        RFC 9449 §9: a 401 whose ``DPoP`` challenge says ``use_dpop_nonce`` wants the same
        request with a proof carrying the nonce of its ``DPoP-Nonce`` header; that is not the
        token's fault. The replay signs with the nonce of that answer itself, not the
        store's latest (another thread's answer may have put another one there meanwhile).
        ``None`` also when the body cannot be sent again. (A plain function, not a
        generator: most answers want no replay.)
        """
        dpop = self.manager.dpop
        if token.token_type == "Bearer" or dpop is None:
            return None
        status, headers = answer
        nonce = dpop.update(url, headers)
        if (
            nonce is not None
            and resource_demands_nonce(status, _header(headers, "WWW-Authenticate"))
            and _can_replay(replayable)
        ):
            return nonce
        return None

    def _nonce_replay(
        self, method: str, url: str, token: OAuthToken, nonce: str
    ) -> Generator[Step, OAuthToken | Response, Response]:
        """Replay once with a DPoP proof carrying ``nonce``; note the answer's nonce; return the answer."""
        log.info("the resource server asked for a DPoP nonce; replaying the request once with it")
        answer = yield self._credential(method, url, token, nonce)
        assert isinstance(answer, tuple)
        dpop = self.manager.dpop
        if dpop is not None:
            dpop.update(url, answer[1])
        return answer


def _can_replay(replayable: Replayable) -> bool:
    """Whether a replay may go (asking a callable ``replayable`` to make the body ready for it)."""
    return replayable() if callable(replayable) else replayable
