"""The store step of a manager's token flight: share one token, and one outage, among many processes.

Used by :class:`~reqcc.ClientCredentialsManager` inside its single-flight leader, so at
most one thread per process talks to the store at a time:

    read the store → usable? adopt it
    else the fleet's outage record says the next probe is not due? → its error, at once
    else take the lease → read again → fetch (or call the provider) → write → release
    lease taken by another process → poll the store until its token appears (or, while
    the endpoint is known to be failing, the last error at once), taking the lease over
    if it runs out; past half the fetch's deadline, fetch here

While the token endpoint fails, the process whose fetch failed records an
:class:`~reqcc.stores.base.Outage` beside the token (when the store keeps them, contract
item 29): the time of the next probe for the whole fleet and the last error. So N
processes probe about once an interval in all, and the token the first successful probe
writes is there for everyone's next request (:meth:`SharedTokens.peek`).

Every store call runs within the fetch's deadline (``token_deadline``): a call that has
not returned by half of what is left of it counts as a failed store (a stalled Redis that
drips its answer, a file lock nobody releases). A broken or stalled store never fails a
request: it is logged, this process fetches for itself, and the store is tried again
after a short backoff. The token so fetched is written back at that next try, while the
manager still holds it, unless the store holds one lasting as long or longer
(:meth:`SharedTokens._write_back`): the rest of the fleet finds it there.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .. import fork_safety
from .._log import excerpt, log
from ..backoff import FailureBackoff
from ..errors import TokenRequestError
from ..oauth_token import OAuthToken
from .base import Outage, OutageStore, TokenStore

__all__ = ["SharedTokens"]

_T = TypeVar("_T")
#: A failure -> (seconds to the fleet's next probe, the values to redact from its description).
_Schedule = Callable[[Exception], tuple[float, Iterable[str]]]

#: Seconds the store is left alone after a failure; doubles per consecutive failure, jittered.
STORE_RETRY_BACKOFF = 1.0
#: The longest the store is left alone after failures.
MAX_STORE_RETRY_BACKOFF = 30.0


class _StoreFailed(Exception):
    """The store raised or stalled; it has been logged and backed off."""


class _Call:
    """One store call running in a helper thread, so that the caller can stop waiting for it."""

    def __init__(self, method: Callable[..., Any], args: tuple[object, ...]) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.pid = os.getpid()
        self._method, self._args = method, args

    def run(self) -> None:
        try:
            self.result = self._method(*self._args)
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc
        finally:
            self.done.set()


class SharedTokens:
    """Obtains a token through a :class:`~reqcc.stores.TokenStore` for one manager.

    :param store: the store.
    :param key: this client configuration's key (:func:`~reqcc.stores.token_store_key`).
    :param monotonic: the manager's monotonic clock (deadlines, lease waits, store backoff).
    :param sleep: how to wait between two reads of the store.
    :param clock: the manager's wall clock (Unix seconds): the outage record's times, which
        every process of the fleet reads.
    """

    def __init__(
        self,
        store: TokenStore,
        key: str,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.key = key
        self._monotonic = monotonic
        self._sleep = sleep
        self._clock = clock
        #: When to call a failing store again: the doubling regime of reqcc's one backoff.
        self._backoff = FailureBackoff(
            STORE_RETRY_BACKOFF, MAX_STORE_RETRY_BACKOFF, monotonic=monotonic, rng=random.Random()
        )
        self._peeked_at = -math.inf
        self._peeking = threading.Lock()
        #: A store call that outlived its caller's deadline and has not returned yet.
        self._stuck: _Call | None = None
        #: The token this process obtained last, if the store failed (or was left alone)
        #: when it should have been written: written back at the next store call.
        self._unwritten: OAuthToken | None = None
        #: Whether the store keeps the fleet's outage record (contract item 29).
        self.keeps_outages = isinstance(store, OutageStore)
        fork_safety.register(self.after_fork)

    def after_fork(self) -> None:
        """Start a forked child with its own jitter, and no store call of the parent's pending."""
        self._backoff._random.seed()
        self._stuck = None
        self._peeking = threading.Lock()  # the parent's may have been held

    # -- the manager's entry points -----------------------------------------------------

    def obtain(
        self,
        fetch: Callable[[bool], OAuthToken],
        acceptable: Callable[[OAuthToken], bool],
        *,
        deadline: float | None = None,
        retries: bool = True,
        probe_delay: Callable[[Exception], float] = lambda exc: 1.0,
        secrets: Callable[[], Iterable[str]] = tuple,
        held: Callable[[], OAuthToken | None] = lambda: None,
    ) -> tuple[OAuthToken, bool]:
        """Return a token and whether this process obtained it (``False``: read from the store).

        A token this process obtained while the store failed (or was backed off from) is
        written back first, when the store answers again (:meth:`_write_back`).

        :param fetch: ``fetch(retries)`` obtains a new token (the token endpoint or the
            provider); ``retries=False`` makes it a probe, one HTTP request. Its exceptions
            propagate, after the lease is released and the fleet's outage recorded.
        :param acceptable: whether a token found in the store may be used instead.
        :param deadline: the ``monotonic`` time the whole fetch must be over by: every store
            call and every wait for another process's lease stays within it.
        :param retries: ``False`` when this process knows the endpoint is failing.
        :param probe_delay: seconds from a failure to the fleet's next probe (the manager's
            :meth:`~reqcc.single_flight.FailureBackoff.probe_delay`).
        :param secrets: the values to redact from a failure before the fleet is told of it.
        :param held: the token the manager holds now (or ``None``): only that one is written
            back, never one it has retired or replaced since.
        :raises TokenRequestError: the fleet's last failure, when its next probe is not due
            yet, or when another process is probing the failing endpoint right now.
        """
        if not self._usable():
            return self._fetch_unwritten(fetch, retries), True
        def schedule(exc: Exception) -> tuple[float, Iterable[str]]:
            return probe_delay(exc), secrets()

        try:
            self._write_back(held, deadline)
            return self._obtain(fetch, acceptable, deadline, retries, schedule)
        except _StoreFailed:
            return self._fetch_unwritten(fetch, retries), True

    def peek(self, acceptable: Callable[[OAuthToken], bool], deadline: float | None) -> OAuthToken | None:
        """Return an acceptable token from the store, or ``None``; at most once per ``poll_interval``.

        For a caller that would get the last failure again meanwhile: another process's
        probe may have stored a token since (contract item 29). One look at a time: a caller
        that finds another looking gets ``None`` at once. A failing or stalled store is
        ``None``.
        """
        if not self._peeking.acquire(blocking=False):
            return None
        try:
            now = self._monotonic()
            if now < self._peeked_at + self.store.poll_interval or not self._usable():
                return None
            self._peeked_at = now
            try:
                token = self._call(deadline, self.store.read, self.key)
            except _StoreFailed:
                return None
        finally:
            self._peeking.release()
        if token is None or not acceptable(token):
            return None
        log.debug("token %s read from the token store (another process's)", token.fingerprint)
        return token

    # -- the store step -----------------------------------------------------------------

    def _obtain(
        self,
        fetch: Callable[[bool], OAuthToken],
        acceptable: Callable[[OAuthToken], bool],
        deadline: float | None,
        retries: bool,
        schedule: _Schedule,
    ) -> tuple[OAuthToken, bool]:
        store, key = self.store, self.key
        token = self._call(deadline, store.read, key)
        if token is not None and acceptable(token):
            log.debug("token %s read from the token store", token.fingerprint)
            return token, False
        outage = self._read_outage(deadline)
        if outage is not None:
            self._raise_until_due(outage)
        # One lease timeout for a dead or stuck holder's lease to run out (then one of the
        # waiters takes it over), one for the next holder's fetch; never past half of what
        # is left of the fetch's deadline, so that this process can still fetch by itself.
        now = self._monotonic()
        wait_until = now + 2 * store.lease_timeout
        if deadline is not None:
            wait_until = min(wait_until, now + (deadline - now) / 2)
        while True:
            holder = self._call(deadline, store.acquire_lease, key)
            if holder is not None:
                return self._lead(holder, fetch, acceptable, deadline, retries, schedule)
            if outage is not None:
                # The endpoint is failing and another process is probing it: its answer is
                # the fleet's. Meanwhile callers get the last error at once.
                raise _outage_error(outage, self._clock(), probing=True)
            if self._monotonic() >= wait_until:
                log.warning(
                    "no token in the token store after waiting %.1fs for the process holding "
                    "its lease; fetching in this process",
                    self._monotonic() - now,
                )
                token = fetch(retries)
                self._write(token, deadline)
                return token, True
            self._sleep(min(store.poll_interval, max(0.0, wait_until - self._monotonic())))
            token = self._call(deadline, store.read, key)
            if token is not None and acceptable(token):
                log.debug("token %s read from the token store after waiting", token.fingerprint)
                return token, False
            outage = self._read_outage(deadline)  # the holder's fetch failed: so does this one

    def _lead(
        self,
        holder: str,
        fetch: Callable[[bool], OAuthToken],
        acceptable: Callable[[OAuthToken], bool],
        deadline: float | None,
        retries: bool,
        schedule: _Schedule,
    ) -> tuple[OAuthToken, bool]:
        try:
            # Read again: the previous holder may have written just before releasing.
            try:
                token = self._call(deadline, self.store.read, self.key)
                outage = self._read_outage(deadline)
            except _StoreFailed:
                token = outage = None
            if token is not None and acceptable(token):
                return token, False
            if outage is not None:
                self._raise_until_due(outage)  # another process probed just before
                retries = False  # known to be failing: this fetch is a probe
            try:
                token = fetch(retries)
            except Exception as exc:
                self._record_outage(exc, *schedule(exc), deadline)
                raise
            self._write(token, deadline)
            return token, True
        finally:
            try:
                self._call(deadline, self.store.release_lease, self.key, holder)
            except _StoreFailed:
                pass  # logged; the lease runs out by itself

    # -- the outage record ----------------------------------------------------------------

    def _read_outage(self, deadline: float | None) -> Outage | None:
        if not self.keeps_outages:
            return None
        store: Any = self.store
        outage: Outage | None = self._call(deadline, store.read_outage, self.key)
        return outage

    def _raise_until_due(self, outage: Outage) -> None:
        """Raise the fleet's last failure while its next probe is not due."""
        now = self._clock()
        if now < outage.next_probe:
            raise _outage_error(outage, now, probing=False)

    def _record_outage(
        self, exc: Exception, delay: float, secrets: Iterable[str], deadline: float | None
    ) -> None:
        """Tell the fleet when to probe next after ``exc``, before the lease is released."""
        if not self.keeps_outages:
            return
        now = self._clock()
        outage = Outage(
            next_probe=now + delay,
            failed_at=now,
            error=_describe(exc, secrets),
        )
        store: Any = self.store
        try:
            self._call(deadline, store.write_outage, self.key, outage)
        except _StoreFailed:
            pass  # logged; the other processes probe on their own schedules meanwhile

    def _write(self, token: OAuthToken, deadline: float | None) -> None:
        try:
            self._call(deadline, self.store.write, self.key, token)
        except _StoreFailed:
            self._unwritten = token
            return
        self._unwritten = None
        log.debug("token %s written to the token store", token.fingerprint)

    # -- writing back a token the store missed ----------------------------------------------

    def _fetch_unwritten(self, fetch: Callable[[bool], OAuthToken], retries: bool) -> OAuthToken:
        """``fetch(retries)`` without the store (failing, or backed off from): remember its token."""
        token = fetch(retries)
        self._unwritten = token
        return token

    def _write_back(self, held: Callable[[], OAuthToken | None], deadline: float | None) -> None:
        """Write the token obtained while the store failed, if the manager still holds it.

        The first store call the backoff allows after an outage of the store: without it,
        the rest of the fleet would fetch tokens of its own until this process renews (and
        find none while the token endpoint fails, though this process holds one). Under the
        lease, so that no other process's write comes between the look and the write; not
        when another process holds the lease (it is obtaining a newer token), nor over a
        token in the store that lasts as long or longer (never a newer one replaced). The
        fleet's outage record, if any, is kept: a token written back is an old one, the
        token endpoint may still be failing. A failing store raises :class:`_StoreFailed`.
        """
        token = self._unwritten
        if token is None:
            return
        current = held()
        if (
            current is None
            or current.access_token != token.access_token
            or token.is_expired(0.0, self._clock())
        ):
            self._unwritten = None  # retired, replaced or run out: nothing worth sharing
            return
        store, key = self.store, self.key
        holder = self._call(deadline, store.acquire_lease, key)
        if holder is None:
            return  # another process is obtaining a token: the next call looks again
        try:
            stored = self._call(deadline, store.read, key)
            if stored is not None and _lasts(stored) >= _lasts(token):
                self._unwritten = None
                return
            outage = self._read_outage(deadline)
            self._call(deadline, store.write, key, token)
            self._unwritten = None
            log.info("token %s, obtained while the token store failed, written to it", token.fingerprint)
            if outage is not None:  # the write removed it
                outage_store: Any = store
                self._call(deadline, outage_store.write_outage, key, outage)
        finally:
            try:
                self._call(deadline, store.release_lease, key, holder)
            except _StoreFailed:
                pass  # logged; the lease runs out by itself

    # -- calling the store ----------------------------------------------------------------

    def _usable(self) -> bool:
        """Whether the store may be called now (not backing off, no call of ours stuck in it)."""
        if not self._backoff.due(self._monotonic(), holding=True):
            return False
        stuck = self._stuck
        if stuck is not None:
            if not stuck.done.is_set() and stuck.pid == os.getpid():
                return False
            self._stuck = None
        return True

    def _call(self, deadline: float | None, method: Callable[..., _T], *args: object) -> _T:
        """Return ``method(*args)``; a store that raises, or has not answered by half of what
        is left until ``deadline``, raises :class:`_StoreFailed` (logged, backed off)."""
        if deadline is None:
            try:
                result: _T = method(*args)
            except Exception as exc:
                self._failed(exc)
                raise _StoreFailed from exc
        else:
            call = _Call(method, args)
            budget = max(0.0, (deadline - self._monotonic()) / 2)
            try:
                threading.Thread(target=call.run, name="reqcc-token-store", daemon=True).start()
            except RuntimeError as exc:  # no new threads: call it here
                log.debug("token store call in the calling thread (%s)", exc)
                call.run()
            if not call.done.wait(budget):
                self._stuck = call
                self._failed(TimeoutError(f"no answer within {budget:.2g}s, half the time left"))
                raise _StoreFailed
            if call.error is not None:
                if not isinstance(call.error, Exception):
                    raise call.error
                self._failed(call.error)
                raise _StoreFailed from call.error
            result = call.result
        if self._backoff.failing:
            log.info("token store %r works again", self.store)
            self._backoff.reset()
        return result

    def _failed(self, exc: Exception) -> None:
        if not self._backoff.due(self._monotonic(), holding=True):
            # already backing off (a release after a failed read)
            log.debug("token store %r failed again (%s)", self.store, type(exc).__name__)
            return
        self._backoff.record(exc)
        delay = self._backoff.retry_at - self._monotonic()
        log.warning(
            "token store %r failed (%s: %s); fetching tokens in this process, next try of the "
            "store in %.1fs",
            self.store,
            type(exc).__name__,
            excerpt(str(exc), (), 160),
            delay,
        )


def _lasts(token: OAuthToken) -> float:
    """How long ``token`` lasts, for comparing two (no expiry: for ever)."""
    return math.inf if token.expiry is None else token.expiry


def _describe(exc: Exception, secrets: Iterable[str]) -> str:
    """What the fleet is told of a failure: its type and a short, redacted excerpt of its message.

    reqcc's messages are redacted where they are made (contract item 13); a provider's are
    not, so the manager's credentials and tokens are redacted again here.
    """
    return f"{type(exc).__name__}: {excerpt(str(exc), secrets, 300)}"


def _outage_error(outage: Outage, now: float, *, probing: bool) -> TokenRequestError:
    """The fleet's last failure, for a caller of this process (contract item 29)."""
    age = max(0.0, now - outage.failed_at)
    wait = max(0.0, outage.next_probe - now)
    when = "another process is probing the token endpoint now" if probing else f"next attempt in {wait:.1f}s"
    return TokenRequestError(
        f"token request failed {age:.1f}s ago in a process sharing the token store "
        f"({outage.error}); {when}",
        retry_after=wait,
    )
