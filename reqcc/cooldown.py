"""The 401 cool-down: endpoints whose 401s are not the token's fault (contract item 19).

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
from ._urls import origin as url_origin

__all__ = ["REJECTION_COOLDOWN", "REJECTION_COOLDOWN_SIZE", "REJECTION_ORIGIN_STRIKES", "RejectionCooldown"]

#: Seconds an endpoint that rejected a freshly fetched token stays in the 401 cool-down.
REJECTION_COOLDOWN = 60.0
#: Endpoints remembered in the 401 cool-down at most (the oldest is forgotten first).
REJECTION_COOLDOWN_SIZE = 256
#: Endpoints of one origin refusing freshly fetched tokens in a row that cool the whole origin down.
REJECTION_ORIGIN_STRIKES = 3


class RejectionCooldown:
    """Endpoints whose 401s are not the token's fault (contract item 19).

    When the replay of a rejected request with a freshly fetched token is rejected too,
    the endpoint (method and URL without query) answers 401 whatever the token: retiring
    tokens on its 401s would cost a token request per call. It is remembered for
    ``seconds`` on ``monotonic`` (at most ``size`` endpoints), and its 401s are returned
    as they are meanwhile. Only 401 answers consult it: the fast path never does.

    An API may refuse every token on per-id paths (``/orders/<id>``): each path is a new
    endpoint, and each would cost a token request. So the origin (scheme, host and port)
    counts too (contract item 34): when ``strikes`` different endpoints of one origin have
    refused freshly fetched tokens in a row, with no fresh token accepted there in between,
    the whole origin cools down for ``seconds`` (a WARNING once); its 401s retire no token
    meanwhile. Strikes count within ``seconds`` of each other only: a few endpoints refusing
    every token (a missing permission), hit hours apart between accepted requests (which
    this class never sees), are not such an API, and must not switch off the recovery from
    a revocation for the whole origin. One endpoint refusing again after its own cool-down
    is no new strike. An origin with fewer strikes, and every other origin, still recovers
    from a revocation at once.

    A manager owns one (its ``rejection_cooldown``), shared by every adapter that uses
    that manager.
    """

    def __init__(
        self,
        monotonic: Callable[[], float],
        seconds: float = REJECTION_COOLDOWN,
        size: int = REJECTION_COOLDOWN_SIZE,
        strikes: int = REJECTION_ORIGIN_STRIKES,
    ) -> None:
        self._monotonic = monotonic
        self.seconds = seconds
        self.size = size
        self.strikes = strikes
        # Endpoints and origins ("ORIGIN scheme://host:port") cooling down, until when.
        self._until: OrderedDict[str, float] = OrderedDict()
        # Origins: the endpoints that refused fresh tokens in a row, none accepted since, each
        # with the time of its refusal (a refusal older than ``seconds`` no longer counts).
        self._strikes: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._lock = threading.Lock()
        fork_safety.register(self.after_fork)

    @staticmethod
    def key(request: requests.PreparedRequest) -> str:
        """The endpoint of ``request``: its method and its URL without query and fragment."""
        url = (request.url or "").partition("#")[0].partition("?")[0]
        return f"{request.method or 'GET'} {url}"

    def active(self, key: str) -> bool:
        """Whether ``key``, or its origin, is cooling down (an expired entry is forgotten)."""
        origin = _origin_key(key)
        with self._lock:
            return self._cooling(key) or (origin is not None and self._cooling(origin))

    def start(self, key: str) -> None:
        """Put ``key`` in the cool-down (a WARNING when it was not in it yet); its origin has a strike."""
        origin = _origin_key(key)
        with self._lock:
            new = self._put(key)
            origin_new = False
            if origin is not None:
                now = self._monotonic()
                strikes = {
                    endpoint: at
                    for endpoint, at in self._strikes.pop(origin, {}).items()
                    if now - at < self.seconds
                }
                strikes[key] = now
                if len(strikes) >= self.strikes:
                    origin_new = self._put(origin)
                else:
                    self._strikes[origin] = strikes
                    while len(self._strikes) > self.size:
                        self._strikes.popitem(last=False)
        if origin_new:
            log.warning(
                "%s refused %d freshly fetched tokens in a row on different endpoints: its 401s "
                "retire no token for the next %gs", (origin or "")[7:], self.strikes, self.seconds,
            )
        elif new:
            log.warning(
                "%s answered 401 to a freshly fetched token too: not the token's fault (a missing "
                "permission or a broken endpoint?). Its 401s retire no token for the next %gs",
                key, self.seconds,
            )

    def accepted(self, key: str) -> None:
        """A freshly fetched token was accepted at ``key``: its origin's strikes start over."""
        origin = _origin_key(key)
        if origin is not None:
            with self._lock:
                self._strikes.pop(origin, None)

    def _cooling(self, key: str) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if self._monotonic() < until:
            return True
        del self._until[key]
        return False

    def _put(self, key: str) -> bool:
        """Cool ``key`` down from now (the lock held); return whether it was not cooling yet."""
        new = key not in self._until
        self._until[key] = self._monotonic() + self.seconds
        self._until.move_to_end(key)
        while len(self._until) > self.size:
            self._until.popitem(last=False)
        return new

    def after_fork(self) -> None:
        """Start a forked child with a lock of its own (the parent's may have been held).

        Run in the child by :mod:`reqcc.fork_safety`, right after the fork.

        The endpoints remembered are kept: their deadlines are on the same monotonic clock
        in the child.
        """
        self._lock = threading.Lock()


def _origin_key(key: str) -> str | None:
    """The origin entry of endpoint ``key`` (``"GET https://host:443/path"``), or ``None``.

    ``"ORIGIN scheme://host:port"`` with the default port filled in; ``None`` when the
    URL has no host.
    """
    scheme, host, port = url_origin(key.partition(" ")[2])
    if not host:
        return None
    return f"ORIGIN {scheme}://{host}:{port}"
