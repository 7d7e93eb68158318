"""reqcc.testing.FakeClock: the manager's wall and monotonic clocks, moved by hand."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from reqcc import ClientCredentialsManager, ConfigurationError, OAuthToken, ReqccError
from reqcc.testing import FakeClock
from reqcc.testing.clock import DEFAULT_START

from .threads import run_threads


def test_both_clocks_start_at_start_unless_told() -> None:
    assert (FakeClock().time(), FakeClock().monotonic()) == (DEFAULT_START, DEFAULT_START)
    clock = FakeClock(50.0, monotonic_start=7.0)
    assert (clock.time(), clock.monotonic(), clock.now) == (50.0, 7.0, 50.0)


def test_advance_moves_both_and_jump_the_wall_clock_alone() -> None:
    clock = FakeClock(1_000.0, monotonic_start=10.0)
    clock.advance(5)
    assert (clock.time(), clock.monotonic()) == (1_005.0, 15.0)
    clock.jump(-600)
    assert (clock.time(), clock.monotonic()) == (405.0, 15.0)
    clock.jump(+7200)
    assert (clock.time(), clock.monotonic()) == (7_605.0, 15.0)


def test_sleep_records_the_wait_and_lets_the_time_pass() -> None:
    clock = FakeClock(1_000.0, monotonic_start=10.0)
    clock.sleep(1.5)
    clock.sleep(0)
    assert clock.sleeps == [1.5, 0.0]
    assert (clock.time(), clock.monotonic()) == (1_001.5, 11.5)
    clock.sleeps.append(99.0)  # a copy: the record is the clock's
    assert clock.sleeps == [1.5, 0.0]


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, True, "1", None])
def test_time_never_goes_back_and_a_bad_length_is_a_typed_error(bad: Any) -> None:
    clock = FakeClock()
    for move in (clock.advance, clock.sleep):
        with pytest.raises(ConfigurationError):
            move(bad)
    assert (clock.time(), clock.monotonic(), clock.sleeps) == (DEFAULT_START, DEFAULT_START, [])
    if bad == -0.1:
        clock.jump(bad)  # the wall clock alone may go back
        assert clock.time() == DEFAULT_START - 0.1
    else:
        with pytest.raises(ReqccError):
            clock.jump(bad)


@pytest.mark.parametrize("bad", [math.nan, "now", False])
def test_a_bad_start_is_a_typed_error(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="start"):
        FakeClock(bad)
    with pytest.raises(ConfigurationError, match="monotonic_start"):
        FakeClock(monotonic_start=bad)


def test_keywords_drive_a_managers_expiry_on_the_monotonic_clock() -> None:
    clock = FakeClock(monotonic_start=3.0)
    manager = ClientCredentialsManager(
        token_url="https://auth.example.com/token", client_id="c", client_secret="s", **clock.keywords()
    )
    manager.token = OAuthToken("by-hand", expires_in=100)  # 30 s skew: usable for 70 s
    assert manager.token is not None and manager.token.expiry == clock.time() + 100
    clock.jump(+86_400)  # a wall-clock step changes nothing
    assert manager.is_valid(manager.token)
    clock.advance(69.9)
    assert manager.is_valid(manager.token)
    clock.advance(0.1)
    assert not manager.is_valid(manager.token)


class _Yielding(float):
    """A reading whose addition lets other threads run: a lost update shows every time."""

    def __add__(self, other: Any) -> _Yielding:
        time.sleep(0)  # gives up the GIL mid read-modify-write
        return _Yielding(float(self) + other)


def test_concurrent_moves_all_count() -> None:
    clock = FakeClock(0.0, monotonic_start=0.0)
    clock._now = (_Yielding(0.0), _Yielding(0.0))

    def move(i: int) -> None:
        for _ in range(200):
            if i % 2:
                clock.advance(1)
            else:
                clock.sleep(1)

    run_threads(move, 8)
    assert (clock.time(), clock.monotonic()) == (1_600.0, 1_600.0)
    assert len(clock.sleeps) == 800


def test_repr_shows_both_readings() -> None:
    assert repr(FakeClock(5.0, monotonic_start=2.0)) == "FakeClock(time=5.0, monotonic=2.0)"
