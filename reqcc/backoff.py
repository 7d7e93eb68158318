"""When to try again after failures: the one backoff of reqcc (contract item 27).

The manager's single flight asks a :class:`FailureBackoff` when the next token request
may go out after a failed one, in either of its two regimes; the token-store step asks one
of its own when to call a failing store again (its doubling regime). reqcc's third wait,
the retries inside one fetch, is :class:`~reqcc.token_endpoint.RetryPolicy`'s.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from .errors import as_cached_error

__all__ = ["FailureBackoff"]


class FailureBackoff:
    """When the next token request may go out after failed ones: the two regimes of contract item 27.

    After a failure it keeps two times, and which one applies depends on whether the
    manager still holds a usable token when it asks:

    - :attr:`retry_at`, while a usable token is held (only a renewal ahead of expiry
      failed, no caller is failing): ``base`` seconds after the first failure, doubling
      per consecutive failure up to ``maximum``, jittered to between half and all of it;
    - :attr:`probe_at`, while no usable token is held (every caller is failing anyway):
      a steady ``probe_interval`` after the last failure, jittered by ±20 %, so the
      endpoint is probed about once an interval and its return is seen within one.

    Both are at least a server's ``Retry-After``, capped at ``maximum``. Meanwhile
    callers get the last error again (:meth:`check`). Methods that change it are called
    with the manager's lock held.

    :param rng: the jitter's random generator (the manager reseeds it after a fork).
    :param probe_interval: seconds between two probes while no usable token is held.
    """

    def __init__(
        self,
        base: float,
        maximum: float,
        *,
        monotonic: Callable[[], float],
        rng: random.Random,
        probe_interval: float = 1.0,
    ) -> None:
        self.base = base
        self.maximum = maximum
        self.probe_interval = probe_interval
        self._monotonic = monotonic
        self._random = rng
        self.failures = 0
        #: Monotonic time before which no renewal is tried while a usable token is held.
        self.retry_at = -math.inf
        #: Monotonic time before which no probe goes out while no usable token is held.
        self.probe_at = -math.inf
        self.last_error: BaseException | None = None
        self.last_error_at = 0.0

    @property
    def failing(self) -> bool:
        """Whether the last attempt failed (the token endpoint is known to be failing)."""
        return self.last_error is not None

    def _asked(self, exc: Exception) -> float:
        """The ``Retry-After`` ``exc`` carries, capped at :attr:`maximum` (0 without one)."""
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, (int, float)) and not isinstance(retry_after, bool):
            return min(float(retry_after), self.maximum)  # a server does not park us for a day
        return 0.0

    def probe_delay(self, exc: Exception) -> float:
        """Return the seconds from the failure ``exc`` to the next probe.

        The jittered ``probe_interval``, or the ``Retry-After`` of ``exc`` (capped) if longer.
        """
        return max(self.probe_interval * (0.8 + 0.4 * self._random.random()), self._asked(exc))

    def record(self, exc: Exception) -> None:
        """Count a failed attempt and schedule the next one in both regimes."""
        self.failures += 1
        delay = min(self.maximum, self.base * 2 ** (self.failures - 1))
        delay = max(delay * (0.5 + self._random.random() / 2), self._asked(exc))
        probe = self.probe_delay(exc)
        now = self._monotonic()
        self.last_error = exc
        self.last_error_at = now
        self.retry_at = now + delay
        self.probe_at = now + probe

    def reset(self) -> None:
        """Forget the failures: a token was obtained."""
        self.failures = 0
        self.retry_at = self.probe_at = -math.inf
        self.last_error = None

    def next_attempt(self, *, holding: bool) -> float:
        """Return the monotonic time of the next attempt (``-inf``: now).

        :attr:`retry_at` while ``holding`` a usable token, else :attr:`probe_at`.
        """
        return self.retry_at if holding else self.probe_at

    def due(self, now: float, *, holding: bool = False) -> bool:
        """Whether a new attempt may be made at ``now`` (no failure, or its next attempt is due)."""
        return self.last_error is None or now >= self.next_attempt(holding=holding)

    def check(self, now: float, *, holding: bool = False) -> None:
        """Raise the last error again, marked as a repeat, until the next attempt is due."""
        if self.last_error is None:
            return
        due = self.next_attempt(holding=holding)
        if now < due:
            raise as_cached_error(
                self.last_error,
                f"token request failed {now - self.last_error_at:.1f}s ago; "
                f"next attempt in {due - now:.1f}s",
            )
