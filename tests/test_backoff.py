"""reqcc's one backoff (reqcc/backoff.py): its two regimes, and the token store's use of it."""

from __future__ import annotations

import random
from typing import Any

import pytest

from reqcc import OAuthToken, TokenResponseError
from reqcc.backoff import FailureBackoff
from reqcc.stores._shared import SharedTokens

from .conftest import FakeClock


class FixedRandom(random.Random):
    """A jitter that always draws ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


def backoff(clock: FakeClock, draw: float = 1.0, **kwargs: Any) -> FailureBackoff:
    kwargs.setdefault("probe_interval", 1.0)
    return FailureBackoff(1.0, 60.0, monotonic=clock, rng=FixedRandom(draw), **kwargs)


def failure(retry_after: float | None = None) -> TokenResponseError:
    return TokenResponseError("HTTP 503", retry_after=retry_after)


# -- the two regimes (contract item 27) ------------------------------------------------------


def test_holding_a_token_the_wait_doubles_and_without_one_it_stays_at_the_probe_interval(
    clock: FakeClock,
) -> None:
    schedule = backoff(clock, draw=1.0)  # no jitter: the longest of each range
    retries, probes = [], []
    for _ in range(8):
        schedule.record(failure())
        retries.append(schedule.next_attempt(holding=True) - clock.now)
        probes.append(schedule.next_attempt(holding=False) - clock.now)
    assert retries == [1, 2, 4, 8, 16, 32, 60, 60]
    assert probes == [pytest.approx(1.2)] * 8


@pytest.mark.parametrize(("draw", "probe"), [(0.0, 0.8), (0.5, 1.0), (1.0, 1.2)])
def test_the_probe_interval_is_jittered_by_20_percent(clock: FakeClock, draw: float, probe: float) -> None:
    schedule = backoff(clock, draw=draw)
    schedule.record(failure())
    assert schedule.probe_at - clock.now == pytest.approx(probe)


def test_between_probes_the_last_error_is_raised_at_once_marked_as_a_repeat(clock: FakeClock) -> None:
    schedule = backoff(clock, draw=0.5)
    error = failure()
    schedule.record(error)
    clock.advance(0.99)
    repeat = r"^token request failed 1\.0s ago; next attempt in 0\.0s"
    with pytest.raises(TokenResponseError, match=repeat) as info:
        schedule.check(clock.now)
    assert info.value.__cause__ is error
    clock.advance(0.01)
    schedule.check(clock.now)  # due: no error


@pytest.mark.parametrize("holding", [True, False])
def test_retry_after_wins_and_is_capped_at_the_maximum_in_both_regimes(
    clock: FakeClock, holding: bool
) -> None:
    schedule = backoff(clock)
    schedule.record(failure(retry_after=7))
    assert schedule.next_attempt(holding=holding) - clock.now == 7
    schedule.reset()
    schedule.record(failure(retry_after=86400))  # a day: capped at max_failure_backoff
    clock.advance(59.9)
    with pytest.raises(TokenResponseError):
        schedule.check(clock.now, holding=holding)
    clock.advance(0.1)
    schedule.check(clock.now, holding=holding)  # an hour later would be too late: now


def test_success_forgets_the_failures(clock: FakeClock) -> None:
    schedule = backoff(clock)
    for _ in range(5):
        schedule.record(failure())
    assert schedule.failing
    schedule.reset()
    assert not schedule.failing and schedule.failures == 0
    schedule.check(clock.now)
    schedule.record(failure())
    assert schedule.next_attempt(holding=True) - clock.now == 1.0  # the doubling starts over


# -- the token store's backoff is the same mechanism ---------------------------------------


class BrokenStore:
    """A store whose every call fails like an unreachable Redis; counts the calls."""

    lease_timeout = 10.0
    poll_interval = 0.05

    def __init__(self) -> None:
        self.calls = 0

    def _fail(self) -> Any:
        self.calls += 1
        raise OSError(111, "Connection refused")

    def read(self, key: str) -> OAuthToken | None:
        return self._fail()  # type: ignore[no-any-return]

    def write(self, key: str, token: OAuthToken) -> None:
        self._fail()

    def acquire_lease(self, key: str) -> str | None:
        return self._fail()  # type: ignore[no-any-return]

    def release_lease(self, key: str, holder: str) -> None:
        self._fail()


@pytest.mark.parametrize(
    ("draw", "waits"), [(0.0, [0.5, 1, 2, 4, 8, 15, 15]), (1.0, [1, 2, 4, 8, 16, 30, 30])]
)
def test_a_failing_store_is_left_alone_for_a_doubling_jittered_backoff(
    clock: FakeClock, draw: float, waits: list[float]
) -> None:
    store = BrokenStore()
    shared = SharedTokens(store, "k", monotonic=clock, sleep=clock.sleep, clock=clock)
    shared._backoff._random = FixedRandom(draw)
    token = OAuthToken("tok-1", expires_in=3600)
    for wait in waits:
        calls = store.calls
        assert shared.obtain(lambda retries: token, lambda t: True) == (token, True)
        assert store.calls == calls + 1  # the store was tried, failed: fetched here
        clock.advance(wait - 0.01)
        assert shared.obtain(lambda retries: token, lambda t: True) == (token, True)
        assert store.calls == calls + 1  # left alone during its backoff
        clock.advance(0.01)


def test_a_forked_child_jitters_its_store_backoff_on_its_own(clock: FakeClock, tmp_path: Any) -> None:
    import requests_mock

    from reqcc import ClientCredentialsManager
    from reqcc.stores import FileTokenStore

    from .conftest import manager_kwargs

    store = FileTokenStore(tmp_path / "tokens.json", clock=clock)
    manager = ClientCredentialsManager(**manager_kwargs(clock, requests_mock.Adapter(), token_store=store))
    shared = manager._store.shared  # type: ignore[union-attr]
    assert shared is not None
    state = shared._backoff._random.getstate()
    # The store step registers its own reset with the fork registry, which a forked child runs.
    from reqcc import fork_safety

    [reset] = [function for ref, function in fork_safety._resets.values() if ref() is shared]
    reset(shared)
    assert shared._backoff._random.getstate() != state  # not in lockstep with its siblings
