"""Async never blocks the event loop (contract item 37): many coroutines, one fetch, one thread.

On asyncio and trio (anyio's pytest plugin, ``anyio_backend``), with httpx and httpx2,
against :class:`~reqcc.testing.LocalAuthorizationServer`. A token request is *held* at the
server (``hold_token_requests``) so that every coroutine is waiting for it; the tests
then look at what the loop did meanwhile. Nothing is timed: the loop is shown not to be
blocked by a ticker coroutine that must tick a number of times *while the fetch is held*
(the test only releases the fetch once it has), which a blocked loop could never do —
robust on a loaded machine, where only the wall time it takes varies.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from reqcc import ClientCredentialsManager, ClientCredentialsSession, InvalidClient, TokenDeadlineError
from reqcc.testing import LocalAuthorizationServer

from .test_httpx import MODULES

SCOPES = ["books.read"]
COROUTINES = 200
THREADS = 8
#: Ticks the ticker must make while the fetch is held (one every TICK seconds).
TICKS = 20
TICK = 0.005
#: A generous bound on how long any test waits for anything (a hang fails, not blocks).
PATIENCE = 30


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=MODULES)
def module(request: pytest.FixtureRequest) -> Any:
    return importlib.import_module(request.param)


@pytest.fixture
def server() -> Iterator[LocalAuthorizationServer]:
    with LocalAuthorizationServer() as s:
        yield s


def make_auth(module: Any, server: LocalAuthorizationServer, **kwargs: Any) -> Any:
    reqcc_module = importlib.import_module(f"reqcc.{module.__name__}")
    if "manager" in kwargs:
        return reqcc_module.ClientCredentialsAuth(base_url=server.api_url, **kwargs)
    return reqcc_module.ClientCredentialsAuth(**server.credentials(), scopes=SCOPES, **kwargs)


def fetch_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "reqcc-async-token" and t.is_alive())


class Ticker:
    """Counts its ticks; ``mark()`` starts a count of the ticks from then on."""

    def __init__(self) -> None:
        self.ticks = 0
        self.since_mark = 0
        self.stopped = False

    def mark(self) -> None:
        self.since_mark = 0

    async def run(self) -> None:
        while not self.stopped:
            await anyio.sleep(TICK)
            self.ticks += 1
            self.since_mark += 1


async def until(condition: Callable[[], bool]) -> None:
    """Wait (on the loop, politely) until ``condition()`` holds."""
    while not condition():
        await anyio.sleep(0.005)


@pytest.mark.anyio
async def test_coroutines_and_threads_share_one_fetch_one_thread_and_the_loop_keeps_running(
    module: Any, server: LocalAuthorizationServer
) -> None:
    manager = ClientCredentialsManager(
        **{k: v for k, v in server.credentials().items() if k != "base_url"}, scopes=SCOPES
    )
    auth = make_auth(module, server, manager=manager)
    session = ClientCredentialsSession(base_url=server.api_url, manager=manager)
    gate = server.hold_token_requests(1, timeout=PATIENCE)
    statuses: list[int] = []
    thread_statuses: list[int] = []
    ticker = Ticker()
    # The local server's listen backlog is small: 20 connections, and the rest queue in the pool.
    limits = module.Limits(max_connections=20)

    def sync_caller() -> None:
        thread_statuses.append(session.get(server.api_url + "books").status_code)

    threads = [threading.Thread(target=sync_caller) for _ in range(THREADS)]
    with anyio.fail_after(PATIENCE):
        async with (
            module.AsyncClient(auth=auth, limits=limits, timeout=PATIENCE) as client,
            anyio.create_task_group() as tg,
        ):

            async def call() -> None:
                statuses.append((await client.get(server.api_url + "books")).status_code)

            tg.start_soon(ticker.run)
            for _ in range(COROUTINES):
                tg.start_soon(call)
            for t in threads:
                t.start()
            await until(lambda: server.token_requests == 1)  # the fetch is held at the server
            ticker.mark()
            await until(lambda: ticker.since_mark >= TICKS)  # a blocked loop never gets here
            assert fetch_threads() <= 1  # one worker thread for all the waiting coroutines
            assert statuses == []  # everybody is still waiting
            gate.set()
            await until(lambda: len(statuses) == COROUTINES)
            ticker.stopped = True
    for t in threads:
        t.join(PATIENCE)
    session.close()
    assert statuses == [200] * COROUTINES and thread_statuses == [200] * THREADS
    assert server.token_requests == 1 and server.tokens_issued == 1


@pytest.mark.anyio
async def test_cancelling_the_coroutine_that_started_the_fetch_cancels_neither_it_nor_the_others(
    module: Any, server: LocalAuthorizationServer
) -> None:
    auth = make_auth(module, server)
    gate = server.hold_token_requests(1, timeout=PATIENCE)
    statuses: list[int] = []
    with anyio.fail_after(PATIENCE):
        async with module.AsyncClient(auth=auth, timeout=PATIENCE) as client:
            async with anyio.create_task_group() as tg:
                first = anyio.CancelScope()

                async def leader() -> None:
                    with first:
                        await client.get(server.api_url + "books")
                        statuses.append(-1)  # never: it is cancelled while waiting

                tg.start_soon(leader)
                await until(lambda: server.token_requests == 1)

                async def follower() -> None:
                    statuses.append((await client.get(server.api_url + "books")).status_code)

                for _ in range(5):
                    tg.start_soon(follower)
                await anyio.sleep(0.05)
                first.cancel()
                await anyio.sleep(0.05)
                gate.set()
            assert statuses == [200] * 5
            assert first.cancelled_caught
    assert server.token_requests == 1 and auth.manager.token is not None


@pytest.mark.anyio
async def test_the_wait_is_bounded_by_token_deadline_and_the_loop_runs_meanwhile(
    module: Any, server: LocalAuthorizationServer
) -> None:
    auth = make_auth(module, server, token_deadline=0.5, max_retries=0)
    gate = server.hold_token_requests(None, timeout=PATIENCE)
    errors: list[BaseException] = []
    ticker = Ticker()
    try:
        with anyio.fail_after(PATIENCE):
            async with (
                module.AsyncClient(auth=auth, timeout=PATIENCE) as client,
                anyio.create_task_group() as tg,
            ):

                async def call() -> None:
                    try:
                        await client.get(server.api_url + "books")
                    except TokenDeadlineError as exc:
                        errors.append(exc)

                tg.start_soon(ticker.run)
                for _ in range(10):
                    tg.start_soon(call)
                await until(lambda: len(errors) == 10)
                ticker.stopped = True
    finally:
        gate.set()
    assert ticker.ticks >= 10  # the loop ran while they waited (0.5 s at 5 ms a tick, at most 100)
    assert server.api_requests == 0


@pytest.mark.anyio
async def test_a_token_endpoint_error_reaches_every_waiting_coroutine_as_its_own_copy(
    module: Any, server: LocalAuthorizationServer
) -> None:
    server.fail_token_requests(error="invalid_client")
    auth = make_auth(module, server)
    errors: list[BaseException] = []
    with anyio.fail_after(PATIENCE):
        async with module.AsyncClient(auth=auth, timeout=PATIENCE) as client, anyio.create_task_group() as tg:

            async def call() -> None:
                try:
                    await client.get(server.api_url + "books")
                except InvalidClient as exc:
                    errors.append(exc)

            for _ in range(20):
                tg.start_soon(call)
    assert len(errors) == 20 and len({id(e) for e in errors}) == 20
    assert server.token_requests == 1  # the others joined it or got it again during the backoff
    assert server.api_requests == 0


def test_no_state_is_kept_per_event_loop_once_its_fetch_is_over(server: LocalAuthorizationServer) -> None:
    from reqcc.async_token import AsyncTokenWait

    manager = ClientCredentialsManager(
        **{k: v for k, v in server.credentials().items() if k != "base_url"}, scopes=SCOPES
    )
    waiter = AsyncTokenWait(manager)
    for backend in ("asyncio", "trio", "asyncio"):
        manager.token = None  # each loop has to fetch
        token = anyio.run(waiter.token, backend=backend)
        assert token.access_token
    assert waiter._pending == {}
    assert server.token_requests == 3


@pytest.mark.anyio
async def test_every_waiting_coroutine_is_recorded_as_a_caller_that_waited(
    server: LocalAuthorizationServer, otel: Any
) -> None:
    auth = make_auth(
        pytest.importorskip("httpx"), server,
        meter_provider=otel.meter_provider, tracer_provider=otel.tracer_provider,
    )
    gate = server.hold_token_requests(1, timeout=PATIENCE)
    statuses: list[int] = []
    with anyio.fail_after(PATIENCE):
        async with auth_client(auth) as client, anyio.create_task_group() as tg:

            async def call() -> None:
                statuses.append((await client.get(server.api_url + "books")).status_code)

            for _ in range(10):
                tg.start_soon(call)
            await until(lambda: server.token_requests == 1)
            await anyio.sleep(0.05)
            gate.set()
    assert statuses == [200] * 10
    [waits] = otel.points("reqcc.token.wait.duration")
    # the ten coroutines, and maybe the worker thread's own wait in the single flight
    assert waits.count in (10, 11)
    assert otel.requests_by() == {("success", None): 1}


def auth_client(auth: Any) -> Any:
    import httpx

    return httpx.AsyncClient(auth=auth, timeout=PATIENCE)
