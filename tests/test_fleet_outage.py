"""Outages seen by a fleet sharing a token store (contract item 29).

First with several managers in this process standing for processes (one fake clock, so
every count is exact), for the file store and for Redis; then with real processes
(``multiprocessing`` spawn) against the token server on 127.0.0.1; then the stores that
misbehave: a stale lease, a lease whose holder died, a Redis that drips its answer.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests_mock

from reqcc import ClientCredentialsManager, TokenRequestError, TokenResponseError
from reqcc.stores import FileTokenStore, RedisTokenStore, TokenStore
from reqcc.stores.base import Outage

from .conftest import TOKEN_URL, FakeClock, TokenIssuer, manager_kwargs
from .redis_server import running_redis
from .threads import JOIN, Crowd

MANAGERS = 4


class Endpoint:
    """The token endpoint (a ``requests_mock.Adapter``): 503 while ``down``; counts requests."""

    def __init__(self) -> None:
        self.issuer = TokenIssuer(expires_in=3600)
        self.down = False
        self.requests = 0
        self.adapter = requests_mock.Adapter()
        self.adapter.register_uri("POST", TOKEN_URL, text=self._answer)

    def _answer(self, request: Any, context: Any) -> str:
        self.requests += 1
        if self.down:
            context.status_code = 503
            return "busy"
        return self.issuer(request, context)


class WaitingClock(FakeClock):
    """A fake clock whose ``sleep`` moves it (a lease wait takes fake time)."""

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self.advance(seconds)


def fleet(
    clock: FakeClock, endpoint: Endpoint, store: TokenStore, n: int = MANAGERS
) -> list[ClientCredentialsManager]:
    """``n`` managers of one client sharing ``store``: the processes of a fleet."""
    return [
        ClientCredentialsManager(**manager_kwargs(clock, endpoint.adapter, token_store=store, max_retries=0))
        for _ in range(n)
    ]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with running_redis(tmp_path) as server:
        yield server.url


@pytest.fixture(params=["file", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[FakeClock], TokenStore]:
    if request.param == "file":
        return lambda clock: FileTokenStore(tmp_path / "tokens.json", clock=clock)
    url = request.getfixturevalue("redis_url")
    prefix = f"reqcc-test-{uuid.uuid4().hex[:8]}:"
    return lambda clock: RedisTokenStore(url=url, prefix=prefix, clock=clock)


# -- the fleet probes about once an interval in all -----------------------------------------


def test_a_fleet_probes_once_an_interval_in_all_and_recovers_on_one_success(
    make_store: Callable[[FakeClock], TokenStore],
) -> None:
    clock = FakeClock()
    endpoint = Endpoint()
    endpoint.down = True
    managers = fleet(clock, endpoint, make_store(clock))
    failures = 0
    for _ in range(80):  # 20 simulated seconds, every manager asked 4 times a second
        clock.advance(0.25)
        for manager in managers:
            with pytest.raises(TokenRequestError):
                manager.get_token()
            failures += 1
    probes = endpoint.requests
    print(f"\n[observed] {MANAGERS} processes, 20 s outage: {probes} token requests in all")
    # One probe 0.8-1.2 s after the last, in all: 17-21 over 20 s (+1 for the first).
    # Each process probing for itself would send about 4 times as many.
    assert 16 <= probes <= 22
    endpoint.down = False
    clock.advance(1.25)  # the next probe is due
    tokens = [manager.get_token() for manager in managers]  # each one's next request
    assert endpoint.requests == probes + 1  # one successful probe ...
    assert len({t.access_token for t in tokens}) == 1  # ... whose token every process takes up
    assert [manager.get_token() for manager in managers] == tokens


def test_a_process_that_failed_takes_up_the_token_another_stored_at_its_next_request(
    make_store: Callable[[FakeClock], TokenStore],
) -> None:
    clock = FakeClock()
    endpoint = Endpoint()
    endpoint.down = True
    store = make_store(clock)
    first, second = fleet(clock, endpoint, store, n=2)
    leases: list[str] = []
    acquire = store.acquire_lease
    store.acquire_lease = lambda key: leases.append(key) or acquire(key)  # type: ignore[method-assign]
    with pytest.raises(TokenResponseError):
        first.get_token()  # probes, fails, records the outage for the fleet
    assert len(leases) == 1
    clock.advance(0.75)
    with pytest.raises(TokenRequestError, match="in a process sharing the token store") as info:
        second.get_token()  # the fleet's next probe is not due: no request, not even a lease
    assert "503" in str(info.value) and "next attempt in" in str(info.value)
    assert endpoint.requests == 1 and len(leases) == 1
    endpoint.down = False
    clock.advance(0.5)  # first's next probe is due (0.8-1.2 s), second's own is not (>= 1.55 s)
    token = first.get_token()  # first's probe succeeds and stores the token
    assert endpoint.requests == 2
    assert second.get_token() == token  # second's next request takes it up from the store
    assert endpoint.requests == 2


def test_callers_do_not_wait_for_another_process_probing_a_failing_endpoint(tmp_path: Path) -> None:
    clock = WaitingClock()
    endpoint = Endpoint()
    store = FileTokenStore(tmp_path / "tokens.json", clock=clock)
    [manager] = fleet(clock, endpoint, store, n=1)
    key = manager._store.shared.key  # type: ignore[union-attr]
    outage = Outage(next_probe=clock.now - 0.1, failed_at=clock.now - 1.1, error="E: HTTP 503")
    store.write_outage(key, outage)
    assert store.acquire_lease(key) is not None  # another process is probing right now
    with pytest.raises(TokenRequestError, match="another process is probing the token endpoint now"):
        manager.get_token()
    assert clock.sleeps == [] and endpoint.requests == 0  # the last error, at once


def test_a_process_that_finds_the_fleet_failing_probes_with_one_request(tmp_path: Path) -> None:
    clock = FakeClock()
    endpoint = Endpoint()
    endpoint.down = True
    store = FileTokenStore(tmp_path / "tokens.json", clock=clock)
    manager = ClientCredentialsManager(
        **manager_kwargs(clock, endpoint.adapter, token_store=store, max_retries=2)
    )
    key = manager._store.shared.key  # type: ignore[union-attr]
    store.write_outage(key, Outage(next_probe=clock.now, failed_at=clock.now - 1, error="E: HTTP 503"))
    with pytest.raises(TokenResponseError):
        manager.get_token()  # this process never failed, but the fleet knows the endpoint fails
    assert endpoint.requests == 1 and clock.sleeps == []  # a probe: no retries


def test_the_outage_record_is_kept_beside_the_token_and_a_token_ends_it(
    make_store: Callable[[FakeClock], TokenStore],
) -> None:
    clock = FakeClock()
    store: Any = make_store(clock)
    outage = Outage(next_probe=clock.now + 1.0, failed_at=clock.now, error="TokenResponseError: HTTP 503")
    assert store.read_outage("k") is None
    store.write_outage("k", outage)
    assert store.read_outage("k") == outage
    assert store.read_outage("other") is None
    endpoint = Endpoint()
    token = ClientCredentialsManager(**manager_kwargs(clock, endpoint.adapter)).get_token()
    store.write("k", token)
    assert store.read_outage("k") is None
    assert store.read("k") == token


# -- leases never last past lease_timeout from now; waits stay within the deadline ---------


def test_a_stale_file_lease_a_day_ahead_is_taken_over_at_once(tmp_path: Path) -> None:
    clock = WaitingClock()
    endpoint = Endpoint()
    store = FileTokenStore(tmp_path / "tokens.json", clock=clock, lease_timeout=10)
    manager = ClientCredentialsManager(
        **manager_kwargs(clock, endpoint.adapter, token_store=store, token_deadline=3)
    )
    key = manager._store.shared.key  # type: ignore[union-attr]
    stale = {"lease": {"holder": "x", "until": clock.now + 86400}}
    document = {"reqcc_token_store": 1, "entries": {key: stale}}
    (tmp_path / "tokens.json").write_text(json.dumps(document))
    os.chmod(tmp_path / "tokens.json", 0o600)
    token = manager.get_token()
    assert endpoint.requests == 1 and clock.sleeps == []  # no wait on the stale lease
    assert store.read(key) == token


def test_a_dead_holders_lease_is_waited_for_half_the_deadline_at_most(tmp_path: Path) -> None:
    clock = WaitingClock()
    endpoint = Endpoint()
    store = FileTokenStore(tmp_path / "tokens.json", clock=clock, lease_timeout=10)
    manager = ClientCredentialsManager(
        **manager_kwargs(clock, endpoint.adapter, token_store=store, token_deadline=3)
    )
    key = manager._store.shared.key  # type: ignore[union-attr]
    assert store.acquire_lease(key) is not None  # a holder that died: 10 s left on its lease
    start = clock.now
    token = manager.get_token()
    assert endpoint.requests == 1
    assert clock.now - start == pytest.approx(1.5)  # then this process fetched by itself
    assert store.read(key) == token


def test_a_redis_lease_without_an_expiry_is_taken_over(redis_url: str) -> None:
    import redis

    clock = FakeClock()
    prefix = f"reqcc-test-{uuid.uuid4().hex[:8]}:"
    store = RedisTokenStore(url=redis_url, prefix=prefix, clock=clock, lease_timeout=5)
    client = redis.Redis.from_url(redis_url)
    client.set(f"{prefix}lease:k", "stale")  # no expiry at all
    assert store.acquire_lease("k") is not None
    assert 0 < client.pttl(f"{prefix}lease:k") <= 5000
    assert store.acquire_lease("k") is None  # a lease of ours is honoured
    client.set(f"{prefix}lease:k", "stale", px=86_400_000)  # a day
    assert store.acquire_lease("k") is not None
    client.close()


class DrippingRedis:
    """A raw-socket server that speaks just enough RESP to drip: one byte of its answer a second.

    It counts the commands' connections it accepted; closing it ends every drip.
    """

    def __init__(self, every: float = 0.5) -> None:
        self.every = every
        self.connections = 0
        self._closed = threading.Event()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.url = f"redis://127.0.0.1:{self._sock.getsockname()[1]}/0"
        self._threads: list[threading.Thread] = []
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._drip, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                while not self._closed.wait(self.every):
                    conn.sendall(b"$")  # the start of a bulk string that never ends
            except OSError:
                return

    def close(self) -> None:
        self._closed.set()
        self._sock.close()
        for thread in self._threads:
            thread.join(JOIN)


def test_a_redis_that_drips_its_answer_is_a_miss_within_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("redis", reason="redis-py is not installed: pip install 'reqcc[redis]'")
    server = DrippingRedis()
    try:
        endpoint = Endpoint()
        store = RedisTokenStore(url=server.url, socket_timeout=2.0)  # each drip comes within it
        manager = ClientCredentialsManager(
            token_url=TOKEN_URL, client_id="c", client_secret="s3cret-value", token_store=store,
            token_deadline=1.0, max_retries=0, token_session=_session(endpoint.adapter),
        )
        got: list[Any] = []
        caller = threading.Thread(target=lambda: got.append(manager.get_token()), daemon=True)
        with caplog.at_level(logging.WARNING, "reqcc"):
            caller.start()
            caller.join(JOIN)  # 0.2 held the caller as long as the drip lasted (here: forever)
        assert not caller.is_alive(), "the dripping store held the caller"
        assert server.connections >= 1 and endpoint.requests == 1
        assert got and got[0].access_token == "tok-1"  # fetched here: the store was a miss
        assert "TimeoutError" in caplog.text
    finally:
        server.close()


def _session(adapter: requests_mock.Adapter) -> Any:
    import requests

    session = requests.Session()
    session.mount("https://", adapter)
    return session


# -- real processes ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["file", "redis"])
def test_processes_sharing_a_store_probe_about_once_an_interval_in_all_and_recover_together(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from .store_workers import run_outage_fleet
    from .token_server import TokenServer

    if kind == "file":
        spec: tuple[Any, ...] = ("file", str(tmp_path / "tokens.json"), 10.0)
    else:
        spec = ("redis", request.getfixturevalue("redis_url"), f"reqcc-test-{uuid.uuid4().hex[:8]}:", 10.0)
    with TokenServer() as server:
        results, during, lasted = run_outage_fleet(spec, server, outage=1.0, processes=3, threads=2)
        after = server.token_requests - during
        issued = len(server.valid_tokens)
    print(f"\n[observed] 3 processes x 2 threads, {kind} store, {lasted:.1f}s outage: "
          f"{during} token requests during it, {after} after")
    assert all(isinstance(r[1], list) for r in results), results
    # Every thread of every process got the one token the first successful probe stored.
    assert [len(r[1]) for r in results] == [2, 2, 2]
    assert len({f for r in results for f in r[1]}) == 1
    assert issued == 1 and after == 1
    assert sum(r[2] for r in results) > 0  # they did fail during the outage
    # About one probe per interval (0.2 s, at least 0.16 s apart) for the fleet: 3 processes
    # probing each on their own would send about three times as many.
    assert during <= lasted / 0.16 + 2


def test_the_failure_told_to_the_fleet_carries_no_secret(tmp_path: Path) -> None:
    clock = FakeClock()
    endpoint = Endpoint()
    secret = "provider-Secret-42"

    def provider(last: Any, manager: Any) -> Any:
        raise TokenRequestError(f"identity service refused secret {secret}")

    store = FileTokenStore(tmp_path / "tokens.json", clock=clock)
    manager = ClientCredentialsManager(
        **manager_kwargs(
            clock, endpoint.adapter, token_store=store, client_secret=secret, token_provider=provider
        )
    )
    with pytest.raises(TokenRequestError):
        manager.get_token()
    outage = store.read_outage(manager._store.shared.key)  # type: ignore[union-attr]
    assert outage is not None and outage.error == "TokenRequestError: identity service refused secret ***"
    assert secret not in (tmp_path / "tokens.json").read_text()


def test_a_provider_failure_repeated_between_probes_still_looks_in_the_store(tmp_path: Path) -> None:
    from reqcc import OAuthToken, TokenProviderError

    clock = FakeClock()
    endpoint = Endpoint()
    down = [True]
    issued = iter(range(1, 100))

    def provider(last: Any, manager: Any) -> OAuthToken:
        if down[0]:
            raise TokenProviderError("identity service down")
        return OAuthToken(f"prov-{next(issued)}", expires_in=3600)

    store = FileTokenStore(tmp_path / "tokens.json", clock=clock)
    kwargs = manager_kwargs(clock, endpoint.adapter, token_store=store, token_provider=provider)
    first, second = ClientCredentialsManager(**kwargs), ClientCredentialsManager(**kwargs)
    # second's jitter draws: the fleet's next probe in 0.8 s, its own next attempt in 1.2 s.
    draws = iter([0.0, 0.0, 1.0])
    second._random.random = lambda: next(draws)  # type: ignore[method-assign]
    with pytest.raises(TokenProviderError):
        second.get_token()
    down[0] = False
    clock.advance(1.0)
    token = first.get_token()  # the fleet's probe is due: first's succeeds
    assert token.access_token == "prov-1"
    # second's own next attempt is not: its next request still takes the stored token up
    # (a repeated TokenProviderError is a repeat like any other).
    assert second.get_token() == token
    assert next(issued) == 2


def test_callers_look_in_the_store_at_most_once_per_poll_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    endpoint = Endpoint()
    endpoint.down = True
    store = FileTokenStore(tmp_path / "tokens.json", clock=clock, poll_interval=0.05)
    [manager] = fleet(clock, endpoint, store, n=1)
    with pytest.raises(TokenResponseError):
        manager.get_token()
    reads: list[str] = []
    read = store.read
    store.read = lambda key: reads.append(key) or read(key)  # type: ignore[method-assign]
    errors = Crowd(16, lambda i: manager.get_token()).join()  # between probes, at one instant
    assert all(isinstance(e, TokenResponseError) for e in errors)
    assert len(reads) == 1 and endpoint.requests == 1
    clock.advance(0.05)
    with pytest.raises(TokenResponseError):
        manager.get_token()
    assert len(reads) == 2
