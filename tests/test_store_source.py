"""The store source (reqcc/store_source.py): a token store read before the source it wraps.

Through its one method, ``token(deadline, *, retries)``, in front of the scripted source of
tests/test_reusing.py and a real :class:`~reqcc.stores.FileTokenStore`. Fleets, leases and
outages through a store are tests/test_stores.py's and tests/test_fleet_outage.py's.
"""

from __future__ import annotations

from pathlib import Path

import requests_mock

from reqcc import ClientCredentialsManager, OAuthToken
from reqcc.store_source import StoreSource
from reqcc.stores import FileTokenStore
from reqcc.stores._shared import SharedTokens

from .conftest import FakeClock, manager_kwargs
from .test_reusing import ScriptedSource


def store_source(
    clock: FakeClock, tmp_path: Path, inner: ScriptedSource, *, dpop: bool = False
) -> tuple[StoreSource, FileTokenStore]:
    store = FileTokenStore(tmp_path / "tokens.json", clock=clock.time)
    shared = SharedTokens(store, "the-key", monotonic=clock.monotonic, sleep=clock.sleep, clock=clock.time)
    manager = ClientCredentialsManager(**manager_kwargs(clock, requests_mock.Adapter()))
    source = StoreSource(
        inner, manager._endpoints, store, shared, scopes=(), acceptable=lambda token: True,
        probe_delay=lambda exc: 1.0, dpop=dpop, held=lambda: None, monotonic=clock.monotonic,
        sleep=clock.sleep, clock=clock.time,
    )
    return source, store


def test_the_store_source_hands_out_a_stored_token_without_asking_the_source_it_wraps(
    clock: FakeClock, tmp_path: Path
) -> None:
    inner = ScriptedSource(clock)
    source, store = store_source(clock, tmp_path, inner)
    stored = OAuthToken("stored-1", expiry=clock.time() + 100)
    store.write("the-key", stored)
    obtained = source.token(clock.monotonic() + 30)
    assert obtained.token.access_token == "stored-1" and not obtained.fresh  # another process's
    assert inner.calls == 0


def test_the_store_source_asks_the_source_it_wraps_and_stores_its_token(
    clock: FakeClock, tmp_path: Path
) -> None:
    inner = ScriptedSource(clock)
    source, store = store_source(clock, tmp_path, inner, dpop=True)
    store.write("the-key", OAuthToken("bearer-1", expiry=clock.time() + 100))  # wrong type: a miss
    obtained = source.token(clock.monotonic() + 30)
    assert obtained.token.access_token == "tok-1" and obtained.fresh
    assert inner.calls == 1
    written = store.read("the-key")
    assert written is not None and written.access_token == "tok-1"
