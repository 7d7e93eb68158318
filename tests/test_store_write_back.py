"""A token obtained while the token store failed is written back when the store answers again.

Managers in this process stand for the processes of a fleet (one fake clock, so every count
is exact), as in tests/test_fleet_outage.py: the holder fetches while the store fails (a
file store that fails like a full disk, or a real redis-server stopped and started again,
its data lost), the token endpoint then fails, and the rest of the fleet must still find
the holder's token in the store, never a token there replaced by an older one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reqcc import ClientCredentialsManager, TokenResponseError
from reqcc.stores import RedisTokenStore, TokenStore

from .conftest import FakeClock, manager_kwargs
from .redis_server import RedisServer, running_redis
from .test_fleet_outage import Endpoint
from .test_stores import LEAD, FlakyStore
from .threads import Crowd, wait_until

#: Threads asking one manager for a token at once.
THREADS = 8


def renewing(clock: FakeClock, endpoint: Endpoint, store: TokenStore) -> ClientCredentialsManager:
    """A process of the fleet: renews its token in the background from half its lifetime."""
    return ClientCredentialsManager(
        **manager_kwargs(clock, endpoint.adapter, token_store=store, max_retries=0, refresh_ahead=0.5)
    )


def renew_in_background(manager: ClientCredentialsManager, clock: FakeClock, advance: float = 1800) -> Any:
    """Move ``advance`` seconds on, into ``manager``'s renewal window, and wait for its renewal to end.

    Tokens last 3600 s and are renewed from 1770 s (skew 30 s); by then the store's backoff
    after its failure is long over.
    """
    clock.advance(advance)
    token = manager.get_token()  # the held token; the renewal runs in a thread of its own
    assert wait_until(lambda: manager._flight is None), "the background renewal did not end"
    return token


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path) as server:
        yield server


def test_a_token_fetched_while_the_store_failed_is_written_back_for_the_fleet(tmp_path: Path) -> None:
    clock = FakeClock()
    endpoint = Endpoint()
    store = FlakyStore(tmp_path / "tokens.json", clock)
    holder, other = renewing(clock, endpoint, store), renewing(clock, endpoint, store)
    store.broken = True
    token = holder.get_token()  # fetched; the store fails, so it is not written
    assert endpoint.requests == 1 and store.inner.read(store.key) is None
    store.broken = False
    endpoint.down = True
    assert renew_in_background(holder, clock) == token
    # The renewal's first store call wrote the held token back, then its probe failed.
    assert endpoint.requests == 2
    assert store.inner.read(store.key) == token
    # The rest of the fleet takes it up instead of failing (or fetching its own).
    assert Crowd(THREADS, lambda i: other.get_token()).join() == [token] * THREADS
    assert endpoint.requests == 2


def test_a_token_written_back_never_replaces_a_newer_one(tmp_path: Path) -> None:
    clock = FakeClock()
    endpoint = Endpoint()
    store = FlakyStore(tmp_path / "tokens.json", clock)
    holder, other = renewing(clock, endpoint, store), renewing(clock, endpoint, store)
    store.broken = True
    old = holder.get_token()  # not written: the store fails
    store.broken = False
    clock.advance(10)
    newer = other.get_token()  # another process fetched once the store answered again: stored
    assert endpoint.requests == 2 and store.inner.read(store.key) == newer
    endpoint.down = True
    assert renew_in_background(holder, clock) == old
    assert endpoint.requests == 3  # the holder's renewal probed (``newer`` is due for renewal too)
    assert store.inner.read(store.key) == newer  # not replaced by the older token


def test_a_token_written_back_to_a_restarted_redis_keeps_the_fleets_outage_record(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    endpoint = Endpoint()
    store = RedisTokenStore(
        url=redis_server.url, prefix=f"reqcc-test-{uuid.uuid4().hex[:8]}:", clock=clock, socket_timeout=1.0
    )
    holder, prober, newcomer = (renewing(clock, endpoint, store) for _ in range(3))
    key = holder._store.shared.key  # type: ignore[union-attr]
    redis_server.stop()
    token = holder.get_token()  # Redis is down: fetched, not written
    redis_server.start()  # back, on the same port, empty
    assert endpoint.requests == 1 and store.read(key) is None
    endpoint.down = True
    clock.advance(1800)
    with pytest.raises(TokenResponseError):
        prober.get_token()  # probes, fails, tells the fleet when to probe next
    outage = store.read_outage(key)
    assert endpoint.requests == 2 and outage is not None
    assert renew_in_background(holder, clock, advance=0) == token
    # Written back, and the outage record kept: the fleet still probes once an interval.
    assert store.read(key) == token and store.read_outage(key) == outage
    assert endpoint.requests == 2  # the holder's renewal found the next probe not due
    assert prober.get_token() == token  # it looks in the store instead of repeating its failure
    assert Crowd(THREADS, lambda i: newcomer.get_token()).join() == [token] * THREADS
    assert endpoint.requests == 2


def test_a_token_run_out_is_not_written_back(tmp_path: Path) -> None:
    clock = FakeClock()
    endpoint = Endpoint()
    store = FlakyStore(tmp_path / "tokens.json", clock)
    holder = renewing(clock, endpoint, store)
    store.broken = True
    holder.get_token()  # not written: the store fails
    store.broken = False
    clock.advance(3600)  # its real expiry: nothing worth sharing any more
    store.calls.clear()
    fresh = holder.get_token()
    assert store.calls == LEAD  # no write-back before the usual lead
    assert endpoint.requests == 2 and store.inner.read(store.key) == fresh
    # A token retired by a 401 is not written back either: tests/test_stores.py's
    # test_broken_store_falls_back_to_fetching_and_is_retried_after_a_backoff counts the calls.
