"""The token manager: owns one client's configuration and current token.

It decides when a token is usable, fetches one when needed (once for all the threads
that need it), renews it ahead of expiry in the background, retires it on request, and
backs off after failures. It knows nothing of transport adapters.
"""

from __future__ import annotations

import copy
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import requests

from ._log import log
from ._urls import require_secure_url
from .client_auth import TLS_AUTH_METHODS, ClientAuth, make_client_auth
from .errors import ConfigurationError, ReqccError, TokenProviderError, as_cached_error
from .oauth_token import DEFAULT_CLOCK_SKEW, OAuthToken
from .scopes import OAuthScope
from .stores._shared import SharedTokens
from .stores.base import TokenStore, check_token_store, token_store_key
from .token_endpoint import DEFAULT_TIMEOUT, Timeout, TokenEndpoint

__all__ = ["ClientCredentialsManager", "TokenProvider", "TokenUpdateCallback"]

#: ``(last_token, manager) -> OAuthToken`` (a dict is accepted too).
TokenProvider = Callable[[OAuthToken | None, "ClientCredentialsManager"], Any]
#: ``(token) -> None``
TokenUpdateCallback = Callable[[OAuthToken], None]

#: Fraction of a token's lifetime, before the skew margin, in which it is renewed ahead.
DEFAULT_REFRESH_AHEAD = 0.2


class _Current:
    """The token in use and its deadlines on the monotonic clock (derived at adoption)."""

    __slots__ = ("expire_at", "renew_at", "token")

    def __init__(self, token: OAuthToken, expire_at: float | None, renew_at: float | None) -> None:
        self.token = token
        self.expire_at = expire_at
        self.renew_at = renew_at

    def usable(self, now: float) -> bool:
        return self.expire_at is None or now < self.expire_at


class _Flight:
    """One token request in progress; everybody who needs a token meanwhile waits on it."""

    __slots__ = ("done", "error", "leader", "token", "traceback")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.token: OAuthToken | None = None
        self.error: BaseException | None = None
        self.traceback: TracebackType | None = None
        self.leader: int | None = None  # the thread running it (set when it starts)

    def finish(self, token: OAuthToken | None, error: BaseException | None) -> None:
        self.token, self.error = token, error
        self.traceback = error.__traceback__ if error is not None else None
        self.done.set()

    def result(self, *, leader: bool = False) -> OAuthToken:
        """Wait for the flight; return its token or raise its error.

        The leader (the thread that sent the request) raises the error itself; every
        other thread raises its own copy (see :func:`_copy_error`).
        """
        self.done.wait()
        if self.error is not None:
            raise self.error if leader else _copy_error(self.error, self.traceback)
        assert self.token is not None
        return self.token


def _copy_error(exc: BaseException, traceback: TracebackType | None) -> BaseException:
    """Return ``exc`` for a thread that waited on the failed fetch: a copy, own traceback.

    Raising one exception object in many threads makes each raise extend the same
    ``__traceback__``: every waiter's traceback shows the frames of all the others, and
    the stored error (``_last_error``) keeps all their frames alive. The copy has the
    same type, message and attributes (``status_code``, ``response``, …), the same cause
    and context, and a traceback that ends where the error was really raised.
    """
    try:
        clone = copy.copy(exc)
    except Exception:  # an exotic exception type that cannot be copied
        return exc
    clone.__cause__ = exc.__cause__
    clone.__context__ = exc.__context__
    clone.__suppress_context__ = exc.__suppress_context__
    return clone.with_traceback(traceback)


def _seconds(value: Any, keyword: str, *, allow_zero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{keyword} must be a number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigurationError(f"{keyword} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def _check_timeout(timeout: Any) -> Timeout:
    if isinstance(timeout, tuple):
        if len(timeout) != 2:
            raise ConfigurationError("timeout must be seconds or a (connect, read) pair")
        return (
            _seconds(timeout[0], "timeout", allow_zero=False),
            _seconds(timeout[1], "timeout", allow_zero=False),
        )
    return _seconds(timeout, "timeout", allow_zero=False)


def normalize_scopes(scopes: Iterable[OAuthScope | str] | str | None) -> tuple[str, ...]:
    """Return the wire values of ``scopes``, in order, without duplicates.

    A single string is taken as a space-separated list.

    :raises ConfigurationError: an item is neither an :class:`OAuthScope` nor a ``str``.
    """
    if scopes is None:
        return ()
    if isinstance(scopes, str):
        scopes = scopes.split()
    out: list[str] = []
    try:
        items = list(scopes)
    except TypeError:
        raise ConfigurationError(
            f"scopes must be an iterable of OAuthScope or str, got {type(scopes).__name__}"
        ) from None
    for item in items:
        if isinstance(item, OAuthScope):
            value = item.value
        elif isinstance(item, str):
            value = item
        else:
            raise ConfigurationError(
                f"scopes: {item!r} is neither an OAuthScope nor a str"
            )
        if not value or any(ch.isspace() for ch in value):
            raise ConfigurationError(f"scopes: {value!r} is not a single scope token")
        if value not in out:
            out.append(value)
    return tuple(out)


class ClientCredentialsManager:
    """Obtains, caches and renews client-credentials tokens for one client.

    Thread-safe: one manager serves any number of threads and sessions.

    :param token_url: the token endpoint (https, or http to a loopback host); required.
    :param client_id: the client identifier; required.
    :param client_secret: the client secret (for the ``client_secret_*`` methods).
    :param scopes: :class:`~reqcc.OAuthScope` members or plain strings, sent space-joined.
    :param token: a token to start with (:class:`~reqcc.OAuthToken` or a dict).
    :param clock_skew: seconds subtracted from the expiry when judging validity (default 30),
        capped at half the token's lifetime.
    :param token_provider: ``(last_token, manager) -> OAuthToken``; replaces the built-in fetch.
        Called only when there is no usable token; it may call :meth:`fetch_token`.
    :param on_token_update: ``(token) -> None``, called once per new token obtained by a fetch
        or by the provider (not for tokens given by hand).
    :param auth_method: ``"client_secret_basic"`` (default), ``"client_secret_post"``,
        ``"client_secret_jwt"``, ``"private_key_jwt"``, ``"tls_client_auth"``,
        ``"self_signed_tls_client_auth"``, ``"none"``, or a
        :class:`~reqcc.client_auth.ClientAuth` instance. The mutual-TLS methods need a
        ``token_session`` that presents the client certificate.
    :param basic_auth_encoding: ``"form"`` (RFC 6749 §2.3.1, default) or ``"raw"``.
    :param private_key: for ``private_key_jwt``: PEM str, PEM bytes or a JWK dict.
    :param assertion_algorithm: the JWS ``alg`` of a JWT assertion (default ``RS256`` for
        ``private_key_jwt``, ``HS256`` for ``client_secret_jwt``).
    :param assertion_audience: the ``aud`` of a JWT assertion (default: ``token_url``).
    :param token_params: extra form fields sent with every token request (``audience``, …).
    :param timeout: token request timeout, seconds or (connect, read); default (5, 15).
    :param token_session: the ``requests.Session`` token requests go through (proxies, CA
        bundle, client certificate); an ``OAuth2Session`` has its compliance hooks applied.
    :param refresh_ahead: fraction of the lifetime before expiry in which a valid token is
        renewed in the background (default 0.2; 0 disables).
    :param max_retries: retries of a transient token-endpoint failure (default 2).
    :param retry_backoff: base seconds of the exponential wait between those retries.
    :param max_retry_wait: the longest one retry waits (a longer ``Retry-After`` ends retrying).
    :param failure_backoff: seconds before the first new attempt after a failed fetch; doubles
        per consecutive failure, jittered, up to ``max_failure_backoff`` (default 60).
    :param clock: wall clock in Unix seconds (default ``time.time``), for absolute expiries.
    :param monotonic: monotonic clock (default ``time.monotonic``), for in-process validity.
    :param sleep: how to wait between retries (default ``time.sleep``).
    :param token_store: a :class:`~reqcc.stores.TokenStore` (``FileTokenStore``,
        ``RedisTokenStore``) shared with other processes: a token is read from it before
        one is fetched or asked of the provider, and what this process obtains is written
        to it, so the fleet fetches (and renews ahead) once. ``on_token_update`` fires only
        in the process that obtained the token, not for tokens read from the store.
    """

    def __init__(
        self,
        *,
        token_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        scopes: Iterable[OAuthScope | str] | str | None = None,
        token: OAuthToken | Mapping[str, Any] | None = None,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        token_provider: TokenProvider | None = None,
        on_token_update: TokenUpdateCallback | None = None,
        auth_method: str | ClientAuth = "client_secret_basic",
        basic_auth_encoding: str = "form",
        private_key: str | bytes | Mapping[str, Any] | None = None,
        assertion_algorithm: str | None = None,
        assertion_audience: str | Sequence[str] | None = None,
        token_params: Mapping[str, str] | None = None,
        timeout: Timeout | None = DEFAULT_TIMEOUT,
        token_session: requests.Session | None = None,
        refresh_ahead: float = DEFAULT_REFRESH_AHEAD,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        max_retry_wait: float = 10.0,
        failure_backoff: float = 1.0,
        max_failure_backoff: float = 60.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        token_store: TokenStore | None = None,
    ) -> None:
        if token_url is None:
            raise ConfigurationError("token_url is required (the token endpoint's https URL)")
        if not isinstance(token_url, str) or "://" not in token_url:
            raise ConfigurationError(f"token_url must be an absolute URL, got {token_url!r}")
        if "@" in urlsplit(token_url).netloc:
            raise ConfigurationError(
                "token_url must not carry credentials (user:password@host); "
                "pass client_id= and client_secret= instead"
            )
        require_secure_url(token_url, "token_url")
        if not isinstance(client_id, str) or not client_id:
            raise ConfigurationError("client_id is required (a non-empty string)")
        if client_secret is not None and not isinstance(client_secret, str):
            raise ConfigurationError("client_secret must be a string")
        if token_provider is not None and not callable(token_provider):
            raise ConfigurationError("token_provider must be callable: (last_token, manager) -> OAuthToken")
        if on_token_update is not None and not callable(on_token_update):
            raise ConfigurationError("on_token_update must be callable: (token) -> None")
        if token_session is not None and not isinstance(token_session, requests.Session):
            raise ConfigurationError("token_session must be a requests.Session")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        refresh_ahead = _seconds(refresh_ahead, "refresh_ahead")
        if refresh_ahead >= 1:
            raise ConfigurationError(
                f"refresh_ahead is a fraction of the lifetime in [0, 1), got {refresh_ahead!r}"
            )
        for name, value in (("clock", clock), ("monotonic", monotonic), ("sleep", sleep)):
            if not callable(value):
                raise ConfigurationError(f"{name} must be callable")

        self.clock_skew = _seconds(clock_skew, "clock_skew")
        self.refresh_ahead = refresh_ahead
        self.failure_backoff = _seconds(failure_backoff, "failure_backoff")
        self.max_failure_backoff = _seconds(max_failure_backoff, "max_failure_backoff")
        self.token_provider = token_provider
        self.on_token_update = on_token_update
        self._scopes = normalize_scopes(scopes)
        self._clock = clock
        self._monotonic = monotonic
        client_auth = make_client_auth(
            auth_method,
            client_id,
            client_secret,
            basic_auth_encoding=basic_auth_encoding,
            private_key=private_key,
            assertion_algorithm=assertion_algorithm,
            assertion_audience=assertion_audience,
            clock=clock,
        )
        if client_auth.method in TLS_AUTH_METHODS and token_session is None:
            raise ConfigurationError(
                f"auth_method={client_auth.method!r} authenticates with a client certificate: pass "
                "token_session=, a requests.Session whose cert (or adapter) presents it"
            )
        self._endpoint = TokenEndpoint(
            token_url,
            client_auth,
            scope=" ".join(self._scopes) or None,
            token_params=token_params,
            timeout=None if timeout is None else _check_timeout(timeout),
            session=token_session,
            max_retries=max_retries,
            retry_backoff=_seconds(retry_backoff, "retry_backoff"),
            max_retry_wait=_seconds(max_retry_wait, "max_retry_wait"),
            clock=clock,
            sleep=sleep,
        )
        self.token_store = None if token_store is None else check_token_store(token_store)
        self._shared = None if self.token_store is None else SharedTokens(
            self.token_store, self._store_key(), monotonic=monotonic, sleep=sleep
        )
        self._random = random.Random()
        self._reset_process_state()
        self._current: _Current | None = None
        self._last_token: OAuthToken | None = None
        self._retired: str | None = None
        self._failures = 0
        self._retry_at = -math.inf
        self._last_error: BaseException | None = None
        self._last_error_at = 0.0
        if token is not None:
            self.token = self._coerce(token, "token", ConfigurationError)

    # -- configuration, read-only -------------------------------------------------------

    @property
    def token_url(self) -> str:
        """The token endpoint."""
        return self._endpoint.token_url

    @property
    def client_id(self) -> str:
        """The client identifier."""
        return self._endpoint.client_auth.client_id

    @property
    def auth_method(self) -> str:
        """The client authentication method's name."""
        return self._endpoint.client_auth.method

    @property
    def scopes(self) -> tuple[str, ...]:
        """The requested scopes' wire values."""
        return self._scopes

    @property
    def token_params(self) -> dict[str, str]:
        """The extra form fields sent with every token request (a copy)."""
        return dict(self._endpoint.token_params)

    # -- the token ---------------------------------------------------------------------

    @property
    def token(self) -> OAuthToken | None:
        """The token in use, or ``None`` (none yet, or the last one was retired).

        Set it to an :class:`OAuthToken` or a dict to use that token (``on_token_update``
        is not called for it), or to ``None`` to drop the current one.
        """
        current = self._current
        return current.token if current is not None else None

    @token.setter
    def token(self, value: OAuthToken | Mapping[str, Any] | None) -> None:
        self._check_process()
        if value is None:
            with self._lock:
                self._current = None
            return
        self._adopt(self._coerce(value, "token", ConfigurationError), notify=False)

    def get_token(self) -> OAuthToken:
        """Return a usable token, obtaining one if needed. This is what the adapter calls.

        Fast path: a valid token is returned without locking. In its renewal window a
        background renewal is started and the still-valid token returned. Without a usable
        token, the calling thread fetches (or calls the provider) and every other thread
        that needs a token meanwhile waits for that one result. During the failure backoff
        the last error is raised at once, marked as a repeat.
        """
        self._check_process()
        current = self._current
        if current is not None:
            now = self._monotonic()
            if current.usable(now):
                if current.renew_at is not None and now >= current.renew_at:
                    self._refresh_ahead(current, now)
                return current.token
        return self._await_token()

    def fetch_token(self, **extra_params: str) -> OAuthToken:
        """Request a new token from the token endpoint now, adopt it and return it.

        ``extra_params`` are added to this request's form (after ``token_params``).
        Meant for ``token_provider`` callbacks and for forcing a renewal; it neither waits
        for nor joins another fetch in progress.
        """
        self._check_process()
        token = self._endpoint.request_token(extra_params)
        self._adopt(token, notify=True)
        return token

    def is_expired(self, token: OAuthToken) -> bool:
        """Return whether ``token`` is expired (expiry minus the capped skew has passed).

        The current token is judged on the monotonic deadline derived when it was
        adopted, so a wall-clock jump neither expires it nor keeps it alive.
        """
        current = self._current
        if current is not None and token is current.token:
            return not current.usable(self._monotonic())
        return token.is_expired(self.clock_skew, self._clock())

    def is_valid(self, token: OAuthToken | None) -> bool:
        """Return whether ``token`` can be used now: not expired and not retired by a 401."""
        return (
            isinstance(token, OAuthToken)
            and token.access_token != self._retired
            and not self.is_expired(token)
        )

    def invalidate(self, token: OAuthToken) -> bool:
        """Retire ``token`` (the resource server rejected it) if it is still the current one.

        Returns whether it was current. Concurrent calls for the same token retire it
        once, so they cause a single new fetch.
        """
        self._check_process()
        with self._lock:
            current = self._current
            if current is None or current.token.access_token != token.access_token:
                return False
            self._current = None
            self._retired = token.access_token
        log.info("token %s retired after the resource server rejected it", token.fingerprint)
        return True

    def close(self) -> None:
        """Release the token session if the manager created it."""
        self._endpoint.close()

    # -- internals ---------------------------------------------------------------------

    def _reset_process_state(self) -> None:
        # The pid last: another thread that sees it match must also see the new lock.
        self._lock = threading.Lock()
        self._flight: _Flight | None = None
        self._pid = os.getpid()

    def _check_process(self) -> None:
        # Every public method that takes the lock starts here, not only get_token():
        # fetch_token(), invalidate() or the token setter may be a child's first call.
        if self._pid != os.getpid():
            self._after_fork()

    def _after_fork(self) -> None:
        # A forked child inherits locks that may be held and flights whose threads do not
        # exist here, and the token session's sockets are shared with the parent. Its
        # random generators are copies of the parent's: reseed them, or every worker
        # forked from one parent jitters its backoff identically (in lockstep).
        self._random.seed()
        self._endpoint.after_fork()
        self._reset_process_state()
        log.debug("manager reset after fork (pid %d)", self._pid)

    def _coerce(self, value: Any, what: str, error: type[ReqccError]) -> OAuthToken:
        if isinstance(value, OAuthToken):
            return value
        if isinstance(value, Mapping):
            try:
                return OAuthToken.from_dict(value, now=self._clock())
            except ValueError as exc:
                raise error(f"{what} is not a usable token: {exc}") from None
        raise error(f"{what} must be an OAuthToken or a dict, got {type(value).__name__}")

    def _deadlines(self, token: OAuthToken) -> _Current:
        if token.expiry is None:
            return _Current(token, None, None)
        now = self._monotonic()
        remaining = token.expiry - self._clock()
        expire_at = now + remaining - token.effective_skew(self.clock_skew)
        renew_at = None
        if self.refresh_ahead > 0 and self.token_provider is None:
            lifetime = token.expires_in if token.expires_in is not None else max(remaining, 0.0)
            renew_at = expire_at - self.refresh_ahead * lifetime
        return _Current(token, expire_at, renew_at)

    def _adopt(self, token: OAuthToken, *, notify: bool, flight: _Flight | None = None) -> None:
        current = self._deadlines(token)
        with self._lock:
            previous = self._last_token
            self._current = current
            self._last_token = token
            if token.access_token != self._retired:
                self._retired = None
            if flight is not None and self._flight is flight:
                self._flight = None
            self._failures = 0
            self._retry_at = -math.inf
            self._last_error = None
        if flight is not None:
            flight.finish(token, None)
        changed = previous is None or previous.access_token != token.access_token
        if changed:
            log.debug("token %s adopted (expiry %s)", token.fingerprint, token.expiry)
        if notify and changed and self.on_token_update is not None:
            try:
                self.on_token_update(token)
            except Exception:
                log.exception("on_token_update raised; the new token is used anyway")

    def _await_token(self) -> OAuthToken:
        with self._lock:
            current = self._current
            now = self._monotonic()
            if current is not None and current.usable(now):
                return current.token
            flight = self._flight
            leader = flight is None
            if flight is not None and flight.leader == threading.get_ident():
                # The thread running this flight asks for a token again (its token_provider
                # called get_token() or sent a request through the adapter): waiting would
                # mean waiting for itself, forever.
                raise TokenProviderError(
                    "token_provider asked the manager for a token while the manager was "
                    "waiting for that provider (get_token() or a request through the reqcc "
                    "adapter); return manager.fetch_token() instead"
                )
            if flight is None:
                if self._last_error is not None and now < self._retry_at:
                    raise as_cached_error(
                        self._last_error,
                        f"token request failed {now - self._last_error_at:.1f}s ago; "
                        f"next attempt in {self._retry_at - now:.1f}s",
                    )
                flight = self._flight = _Flight()
        if leader:
            self._run(flight, background=False)
        return flight.result(leader=leader)

    def _refresh_ahead(self, current: _Current, now: float) -> None:
        # Unlocked first look, so that the fast path stays lock-free while a renewal runs
        # or backs off (the window may last minutes); checked again under the lock.
        if self._flight is not None or now < self._retry_at:
            return
        with self._lock:
            if self._flight is not None or self._current is not current or now < self._retry_at:
                return
            flight = self._flight = _Flight()
        log.debug("token %s in its renewal window; renewing in the background", current.token.fingerprint)
        try:
            threading.Thread(
                target=self._run,
                args=(flight,),
                kwargs={"background": True},  # keyword-only: positional True raised TypeError in the thread
                name="reqcc-token-refresh",
                daemon=True,
            ).start()
        except RuntimeError as exc:  # no new threads (interpreter shutdown, thread limit)
            # Never leave a flight nobody runs: callers would wait on it forever once the
            # token expires. The token is still valid; a later request tries again.
            with self._lock:
                if self._flight is flight:
                    self._flight = None
            flight.finish(None, exc)
            log.warning("could not start the background token renewal (%s)", exc)

    def _run(self, flight: _Flight, *, background: bool) -> None:
        flight.leader = threading.get_ident()
        try:
            token, obtained_here = self._obtain_shared()
        except BaseException as exc:
            with self._lock:
                if self._flight is flight:
                    self._flight = None
                if isinstance(exc, Exception):
                    self._record_failure(exc)
            flight.finish(None, exc)
            if background:
                log.warning(
                    "background token renewal failed (%s); the current token stays in use",
                    type(exc).__name__ if not isinstance(exc, ReqccError) else exc,
                )
            elif not isinstance(exc, Exception):
                raise
            return
        self._adopt(token, notify=obtained_here, flight=flight)

    def _record_failure(self, exc: Exception) -> None:
        # Called with the lock held.
        self._failures += 1
        delay = min(self.max_failure_backoff, self.failure_backoff * 2 ** (self._failures - 1))
        delay *= 0.5 + self._random.random() / 2
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, (int, float)):
            delay = max(delay, min(float(retry_after), self.max_failure_backoff))
        now = self._monotonic()
        self._last_error = exc
        self._last_error_at = now
        self._retry_at = now + delay

    def _obtain(self) -> OAuthToken:
        provider = self.token_provider
        if provider is None:
            return self._endpoint.request_token()
        last = self._last_token
        try:
            result = provider(last, self)
        except requests.RequestException:
            raise
        except Exception as exc:
            raise TokenProviderError(f"token_provider raised {type(exc).__name__}") from exc
        token = self._coerce(result, "token_provider's result", TokenProviderError)
        if token.access_token == self._retired:
            raise TokenProviderError(
                "token_provider returned the token the resource server just rejected (401); "
                "check manager.is_valid(stored) before returning a stored token, else return "
                "manager.fetch_token()"
            )
        if token.is_expired(self.clock_skew, self._clock()):
            raise TokenProviderError(
                "token_provider returned an expired token; check manager.is_valid(stored) "
                "before returning a stored token, else return manager.fetch_token()"
            )
        return token

    # -- the shared token store (see reqcc.stores) ----------------------------------------

    def _store_key(self) -> str:
        return token_store_key(
            token_url=self._endpoint.token_url,
            client_id=self._endpoint.client_auth.client_id,
            auth_method=self._endpoint.client_auth.method,
            scopes=self._scopes,
            token_params=self._endpoint.token_params,
            secrets=self._endpoint.client_auth.secrets(),
            key_id=getattr(self._endpoint.client_auth, "key_id", None),
        )

    def _obtain_shared(self) -> tuple[OAuthToken, bool]:
        """Obtain a token, through the token store if there is one.

        Returns the token and whether this process obtained it (fetch or provider), as
        opposed to reading it from the store.
        """
        if self._shared is None:
            return self._obtain(), True
        return self._shared.obtain(self._obtain, self._usable_from_store)

    def _usable_from_store(self, token: OAuthToken) -> bool:
        """Whether a token found in the store may be adopted instead of obtaining one."""
        current = self._current
        if current is not None and token.access_token == current.token.access_token:
            return False  # the token in use is not good enough any more (expired or due)
        if token.access_token == self._retired or token.is_expired(self.clock_skew, self._clock()):
            return False
        if current is not None and current.usable(self._monotonic()):
            # Renewing ahead: only a token that is not itself due for renewal helps.
            renew_at = self._deadlines(token).renew_at
            return renew_at is None or self._monotonic() < renew_at
        return True

    def __repr__(self) -> str:
        token = self.token
        return (
            f"ClientCredentialsManager(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            f"auth_method={self.auth_method!r}, scopes={self._scopes!r}, "
            f"token={token.fingerprint if token is not None else None!r})"
        )
