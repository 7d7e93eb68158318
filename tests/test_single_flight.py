"""The single flight and its failure backoff (reqcc/single_flight.py), in isolation.

Real threads where threads matter; the monotonic clock is a number the test moves.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
import requests
import requests_mock

from reqcc import ClientCredentialsManager, OAuthToken, TokenDeadlineError, TokenResponseError
from reqcc.single_flight import FailureBackoff, SingleFlight

from .conftest import TOKEN_URL, FakeClock, manager_kwargs
from .threads import JOIN


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


# -- the two regimes (DESIGN item 27) ------------------------------------------------------


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


# -- the threads that wait for a flight -----------------------------------------------------


def test_each_waiter_gets_a_copy_of_the_error_with_its_cause(clock: FakeClock) -> None:
    # The network failure reqcc raises keeps its cause (the socket error): so does every
    # waiter's own copy of it.
    cause = OSError("connection reset by peer")
    error = requests.ConnectionError("token endpoint unreachable")
    error.__cause__ = cause
    release = threading.Event()

    def answer(request: Any, context: Any) -> str:
        assert release.wait(JOIN)
        raise error

    auth = requests_mock.Adapter()
    auth.register_uri("POST", TOKEN_URL, text=answer)
    manager = ClientCredentialsManager(**manager_kwargs(clock, auth, max_retries=0))
    raised: list[BaseException] = []

    def call() -> None:
        try:
            manager.get_token()
        except BaseException as exc:  # what the caller got is the subject
            raised.append(exc)

    flights = manager._flights
    joined = threading.Semaphore(0)
    original_wait = flights.wait

    def counting_wait(flight: Any, *, leader: bool) -> OAuthToken:
        if not leader:
            joined.release()
        return original_wait(flight, leader=leader)

    flights.wait = counting_wait  # type: ignore[method-assign]
    threads = [threading.Thread(target=call, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(3):  # every thread but the leader waits on the leader's flight
        assert joined.acquire(timeout=JOIN)
    release.set()
    for thread in threads:
        thread.join(JOIN)
    assert len(raised) == 4 and auth.call_count == 1
    assert sum(e is error for e in raised) == 1  # the leader raises the error itself
    copies = [e for e in raised if e is not error]
    assert len(copies) == 3  # the waiters each raise a copy of it ...
    for copy_ in copies:
        assert type(copy_) is requests.ConnectionError and str(copy_) == str(error)
        assert copy_.__cause__ is cause  # ... that keeps its cause


def test_a_waiter_whose_flight_ends_at_the_deadline_gets_its_token(clock: FakeClock) -> None:
    # The waiter finds the deadline reached at the very moment the flight ends: it is over,
    # so it gets the token, not a TokenDeadlineError.
    schedule = backoff(clock)
    flights = SingleFlight(schedule, deadline=5.0, monotonic=lambda: reading())
    token = OAuthToken("tok-1", expires_in=60)
    flight, leader = flights.join(clock.now)
    assert leader

    def reading() -> float:
        if clock.now >= flight.deadline:  # type: ignore[operator]
            flight.finish(token, None)  # the leader lands it as the clock strikes
        return clock.now

    clock.advance(5.0)
    assert flights.wait(flight, leader=False) is token


def test_a_waiter_whose_flight_outlives_the_deadline_gets_a_deadline_error(clock: FakeClock) -> None:
    schedule = backoff(clock)
    flights = SingleFlight(schedule, deadline=5.0, monotonic=clock)
    flight, _ = flights.join(clock.now)
    clock.advance(5.0)
    with pytest.raises(TokenDeadlineError):
        flights.wait(flight, leader=False)
    assert flights.flight is None  # the next caller starts a new flight
