"""Renewal ahead of expiry (reqcc.reusing): none for a token already replaced (contract item 12).

A request reads the token in use, finds it in its renewal window and asks for a renewal;
if another thread replaced that token in between (a 401's fetch, a store's newer token,
``manager.token = ...``), renewing would fetch a token nobody needs. The race is made exact
with the injected ``monotonic`` clock, which the fast path reads after it has read the
token in use: the clock replaces the token at that moment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from reqcc import OAuthToken
from reqcc.testing import FakeClock

from .conftest import Env
from .threads import JOIN, wait_until

REFRESH_THREAD = "reqcc-token-refresh"


class ReplacingClock:
    """``clock``'s monotonic reading that, once armed, runs ``action`` at its next reading (once)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.action: Callable[[], None] | None = None
        self.fired = False

    def __call__(self) -> float:
        action, self.action = self.action, None
        if action is not None:
            action()
            self.fired = True
        return self.clock.monotonic()


def renewed(env: Env, count: int) -> bool:
    """Whether exactly ``count`` token requests arrived once every background renewal ended."""
    if count:
        assert wait_until(lambda: env.issuer.count >= count), "no renewal reached the token endpoint"
    for thread in [t for t in threading.enumerate() if t.name == REFRESH_THREAD]:
        thread.join(JOIN)
        assert not thread.is_alive(), "background renewal still running: deadlock"
    return env.issuer.count == count


def setup(make_env: Callable[..., Env], clock: FakeClock) -> tuple[Env, ReplacingClock]:
    mono = ReplacingClock(clock)
    env = make_env(refresh_ahead=0.2, clock_skew=0, monotonic=mono)
    env.manager.token = OAuthToken(access_token="old", token_type="Bearer", expires_in=100,
                                   expiry=clock.now + 100)
    clock.advance(90)  # the last 20 s are its renewal window: 10 s left
    return env, mono


def test_a_token_replaced_after_it_was_read_is_not_renewed(make_env: Any, clock: FakeClock) -> None:
    env, mono = setup(make_env, clock)

    def replace() -> None:
        env.manager.token = OAuthToken(access_token="new", token_type="Bearer", expires_in=3600,
                                       expiry=clock.now + 3600)

    mono.action = replace
    # This call read "old" (in its window) before the clock replaced it with "new".
    assert env.manager.get_token().access_token == "old"
    assert mono.fired
    assert renewed(env, 0), "a renewal was started for a token already replaced"
    assert env.manager.get_token().access_token == "new"
    assert renewed(env, 0)


def test_a_token_still_in_use_is_renewed(make_env: Any, clock: FakeClock) -> None:
    # For contrast: the same moment without the replacement starts one renewal.
    env, _ = setup(make_env, clock)
    assert env.manager.get_token().access_token == "old"
    assert renewed(env, 1)
    assert env.manager.get_token().access_token == "tok-1"
