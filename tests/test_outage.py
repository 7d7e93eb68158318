"""Outages of the token endpoint, in one process: the two regimes and static stability.

contract items 27 and 28. The token endpoint is a ``requests_mock.Adapter`` mounted on the
manager's token session; the wall clock, the monotonic clock and the retry waits are one
:class:`~tests.conftest.FakeClock`. Every count is exact: each HTTP token request is one
call of the mock. Background renewals are real threads, joined before anything is counted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests
import requests_mock

from reqcc import ClientCredentialsManager, OAuthToken, TokenResponseError

from .conftest import FakeClock, TokenIssuer, manager_kwargs
from .threads import JOIN, Crowd

REFRESH_THREAD = "reqcc-token-refresh"
BUSY = {"status_code": 503, "text": "busy"}
CACHED_MARK = "token request failed"


def join_renewals() -> None:
    for thread in [t for t in threading.enumerate() if t.name == REFRESH_THREAD]:
        thread.join(JOIN)
        assert not thread.is_alive(), "background renewal still running"


def is_cached(exc: BaseException) -> bool:
    """Whether ``exc`` repeats an earlier failure (a caller that arrived between probes)."""
    return str(exc).startswith(CACHED_MARK) and exc.__cause__ is not None


class Endpoint:
    """A token endpoint that fails while ``down`` (503, or ``failure``), and counts its requests.

    It also records the most requests it ever had in progress at once.
    """

    def __init__(
        self, clock: FakeClock, *, expires_in: int = 100, failure: dict[str, Any] | None = None
    ) -> None:
        self.issuer = TokenIssuer(expires_in=expires_in)
        self.failure = failure or BUSY
        self.down = False
        self.requests = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.during: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self.adapter = requests_mock.Adapter()
        self.adapter.register_uri("POST", "https://auth.example.com/oauth/token", text=self._answer)
        self.clock = clock

    def _answer(self, request: Any, context: Any) -> str:
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.during is not None:
                self.during()
            if self.down:
                answer = dict(self.failure)
                context.status_code = answer["status_code"]
                context.headers.update(answer.get("headers", {}))
                return str(answer.get("text", ""))
            return self.issuer(request, context)
        finally:
            with self._lock:
                self.in_flight -= 1


def make(clock: FakeClock, endpoint: Endpoint, **overrides: Any) -> ClientCredentialsManager:
    return ClientCredentialsManager(**manager_kwargs(clock, endpoint.adapter, **overrides))


# -- item 27: no usable token: probe at a steady interval ----------------------------------


def test_without_a_token_eight_threads_probe_once_an_interval(clock: FakeClock) -> None:
    endpoint = Endpoint(clock)
    endpoint.down = True
    manager = make(clock, endpoint)  # defaults: 2 retries, probe_interval 1 s (0.8-1.2 s)
    with pytest.raises(TokenResponseError):
        manager.get_token()
    assert endpoint.requests == 3  # the first fetch did not know: 1 request + 2 retries
    start, before = clock.now, endpoint.requests
    cached = fresh = 0
    for _ in range(80):  # 20 simulated seconds, 8 threads calling 4 times a second
        clock.advance(0.25)
        errors = Crowd(8, lambda i: manager.get_token()).join()
        assert all(isinstance(e, TokenResponseError) for e in errors)
        cached += sum(map(is_cached, errors))
        fresh += sum(not is_cached(e) for e in errors)
    probes = endpoint.requests - before
    print(f"\n[observed] 20 s without a token, 8 threads: {probes} probes, {cached} cached errors")
    # One probe 0.8-1.2 s after the last, seen at the next 0.25 s step: 1.0 or 1.25 s apart.
    assert 16 <= probes <= 20
    assert endpoint.most_in_flight == 1  # one probe at a time for all threads
    # Every probe was one request; its callers got its error, every other caller a repeat.
    assert fresh >= probes and cached + fresh == 8 * 80
    assert clock.now - start == pytest.approx(20.0)


def test_a_probe_is_one_request_and_its_return_is_seen_within_one_interval(clock: FakeClock) -> None:
    endpoint = Endpoint(clock)
    endpoint.down = True
    manager = make(clock, endpoint, max_retries=2)
    with pytest.raises(TokenResponseError):
        manager.get_token()
    assert endpoint.requests == 3 and len(clock.sleeps) == 2  # retried: not known to fail yet
    for probe in range(1, 6):
        clock.advance(1.2)
        with pytest.raises(TokenResponseError) as info:
            manager.get_token()
        assert not is_cached(info.value)
        assert endpoint.requests == 3 + probe  # a probe: one request, no retry, no retry wait
    assert len(clock.sleeps) == 2
    clock.advance(0.5)
    with pytest.raises(TokenResponseError) as info:  # between probes: the last error, at once
        manager.get_token()
    assert is_cached(info.value) and endpoint.requests == 8
    endpoint.down = False
    clock.advance(0.7)
    assert manager.get_token().access_token == "tok-1"  # within 1.2 s of the last probe
    assert endpoint.requests == 9


def test_the_probe_interval_is_steady_and_jittered(clock: FakeClock) -> None:
    endpoint = Endpoint(clock)
    endpoint.down = True
    manager = make(clock, endpoint, max_retries=0, probe_interval=5.0, max_failure_backoff=60.0)
    gaps: list[float] = []
    last = clock.now
    with pytest.raises(TokenResponseError):
        manager.get_token()
    for _ in range(40):  # consecutive failures: no doubling while no token is held
        seen = endpoint.requests
        while endpoint.requests == seen:
            clock.advance(0.05)
            with pytest.raises(TokenResponseError):
                manager.get_token()
        gaps.append(clock.now - last)
        last = clock.now
    gaps = gaps[1:]  # the first gap starts at the first failure
    assert all(4.0 <= g <= 6.05 for g in gaps), gaps
    assert max(gaps) - min(gaps) > 0.2  # jittered: a fleet does not probe in lockstep


def test_after_a_failed_renewal_the_expired_token_is_followed_by_probes(clock: FakeClock) -> None:
    # A renewal failed while the token was valid: the doubling backoff (30-60 s here) applies
    # while it lasts. Once the token has expired, nobody is served: probing takes over.
    endpoint = Endpoint(clock, expires_in=20)
    manager = make(
        clock, endpoint, refresh_ahead=0.5, clock_skew=0, max_retries=0,
        failure_backoff=60.0, max_failure_backoff=60.0,
    )
    assert manager.get_token().access_token == "tok-1"
    endpoint.down = True
    clock.advance(10)  # the renewal window: renewed in the background, which fails
    assert manager.get_token().access_token == "tok-1"
    join_renewals()
    assert endpoint.requests == 2
    clock.advance(5)  # still valid, and the renewal backs off (30-60 s): no request
    assert manager.get_token().access_token == "tok-1"
    join_renewals()
    assert endpoint.requests == 2
    clock.advance(5)  # expired: a probe at once (its interval passed long ago)
    with pytest.raises(TokenResponseError) as info:
        manager.get_token()
    assert not is_cached(info.value) and endpoint.requests == 3
    endpoint.down = False
    clock.advance(1.2)
    assert manager.get_token().access_token == "tok-2" and endpoint.requests == 4


# -- Retry-After, in both regimes, capped at max_failure_backoff --------------------------


@pytest.mark.parametrize("seconds", [5, 30])
def test_retry_after_wins_over_the_probe_interval(clock: FakeClock, seconds: int) -> None:
    endpoint = Endpoint(clock, failure={**BUSY, "headers": {"Retry-After": str(seconds)}})
    endpoint.down = True
    manager = make(clock, endpoint, max_retries=0)
    with pytest.raises(TokenResponseError):
        manager.get_token()
    clock.advance(seconds - 0.01)
    with pytest.raises(TokenResponseError) as info:
        manager.get_token()
    assert is_cached(info.value) and endpoint.requests == 1
    endpoint.down = False
    clock.advance(0.01)
    assert manager.get_token().access_token == "tok-1" and endpoint.requests == 2


def test_a_retry_after_of_a_day_is_capped_at_max_failure_backoff_without_a_token(clock: FakeClock) -> None:
    endpoint = Endpoint(clock, failure={**BUSY, "headers": {"Retry-After": "86400"}})
    endpoint.down = True
    manager = make(clock, endpoint, max_retries=0, max_failure_backoff=60.0)
    with pytest.raises(TokenResponseError):
        manager.get_token()
    clock.advance(59.9)
    with pytest.raises(TokenResponseError) as info:
        manager.get_token()
    assert is_cached(info.value) and endpoint.requests == 1
    endpoint.down = False
    clock.advance(0.1)
    assert manager.get_token().access_token == "tok-1" and endpoint.requests == 2


def test_a_retry_after_of_a_day_is_capped_while_a_token_is_held(clock: FakeClock) -> None:
    endpoint = Endpoint(clock, expires_in=7200, failure={**BUSY, "headers": {"Retry-After": "86400"}})
    manager = make(clock, endpoint, max_retries=0, refresh_ahead=0.5, max_failure_backoff=60.0)
    assert manager.get_token().access_token == "tok-1"
    endpoint.down = True
    clock.advance(3600)  # renewal window: a background renewal fails with Retry-After: 1 day
    assert manager.get_token().access_token == "tok-1"
    join_renewals()
    assert endpoint.requests == 2
    clock.advance(59.9)
    assert manager.get_token().access_token == "tok-1"
    join_renewals()
    assert endpoint.requests == 2  # the capped Retry-After is waited
    endpoint.down = False
    clock.advance(0.1)
    manager.get_token()
    join_renewals()
    assert endpoint.requests == 3  # a minute later, not a day
    assert manager.get_token().access_token == "tok-2"


# -- item 28: static stability -------------------------------------------------------------


def test_a_held_token_serves_in_its_skew_margin_only_while_the_endpoint_fails(clock: FakeClock) -> None:
    endpoint = Endpoint(clock, expires_in=100)
    manager = make(clock, endpoint, clock_skew=30, max_retries=0)  # margin: the last 30 s
    first = manager.get_token()
    endpoint.down = True
    clock.advance(70)  # in the margin: renewed at once; the endpoint fails, the token serves
    assert manager.get_token() is first
    assert endpoint.requests == 2
    for _ in range(29):
        clock.advance(1)
        assert manager.get_token() is first  # renewals are tried in the background meanwhile
        join_renewals()
    tried = endpoint.requests
    assert 3 <= tried <= 8  # the doubling backoff while a token serves: 1, 2, 4, 8 … s
    clock.advance(1)  # its real expiry: never used past it
    with pytest.raises(TokenResponseError):
        manager.get_token()
    join_renewals()


def test_is_valid_and_is_expired_keep_the_margin_while_the_endpoint_fails(clock: FakeClock) -> None:
    # They say whether a token is fit for a healthy manager (what a token_provider checks a
    # stored token against, contract item 4), not whether the manager would use it now.
    endpoint = Endpoint(clock, expires_in=100)
    manager = make(clock, endpoint, clock_skew=30, max_retries=0)
    first = manager.get_token()
    endpoint.down = True
    clock.advance(75)
    assert manager.get_token() is first  # in use in its margin (item 28) ...
    assert manager.is_expired(first) and not manager.is_valid(first)  # ... expired by item 2
    assert not first.is_expired(0, clock.time())  # its real expiry is ahead
    join_renewals()


def test_a_healthy_endpoint_renews_a_token_in_its_margin(clock: FakeClock) -> None:
    endpoint = Endpoint(clock, expires_in=100)
    manager = make(clock, endpoint, clock_skew=30)
    assert manager.get_token().access_token == "tok-1"
    clock.advance(70)  # the margin is for a healthy endpoint: the token is not used in it
    assert manager.get_token().access_token == "tok-2"
    assert endpoint.requests == 2


def test_the_margin_after_a_failure_returns_to_normal_once_the_endpoint_recovers(clock: FakeClock) -> None:
    endpoint = Endpoint(clock, expires_in=100)
    manager = make(clock, endpoint, clock_skew=30, max_retries=0, failure_backoff=1.0)
    first = manager.get_token()
    endpoint.down = True
    clock.advance(75)
    assert manager.get_token() is first
    endpoint.down = False
    clock.advance(1.01)  # the backoff (0.5-1 s) passed: a background renewal succeeds
    assert manager.get_token() is first
    join_renewals()
    assert manager.get_token().access_token == "tok-2"
    assert endpoint.requests == 3


def test_a_token_provider_failing_is_an_outage_too(clock: FakeClock) -> None:
    calls: list[float] = []

    def provider(last: OAuthToken | None, manager: Any) -> OAuthToken:
        calls.append(clock.now)
        raise requests.ConnectionError("identity service down")

    endpoint = Endpoint(clock)
    manager = make(clock, endpoint, token_provider=provider)
    for _ in range(20):
        with pytest.raises(requests.ConnectionError):
            manager.get_token()
        clock.advance(0.3)
    # probed every 0.8-1.2 s (seen at 0.3 s steps): every 3rd or 4th call
    assert 5 <= len(calls) <= 7
