"""A manager in a forked child: noticing the fork, and starting afresh there.

A process forked from one that used a manager inherits that manager with everything in
it: its lock (maybe held by a parent thread that does not exist in the child), the token
request in progress (whose leader is not there either), the token session's sockets
(shared with the parent) and its random generator (a copy: every worker forked from one
parent would jitter its failure backoff in lockstep). The first manager call in the
child that takes the lock or talks to the token endpoint notices the new process id and
replaces all of those; the token in use is kept, it is as good in the child. The fast
path (handing out that token) does not check: it is right in a child too.

:class:`ForkSafetyMixin` is the part of :class:`~reqcc.ClientCredentialsManager` that
does this; it owns the manager's per-process state (its :class:`~reqcc.single_flight.SingleFlight`,
whose lock is the manager's lock, and the process id they belong to).
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._log import log
from .single_flight import FailureBackoff, SingleFlight, _Flight

if TYPE_CHECKING:
    from .config import TokenProvider
    from .cooldown import RejectionCooldown
    from .discovered import DiscoveredEndpoint
    from .stores._shared import SharedTokens
    from .token_endpoint import TokenEndpoint

__all__ = ["ForkSafetyMixin"]


class ForkSafetyMixin:
    """Part of :class:`~reqcc.ClientCredentialsManager`: its per-process state, renewed after ``fork``."""

    #: The single flight of this process; its lock is :attr:`_lock`.
    _flights: SingleFlight
    #: The manager's lock (the single flight's): the token in use changes under it.
    _lock: threading.Lock
    #: The process :attr:`_flights` belongs to.
    _pid: int

    if TYPE_CHECKING:  # what this part reads of the manager
        token_deadline: float
        token_provider: TokenProvider | None
        _monotonic: Callable[[], float]
        _backoff: FailureBackoff
        _random: random.Random
        _endpoint: TokenEndpoint | None
        _discovery: DiscoveredEndpoint | None
        _rejection_cooldown: RejectionCooldown
        _shared: SharedTokens | None

    @property
    def _flight(self) -> _Flight | None:
        """The token request in progress, or ``None``."""
        return self._flights.flight

    def _reset_process_state(self) -> None:
        """Start this process's single flight (in the constructor, and again after a fork)."""
        # A new single flight brings a new lock. The pid last: another thread that sees it
        # match must also see the new lock.
        self._flights = SingleFlight(
            self._backoff,
            deadline=self.token_deadline,
            monotonic=self._monotonic,
            waiting_for=(
                "the token_provider"
                if self.token_provider is not None
                else f"the token request to {self._endpoint.where}"
                if self._endpoint is not None
                else "the token request (after reading the issuer's metadata)"
            ),
        )
        self._lock = self._flights.lock
        self._pid = os.getpid()

    def _check_process(self) -> None:
        """Start afresh if this is a forked child's first call that takes the lock."""
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
        if self._discovery is not None:
            self._discovery.after_fork()
        elif self._endpoint is not None:
            self._endpoint.after_fork()
        self._rejection_cooldown.after_fork()
        if self._shared is not None:
            self._shared.after_fork()
        self._reset_process_state()
        log.debug("manager reset after fork (pid %d)", self._pid)
