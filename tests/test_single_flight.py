"""The single flight and its failure backoff (reqcc/single_flight.py), in isolation.

Real threads where threads matter; the monotonic clock is a number the test moves.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests
import requests_mock

from reqcc import ClientCredentialsManager, OAuthToken, TokenDeadlineError
from reqcc.single_flight import SingleFlight

from .conftest import TOKEN_URL, FakeClock, manager_kwargs
from .test_backoff import backoff
from .threads import JOIN

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
