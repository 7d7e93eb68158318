"""The single flight: one token request at a time, every other caller waits for its result.

A manager has one :class:`SingleFlight`. The first thread that needs a token while none
is being obtained becomes the flight's *leader* and obtains it (or a background renewal
thread does); every thread that needs a token meanwhile *joins* the flight and waits for
the same token or the same error. After a failure, its
:class:`~reqcc.backoff.FailureBackoff` answers new callers with that error again, marked
as a repeat, until the next attempt is due: after a doubling backoff while a usable token
is held, after a steady probe interval while none is (contract item 27).

The waits: :meth:`SingleFlight.wait` is the one place a joined thread waits for a flight
(a whole-fetch deadline bounds it there), and :meth:`SingleFlight.lead` the one place a
leader's outcome is handed to the threads that joined (what they get when the leader
died of a ``BaseException`` is decided there). This module knows nothing of how a token
is obtained: the manager passes that in.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from ._log import log
from .backoff import FailureBackoff
from .errors import ReqccError, TokenDeadlineError, TokenProviderError
from .oauth_token import OAuthToken

__all__ = ["FailureBackoff", "LeaderInterrupted", "SingleFlight"]

_T = TypeVar("_T")


class _Flight:
    """One token request in progress; everybody who needs a token meanwhile waits on it."""

    __slots__ = (
        "counted", "deadline", "done", "error", "landings", "leader", "overdue", "token", "traceback",
    )

    def __init__(self, deadline: float | None = None) -> None:
        self.done = threading.Event()
        self.token: OAuthToken | None = None
        self.error: BaseException | None = None
        self.traceback: TracebackType | None = None
        self.leader: int | None = None  # the thread running it (set when it starts)
        #: The ``monotonic`` time by which it must be over (``token_deadline``), or ``None``.
        self.deadline = deadline
        #: Its deadline passed before it ended: nobody waits for it any more, and a new
        #: flight may have started meanwhile (see :meth:`SingleFlight.wait`).
        self.overdue = False
        #: Its deadline passed while a valid token was in use, and that counted as a failure
        #: (the backoff has it): its late end, success or failure, counts no more.
        self.counted = False
        #: :attr:`SingleFlight.landings` when it began.
        self.landings = 0

    def finish(self, token: OAuthToken | None, error: BaseException | None) -> None:
        self.token, self.error = token, error
        self.traceback = error.__traceback__ if error is not None else None
        self.done.set()

    def result(
        self,
        *,
        leader: bool = False,
        monotonic: Callable[[], float] | None = None,
        overdue: Callable[[_Flight], None] | None = None,
    ) -> OAuthToken:
        """Wait for the flight; return its token or raise its error.

        The leader (the thread that sent the request) raises the error itself; every
        other thread raises its own copy (see :func:`_copy_error`). A thread that joined
        waits until :attr:`deadline` on ``monotonic`` at most; then ``overdue(self)`` is
        called, which raises unless the flight ended meanwhile.
        """
        deadline = self.deadline
        if leader or deadline is None or monotonic is None or overdue is None:
            self.done.wait()
        else:
            while not self.done.is_set():
                left = deadline - monotonic()
                if left <= 0:
                    overdue(self)
                    break
                self.done.wait(left)
        if self.error is not None:
            if not leader and not isinstance(self.error, Exception):
                # contract item 21: a KeyboardInterrupt or SystemExit belongs to the thread it
                # was raised in; the threads that waited start over (see SingleFlight.wait).
                raise LeaderInterrupted(type(self.error).__name__)
            raise self.error if leader else _copy_error(self.error, self.traceback)
        assert self.token is not None
        return self.token


class LeaderInterrupted(ReqccError):
    """The thread fetching the token was interrupted (``KeyboardInterrupt``, ``SystemExit``).

    Raised to the threads that waited for that fetch, which try again; a thread that
    cannot (it tried :data:`MAX_INTERRUPTED` times) lets it propagate: a
    :class:`~reqcc.ReqccError`, never the other thread's interrupt.
    """


#: How many interrupted fetches in a row a waiting thread tries again after.
MAX_INTERRUPTED = 3


def _copy_error(exc: BaseException, traceback: TracebackType | None) -> BaseException:
    """Return ``exc`` for a thread that waited on the failed fetch: a copy, own traceback.

    Raising one exception object in many threads makes each raise extend the same
    ``__traceback__``: every waiter's traceback shows the frames of all the others, and
    the stored error (``last_error``) keeps all their frames alive. The copy has the
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


class SingleFlight:
    """At most one token request at a time for one manager; the threads that need a token wait on it.

    :attr:`lock` is the manager's lock too: ending a flight and adopting its token happen
    under it together, so no thread sees one without the other. A forked child gets a new
    :class:`SingleFlight` (the parent's lock may be held there, its flight has no thread).

    :param backoff: the manager's failure backoff, which outlives a fork.
    """

    def __init__(
        self,
        backoff: FailureBackoff,
        *,
        deadline: float | None = None,
        monotonic: Callable[[], float] | None = None,
        waiting_for: str = "the token request",
    ) -> None:
        self.lock = threading.Lock()
        self.backoff = backoff
        #: The flight in progress, or ``None``.
        self.flight: _Flight | None = None
        #: Seconds one flight may last for the threads waiting on it (``token_deadline``).
        self.deadline = deadline
        self._monotonic = monotonic if monotonic is not None else backoff._monotonic
        self._waiting_for = waiting_for
        #: Tokens obtained so far (a flight that outlived its deadline yields to a newer one).
        self.landings = 0

    def _new_flight(self, now: float) -> _Flight:
        flight = self.flight = _Flight(None if self.deadline is None else now + self.deadline)
        flight.landings = self.landings
        return flight

    def _drop_overdue(self, now: float) -> None:
        """Forget the flight in progress if its deadline has passed (lock held)."""
        flight = self.flight
        if flight is not None and flight.deadline is not None and now >= flight.deadline:
            self._expire(flight)

    def _expire(self, flight: _Flight) -> None:
        """Mark ``flight`` overdue; nobody waits for it any more (lock held).

        Its leader may still be running (a ``token_provider`` that never returns cannot be
        interrupted), but the next caller starts a new flight instead of joining it.
        """
        flight.overdue = True
        if self.flight is flight:
            self.flight = None
            log.warning(
                "%s did not end within token_deadline (%gs); the next caller starts a new one",
                self._waiting_for, self.deadline or 0.0,
            )

    def is_stale(self, flight: _Flight) -> bool:
        """Whether ``flight`` outlived its deadline and a token was obtained since it began (lock held).

        Its late token must not replace that newer one, and its late failure is no failure
        of the manager's any more.
        """
        return flight.overdue and flight.landings != self.landings

    def join(self, now: float) -> tuple[_Flight, bool]:
        """Return the flight to wait for and whether this thread leads it (lock held).

        :raises ReqccError: the last failure, again, while its backoff lasts (no flight).
        :raises TokenProviderError: the leader itself asks (its provider called back).
        """
        self._drop_overdue(now)
        flight = self.flight
        if flight is not None:
            if flight.leader == threading.get_ident():
                # The thread running this flight asks for a token again (its token_provider
                # called get_token() or sent a request through the adapter): waiting would
                # mean waiting for itself, forever.
                raise TokenProviderError(
                    "token_provider asked the manager for a token while the manager was "
                    "waiting for that provider (get_token() or a request through the reqcc "
                    "adapter); return manager.fetch_token() instead"
                )
            return flight, False
        self.backoff.check(now)
        return self._new_flight(now), True

    def start_renewal(self, now: float) -> _Flight | None:
        """Return a new flight for a renewal ahead of expiry, or ``None`` (lock held).

        ``None`` when a flight is already in progress or a failure backoff lasts. A flight
        still in progress past its deadline counts as failed (see :meth:`_fail_overdue`):
        ``None`` too, and the next renewal starts after the failure backoff.
        """
        flight = self.flight
        if flight is not None and flight.deadline is not None and now >= flight.deadline:
            self._fail_overdue(flight)
            return None
        if flight is not None or now < self.backoff.retry_at:
            return None
        return self._new_flight(now)

    def _fail_overdue(self, flight: _Flight) -> None:
        """Count ``flight``, still running past its deadline, as a failed fetch (lock held).

        What the fetch would have raised had it noticed its deadline itself: a
        :class:`~reqcc.TokenDeadlineError`, recorded for the failure backoff, so a token
        endpoint that hangs every time is not sent a new request (and left a new stuck
        thread) every ``token_deadline`` seconds. The flight is forgotten; its leader may
        still end, but its late failure is not recorded again, and its late token does not
        replace a newer one (:meth:`is_stale`).
        """
        flight.overdue = flight.counted = True
        self.flight = None
        self.backoff.record(
            TokenDeadlineError(
                f"no token within token_deadline ({self.deadline or 0.0:g}s): "
                f"{self._waiting_for} did not end in time"
            )
        )
        log.warning(
            "%s did not end within token_deadline (%gs) while a valid token was in use; that "
            "token stays in use, and a new renewal starts after the failure backoff",
            self._waiting_for, self.deadline or 0.0,
        )

    def lead(self, flight: _Flight, obtain: Callable[[], _T], *, background: bool) -> _T | None:
        """Run ``obtain`` as ``flight``'s leader; return its result, or ``None`` if it failed.

        On success the caller adopts the result and then calls :meth:`landed` and
        ``flight.finish`` (under the lock with the adoption). On failure the flight ends
        here with the error, which is recorded for the backoff (an ``Exception``) and
        logged for a background renewal; a ``BaseException`` is raised again in a
        foreground leader.
        """
        flight.leader = threading.get_ident()
        try:
            return obtain()
        except BaseException as exc:
            with self.lock:
                if self.flight is flight:
                    self.flight = None
                if isinstance(exc, Exception) and not flight.counted and not self.is_stale(flight):
                    self.backoff.record(exc)
            flight.finish(None, exc)
            if background:
                log.warning(
                    "background token renewal failed (%s); the current token stays in use",
                    type(exc).__name__ if not isinstance(exc, ReqccError) else exc,
                )
            elif not isinstance(exc, Exception):
                raise
            return None

    def landed(self, flight: _Flight | None) -> None:
        """A token was obtained (by ``flight``, or outside any): end it, forget failures (lock held)."""
        if flight is not None and self.flight is flight:
            self.flight = None
        self.landings += 1
        self.backoff.reset()

    def abandon(self, flight: _Flight, error: BaseException) -> None:
        """End ``flight`` with ``error`` without recording a failure (its leader never ran)."""
        with self.lock:
            if self.flight is flight:
                self.flight = None
        flight.finish(None, error)

    def get(
        self,
        held: Callable[[float], OAuthToken | None],
        obtain: Callable[[_Flight], Callable[[], _T]],
        adopt: Callable[[_T, _Flight], None],
        *,
        waited: Callable[[float], None],
        recheck: Callable[[], OAuthToken | None] | None = None,
    ) -> OAuthToken:
        """Return the usable token held, or else lead or join a flight and return its token.

        The caller that finds no usable token and no flight leads a new one: it runs
        ``obtain(flight)()`` (see :meth:`lead`), has ``adopt`` take its result, and returns
        the flight's token (or raises its error). A caller that
        finds a flight in progress waits for it (see :meth:`wait`); when that flight's
        leader was interrupted (contract item 21) it starts over, up to
        :data:`MAX_INTERRUPTED` times.

        :param held: called under the lock with the ``monotonic`` time: the token held if
            it is usable then, else ``None``.
        :param obtain: returns, for the flight about to be led, what obtains its token (the
            next token source, asked with the flight's deadline).
        :param adopt: takes what ``obtain`` returned, for the flight: ends it (see :meth:`lead`).
        :param waited: told the seconds a caller waited for a flight: every caller that led
            or joined one (not one that got a usable token, or the last error at once).
        :param recheck: asked, without the lock, by a caller about to get the last error
            again: a token obtained elsewhere meanwhile (another process's, through a token
            store), adopted, or ``None``.
        :raises ReqccError: the flight's error, or the last one again during the backoff.
        """
        interrupted = 0
        while True:
            with self.lock:
                now = self._monotonic()
                token = held(now)
                if token is not None:
                    return token
                self._drop_overdue(now)
                repeat = recheck is not None and self.flight is None and not self.backoff.due(now)
                if not repeat:
                    flight, leader = self.join(now)
            if repeat:
                # The next attempt is not due: the last error again, unless a token was
                # obtained elsewhere meanwhile (another process's, through a token store).
                assert recheck is not None
                token = recheck()
                if token is not None:
                    return token
                with self.lock:
                    self.backoff.check(self._monotonic())  # raises, unless it became due
                continue
            if leader:
                # The leader waits for its own token request: that is a wait too (contract
                # item 34), whether it ends in a token or an error.
                try:
                    result = self.lead(flight, obtain(flight), background=False)
                    if result is not None:
                        adopt(result, flight)
                    return self.wait(flight, leader=True)
                finally:
                    waited(self._monotonic() - now)
            # Another thread is obtaining the token: this caller had to wait.
            try:
                return self.wait(flight, leader=False)
            except LeaderInterrupted:
                # Item 21: the fetching thread was interrupted; that is its own business.
                # This one starts over (leads a new fetch, or joins one).
                interrupted += 1
                if interrupted >= MAX_INTERRUPTED:
                    raise
            finally:
                waited(self._monotonic() - now)

    def wait(self, flight: _Flight, *, leader: bool) -> OAuthToken:
        """Wait for ``flight``'s token; raise its error (a copy, for the threads that joined).

        A thread that joined waits until the flight's deadline at most (``token_deadline``,
        on the manager's ``monotonic`` clock), then gets a :class:`~reqcc.TokenDeadlineError`
        and the flight is forgotten (the next caller starts a new one) even if its leader is
        still running. When that leader was interrupted (``KeyboardInterrupt``, …) it gets
        :class:`LeaderInterrupted`, to try again.
        """
        return flight.result(leader=leader, monotonic=self._monotonic, overdue=self._overdue)

    def _overdue(self, flight: _Flight) -> None:
        """A waiter saw ``flight``'s deadline pass: raise, unless it ended meanwhile."""
        with self.lock:
            if flight.done.is_set():
                return
            self._expire(flight)
        raise TokenDeadlineError(
            f"no token within token_deadline ({self.deadline or 0.0:g}s): "
            f"{self._waiting_for} did not end in time"
        )
