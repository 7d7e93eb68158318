"""RedisTokenStore against a real redis-server started on a free 127.0.0.1 port.

Skipped, with the reason, when the ``redis-server`` binary (Debian/Ubuntu: ``apt-get
install redis-server``) or redis-py (``pip install 'reqcc[redis]'``) is missing.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reqcc import ClientCredentialsManager, ClientCredentialsSession, ConfigurationError, OAuthToken
from reqcc.stores import RedisTokenStore, TokenStore
from tests.redis_server import RedisServer, running_redis
from tests.store_workers import run_fleet, run_killed_holder
from tests.token_server import TokenServer

redis = pytest.importorskip("redis", reason="redis-py is not installed: pip install 'reqcc[redis]'")

SECRET = "redis-s3cret value"

# The fleet tests fork on purpose (gunicorn and Celery fork their workers); Python 3.12+
# warns that the test process has threads (the token server's) when it forks.
pytestmark = pytest.mark.filterwarnings("ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
def server() -> Iterator[TokenServer]:
    with TokenServer() as srv:
        yield srv


@pytest.fixture
def prefix() -> str:
    return f"reqcc-test-{uuid.uuid4().hex[:8]}:"


def manager(server: TokenServer, store: TokenStore, **kwargs: Any) -> ClientCredentialsManager:
    options: dict[str, Any] = {
        "token_url": server.token_url,
        "client_id": "client-1",
        "client_secret": SECRET,
        "scopes": ["books.read"],
        "token_store": store,
    }
    options.update(kwargs)
    return ClientCredentialsManager(**options)


# -- the store on its own --------------------------------------------------------------


def test_round_trip_with_a_ttl_of_the_remaining_lifetime(redis_server: RedisServer, prefix: str) -> None:
    store = RedisTokenStore(url=redis_server.url, prefix=prefix)
    assert isinstance(store, TokenStore)
    assert store.read("k") is None
    token = OAuthToken("abc", expires_in=120, expiry=time.time() + 100, scope="books.read")
    store.write("k", token)
    assert store.read("k") == token
    client = redis.Redis.from_url(redis_server.url)
    ttl = client.pttl(f"{prefix}token:k")
    assert 90_000 < ttl <= 100_000
    store.write("forever", OAuthToken("def"))
    assert client.pttl(f"{prefix}token:forever") == -1  # no expiry: no TTL
    store.write("gone", OAuthToken("x", expires_in=1, expiry=time.time() - 1))
    assert client.get(f"{prefix}token:gone") is None  # already expired: not stored


def test_works_with_a_client_given_by_the_user_decoding_responses(
    redis_server: RedisServer, prefix: str
) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    store = RedisTokenStore(client, prefix=prefix)
    store.write("k", OAuthToken("abc"))
    assert store.read("k") == OAuthToken("abc")
    holder = store.acquire_lease("k")
    assert holder is not None and store.acquire_lease("k") is None
    store.release_lease("k", holder)
    assert store.acquire_lease("k") is not None


def test_a_short_value_that_is_not_utf8_is_not_called_huge(
    redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    redis.Redis.from_url(redis_server.url).set(f"{prefix}token:k", b"\xff\xfe garbage")
    with caplog.at_level(logging.WARNING, "reqcc"):
        assert RedisTokenStore(client, prefix=prefix).read("k") is None
    assert "or not UTF-8" in caplog.text  # a 12-byte value: 'over 1 MiB' alone sent people looking


def test_lease_is_set_nx_px_and_release_checks_the_holder(redis_server: RedisServer, prefix: str) -> None:
    store = RedisTokenStore(url=redis_server.url, prefix=prefix, lease_timeout=3)
    client = redis.Redis.from_url(redis_server.url)
    first = store.acquire_lease("k")
    assert first is not None
    assert 0 < client.pttl(f"{prefix}lease:k") <= 3000  # runs out by itself
    assert store.acquire_lease("k") is None
    client.delete(f"{prefix}lease:k")  # as if it had run out
    second = store.acquire_lease("k")
    assert second is not None
    store.release_lease("k", first)  # a late first holder cannot release the second's lease
    assert store.acquire_lease("k") is None
    store.release_lease("k", second)
    assert store.acquire_lease("k") is not None


def test_corrupt_value_reads_as_none(
    redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisTokenStore(url=redis_server.url, prefix=prefix)
    client = redis.Redis.from_url(redis_server.url)
    client.set(f"{prefix}token:k", b"\xff not json")
    client.set(f"{prefix}token:j", json.dumps({"token_type": "Bearer"}))
    client.set(f"{prefix}token:deep", "[" * 500_000)  # within the 1 MiB: was a RecursionError
    with caplog.at_level(logging.WARNING, "reqcc"):
        assert store.read("k") is None
        assert store.read("j") is None
        assert store.read("deep") is None
    assert caplog.text.count("not a token") == 3


def test_a_deeply_nested_value_is_a_miss_not_a_store_failure(
    redis_server: RedisServer, server: TokenServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisTokenStore(url=redis_server.url, prefix=prefix)
    manager(server, store).get_token()
    (key,) = redis.Redis.from_url(redis_server.url).keys(f"{prefix}token:*")
    redis.Redis.from_url(redis_server.url).set(key, "[" * 300_000)
    with caplog.at_level(logging.WARNING, "reqcc"):
        second = manager(server, store)
        second.get_token()
    assert server.token_requests == 2
    assert "failed" not in caplog.text  # a corrupt entry, not a broken store backed off for 1 s
    assert store.read(key.decode().rpartition(":")[2]) == second.token  # replaced by the new fetch


def test_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="exactly one"):
        RedisTokenStore()
    with pytest.raises(ConfigurationError, match="lease_timeout"):
        RedisTokenStore(url="redis://127.0.0.1:1/0", lease_timeout=-1)


def test_repr_hides_the_password() -> None:
    store = RedisTokenStore(url="redis://:hunter2pass@127.0.0.1:6390/2")
    assert "hunter2pass" not in repr(store)
    assert "127.0.0.1:6390/2" in repr(store)


# -- managers sharing it ------------------------------------------------------------------


def test_managers_share_one_token_and_secrets_are_not_stored(
    redis_server: RedisServer, server: TokenServer, prefix: str
) -> None:
    store = RedisTokenStore(url=redis_server.url, prefix=prefix)
    a, b = manager(server, store), manager(server, store)
    token = a.get_token()
    assert b.get_token() == token
    assert server.token_requests == 1
    client = redis.Redis.from_url(redis_server.url)
    keys = client.keys(f"{prefix}*")
    assert len(keys) == 1  # the token; the lease was released
    assert SECRET.encode() not in b"".join(keys) + client.get(keys[0])


def test_token_under_another_key_and_expired_token(
    redis_server: RedisServer, server: TokenServer, prefix: str
) -> None:
    store = RedisTokenStore(url=redis_server.url, prefix=prefix)
    theirs = manager(server, store, client_id="another").get_token()
    ours = manager(server, store).get_token()
    assert ours != theirs and server.token_requests == 2
    assert manager(server, store, client_id="another").get_token() == theirs
    # An expired token left in the store (say, by a process with a wrong clock) is replaced.
    key = manager(server, store)._store.shared.key  # type: ignore[union-attr]
    redis.Redis.from_url(redis_server.url).set(
        f"{prefix}token:{key}", json.dumps({"access_token": "stale", "expiry": time.time() - 5})
    )
    fresh = manager(server, store).get_token()
    assert fresh.access_token != "stale" and server.token_requests == 3


def test_redis_stopped_mid_run_never_fails_a_request(
    redis_server: RedisServer, server: TokenServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    def session() -> ClientCredentialsSession:
        return ClientCredentialsSession(
            token_url=server.token_url, client_id="c", client_secret=SECRET, base_url=server.base_url,
            token_store=RedisTokenStore(url=redis_server.url, prefix=prefix, socket_timeout=0.5),
        )

    first = session()
    assert first.get(server.api_url + "books").status_code == 200
    assert server.token_requests == 1
    redis_server.stop()
    with caplog.at_level(logging.WARNING, "reqcc"):
        second = session()  # a new process while Redis is down: fetches for itself
        assert second.get(server.api_url + "books").status_code == 200
        assert first.get(server.api_url + "books").status_code == 200
    assert server.token_requests == 2
    assert "ConnectionError" in caplog.text and "fetching tokens in this process" in caplog.text
    assert SECRET not in caplog.text
    for s in (first, second):
        token = s.manager.token
        assert token is not None and token.access_token not in caplog.text
    redis_server.start()  # back, empty (no persistence)
    third = session()
    assert third.get(server.api_url + "books").status_code == 200
    fourth = session()
    assert fourth.get(server.api_url + "books").status_code == 200
    assert server.token_requests == 3  # the third stored its token; the fourth read it
    assert fourth.manager.token == third.manager.token


# -- many processes -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_eight_processes_cold_start_one_token_request_redis_store(
    redis_server: RedisServer, server: TokenServer, prefix: str, method: str
) -> None:
    server.delay = 0.1
    results = run_fleet(method, ("redis", redis_server.url, prefix, 10.0), server)
    assert [r[1] for r in results] == [200] * 8, results
    assert len({r[2] for r in results}) == 1
    assert sum(r[3] for r in results) == 1
    assert server.token_requests == 1
    assert server.api_requests == 8


def test_lease_holder_killed_mid_fetch_redis_store(
    redis_server: RedisServer, server: TokenServer, prefix: str
) -> None:
    results, _elapsed = run_killed_holder(("redis", redis_server.url, prefix, 1.0), server)
    assert [r[1] for r in results] == [200] * 4, results
    assert len({r[2] for r in results}) == 1
    assert server.token_requests == 2
