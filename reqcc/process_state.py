"""The manager's per-process state: its single flight and lock, new in a forked child.

A manager in a process forked from the one that made it must not wait for the parent's
token request (its leader is not in the child) nor for a lock a parent thread held, and
must not jitter its failure backoff in lockstep with the parent and its other children.
:class:`ProcessStateMixin` is the part of :class:`~reqcc.ClientCredentialsManager` that
owns that state; it registers the manager's reset with :mod:`reqcc.fork_safety`, which
runs it in the child right after the fork. The token in use is kept: it is as good in the
child. The token endpoint, the issuer's discovery and the 401 cool-down register their
own resets.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import fork_safety
from .single_flight import FailureBackoff, SingleFlight, _Flight

if TYPE_CHECKING:
    from .config import TokenProvider
    from .discovered import DiscoveredEndpoint
    from .token_endpoint import TokenEndpoint

__all__ = ["ProcessStateMixin"]


class ProcessStateMixin:
    """Part of :class:`~reqcc.ClientCredentialsManager`: its per-process state, renewed after ``fork``."""

    #: The single flight of this process; its lock is :attr:`_lock`.
    _flights: SingleFlight
    #: The manager's lock (the single flight's): the token in use changes under it.
    _lock: threading.Lock

    if TYPE_CHECKING:  # what this part reads of the manager
        token_deadline: float
        token_provider: TokenProvider | None
        _monotonic: Callable[[], float]
        _backoff: FailureBackoff
        _random: random.Random
        _endpoint: TokenEndpoint | None
        _discovery: DiscoveredEndpoint | None

    @property
    def _flight(self) -> _Flight | None:
        """The token request in progress, or ``None``."""
        return self._flights.flight

    def _start_process_state(self) -> None:
        """Start this process's single flight, and have a forked child start its own (the constructor's)."""
        self._reset_process_state()
        fork_safety.register(self._after_fork)

    def _reset_process_state(self) -> None:
        # A new single flight brings a new lock (never the old one released: a thread of
        # the parent may hold it). No flight in progress: its leader is not in a child.
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

    def _after_fork(self) -> None:
        """In a forked child (one thread, before any other code): a new single flight and lock.

        The random generator is a copy of the parent's: reseeded, or every worker forked
        from one parent jitters its failure backoff identically (in lockstep).
        """
        self._random.seed()
        self._reset_process_state()
