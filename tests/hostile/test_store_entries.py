"""contract item 32: a token read from a store is checked like one from a provider, and read capped.

Observed on 0.2: a store entry rewritten to ``token_type: Bearer`` was adopted by a DPoP
manager, which then sent ``Authorization: Bearer …`` with no proof (a downgrade); one
``DPoP`` entry without expiry made every request of three Bearer workers fail with
``ConfigurationError``, with no token request to recover (wedged). ``RedisTokenStore``
read a huge value whole (a 24 MiB value: 98 MiB peak) and kept it in the adopted token.
The Redis cases use a fake Redis speaking RESP (tests/fake_redis.py) that holds one huge
value it never builds whole and counts what it sent.
"""

from __future__ import annotations

import json
import logging
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reqcc import OAuthToken, ReqccError
from reqcc.stores import FileTokenStore, RedisTokenStore

from ..conftest import API, Env, FakeClock, TokenIssuer
from ..fake_redis import FakeRedis

MiB = 1 << 20
#: The most bytes of a stored value reqcc reads: the file store's limit (1 MiB).
MAX_VALUE_SIZE = MiB


def _only_key(store: FileTokenStore) -> str:
    (key,) = json.loads(Path(store.path).read_text())["entries"]
    return str(key)


def test_a_dpop_manager_does_not_adopt_a_bearer_entry(
    make_env: Callable[..., Env], clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileTokenStore(tmp_path / "tokens.json", clock=clock)
    env = make_env(issuer=TokenIssuer(extra={"token_type": "DPoP"}), dpop=True, token_store=store)
    env.session.get(API + "books")
    tampered = OAuthToken("tampered", token_type="Bearer", expires_in=7200, expiry=clock() + 7200)
    store.write(_only_key(store), tampered)
    clock.advance(4000)  # tok-1 has expired: the manager goes to the store
    with caplog.at_level(logging.WARNING, "reqcc"):
        env.session.get(API + "books")
    last = env.api.request_history[-1]
    # 0.2 sent "Bearer tampered" with no DPoP proof.
    assert last.headers["Authorization"] == "DPoP tok-2"
    assert "DPoP" in last.headers
    assert env.issuer.count == 2
    assert store.read(_only_key(store)) == env.manager.token  # the fetched token replaced the entry
    assert any("holds a Bearer token" in r.getMessage() for r in caplog.records)
    assert not any("tampered" in r.getMessage() for r in caplog.records)


def test_a_dpop_entry_does_not_wedge_bearer_workers(
    make_env: Callable[..., Env], clock: FakeClock, tmp_path: Path
) -> None:
    store = FileTokenStore(tmp_path / "tokens.json", clock=clock)
    issuer = TokenIssuer()
    make_env(issuer=issuer, token_store=store).session.get(API + "books")  # the entry's key exists
    store.write(_only_key(store), OAuthToken("planted", token_type="DPoP"))  # no expiry: forever
    workers = [make_env(issuer=issuer, token_store=store) for _ in range(3)]
    failures = 0
    for i in range(20):
        try:
            assert workers[i % 3].session.get(API + "books").status_code == 200
        except ReqccError:
            failures += 1
    # 0.2: 20 of 20 failed with ConfigurationError and no token request was sent.
    assert failures == 0
    assert issuer.count == 2  # the first key's fetch, and one fetch that replaced the planted entry
    sent = [b for w in workers for b in w.bearers()]
    assert len(sent) == 20 and set(sent) == {"Bearer tok-2"}


@pytest.fixture
def fake_redis() -> Iterator[Callable[[int], FakeRedis]]:
    servers: list[FakeRedis] = []

    def start(size: int) -> FakeRedis:
        server = FakeRedis(size)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_a_huge_redis_value_is_not_read(
    fake_redis: Callable[[int], FakeRedis], caplog: pytest.LogCaptureFixture
) -> None:
    server = fake_redis(8 * MiB)
    store = RedisTokenStore(url=server.url)
    tracemalloc.start()
    try:
        with caplog.at_level(logging.WARNING, "reqcc"):
            token = store.read("key")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert token is None
    # 0.2 read all 8 MiB (GET) and parsed it: a peak of about four times the value. Now
    # 1 MiB + 1 byte is read (redis-py's buffers: a peak of about three times that).
    assert server.bytes_sent <= MAX_VALUE_SIZE + 1
    assert peak < 5 * MiB
    assert any("over 1048576 bytes" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("size", [2000, MAX_VALUE_SIZE])
def test_a_redis_value_up_to_the_cap_is_read(fake_redis: Callable[[int], FakeRedis], size: int) -> None:
    token = RedisTokenStore(url=fake_redis(size).url).read("key")
    assert token is not None and token.access_token == "big"
    assert len(token.extra["pad"]) == size - len('{"access_token":"big","token_type":"Bearer","pad":""}')


def test_a_value_one_byte_over_the_cap_is_a_miss(fake_redis: Callable[[int], FakeRedis]) -> None:
    assert RedisTokenStore(url=fake_redis(MAX_VALUE_SIZE + 1).url).read("key") is None


def test_a_manager_fetches_its_own_token_over_a_huge_redis_value(
    make_env: Callable[..., Env], fake_redis: Callable[[int], FakeRedis]
) -> None:
    server = fake_redis(4 * MiB)
    env = make_env(token_store=RedisTokenStore(url=server.url))
    assert env.session.get(API + "books").status_code == 200
    assert env.bearers() == ["Bearer tok-1"]
    assert env.issuer.count == 1
    # The token's value read before and after the lease, capped; and the fleet's outage record
    # (this fake answers every key with the huge value), capped at 4 KiB.
    assert server.bytes_sent <= 2 * (MAX_VALUE_SIZE + 1) + 2 * (4096 + 1)
