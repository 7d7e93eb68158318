"""Renewal ahead of expiry: a background thread renews the token while it is still in use.

A token in the last part of its lifetime (its renewal window, ``refresh_ahead`` of it;
see :mod:`reqcc.validity`) is still handed out, and the first request that sees it there
starts a renewal in a daemon thread (DESIGN item 12). The renewal is a flight of the
manager's :class:`~reqcc.single_flight.SingleFlight` like any other: at most one runs at a
time, none starts during the failure backoff, and a caller that finds the token expired
meanwhile joins it instead of fetching again. A renewal that fails is logged and leaves
the token in use; so does one still running past its deadline (``token_deadline``), which
counts as failed: the next renewal starts after the failure backoff, and the stuck one's
late token never replaces a newer one. A thread that cannot start leaves no flight behind.

:class:`RenewalMixin` is that part of :class:`~reqcc.ClientCredentialsManager`. How the
flight obtains and adopts the token is the manager's (its ``_run``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ._log import log
from .single_flight import FailureBackoff, SingleFlight, _Flight
from .validity import HeldToken

__all__ = ["RenewalMixin"]


class RenewalMixin:
    """Part of :class:`~reqcc.ClientCredentialsManager`: renewing a token in its renewal window."""

    if TYPE_CHECKING:  # what this part reads of the manager
        _current: HeldToken | None
        _flights: SingleFlight
        _backoff: FailureBackoff

        def _run(self, flight: _Flight, *, background: bool = False) -> None: ...

    def _refresh_ahead(self, current: HeldToken, now: float) -> None:
        """Start renewing ``current`` in the background, unless that is under way or backing off.

        Called by the fast path with the token it found in its renewal window at ``now``
        (``monotonic``); returns at once, without a lock, while a renewal runs or the
        failure backoff lasts.
        """
        # Unlocked first look, so that the fast path stays lock-free while a renewal runs
        # or backs off (the window may last minutes); checked again under the lock. A
        # renewal still running past its deadline is stuck: the lock is taken to count it
        # as failed (SingleFlight.start_renewal), once.
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
                target=self._run,
                args=(flight,),
                kwargs={"background": True},  # keyword-only: positional True raised TypeError in the thread
                name="reqcc-token-refresh",
                daemon=True,
            ).start()
        except RuntimeError as exc:  # no new threads (interpreter shutdown, thread limit)
            # Never leave a flight nobody runs: callers would wait on it forever once the
            # token expires. The token is still valid; a later request tries again.
            flights.abandon(flight, exc)
            log.warning("could not start the background token renewal (%s)", exc)
