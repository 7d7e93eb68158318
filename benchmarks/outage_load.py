"""The load of the long-outage benchmark: threads sending API requests on a schedule.

Used in the benchmark's own process (one session, 8 threads) and in each worker process of
a fleet (outage_worker.py): :func:`drive` runs the threads of one process from ``start``
until the token endpoint has been back for ``post_min`` seconds and this process has seen a
success after the return (plus ``settle`` seconds), or until ``post_max`` seconds after the
return, whichever is first; a library that never recovers costs ``post_max``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: One API request: (started, ended, result), monotonic seconds; result "200", another
#: status code, or the exception's type name.
Outcome = tuple[float, float, str]


@dataclass
class Plan:
    """When one process sends, and when the outage is scheduled (monotonic seconds)."""

    start: float
    down: float
    up: float
    threads: int
    interval: float  # seconds between two requests of one thread
    post_min: float  # run at least this long after the return
    post_max: float  # and never longer than this after the return
    settle: float = 1.0  # after this process's first success after the return
    request_timeout: float = 10.0

    def offsets(self) -> dict[str, float]:
        """The plan relative to its start (what a worker process is told before ``start`` is known)."""
        return {
            "down": self.down - self.start, "up": self.up - self.start, "threads": self.threads,
            "interval": self.interval, "post_min": self.post_min, "post_max": self.post_max,
            "settle": self.settle, "request_timeout": self.request_timeout,
        }

    @classmethod
    def at(cls, start: float, offsets: dict[str, float]) -> Plan:
        """The plan of :meth:`offsets`, starting at ``start``."""
        return cls(
            start=start, down=start + offsets["down"], up=start + offsets["up"],
            threads=int(offsets["threads"]), interval=offsets["interval"],
            post_min=offsets["post_min"], post_max=offsets["post_max"], settle=offsets["settle"],
            request_timeout=offsets["request_timeout"],
        )


def drive(send: Callable[[], str], plan: Plan) -> tuple[list[Outcome], int]:
    """Run ``plan.threads`` threads calling ``send`` on schedule; return the outcomes and hung threads.

    Thread ``i`` sends at ``start + i * interval / threads + n * interval``, so the process
    as a whole sends every ``interval / threads`` seconds. A thread still blocked 60 s after
    the end is counted as hung (daemon threads: it is not waited for).
    """
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    stop_at = [plan.up + plan.post_max]
    recovered = [False]

    def worker(index: int) -> None:
        phase = plan.interval * index / plan.threads
        n = 0
        while True:
            due = plan.start + phase + n * plan.interval
            n += 1
            if due >= stop_at[0]:
                return
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            t0 = time.monotonic()
            try:
                result = send()
            except Exception as exc:  # a library's failure is data here
                result = type(exc).__name__
            t1 = time.monotonic()
            with lock:
                outcomes.append((t0, t1, result))
                if result == "200" and t1 >= plan.up and not recovered[0]:
                    recovered[0] = True
                    stop_at[0] = min(plan.up + plan.post_max, max(plan.up + plan.post_min, t1 + plan.settle))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(plan.threads)]
    for thread in threads:
        thread.start()
    deadline = plan.up + plan.post_max + 60.0
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = sum(thread.is_alive() for thread in threads)
    with lock:
        return sorted(outcomes), hung
