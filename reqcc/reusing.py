"""The reusing source: the token in use, handed out while usable; one flight for a new one.

x/oauth2's ``reuseTokenSource`` (the cache and the lock that guards it, in one type in
front of another source), grown by what reqcc promises:

- the fast path (:meth:`ReusingSource.get_token`): the token held and its monotonic
  deadline, read without a lock (:mod:`reqcc.validity`);
- one flight (:mod:`reqcc.single_flight`): N threads without a usable token cause one
  request to the source, and all get its token or its error (contract item 12);
- renewal ahead of expiry: in its renewal window the token is still handed out, and a
  background thread renews it (item 12);
- after a failure, the two regimes of :class:`~reqcc.backoff.FailureBackoff` (item 27),
  and the held token used up to its real expiry while the source fails (item 28);
- a fresh start in a forked child, through :mod:`reqcc.fork_safety`: a new single flight
  and lock (the parent's leader is not in the child, a parent thread may hold the lock),
  and a reseeded jitter. The token held is kept: it is as good in the child.

:class:`~reqcc.ClientCredentialsManager` is a reusing source in front of its chain of
sources (:mod:`reqcc.token_source`); it adds the configuration and the public API.
"""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Callable

import requests

from . import fork_safety
from ._log import log
from .backoff import FailureBackoff
from .config import TokenUpdateCallback
from .oauth_token import OAuthToken
from .single_flight import SingleFlight, _Flight
from .token_source import Obtained, TokenSource
from .validity import HeldToken, hold

__all__ = ["ReusingSource"]


class ReusingSource:
    """Hands out the token held while it is usable; else obtains one from ``source``, once for all threads.

    :param source: where a new token comes from (the next source of the chain).
    :param clock_skew: seconds subtracted from a token's expiry when judging it (capped at
        half its lifetime).
    :param refresh_ahead: fraction of a token's lifetime, before its expiry, in which it is
        renewed in the background (0 disables).
    :param renews_ahead: whether tokens are renewed ahead at all (not a ``token_provider``'s:
        the provider decides when to fetch).
    :param token_deadline: seconds one fetch may take, for every thread waiting on it.
    :param failure_backoff: the doubling backoff's first wait, while a usable token is held.
    :param max_failure_backoff: the longest wait after failures.
    :param probe_interval: seconds between probes while no usable token is held.
    :param clock: wall clock (Unix seconds), for absolute expiries.
    :param monotonic: monotonic clock, for the token held and every wait.
    :param on_token_update: called once per new token this process obtained.
    :param waited: told the seconds a caller waited for a token (telemetry).
    :param peek: a token another process stored meanwhile, or ``None`` (the store source's
        look for a caller about to get the last failure again); ``None`` without a store.
    :param waiting_for: what a token comes from, for the messages of a fetch past its deadline.
    """

    #: The token held and its deadlines, or ``None``; replaced (never changed) under :attr:`_lock`.
    _current: HeldToken | None
    #: The single flight of this process (new in a forked child).
    _flights: SingleFlight
    #: The single flight's lock: the token held changes under it.
    _lock: threading.Lock

    def __init__(
        self,
        source: TokenSource,
        *,
        clock_skew: float,
        refresh_ahead: float,
        renews_ahead: bool,
        token_deadline: float,
        failure_backoff: float,
        max_failure_backoff: float,
        probe_interval: float,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
        on_token_update: TokenUpdateCallback | None,
        waited: Callable[[float], None],
        peek: Callable[[float], OAuthToken | None] | None,
        waiting_for: Callable[[], str],
    ) -> None:
        self.clock_skew = clock_skew
        self.refresh_ahead = refresh_ahead
        self.token_deadline = token_deadline
        self.on_token_update = on_token_update
        self._source = source
        self._renews_ahead = renews_ahead
        self._clock = clock
        self._monotonic = monotonic
        self._waited = waited
        self._peek = peek
        self._waiting_for = waiting_for
        self._random = random.Random()
        self._backoff = FailureBackoff(
            failure_backoff,
            max_failure_backoff,
            monotonic=monotonic,
            rng=self._random,
            probe_interval=probe_interval,
        )
        self._current = None
        self._last_token: OAuthToken | None = None
        self._retired: str | None = None
        self._reset_process_state()
        fork_safety.register(self._after_fork)

    # -- the fast path ------------------------------------------------------------------

    def get_token(self) -> OAuthToken:
        """Return a usable token, obtaining one if needed. This is what the adapter calls.

        Fast path: a valid token is returned without locking. In its renewal window a
        background renewal is started and the still-valid token returned. Without a usable
        token, the calling thread fetches (or calls the provider) and every other thread
        that needs a token meanwhile waits for that one result. During the failure backoff
        the last error is raised at once, marked as a repeat.
        """
        current = self._current
        if current is not None:
            now = self._monotonic()
            expire_at = current.expire_at
            if expire_at is None or now < expire_at:  # current.usable(now), inlined
                if current.renew_at is not None and now >= current.renew_at:
                    self._refresh_ahead(current, now)
                return current.token
        return self._await_token()

    def usable_token(self) -> OAuthToken | None:
        """Return the token in use if it is usable now, else ``None``; never waits, never fetches.

        The fast path of :meth:`get_token` without its fallback: no lock, no I/O, so an
        event loop may call it (the httpx front end's warm path, contract item 37). In the
        renewal window it starts the background renewal as :meth:`get_token` does (a
        thread start, once per window). ``None`` means: call :meth:`get_token`, from a
        thread that may block.
        """
        current = self._current
        if current is None:
            return None
        now = self._monotonic()
        expire_at = current.expire_at
        if expire_at is not None and now >= expire_at:
            return None
        if current.renew_at is not None and now >= current.renew_at:
            self._refresh_ahead(current, now)
        return current.token

    # -- no usable token: one flight ----------------------------------------------------

    def _await_token(self) -> OAuthToken:
        held = self._held_while_failing()
        if held is not None:
            return held
        try:
            return self._flights.get(
                self._usable_token,
                self._obtainer,
                self._adopt_obtained,
                waited=self._waited,
                recheck=self._peek_store if self._peek is not None else None,
            )
        except requests.RequestException:
            # The fetch that just found the token endpoint failing: a token that has not
            # really expired yet still serves (contract item 28).
            held = self._held_while_failing()
            if held is None:
                raise
            return held

    def _held_while_failing(self) -> OAuthToken | None:
        """The held token while the token endpoint fails and the token's real expiry is ahead (item 28).

        Past its ``clock_skew`` margin but not its expiry, it is handed out, and a renewal
        is tried in the background when the backoff allows, as in its renewal window.
        Only the slow path (the token's margin reached) comes here.
        """
        current = self._current
        if current is None or not self._backoff.failing:
            return None
        now = self._monotonic()
        if not current.unexpired(now):
            return None
        self._refresh_ahead(current, now)
        return current.token

    def _raise_repeated_failure(self) -> None:
        """Raise the last failure again when :meth:`get_token` would raise it at once; else return.

        Lock-free and without I/O, for an event loop (contract item 37): while the token
        endpoint is failing, no fetch is in progress and the next attempt is not due (item
        27), ``get_token()`` raises a copy of the last error at once, so a coroutine may
        learn that on the loop instead of in a worker thread. Returns (the caller then goes
        the usual way) when a fetch or a probe is due, one is in progress, or a token store
        is configured: the store may hold another process's token meanwhile (item 29), and
        looking is I/O.
        """
        if self._peek is not None:
            return
        flights = self._flights
        if flights.flight is None:
            flights.backoff.check(self._monotonic())

    def _usable_token(self, now: float) -> OAuthToken | None:
        current = self._current
        return current.token if current is not None and current.usable(now) else None

    def _obtainer(self, flight: _Flight) -> Callable[[], Obtained]:
        """What the leader of ``flight`` calls: the source, asked with the flight's deadline."""
        # A probe of an endpoint known to be failing is one HTTP request (contract item 27).
        retries = not self._backoff.failing
        return functools.partial(self._source.token, flight.deadline, retries=retries)

    def _adopt_obtained(self, obtained: Obtained, flight: _Flight) -> None:
        self._adopt(obtained.token, notify=obtained.fresh, flight=flight)

    def _renew(self, flight: _Flight) -> None:
        """The background renewal's thread: lead ``flight`` (a failure is logged and recorded)."""
        result = self._flights.lead(flight, self._obtainer(flight), background=True)
        if result is not None:
            self._adopt_obtained(result, flight)

    def _peek_store(self) -> OAuthToken | None:
        """Adopt and return a token another process stored since this one last failed, or ``None``."""
        assert self._peek is not None
        token = self._peek(self._monotonic() + self.token_deadline)
        if token is not None:
            self._adopt(token, notify=False)
        return token

    # -- renewal ahead of expiry --------------------------------------------------------

    def _refresh_ahead(self, current: HeldToken, now: float) -> None:
        """Start renewing ``current`` in the background, unless that is under way or backing off.

        Called by the fast path with the token it found in its renewal window at ``now``
        (``monotonic``); returns at once, without a lock, while a renewal runs or the
        failure backoff lasts. A renewal is a flight like any other: a caller that finds
        the token expired meanwhile joins it. One still running past its deadline counts
        as failed (:meth:`~reqcc.single_flight.SingleFlight.start_renewal`).
        """
        # Unlocked first look, so that the fast path stays lock-free while a renewal runs
        # or backs off (the window may last minutes); checked again under the lock.
        flights = self._flights
        flight = flights.flight
        if flight is not None:
            if flight.deadline is None or now < flight.deadline:
                return
        elif now < self._backoff.retry_at:
            return
        with flights.lock:
            if self._current is not current:
                return
            flight = flights.start_renewal(now)
            if flight is None:
                return
        log.debug("token %s in its renewal window; renewing in the background", current.token.fingerprint)
        try:
            threading.Thread(
                target=self._renew,
                args=(flight,),
                name="reqcc-token-refresh",
                daemon=True,
            ).start()
        except RuntimeError as exc:  # no new threads (interpreter shutdown, thread limit)
            # Never leave a flight nobody runs: callers would wait on it forever once the
            # token expires. The token is still valid; a later request tries again.
            flights.abandon(flight, exc)
            log.warning("could not start the background token renewal (%s)", exc)

    # -- the token held -----------------------------------------------------------------

    def _deadlines(self, token: OAuthToken) -> HeldToken:
        refresh_ahead = self.refresh_ahead if self._renews_ahead else 0.0
        return hold(
            token, clock_skew=self.clock_skew, refresh_ahead=refresh_ahead,
            clock=self._clock, monotonic=self._monotonic,
        )

    def _adopt(self, token: OAuthToken, *, notify: bool, flight: _Flight | None = None) -> None:
        """Hold ``token``, unless ``flight`` came too late; ``notify``: tell ``on_token_update``."""
        current = self._deadlines(token)
        with self._lock:
            stale = flight is not None and self._flights.is_stale(flight)
            if not stale:
                previous = self._last_token
                self._current = current
                self._last_token = token
                if token.access_token != self._retired:
                    self._retired = None
                self._flights.landed(flight)
        if flight is not None:
            flight.finish(token, None)  # its leader gets the token it waited for, even a late one
        if stale:
            # It outlived token_deadline, and a newer token was obtained meanwhile: that one
            # stays in use.
            log.debug("token %s arrived after token_deadline; the newer token stays", token.fingerprint)
            return
        changed = previous is None or previous.access_token != token.access_token
        if changed:
            log.debug("token %s adopted (expiry %s)", token.fingerprint, token.expiry)
        if notify and changed and self.on_token_update is not None:
            try:
                self.on_token_update(token)
            except Exception:
                log.exception("on_token_update raised; the new token is used anyway")

    def _drop(self) -> None:
        """Hold no token (the next caller obtains one)."""
        with self._lock:
            self._current = None

    def _retire(self, token: OAuthToken) -> bool:
        """Drop ``token`` if it is the one held, and remember it as rejected; whether it was held."""
        with self._lock:
            current = self._current
            if current is None or current.token.access_token != token.access_token:
                return False
            self._current = None
            self._retired = token.access_token
        return True

    def _replaces_held(self, token: OAuthToken) -> bool:
        """Whether a token found in a token store may replace the one held."""
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

    def _known_tokens(self) -> tuple[str, ...]:
        """The access tokens held, for the token endpoint's redaction (contract item 13)."""
        current, last = self._current, self._last_token
        return tuple({t.access_token for t in (current.token if current else None, last) if t is not None})

    def _probe_delay(self, exc: Exception) -> float:
        """Seconds from the failure ``exc`` to the next probe (jittered ``probe_interval``)."""
        return self._backoff.probe_delay(exc)

    # -- per process --------------------------------------------------------------------

    @property
    def _flight(self) -> _Flight | None:
        """The token request in progress, or ``None``."""
        return self._flights.flight

    def _reset_process_state(self) -> None:
        # A new single flight brings a new lock (never the old one released: a thread of
        # the parent may hold it). No flight in progress: its leader is not in a child.
        self._flights = SingleFlight(
            self._backoff,
            deadline=self.token_deadline,
            monotonic=self._monotonic,
            waiting_for=self._waiting_for(),
        )
        self._lock = self._flights.lock

    def _after_fork(self) -> None:
        """In a forked child (one thread, before any other code): a new single flight and lock.

        The random generator is a copy of the parent's: reseeded, or every worker forked
        from one parent jitters its failure backoff identically (in lockstep).
        """
        self._random.seed()
        self._reset_process_state()
