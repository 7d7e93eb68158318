"""Test threads that cannot hang the suite: daemon, released by a timed barrier, joined with a timeout.

A deadlock in the code under test then fails the test that found it (``stuck`` threads are
named in the assertion) instead of holding the CI run until it is killed.

    results = Crowd(16, lambda i: manager.get_token()).join()   # results or exceptions, by index
    thread = start_daemon(target); ...; join_or_fail(thread)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

#: Seconds a test thread may take before the test calls it a deadlock.
JOIN = 20.0


class Crowd:
    """``n`` daemon threads released together by a barrier, each running ``target(i)``.

    A thread that raises records its exception as its result; ``join()`` returns them.
    """

    def __init__(self, n: int, target: Callable[[int], Any], timeout: float = JOIN) -> None:
        self.timeout = timeout
        self.results: list[Any] = [None] * n
        barrier = threading.Barrier(n)

        def work(i: int) -> None:
            try:
                barrier.wait(timeout)
                self.results[i] = target(i)
            except BaseException as exc:
                self.results[i] = exc

        self.threads = [
            threading.Thread(target=work, args=(i,), name=f"crowd-{i}", daemon=True) for i in range(n)
        ]
        for thread in self.threads:
            thread.start()

    def join(self) -> list[Any]:
        """Wait for every thread (a deadlock fails here) and return their results or exceptions."""
        join_all(self.threads, self.timeout)
        return self.results


def run_threads(target: Callable[[int], Any], n: int, timeout: float = JOIN) -> list[Any]:
    """Run ``target(i)`` in ``n`` daemon threads released together; return results or exceptions."""
    return Crowd(n, target, timeout).join()


def start_daemon(target: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
    """Start ``target(*args, **kwargs)`` in a daemon thread and return it."""
    thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
    thread.start()
    return thread


def join_all(threads: Iterable[threading.Thread], timeout: float = JOIN) -> None:
    """Join every thread within ``timeout`` seconds in all; fail the test if any is still alive."""
    threads = list(threads)
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"{len(stuck)} thread(s) still running after {timeout}s (deadlock?): {stuck}"


def wait_until(condition: Callable[[], bool]) -> bool:
    """Poll ``condition`` until it holds (True) or ``JOIN`` seconds pass (False)."""
    deadline = time.monotonic() + JOIN
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True
