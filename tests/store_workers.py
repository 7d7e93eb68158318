"""Child-process side of the token store tests (importable by ``spawn`` children).

A worker builds (or, after ``fork``, inherits) a session with a token store, says it is
ready, waits for the go signal, sends one API request, and reports what it saw. Where a
test must know that a worker has reached the store's lease, the worker's store says so
(:class:`LeaseReporter`): the tests wait on those reports, never on a sleep, so that a slow
machine makes them fail loudly instead of testing something weaker.
"""

from __future__ import annotations

import os
import queue
from typing import Any

from reqcc import ClientCredentialsSession
from reqcc.stores import FileTokenStore, RedisTokenStore, TokenStore

CLIENT_ID = "fleet-client"
CLIENT_SECRET = "fleet-s3cret:+%/ with spaces"

#: ("file", path, lease_timeout), ("redis", url, prefix, lease_timeout) or ("none",); a
#: file or Redis spec may end with an ``encryption_key`` (sealed entries).
StoreSpec = tuple[Any, ...]


def make_store(spec: StoreSpec) -> TokenStore | None:
    """Build the store a spec describes (``("none",)``: no store)."""
    if spec[0] == "none":
        return None
    if spec[0] == "file":
        key = spec[3] if len(spec) > 3 else None
        return FileTokenStore(spec[1], lease_timeout=spec[2], encryption_key=key)
    if spec[0] == "redis":
        key = spec[4] if len(spec) > 4 else None
        return RedisTokenStore(url=spec[1], prefix=spec[2], lease_timeout=spec[3], encryption_key=key)
    raise ValueError(spec[0])


class LeaseReporter:
    """A token store that reports the outcome of this process's first try at the lease.

    It puts ``(pid, "acquired")`` or ``(pid, "refused")`` on ``reports`` once, then
    behaves as the store it wraps.
    """

    def __init__(self, store: TokenStore, reports: queue.Queue[tuple[int, str]]) -> None:
        self._store = store
        self._reports: queue.Queue[tuple[int, str]] | None = reports

    @property
    def lease_timeout(self) -> float:
        return self._store.lease_timeout

    @property
    def poll_interval(self) -> float:
        return self._store.poll_interval

    def read(self, key: str) -> Any:
        return self._store.read(key)

    def write(self, key: str, token: Any) -> None:
        self._store.write(key, token)

    def acquire_lease(self, key: str) -> str | None:
        holder = self._store.acquire_lease(key)
        reports, self._reports = self._reports, None
        if reports is not None:
            reports.put((os.getpid(), "refused" if holder is None else "acquired"))
        return holder

    def release_lease(self, key: str, holder: str) -> None:
        self._store.release_lease(key, holder)


class UpdateCounter:
    """An ``on_token_update`` callback that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, token: object) -> None:
        self.calls += 1


def make_session(
    spec: StoreSpec, token_url: str, base_url: str, lease_reports: queue.Queue[tuple[int, str]] | None = None
) -> ClientCredentialsSession:
    """A session for the fleet's client, sharing tokens through the store of ``spec``.

    With ``lease_reports``, its store reports its first try at the lease there (:class:`LeaseReporter`).
    """
    store = make_store(spec)
    if store is not None and lease_reports is not None:
        store = LeaseReporter(store, lease_reports)
    return ClientCredentialsSession(
        token_url=token_url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        scopes=["books.read", "orders.read"],
        base_url=base_url,
        token_store=store,
        on_token_update=UpdateCounter(),
    )


def worker(
    spec: StoreSpec,
    token_url: str,
    base_url: str,
    api_url: str,
    ready: queue.Queue[int],
    go: Any,
    results: queue.Queue[tuple[Any, ...]],
    session: ClientCredentialsSession | None = None,
    lease_reports: queue.Queue[tuple[int, str]] | None = None,
) -> None:
    """Send one API request once ``go`` is set; put (pid, status, token fingerprint, updates)."""
    try:
        if session is None:
            session = make_session(spec, token_url, base_url, lease_reports)
        ready.put(os.getpid())
        if not go.wait(60):
            results.put((os.getpid(), "no go signal", None, None))
            return
        response = session.get(api_url + "books")
        token = session.manager.token
        counter = session.manager.on_token_update
        updates = counter.calls if isinstance(counter, UpdateCounter) else None
        results.put((os.getpid(), response.status_code, token.fingerprint if token else None, updates))
    except BaseException as exc:  # reported to the test, which fails on it
        results.put((os.getpid(), f"{type(exc).__name__}: {exc}", None, None))


# -- the test (parent) side --------------------------------------------------------------


def run_fleet(method: str, spec: StoreSpec, server: Any, processes: int = 8) -> list[tuple[Any, ...]]:
    """Start ``processes`` workers cold with the ``method`` start method, release them at once.

    With ``fork`` the session is built once in this process and inherited by every child
    (like ``gunicorn --preload``); with ``spawn`` each child builds its own.
    Returns one result tuple per worker.
    """
    import multiprocessing

    ctx = multiprocessing.get_context(method)
    ready: Any = ctx.Queue()
    results: Any = ctx.Queue()
    go = ctx.Event()
    shared = make_session(spec, server.token_url, server.base_url) if method == "fork" else None
    children = [
        ctx.Process(
            target=worker,
            args=(spec, server.token_url, server.base_url, server.api_url, ready, go, results, shared),
            daemon=True,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            child.start()
        for _ in children:
            ready.get(timeout=60)
        go.set()
        out = [results.get(timeout=60) for _ in children]
        for child in children:
            child.join(10)
        return out
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join(5)


def run_killed_holder(spec: StoreSpec, server: Any, waiters: int = 4) -> tuple[list[tuple[Any, ...]], float]:
    """Kill (SIGKILL) the lease holder in the middle of its token request; run ``waiters`` others.

    The holder's token request is held at the server (``token_gate``); every waiter is
    released once the holder's request has arrived, and the holder is killed only when
    every waiter has found the lease taken (each one's store reports it). Then the gate
    is opened. Returns the waiters' results and the seconds from the kill to the last result.

    Nothing here waits a guessed time: on a machine too slow for the store's
    ``lease_timeout`` (a waiter reaching the lease after the holder's has run out) this
    fails, saying so, instead of quietly testing waiters that never waited.
    """
    import multiprocessing
    import signal
    import threading
    import time

    from tests.threads import wait_until

    ctx = multiprocessing.get_context("fork")
    ready: Any = ctx.Queue()
    results: Any = ctx.Queue()
    holder_results: Any = ctx.Queue()
    leases: Any = ctx.Queue()
    go_holder = ctx.Event()
    go = ctx.Event()
    args = (spec, server.token_url, server.base_url, server.api_url, ready)
    holder = ctx.Process(target=worker, args=(*args, go_holder, holder_results, None, leases), daemon=True)
    children = [
        ctx.Process(target=worker, args=(*args, go, results, None, leases), daemon=True)
        for _ in range(waiters)
    ]
    gate = threading.Event()
    server.token_gate = gate
    try:
        # Every process is started (and ready) before the holder takes the lease: starting
        # them is slow on a loaded machine, and the holder's lease (lease_timeout) must not
        # run out before it is killed, or a waiter takes it over while the holder still lives.
        holder.start()
        for child in children:
            child.start()
        for _ in range(waiters + 1):
            ready.get(timeout=60)
        go_holder.set()
        assert leases.get(timeout=60) == (holder.pid, "acquired"), "the holder did not take the lease"
        assert wait_until(lambda: server.token_requests == 1), "the lease holder never sent its token request"
        go.set()
        reports = [leases.get(timeout=60) for _ in children]
        assert sorted(reports) == sorted((child.pid, "refused") for child in children), (
            f"every waiter should have found the lease taken, got {reports}: a waiter that took "
            "it over reached the store after the holder's lease_timeout had run out (too slow "
            "a machine for it), so this run did not test waiters that were waiting"
        )
        assert server.token_requests == 1 and holder.is_alive()
        os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
        holder.join(10)
        killed_at = time.monotonic()
        gate.set()
        out = [results.get(timeout=60) for _ in children]
        elapsed = time.monotonic() - killed_at
        for child in children:
            child.join(10)
        assert holder_results.empty(), "the holder finished before it was killed"
        return out, elapsed
    finally:
        gate.set()
        server.token_gate = None
        for child in [holder, *children]:
            if child.is_alive():
                child.kill()
                child.join(5)


# -- outages (contract item 29) -------------------------------------------------------------


def outage_worker(
    spec: StoreSpec,
    token_url: str,
    ready: queue.Queue[int],
    go: Any,
    results: queue.Queue[tuple[Any, ...]],
    threads: int,
    probe_interval: float,
) -> None:
    """Ask for a token from ``threads`` threads until each has one; put (pid, fingerprints, errors).

    Each thread retries every 20 ms while the token endpoint fails. Gives up after a minute.
    """
    import threading
    import time

    from reqcc import ClientCredentialsManager

    try:
        manager = ClientCredentialsManager(
            token_url=token_url,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            token_store=make_store(spec),
            probe_interval=probe_interval,
            max_retries=0,
        )
        fingerprints: list[str] = []
        errors = [0]
        lock = threading.Lock()

        def ask() -> None:
            give_up = time.monotonic() + 60
            while time.monotonic() < give_up:
                try:
                    token = manager.get_token()
                except Exception:
                    with lock:
                        errors[0] += 1
                    time.sleep(0.02)
                    continue
                with lock:
                    fingerprints.append(token.fingerprint)
                return

        ready.put(os.getpid())
        if not go.wait(60):
            results.put((os.getpid(), "no go signal", None))
            return
        workers = [threading.Thread(target=ask) for _ in range(threads)]
        for worker_thread in workers:
            worker_thread.start()
        for worker_thread in workers:
            worker_thread.join()
        results.put((os.getpid(), fingerprints, errors[0]))
    except BaseException as exc:  # reported to the test, which fails on it
        results.put((os.getpid(), f"{type(exc).__name__}: {exc}", None))


def run_outage_fleet(
    spec: StoreSpec,
    server: Any,
    outage: float,
    processes: int = 3,
    threads: int = 2,
    probe_interval: float = 0.2,
) -> tuple[list[tuple[Any, ...]], int, float]:
    """Start ``processes`` spawned workers while the token endpoint fails; end the outage after ``outage`` s.

    Returns the workers' results, the token requests the server saw during the outage and
    how long it really lasted (seconds, from the go signal).
    """
    import multiprocessing
    import time

    from .token_server import Failure

    ctx = multiprocessing.get_context("spawn")
    ready: Any = ctx.Queue()
    results: Any = ctx.Queue()
    go = ctx.Event()
    children = [
        ctx.Process(
            target=outage_worker,
            args=(spec, server.token_url, ready, go, results, threads, probe_interval),
            daemon=True,
        )
        for _ in range(processes)
    ]
    server.fail_always = Failure(503)
    try:
        for child in children:
            child.start()
        for _ in children:
            ready.get(timeout=60)
        started = time.monotonic()
        go.set()
        time.sleep(outage)
        with server.lock:
            server.fail_always = None
            during = server.token_requests
        lasted = time.monotonic() - started
        out = [results.get(timeout=60) for _ in children]
        for child in children:
            child.join(10)
        return out, during, lasted
    finally:
        server.fail_always = None
        for child in children:
            if child.is_alive():
                child.kill()
                child.join(5)
