"""The 401 cool-down: endpoints whose 401s are not the token's fault (DESIGN item 19).

One :class:`RejectionCooldown` belongs to each :class:`~reqcc.ClientCredentialsManager`,
so every adapter and session that shares a manager shares what it learnt: an endpoint
that refused a freshly fetched token costs that manager two token requests, not two per
adapter. The adapter reads it on 401 answers only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import requests

from . import fork_safety
from ._log import log

__all__ = ["REJECTION_COOLDOWN", "REJECTION_COOLDOWN_SIZE", "RejectionCooldown"]

#: Seconds an endpoint that rejected a freshly fetched token stays in the 401 cool-down.
REJECTION_COOLDOWN = 60.0
#: Endpoints remembered in the 401 cool-down at most (the oldest is forgotten first).
REJECTION_COOLDOWN_SIZE = 256


class RejectionCooldown:
    """Endpoints whose 401s are not the token's fault (DESIGN item 19).

    When the replay of a rejected request with a freshly fetched token is rejected too,
    the endpoint (method and URL without query) answers 401 whatever the token: retiring
    tokens on its 401s would cost a token request per call. It is remembered for
    ``seconds`` on ``monotonic`` (at most ``size`` endpoints), and its 401s are returned
    as they are meanwhile. Only 401 answers consult it: the fast path never does.

    A manager owns one (its ``rejection_cooldown``), shared by every adapter that uses
    that manager.
    """

    def __init__(
        self,
        monotonic: Callable[[], float],
        seconds: float = REJECTION_COOLDOWN,
        size: int = REJECTION_COOLDOWN_SIZE,
    ) -> None:
        self._monotonic = monotonic
        self.seconds = seconds
        self.size = size
        self._until: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        fork_safety.register(self.after_fork)

    @staticmethod
    def key(request: requests.PreparedRequest) -> str:
        """The endpoint of ``request``: its method and its URL without query and fragment."""
        url = (request.url or "").partition("#")[0].partition("?")[0]
        return f"{request.method or 'GET'} {url}"

    def active(self, key: str) -> bool:
        """Whether ``key`` is cooling down (an expired entry is forgotten)."""
        with self._lock:
            until = self._until.get(key)
            if until is None:
                return False
            if self._monotonic() < until:
                return True
            del self._until[key]
            return False

    def start(self, key: str) -> None:
        """Put ``key`` in the cool-down (a WARNING when it was not in it yet)."""
        with self._lock:
            new = key not in self._until
            self._until[key] = self._monotonic() + self.seconds
            self._until.move_to_end(key)
            while len(self._until) > self.size:
                self._until.popitem(last=False)
        if new:
            log.warning(
                "%s answered 401 to a freshly fetched token too: not the token's fault (a missing "
                "permission or a broken endpoint?). Its 401s retire no token for the next %gs",
                key, self.seconds,
            )

    def after_fork(self) -> None:
        """Start a forked child with a lock of its own (the parent's may have been held).

        Run in the child by :mod:`reqcc.fork_safety`, right after the fork.

        The endpoints remembered are kept: their deadlines are on the same monotonic clock
        in the child.
        """
        self._lock = threading.Lock()
