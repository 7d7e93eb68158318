"""What issue 20's async load run showed, on a real loop against a real loopback server.

Under load, an ``AsyncClient`` holds requests in its connection pool (httpx's for seconds):
the token set on a request by the auth flow can expire before the request is sent, so its
401 and, if the replay waits as long, the replay's 401 are the token's age, not an API
refusing good tokens. Such 401s must not start the 401 cool-down (contract items 11, 19,
34): a later real revocation is still recovered from at once.

The wait in the pool is played by a request event hook (it runs after the auth flow set the
token, before the request is sent) that moves the shared fake clock past the token's expiry;
the server judges tokens by the same clock. Nothing is timed; token requests are counted
exactly. On asyncio and trio, with httpx and httpx2.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from reqcc.testing import LocalAuthorizationServer

from . import test_httpx_async as fronts
from .conftest import FakeClock

SCOPES = ["books.read"]
TTL = 60
PATIENCE = 30

#: The fixtures of tests/test_httpx_async.py: each test on asyncio and trio, httpx and httpx2.
anyio_backend = fronts.anyio_backend
module = fronts.module

@pytest.fixture
def server(clock: FakeClock) -> Iterator[LocalAuthorizationServer]:
    with LocalAuthorizationServer(clock=clock, token_ttl=TTL) as s:
        yield s


def _auth(module: Any, server: LocalAuthorizationServer, **kwargs: Any) -> Any:
    """A ``ClientCredentialsAuth`` of ``module`` (httpx or httpx2) for ``server``."""
    return importlib.import_module(f"reqcc.{module.__name__}").ClientCredentialsAuth(
        **server.credentials(), scopes=SCOPES, **kwargs
    )


def count_get_token(manager: Any) -> list[str]:
    """Count the manager's blocking ``get_token()`` calls (each one a worker thread's)."""
    calls: list[str] = []
    get_token = manager.get_token

    def counted() -> Any:
        calls.append("get_token")
        return get_token()

    manager.get_token = counted
    return calls


class Pool:
    """A request event hook standing for the pool: what happens to a request after its token was set."""

    def __init__(self, clock: FakeClock, server: LocalAuthorizationServer) -> None:
        self.clock = clock
        self.server = server
        #: Every request waits this long "in the pool" (seconds on the fake clock).
        self.wait = 0.0
        #: The next request's token is revoked at the server meanwhile.
        self.revoke_next = False

    async def __call__(self, request: Any) -> None:
        self.clock.advance(self.wait)
        if self.revoke_next:
            self.revoke_next = False
            self.server.revoke_all()


@pytest.mark.anyio
async def test_tokens_that_expire_while_queued_start_no_cool_down_and_a_revocation_is_still_recovered(
    module: Any, server: LocalAuthorizationServer, clock: FakeClock
) -> None:
    auth = _auth(module, server, clock=clock, monotonic=clock)
    pool = Pool(clock, server)
    # More such requests than the strikes that cool a whole origin down (item 34).
    queued = auth.manager.rejection_cooldown.strikes + 1
    statuses: list[int] = []
    with anyio.fail_after(PATIENCE):
        async with module.AsyncClient(auth=auth, timeout=PATIENCE, event_hooks={"request": [pool]}) as client:
            pool.wait = TTL + 1  # the request and its replay both outwait their tokens
            for _ in range(queued):
                statuses.append((await client.get(server.api_url + "books")).status_code)
            pool.wait = 0.0
            pool.revoke_next = True  # now a real revocation: retired, replayed, recovered
            statuses.append((await client.get(server.api_url + "books")).status_code)
    auth.close()
    assert statuses == [401] * queued + [200]
    # Each queued request: its token, then the replay's fresh one; the revocation: one more.
    assert server.token_requests == 2 * queued + 2
    assert server.api_401s == 2 * queued + 1


@pytest.mark.anyio
async def test_while_the_token_endpoint_fails_the_held_token_serves_coroutines_without_a_thread(
    module: Any, server: LocalAuthorizationServer, clock: FakeClock
) -> None:
    # Contract items 28 and 37: past its clock_skew margin, but not its expiry, the held
    # token serves while the endpoint is failing -- get_token()'s first, lock-free check.
    # A coroutine makes it on the loop; before, each batch of coroutines started a worker
    # thread (one per loop iteration, for the whole margin: 30 s of an outage) to learn it.
    auth = _auth(module, server, clock=clock, monotonic=clock, max_retries=0)
    manager = auth.manager
    calls = count_get_token(manager)
    statuses: list[int] = []
    with anyio.fail_after(PATIENCE):
        async with module.AsyncClient(auth=auth, timeout=PATIENCE) as client, anyio.create_task_group() as tg:

            async def call() -> None:
                statuses.append((await client.get(server.api_url + "books")).status_code)

            await call()  # the first token, fetched in a worker thread
            server.fail_token_requests(None)
            clock.advance(TTL - 10)  # inside the 30-s margin (capped at TTL / 2), before the expiry
            await call()  # finds the endpoint failing (one token request); the held token serves
            assert len(calls) == 2
            for _ in range(50):
                tg.start_soon(call)
    auth.close()
    assert statuses == [200] * 52
    assert calls == ["get_token"] * 2  # the 50 coroutines needed no thread
    assert server.token_requests == 2  # the first token and the one failed attempt


@pytest.mark.anyio
async def test_between_probes_of_a_failing_endpoint_coroutines_get_the_last_error_without_a_thread(
    module: Any, server: LocalAuthorizationServer, clock: FakeClock
) -> None:
    # Contract items 27 and 37: with no usable token and the endpoint failing, get_token()
    # raises the last error at once until the next probe is due. A coroutine learns that on
    # the loop; before, every failing request started a worker thread to learn it (4,020
    # threads for 4,354 failures in a 4-s outage of the benchmark).
    from reqcc import TokenRequestError

    auth = _auth(module, server, clock=clock, monotonic=clock, max_retries=0)
    manager = auth.manager
    calls = count_get_token(manager)
    server.fail_token_requests(None)
    errors: list[BaseException] = []
    with anyio.fail_after(PATIENCE):
        async with module.AsyncClient(auth=auth, timeout=PATIENCE) as client:

            async def call() -> None:
                try:
                    await client.get(server.api_url + "books")
                except TokenRequestError as exc:
                    errors.append(exc)

            await call()  # the first attempt: a worker thread, one token request, its error
            assert calls == ["get_token"] and server.token_requests == 1
            async with anyio.create_task_group() as tg:
                for _ in range(50):
                    tg.start_soon(call)
            assert calls == ["get_token"]  # the 50 got the last error on the loop
            clock.advance(2 * manager.probe_interval)  # the next probe is due (jitter: ±20 %)
            await call()
    auth.close()
    assert len(errors) == 52 and calls == ["get_token"] * 2
    assert server.token_requests == 2 and server.api_requests == 0
    assert len({id(e) for e in errors}) == 52  # each caller its own copy


# -- admission: a burst of coroutines enters the client one per loop iteration --------------


@pytest.fixture
def live() -> Iterator[LocalAuthorizationServer]:
    with LocalAuthorizationServer() as s:
        yield s


class Ticks:
    """A ticker task that counts the loop's iterations, and a request hook that notes, per
    request sent, the iteration it was sent in."""

    def __init__(self) -> None:
        self.now = 0
        self.sent: list[int] = []
        self.running = True

    async def run(self) -> None:
        import anyio.lowlevel

        while self.running:
            await anyio.lowlevel.checkpoint()  # one pass per iteration of the loop
            self.now += 1

    async def __call__(self, request: Any) -> None:
        self.sent.append(self.now)

    def most_in_one_iteration(self) -> int:
        from collections import Counter

        return max(Counter(self.sent).values())


@pytest.mark.anyio
async def test_a_burst_of_coroutines_enters_the_client_one_per_loop_iteration(
    module: Any, live: LocalAuthorizationServer
) -> None:
    # 60 coroutines ready at once: without admission all would build and send their requests
    # in one iteration of the loop (a stall as long as 60 requests' work, and 60 requests
    # at once in the client's pool); with it, one enters per iteration.
    auth = _auth(module, live)
    ticks = Ticks()
    statuses: list[int] = []
    with anyio.fail_after(PATIENCE):
        async with module.AsyncClient(
            auth=auth, timeout=PATIENCE, event_hooks={"request": [ticks]},
            limits=module.Limits(max_connections=100),
        ) as client:
            await client.get(live.api_url + "books")  # the token held from here on
            ticks.sent.clear()
            async with anyio.create_task_group() as tg:
                tg.start_soon(ticks.run)

                async def call() -> None:
                    statuses.append((await client.get(live.api_url + "books")).status_code)

                async with anyio.create_task_group() as burst:
                    for _ in range(60):
                        burst.start_soon(call)
                ticks.running = False
    auth.close()
    assert statuses == [200] * 60 and live.token_requests == 1
    assert len(ticks.sent) == 60
    assert ticks.most_in_one_iteration() <= 2, sorted(ticks.sent)
    assert all(gate.in_flight == 0 for gate in auth._gates.values())


@pytest.mark.anyio
async def test_a_caller_alone_passes_no_gate(module: Any, live: LocalAuthorizationServer) -> None:
    # The warm path of a sequential caller: no lock, no checkpoint (its cost is measured
    # by benchmarks/warm_instructions.py).
    from reqcc import _httpx_auth

    auth = _auth(module, live)
    admitted: list[int] = []
    original = _httpx_auth._Gate.admit

    async def counted(gate: Any) -> None:
        admitted.append(1)
        await original(gate)

    with anyio.fail_after(PATIENCE):
        async with module.AsyncClient(auth=auth, timeout=PATIENCE) as client:
            _httpx_auth._Gate.admit = counted  # type: ignore[method-assign]
            try:
                for _ in range(5):
                    assert (await client.get(live.api_url + "books")).status_code == 200
            finally:
                _httpx_auth._Gate.admit = original  # type: ignore[method-assign]
    auth.close()
    assert admitted == [] and all(gate.lock is None for gate in auth._gates.values())


@pytest.mark.anyio
async def test_cancelled_waiters_at_the_gate_leave_it_open(
    module: Any, live: LocalAuthorizationServer
) -> None:
    auth = _auth(module, live)
    statuses: list[int] = []
    with anyio.fail_after(PATIENCE):
        async with module.AsyncClient(auth=auth, timeout=PATIENCE) as client:
            await client.get(live.api_url + "books")
            scopes: list[anyio.CancelScope] = []

            async def call() -> None:
                with anyio.CancelScope() as scope:
                    scopes.append(scope)
                    statuses.append((await client.get(live.api_url + "books")).status_code)

            async with anyio.create_task_group() as tg:
                for _ in range(30):
                    tg.start_soon(call)
                while len(scopes) < 30:  # all 30 started: most wait at the gate
                    await anyio.lowlevel.checkpoint()
                for scope in scopes[5::2]:
                    scope.cancel()
            gates = list(auth._gates.values())
            assert gates and all(gate.in_flight == 0 for gate in gates)
            # The gate still admits: another burst gets through.
            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(client.get, live.api_url + "books")
    auth.close()
    assert 0 < len(statuses) < 30 and set(statuses) == {200}


def test_one_auth_serves_loop_after_loop_and_loops_in_threads(
    module: Any, live: LocalAuthorizationServer
) -> None:
    # A gate belongs to one event loop: loops one after another (asyncio, trio), and loops
    # running at once in two threads, each get their own, and none waits on another's.
    import threading

    auth = _auth(module, live)
    done: list[int] = []

    async def burst() -> None:
        async with module.AsyncClient(auth=auth, timeout=PATIENCE) as client:
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(client.get, live.api_url + "books")
        done.append(20)

    async def bounded() -> None:
        with anyio.fail_after(PATIENCE):
            await burst()

    for backend in ("asyncio", "trio", "asyncio"):
        anyio.run(bounded, backend=backend)
    threads = [threading.Thread(target=anyio.run, args=(bounded,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)
    auth.close()
    assert done == [20] * 5 and live.api_requests == 100 and live.token_requests == 1
