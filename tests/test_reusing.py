"""The reusing source (reqcc/reusing.py) on its own, in front of a scripted token source.

No manager, no HTTP: a source that counts how often it is asked and hands out ``tok-1``,
``tok-2``, … The manager's own behaviour (the same code, at the head of its chain) is
tested through the manager everywhere else.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from reqcc import ClientCredentialsManager, OAuthToken, TokenResponseError
from reqcc.reusing import ReusingSource
from reqcc.token_source import Obtained

from .conftest import FakeClock
from .threads import JOIN, Crowd, wait_until


class ScriptedSource:
    """A token source: ``tok-N`` for the N-th call (lifetime ``expires_in``), or ``error``."""

    def __init__(self, clock: FakeClock, *, expires_in: int = 100, fresh: bool = True) -> None:
        self.clock = clock
        self.expires_in = expires_in
        self.fresh = fresh
        self.calls = 0
        self.error: Exception | None = None
        self.gate: threading.Event | None = None
        self.retries: list[bool] = []

    def token(self, deadline: float | None, *, retries: bool = True) -> Obtained:
        self.calls += 1
        self.retries.append(retries)
        if self.gate is not None:
            assert self.gate.wait(JOIN)
        if self.error is not None:
            raise self.error
        token = OAuthToken(
            f"tok-{self.calls}", expires_in=self.expires_in, expiry=self.clock.time() + self.expires_in
        )
        return Obtained(token, self.fresh)


def reusing(source: ScriptedSource, clock: FakeClock, **overrides: Any) -> ReusingSource:
    options: dict[str, Any] = {
        "clock_skew": 0.0,
        "refresh_ahead": 0.0,
        "renews_ahead": True,
        "token_deadline": 30.0,
        "failure_backoff": 1.0,
        "max_failure_backoff": 60.0,
        "probe_interval": 1.0,
        "clock": clock.time,
        "monotonic": clock.monotonic,
        "on_token_update": None,
        "waited": lambda seconds: None,
        "peek": None,
        "waiting_for": lambda: "the scripted source",
    }
    options.update(overrides)
    return ReusingSource(source, **options)


def test_the_token_is_reused_until_it_expires(clock: FakeClock) -> None:
    source = ScriptedSource(clock)
    tokens = reusing(source, clock)
    first = tokens.get_token()
    clock.advance(99)
    assert tokens.get_token() is first and tokens.usable_token() is first
    assert source.calls == 1
    clock.advance(1)  # expired: the next caller asks the source again
    assert tokens.usable_token() is None
    assert tokens.get_token().access_token == "tok-2" and source.calls == 2


def test_threads_without_a_token_ask_the_source_once(clock: FakeClock) -> None:
    source = ScriptedSource(clock)
    source.gate = threading.Event()
    tokens = reusing(source, clock)
    crowd = Crowd(8, lambda i: tokens.get_token())
    threading.Timer(0.2, source.gate.set).start()  # the others join the first one's flight meanwhile
    results = crowd.join()
    assert source.calls == 1
    assert {r.access_token for r in results} == {"tok-1"}


def test_on_token_update_is_told_of_fresh_tokens_only(clock: FakeClock) -> None:
    # A source says whether this process obtained the token (a store source's token read
    # from the store is not fresh): on_token_update fires for fresh ones only (item 5).
    updates: list[str] = []
    stored = ScriptedSource(clock, fresh=False)
    reusing(stored, clock, on_token_update=lambda t: updates.append(t.access_token)).get_token()
    assert stored.calls == 1 and updates == []
    fetched = ScriptedSource(clock)
    reusing(fetched, clock, on_token_update=lambda t: updates.append(t.access_token)).get_token()
    assert updates == ["tok-1"]


def test_after_a_failure_the_next_ask_is_a_probe_and_callers_in_between_get_the_error(
    clock: FakeClock,
) -> None:
    source = ScriptedSource(clock)
    source.error = TokenResponseError("HTTP 503")
    tokens = reusing(source, clock)
    with pytest.raises(TokenResponseError):
        tokens.get_token()
    with pytest.raises(TokenResponseError):
        tokens.get_token()  # the probe is not due: the last error again, the source not asked
    assert source.calls == 1
    clock.advance(1.3)  # past the jittered probe interval (at most 1.2 s)
    source.error = None
    assert tokens.get_token().access_token == "tok-2"
    assert source.retries == [True, False]  # the probe of a failing source is not retried


def test_a_token_in_its_renewal_window_is_renewed_by_the_source_in_the_background(
    clock: FakeClock,
) -> None:
    source = ScriptedSource(clock)
    tokens = reusing(source, clock, refresh_ahead=0.2)
    first = tokens.get_token()
    clock.advance(85)  # the last 20 s are its renewal window
    assert tokens.get_token() is first  # still handed out while the renewal runs
    # get_token() started the renewal (nothing else is called until it has landed).
    assert wait_until(lambda: source.calls == 2 and tokens._flight is None), "no renewal"
    assert tokens.get_token().access_token == "tok-2" and source.calls == 2
    # Not renewed ahead when the source does not want it (a token_provider's tokens).
    provider_like = ScriptedSource(clock)
    held = reusing(provider_like, clock, refresh_ahead=0.2, renews_ahead=False)
    token = held.get_token()
    clock.advance(85)
    assert held.get_token() is token and provider_like.calls == 1


def test_the_manager_is_the_reusing_source_at_the_head_of_its_chain() -> None:
    # No mixins: one base, which works alone (the tests above), under the public API.
    assert ClientCredentialsManager.__mro__ == (ClientCredentialsManager, ReusingSource, object)


def test_the_manager_keeps_its_attributes_inline_for_the_fast_path(clock: FakeClock, tmp_path: Any) -> None:
    # CPython (3.11+) keeps an instance's attributes inline, read by get_token() as one
    # indexed load, only while the instance has at most 30 of them; past that, the read of
    # ``self._current`` on the warm path is a dict look-up (measured: +6% instructions per
    # get_token() with 32 attributes). The manager and its reusing source share one instance.
    import requests_mock

    from reqcc.stores import FileTokenStore

    from .conftest import manager_kwargs

    store = FileTokenStore(tmp_path / "tokens.json", clock=clock.time)
    for extra in ({}, {"token_store": store}, {"token_provider": lambda last, manager: None}):
        manager = ClientCredentialsManager(**manager_kwargs(clock, requests_mock.Adapter(), **extra))
        assert len(vars(manager)) <= 30, sorted(vars(manager))
