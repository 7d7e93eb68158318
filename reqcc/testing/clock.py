"""A clock for tests: a manager's wall and monotonic clocks, moved only by hand.

The manager reads two clocks (``clock=``, wall time for absolute expiries; ``monotonic=``,
for the held token's deadlines, backoff and ``token_deadline``) and waits with ``sleep=``.
:class:`FakeClock` gives all three, consistently: :meth:`FakeClock.advance` and
:meth:`FakeClock.sleep` move both clocks together, as real time does, and
:meth:`FakeClock.jump` moves the wall clock alone, as an NTP step does.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import TypedDict

from ..errors import ConfigurationError

__all__ = ["FakeClock", "TimeKeywords"]

#: Where the wall clock starts unless told: 2023-11-14T22:13:20Z, a plain Unix time.
DEFAULT_START = 1_700_000_000.0


class TimeKeywords(TypedDict):
    """The manager's time keywords, as :meth:`FakeClock.keywords` returns them."""

    clock: Callable[[], float]
    monotonic: Callable[[], float]
    sleep: Callable[[float], None]


def _seconds(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{what} must be a finite number of seconds, got {value!r}")
    return float(value)


class FakeClock:
    """A wall clock and a monotonic clock that move only when the test says, together.

    Give a manager (or a session, an adapter) all three time keywords at once::

        fake = FakeClock()
        manager = ClientCredentialsManager(..., **fake.keywords())
        fake.advance(3600)   # an hour later, on both clocks

    Thread-safe: threads may read it while others move it, and concurrent moves all
    count (none is lost).

    :param start: the wall clock's first reading, Unix seconds (default 1 700 000 000).
    :param monotonic_start: the monotonic clock's first reading (default: ``start``, so
        both read the same until :meth:`jump`). Give another value to catch code that
        mixes up the two clocks.
    :raises ConfigurationError: a start that is not a finite number.
    """

    def __init__(self, start: float = DEFAULT_START, *, monotonic_start: float | None = None) -> None:
        wall = _seconds(start, "start")
        mono = wall if monotonic_start is None else _seconds(monotonic_start, "monotonic_start")
        # One tuple, replaced whole under the lock: readers take no lock and never see the
        # wall clock from one moment and the monotonic clock from another.
        self._now = (wall, mono)
        self._sleeps: list[float] = []
        self._lock = threading.Lock()

    def time(self) -> float:
        """The wall clock, Unix seconds: pass it as ``clock=``."""
        return self._now[0]

    def monotonic(self) -> float:
        """The monotonic clock, seconds: pass it as ``monotonic=``."""
        return self._now[1]

    @property
    def now(self) -> float:
        """The wall clock's reading (the same as :meth:`time`)."""
        return self._now[0]

    @property
    def sleeps(self) -> list[float]:
        """The waits :meth:`sleep` was asked for, oldest first (a copy)."""
        with self._lock:
            return list(self._sleeps)

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``.

        :raises ConfigurationError: ``seconds`` is negative or not a finite number (a
            monotonic clock never goes back: use :meth:`jump` for the wall clock alone).
        """
        seconds = _seconds(seconds, "advance()")
        if seconds < 0:
            raise ConfigurationError(
                f"advance() cannot go back in time ({seconds!r}): jump() moves the wall clock alone"
            )
        with self._lock:
            wall, mono = self._now
            self._now = (wall + seconds, mono + seconds)

    def jump(self, seconds: float) -> None:
        """Move the wall clock alone by ``seconds``, either way (an NTP step); the monotonic clock stays.

        :raises ConfigurationError: ``seconds`` is not a finite number.
        """
        seconds = _seconds(seconds, "jump()")
        with self._lock:
            wall, mono = self._now
            self._now = (wall + seconds, mono)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` without waiting: record it (:attr:`sleeps`) and :meth:`advance` both clocks.

        Pass it as ``sleep=``: the manager's retry waits then take no real time, and time
        passes as if they had.

        :raises ConfigurationError: ``seconds`` is negative or not a finite number.
        """
        seconds = _seconds(seconds, "sleep()")
        if seconds < 0:
            raise ConfigurationError(f"sleep() length must be non-negative, got {seconds!r}")
        with self._lock:
            wall, mono = self._now
            self._now = (wall + seconds, mono + seconds)
            self._sleeps.append(seconds)

    def keywords(self) -> TimeKeywords:
        """The manager's time keywords on this clock: ``clock``, ``monotonic`` and ``sleep``."""
        return TimeKeywords(clock=self.time, monotonic=self.monotonic, sleep=self.sleep)

    def __repr__(self) -> str:
        wall, mono = self._now
        return f"FakeClock(time={wall!r}, monotonic={mono!r})"
