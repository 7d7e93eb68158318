"""Issue 3: one manager under many threads, processes and failures.

Real threads against the token server on 127.0.0.1 (tests/token_server.py), with exact
counts of token requests. No test sleeps for expiry: the wall clock (``clock=``), the
monotonic clock (``monotonic=``) and the retry waits (``sleep=``) are injected. Races that
must happen are forced, not hoped for: the server holds counted requests behind a gate
until every thread is where the test needs it. Every join has a timeout, so a deadlock
fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from email.utils import formatdate
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

import reqcc.reusing as reusing_module
import reqcc.single_flight as single_flight_module
from reqcc import (
    ClientCredentialsManager,
    ClientCredentialsSession,
    InvalidClient,
    InvalidRequest,
    InvalidScope,
    OAuthToken,
    ReqccError,
    ServerError,
    TemporarilyUnavailable,
    TokenProviderError,
    TokenResponseError,
)
from reqcc.token_endpoint import DEFAULT_TIMEOUT

from .threads import JOIN, Crowd, join_all, wait_until
from .token_server import Failure, TokenServer

THREADS = 64
#: A fixed wall-clock time in whole seconds (HTTP dates have a one-second resolution).
WALL = 1_800_000_000.0
SECRET = "s3cret-Value-for-tests"
CACHED_MARK = "token request failed"
REFRESH_THREAD = "reqcc-token-refresh"


# -- helpers ------------------------------------------------------------------------------


class FakeClock:
    """A clock that only moves when the test says so."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def refresh_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == REFRESH_THREAD]


def join_refresh_threads() -> None:
    for thread in refresh_threads():
        thread.join(JOIN)
        assert not thread.is_alive(), "background renewal still running: deadlock"


def is_cached(exc: BaseException) -> bool:
    """Whether ``exc`` is the repeat of an earlier failure handed out during the backoff."""
    return str(exc).startswith(CACHED_MARK) and exc.__cause__ is not None


def same_failure(a: BaseException | None, b: BaseException) -> bool:
    """Whether ``a`` is ``b`` or a copy of it (each thread raises its own copy)."""
    return (
        type(a) is type(b)
        and str(a) == str(b)
        and getattr(a, "response", None) is getattr(b, "response", None)
    )


class RecordingAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that records the ``timeout`` each send receives."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeouts: list[Any] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.timeouts.append(kwargs.get("timeout"))
        return super().send(request, **kwargs)


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[TokenServer]:
    with TokenServer() as token_server:
        yield token_server
        # Open every gate so that no handler thread outlives the test waiting on one.
        for gate in (token_server.token_gate, token_server.api_gate):
            if gate is not None:
                gate.set()


@pytest.fixture
def wall() -> FakeClock:
    return FakeClock(WALL)


@pytest.fixture
def mono() -> FakeClock:
    return FakeClock(5_000.0)


@pytest.fixture
def sleeps() -> list[float]:
    """The waits the token endpoint asked for between retries (nobody really sleeps)."""
    return []


@pytest.fixture
def make_manager(
    server: TokenServer, wall: FakeClock, mono: FakeClock, sleeps: list[float]
) -> Iterator[Callable[..., ClientCredentialsManager]]:
    made: list[ClientCredentialsManager] = []

    def make(**kwargs: Any) -> ClientCredentialsManager:
        options: dict[str, Any] = {
            "token_url": server.token_url,
            "client_id": "client-1",
            "client_secret": SECRET,
            "clock": wall,
            "monotonic": mono,
            "sleep": sleeps.append,
        }
        options.update(kwargs)
        manager = ClientCredentialsManager(**options)
        made.append(manager)
        return manager

    yield make
    join_refresh_threads()
    for manager in made:
        manager.close()


@pytest.fixture
def flight_waiters(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], bool]:
    """Count the threads waiting for a token request in flight; returns ``wait_for(n)``.

    The thread that sends the request waits on its result only once it has arrived, so
    while the server holds that request, the count is the number of *other* threads that
    joined it instead of starting their own.
    """
    condition = threading.Condition()
    count = [0]

    class CountingFlight(single_flight_module._Flight):
        def result(self, **kwargs: Any) -> OAuthToken:
            with condition:
                count[0] += 1
                condition.notify_all()
            return super().result(**kwargs)

    monkeypatch.setattr(single_flight_module, "_Flight", CountingFlight)

    def wait_for(n: int) -> bool:
        with condition:
            return condition.wait_for(lambda: count[0] >= n, JOIN) and count[0] == n

    wait_for.count = count  # type: ignore[attr-defined]
    return wait_for


def api_session(manager: ClientCredentialsManager, server: TokenServer) -> ClientCredentialsSession:
    """A session on the test API with a pool big enough for the crowd."""
    return ClientCredentialsSession(
        manager=manager, base_url=server.base_url, adapter=HTTPAdapter(pool_maxsize=THREADS)
    )


# -- 1. single flight ---------------------------------------------------------------------


def test_64_threads_on_a_cold_manager_cause_exactly_one_token_request(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager], flight_waiters: Any
) -> None:
    manager = make_manager()
    server.token_gate = threading.Event()
    crowd = Crowd(THREADS, lambda i: manager.get_token())

    assert wait_until(lambda: server.token_requests == 1)
    assert flight_waiters(THREADS - 1), "the other 63 threads should all wait for that one request"
    server.token_gate.set()
    tokens = crowd.join()

    print(f"\n[observed] 64 threads, cold manager: {server.token_requests} token request(s)")
    assert server.token_requests == 1
    assert all(isinstance(t, OAuthToken) for t in tokens)
    assert all(t is tokens[0] for t in tokens)
    assert tokens[0].access_token == "tok-1"
    assert flight_waiters.count[0] == THREADS  # the sender took its own result too


def test_64_threads_all_get_the_one_error_of_the_single_failed_fetch(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager], flight_waiters: Any
) -> None:
    manager = make_manager(max_retries=0)
    server.failures.append(Failure(503, error="temporarily_unavailable"))
    server.token_gate = threading.Event()
    crowd = Crowd(THREADS, lambda i: manager.get_token())

    assert wait_until(lambda: server.token_requests == 1)
    assert flight_waiters(THREADS - 1)
    server.token_gate.set()
    errors = crowd.join()

    print(f"\n[observed] 64 threads, failing fetch: {server.token_requests} token request(s)")
    assert server.token_requests == 1
    # The same error -- type, message, status and the very response of that one request.
    # The thread that sent it raises the error itself, the 63 others each their own copy,
    # so that no thread's traceback collects the frames of the other 63 (raising one
    # object in 64 threads extends one shared traceback).
    first = errors[0]
    assert all(type(e) is TemporarilyUnavailable for e in errors)
    assert {str(e) for e in errors} == {
        f"token endpoint 127.0.0.1:{server.port}/token refused client 'client-1': "
        "temporarily_unavailable [HTTP 503]"
    }
    assert all(e.status_code == 503 and e.response is first.response for e in errors)
    assert not any(is_cached(e) for e in errors)
    depths = {len(traceback.extract_tb(e.__traceback__)) for e in errors}
    assert len(depths) == 1, f"tracebacks of different depths {sorted(depths)}: shared between threads"
    origins = {traceback.extract_tb(e.__traceback__)[-1][:3] for e in errors}
    assert len(origins) == 1  # all end where the one failure was raised
    assert len({id(e) for e in errors}) == THREADS

    # A caller arriving after the failure gets it at once, marked as a repeat: no request.
    with pytest.raises(TemporarilyUnavailable) as later:
        manager.get_token()
    assert is_cached(later.value) and later.value.__cause__.response is first.response
    assert server.token_requests == 1


def _interrupting_provider(release: threading.Event, calls: list[str]) -> Any:
    """A token_provider whose first call raises KeyboardInterrupt once ``release`` is set."""

    def provider(last: OAuthToken | None, mgr: ClientCredentialsManager) -> OAuthToken:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            assert release.wait(JOIN)
            raise KeyboardInterrupt
        return mgr.fetch_token()

    return provider


def test_keyboard_interrupt_in_the_fetching_thread_reaches_it_and_is_not_a_failure(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager]
) -> None:
    release, calls = threading.Event(), []  # type: ignore[var-annotated]
    release.set()
    manager = make_manager(token_provider=_interrupting_provider(release, calls))
    with pytest.raises(KeyboardInterrupt):
        manager.get_token()
    # Not recorded as a token-endpoint failure: no backoff, the next call fetches at once.
    assert manager.get_token().access_token == "tok-1"
    assert len(calls) == 2 and server.token_requests == 1


def test_keyboard_interrupt_in_the_fetching_thread_is_raised_in_that_thread_only(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager], flight_waiters: Any
) -> None:
    release, calls = threading.Event(), []  # type: ignore[var-annotated]
    manager = make_manager(token_provider=_interrupting_provider(release, calls))
    crowd = Crowd(4, lambda i: manager.get_token())
    assert wait_until(lambda: len(calls) == 1)
    assert flight_waiters(3), "the three other threads should wait for the interrupted fetch"
    release.set()
    results = crowd.join()
    assert sum(isinstance(r, KeyboardInterrupt) for r in results) == 1  # the fetching thread's
    others = [r for r in results if not isinstance(r, KeyboardInterrupt)]
    # Item 21: the waiters retry (and get a token) or get a ReqccError, never the interrupt.
    assert all(isinstance(r, (OAuthToken, ReqccError)) for r in others), others


# -- 2. refresh ahead ---------------------------------------------------------------------


def test_renewal_window_starts_one_background_renewal_and_no_request_waits_for_it(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager], mono: FakeClock
) -> None:
    server.expires_in = 100
    updates: list[str] = []
    # No skew: the token is good for 100 s, its renewal window (the last 20 %) opens at 80 s.
    manager = make_manager(clock_skew=0, on_token_update=lambda t: updates.append(t.access_token))
    session = api_session(manager, server)
    first = manager.get_token()

    mono.advance(79.9)
    assert manager.get_token() is first
    assert refresh_threads() == [] and server.token_requests == 1

    mono.advance(0.2)  # inside the window
    server.token_gate = threading.Event()  # the renewal will be held at the server
    responses = Crowd(THREADS, lambda i: session.get(f"{server.api_url}books/{i}")).join()
    # The crowd is done while the renewal is still held: nobody waited for it.
    assert [r.status_code for r in responses] == [200] * THREADS
    assert manager.token is first
    assert wait_until(lambda: server.token_requests == 2)  # the first fetch, one renewal
    assert len(refresh_threads()) == 1

    server.token_gate.set()
    join_refresh_threads()
    assert server.token_requests == 2
    assert manager.get_token().access_token == "tok-2"
    assert updates == ["tok-1", "tok-2"]
    assert server.token_requests == 2


def test_failed_renewal_warns_keeps_the_token_and_retries_after_the_backoff(
    server: TokenServer,
    make_manager: Callable[..., ClientCredentialsManager],
    mono: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.expires_in = 100
    manager = make_manager(clock_skew=0, max_retries=0, failure_backoff=1.0)
    first = manager.get_token()
    server.failures.append(Failure(503, error="temporarily_unavailable"))

    mono.advance(85)
    with caplog.at_level(logging.WARNING, logger="reqcc"):
        assert manager.get_token() is first
        join_refresh_threads()
    assert server.token_requests == 2
    warnings = [r.getMessage() for r in caplog.records if "background token renewal failed" in r.getMessage()]
    assert len(warnings) == 1
    assert "temporarily_unavailable" in warnings[0]
    assert SECRET not in caplog.text and "tok-1" not in caplog.text

    # The still-valid token is served, and the first backoff (1 s, jittered to >= 0.5 s)
    # holds the next renewal back.
    for _ in range(100):
        assert manager.get_token() is first
    mono.advance(0.49)
    assert manager.get_token() is first
    assert refresh_threads() == [] and server.token_requests == 2

    mono.advance(0.52)  # past the longest first backoff: the next request renews again
    assert manager.get_token() is first
    join_refresh_threads()
    assert server.token_requests == 3
    assert manager.get_token().access_token == "tok-2"


def test_token_is_served_until_its_deadline_while_renewals_fail_and_never_after(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager], mono: FakeClock
) -> None:
    server.expires_in = 100
    manager = make_manager(clock_skew=0, max_retries=0, failure_backoff=1.0, max_failure_backoff=4.0)
    first = manager.get_token()
    server.fail_always = Failure(503, error="temporarily_unavailable")

    mono.advance(80)
    while mono.now < 5_000 + 99.9:
        assert manager.get_token() is first
        join_refresh_threads()
        mono.advance(0.1)
    renewals = server.token_requests - 1
    assert 6 <= renewals <= 12  # backoffs 1, 2, 4, 4, ... s, jittered to [0.5, 1], over 20 s

    mono.now = 5_000 + 100.0  # the deadline: the token is not used any more
    with pytest.raises(TemporarilyUnavailable):
        manager.get_token()
    assert manager.is_expired(first)


def test_refresh_ahead_zero_disables_background_renewal(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager], mono: FakeClock
) -> None:
    server.expires_in = 100
    manager = make_manager(clock_skew=0, refresh_ahead=0)
    first = manager.get_token()
    mono.advance(99.9)
    assert manager.get_token() is first
    assert refresh_threads() == [] and server.token_requests == 1
    mono.advance(0.1)
    assert manager.get_token().access_token == "tok-2"
    assert server.token_requests == 2


# -- 3. retries at the token endpoint -----------------------------------------------------


def test_503_and_429_with_retry_after_in_seconds_and_as_http_date_are_waited_out(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager], sleeps: list[float]
) -> None:
    manager = make_manager()  # max_retries=2
    server.failures.extend([
        Failure(503, retry_after="3"),
        Failure(429, retry_after=formatdate(WALL + 4, usegmt=True)),
    ])
    token = manager.get_token()
    assert token.access_token == "tok-1"
    assert server.token_requests == 3
    assert sleeps == [3.0, 4.0]


def test_retries_stop_after_max_retries_with_exponential_jittered_waits(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager], sleeps: list[float]
) -> None:
    manager = make_manager(max_retries=2, retry_backoff=0.5)
    server.fail_always = Failure(503)
    with pytest.raises(TokenResponseError) as info:
        manager.get_token()
    assert info.value.status_code == 503
    assert server.token_requests == 3
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0  # 0.5 * 2**n, times [0.5, 1]


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_each_transient_status_is_retried(
    server: TokenServer,
    make_manager: Callable[..., ClientCredentialsManager],
    sleeps: list[float],
    status: int,
) -> None:
    manager = make_manager()
    server.failures.append(Failure(status))
    assert manager.get_token().access_token == "tok-1"
    assert server.token_requests == 2 and len(sleeps) == 1


@pytest.mark.parametrize(
    ("failure", "error_type"),
    [
        (Failure(401, error="invalid_client"), InvalidClient),
        (Failure(400, error="invalid_scope"), InvalidScope),
        (Failure(400, error="invalid_request"), InvalidRequest),
        (Failure(400, body="bad request"), TokenResponseError),
        (Failure(403, body="forbidden"), TokenResponseError),
        (Failure(404, body="no such endpoint"), TokenResponseError),
        # A client error stays a client error even behind a 5xx or a Retry-After.
        (Failure(503, error="invalid_client", retry_after="1"), InvalidClient),
        (Failure(429, error="invalid_scope"), InvalidScope),
    ],
)
def test_client_errors_are_never_retried(
    server: TokenServer,
    make_manager: Callable[..., ClientCredentialsManager],
    sleeps: list[float],
    failure: Failure,
    error_type: type[Exception],
) -> None:
    manager = make_manager(max_retries=5)
    server.failures.append(failure)
    with pytest.raises(error_type) as info:
        manager.get_token()
    assert info.value.status_code == failure.status  # type: ignore[attr-defined]
    assert server.token_requests == 1 and sleeps == []


@pytest.mark.parametrize(("code", "error_type"), [
    ("temporarily_unavailable", TemporarilyUnavailable), ("server_error", ServerError),
])
def test_transient_error_codes_in_a_400_body_are_retried(
    server: TokenServer,
    make_manager: Callable[..., ClientCredentialsManager],
    sleeps: list[float],
    code: str,
    error_type: type[Exception],
) -> None:
    manager = make_manager(max_retries=2)
    server.failures.extend([Failure(400, error=code), Failure(400, error=code, retry_after="2")])
    assert manager.get_token().access_token == "tok-1"
    assert server.token_requests == 3
    assert len(sleeps) == 2 and sleeps[1] == 2.0

    server.fail_always = Failure(400, error=code)
    manager.token = None
    with pytest.raises(error_type):
        manager.get_token()
    assert server.token_requests == 6


def test_connection_errors_are_retried(
    make_manager: Callable[..., ClientCredentialsManager], sleeps: list[float]
) -> None:
    with socket.socket() as sock:  # a port on 127.0.0.1 that nobody listens on (held: no reuse)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        manager = make_manager(token_url=f"http://127.0.0.1:{port}/token", max_retries=2)
        with pytest.raises(requests.ConnectionError):
            manager.get_token()
    assert len(sleeps) == 2


def test_timeouts_are_retried(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager], sleeps: list[float]
) -> None:
    server.delay = 1.0
    manager = make_manager(timeout=(1.0, 0.05), max_retries=1)
    with pytest.raises(requests.Timeout):
        manager.get_token()
    assert server.token_requests == 2 and len(sleeps) == 1


def test_retry_after_longer_than_max_retry_wait_ends_retrying_and_sets_the_backoff(
    server: TokenServer,
    make_manager: Callable[..., ClientCredentialsManager],
    sleeps: list[float],
    mono: FakeClock,
) -> None:
    manager = make_manager(max_retries=2, max_retry_wait=10)
    server.failures.append(Failure(503, retry_after="30"))
    with pytest.raises(TokenResponseError) as info:
        manager.get_token()
    assert info.value.retry_after == 30.0
    assert server.token_requests == 1 and sleeps == []

    mono.advance(29.9)  # the server asked for 30 s: no request before that
    with pytest.raises(TokenResponseError) as cached:
        manager.get_token()
    assert is_cached(cached.value) and same_failure(cached.value.__cause__, info.value)
    assert server.token_requests == 1

    mono.advance(0.2)
    assert manager.get_token().access_token == "tok-1"
    assert server.token_requests == 2


# -- 4. backoff after failure -------------------------------------------------------------


def test_dead_endpoint_is_probed_once_an_interval_and_success_resets_the_backoff(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager], mono: FakeClock
) -> None:
    # contract item 27: no token held, so every caller fails anyway: the endpoint is probed at
    # a steady probe_interval (1 s, jittered to 0.8-1.2 s), one HTTP request per probe.
    manager = make_manager()  # the defaults: 2 retries, probe_interval 1 s
    server.fail_always = Failure(503)
    start = mono.now
    fresh: list[BaseException] = []
    cached: list[BaseException] = []
    for i in range(100):  # 100 API calls over one simulated minute
        mono.now = start + i * 0.6
        with pytest.raises(TokenResponseError) as info:
            manager.get_token()
        (cached if is_cached(info.value) else fresh).append(info.value)

    attempts = len(fresh)
    print(
        f"\n[observed] dead endpoint, 100 calls in a minute: {attempts} fetches, "
        f"{server.token_requests} token requests, {len(cached)} cached errors"
    )
    # Each probe is due 0.8-1.2 s after the last: the second call after it (1.2 s) sends it.
    assert attempts == 50
    # The first fetch did not know the endpoint was failing: 1 request + 2 retries. Every
    # probe after it is a single request.
    assert server.token_requests == attempts + 2
    assert len(cached) == 100 - attempts
    assert all(type(e) is TokenResponseError and "next attempt in" in str(e) for e in cached)
    # ... each the repeat of one of the failed fetches (its very response).
    assert all(any(e.__cause__.response is f.response for f in fresh) for e in cached)

    # Later minutes: still one probe a second or two (no doubling while no token is held).
    per_minute = []
    for minute in range(1, 10):
        before = len(fresh)
        for i in range(60):
            mono.now = start + minute * 60 + i
            with pytest.raises(TokenResponseError) as info:
                manager.get_token()
            if not is_cached(info.value):
                fresh.append(info.value)
        per_minute.append(len(fresh) - before)
    print(f"[observed] dead endpoint, probes in minutes 2-10: {per_minute}")
    assert all(30 <= n <= 60 for n in per_minute)
    assert server.token_requests == len(fresh) + 2

    # The endpoint comes back: the next probe, within 1.2 s, succeeds ...
    server.fail_always = None
    requests_before = server.token_requests
    for _ in range(3):
        mono.advance(0.6)
        try:
            token = manager.get_token()
            break
        except TokenResponseError as exc:
            assert is_cached(exc)
    else:
        pytest.fail("no probe within 1.2 s of the endpoint's return")
    assert token.access_token == "tok-1" and server.token_requests == requests_before + 1

    # ... and resets the backoff: the next failure is fetched with retries again, and the
    # probe after it is due in 0.8-1.2 s.
    manager.token = None
    server.failures.extend([Failure(503)] * 3)
    with pytest.raises(TokenResponseError) as info:
        manager.get_token()
    assert not is_cached(info.value)
    assert server.token_requests == requests_before + 4
    mono.advance(0.79)
    with pytest.raises(TokenResponseError) as info:
        manager.get_token()
    assert is_cached(info.value)
    mono.advance(0.42)
    assert manager.get_token().access_token == "tok-2"


def test_cached_error_keeps_the_type_of_a_network_failure(
    make_manager: Callable[..., ClientCredentialsManager], mono: FakeClock
) -> None:
    with socket.socket() as sock:  # bound, not listening: connections refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        manager = make_manager(token_url=f"http://127.0.0.1:{port}/token", max_retries=0)
        with pytest.raises(requests.ConnectionError) as first:
            manager.get_token()
        with pytest.raises(requests.ConnectionError) as again:
            manager.get_token()
    assert type(again.value) is type(first.value)
    assert is_cached(again.value) and same_failure(again.value.__cause__, first.value)


# -- 5. 401 under concurrency -------------------------------------------------------------


def test_64_concurrent_401s_for_one_token_cause_one_fetch_and_one_replay_each(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager]
) -> None:
    manager = make_manager()
    session = api_session(manager, server)
    assert session.get(f"{server.api_url}warm-up").status_code == 200
    assert server.token_requests == 1 and server.api_requests == 1

    server.revoke_all()
    server.api_gate = threading.Event()
    crowd = Crowd(THREADS, lambda i: session.get(f"{server.api_url}books/{i}"))
    # All 64 requests carry the revoked token; their 401s are held until all have arrived.
    assert wait_until(lambda: server.api_requests == 1 + THREADS)
    server.api_gate.set()
    responses = crowd.join()

    print(f"\n[observed] 64 concurrent 401s: {server.token_requests - 1} new token request(s)")
    assert [r.status_code for r in responses] == [200] * THREADS
    assert server.token_requests == 2  # exactly one new fetch
    assert server.api_401s == THREADS
    assert server.api_requests == 1 + 2 * THREADS  # each request replayed exactly once
    assert manager.token is not None and manager.token.access_token == "tok-2"


# -- 6. clocks ----------------------------------------------------------------------------


@pytest.mark.parametrize("jump", [+7200.0, -7200.0])
def test_wall_clock_jump_neither_expires_a_fresh_token_nor_keeps_a_dead_one(
    server: TokenServer,
    make_manager: Callable[..., ClientCredentialsManager],
    wall: FakeClock,
    mono: FakeClock,
    jump: float,
) -> None:
    # 3600 s tokens and the default 30 s skew: usable for 3570 s on the monotonic clock.
    manager = make_manager(refresh_ahead=0)
    token = manager.get_token()
    assert token.expiry == WALL + 3600  # absolute, for persistence

    wall.advance(jump)  # +2 h: the wall clock says expired; -2 h: it says 3 more hours
    assert manager.get_token() is token
    assert manager.is_valid(token) and not manager.is_expired(token)
    mono.advance(3569.9)
    assert manager.get_token() is token
    assert server.token_requests == 1

    mono.advance(0.1)  # the monotonic deadline alone decides
    assert manager.is_expired(token) and not manager.is_valid(token)
    new = manager.get_token()
    assert new is not token and server.token_requests == 2
    assert new.expiry == WALL + jump + 3600


@pytest.mark.parametrize("jump", [+7200.0, -7200.0])
def test_wall_clock_jump_does_not_start_a_renewal(
    server: TokenServer,
    make_manager: Callable[..., ClientCredentialsManager],
    wall: FakeClock,
    jump: float,
) -> None:
    manager = make_manager()  # refresh ahead on: the window opens at 2856 s
    token = manager.get_token()
    wall.advance(jump)
    for _ in range(10):
        assert manager.get_token() is token
    assert refresh_threads() == [] and server.token_requests == 1


# -- 7. timeouts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [("default", DEFAULT_TIMEOUT), (None, DEFAULT_TIMEOUT), (3, 3.0), ((1, 2.5), (1.0, 2.5))],
)
def test_token_request_always_has_a_finite_timeout(
    server: TokenServer,
    make_manager: Callable[..., ClientCredentialsManager],
    timeout: Any,
    expected: Any,
) -> None:
    recorder = RecordingAdapter()
    token_session = requests.Session()
    token_session.mount("http://", recorder)
    kwargs: dict[str, Any] = {} if timeout == "default" else {"timeout": timeout}
    manager = make_manager(token_session=token_session, **kwargs)
    manager.get_token()
    assert recorder.timeouts == [expected]
    assert DEFAULT_TIMEOUT == (5.0, 15.0)


def test_a_hanging_token_endpoint_times_out(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager]
) -> None:
    server.delay = 2.0
    manager = make_manager(timeout=(1.0, 0.1), max_retries=0)
    with pytest.raises(requests.ReadTimeout):
        manager.get_token()


def test_api_request_timeout_reaches_the_inner_adapter_untouched(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager]
) -> None:
    inner = RecordingAdapter()
    token_recorder = RecordingAdapter()
    token_session = requests.Session()
    token_session.mount("http://", token_recorder)
    manager = make_manager(timeout=(1, 2), token_session=token_session)
    session = ClientCredentialsSession(manager=manager, base_url=server.base_url, adapter=inner)
    for timeout in [(3.5, 7), 9, None]:
        assert session.get(f"{server.api_url}books", timeout=timeout).status_code == 200
    assert inner.timeouts == [(3.5, 7), 9, None]
    assert token_recorder.timeouts == [(1.0, 2.0)]


# -- 8. fork ------------------------------------------------------------------------------


def _wait_for_child(pid: int) -> int:
    """Return the child's exit code; kill it (it is ours) if it hangs, which fails the test."""
    deadline = time.monotonic() + JOIN
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child hung for {JOIN}s: it inherited a held lock or an in-flight fetch")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform has no os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork() with threads running
@pytest.mark.parametrize("first_call", ["get_token", "fetch_token", "set_token"])
def test_forked_child_starts_with_a_fresh_lock_and_no_inherited_flight(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager], first_call: str
) -> None:
    manager = make_manager()
    # In the parent: one thread leads a token request held at the server (a flight in
    # progress), another holds the manager's lock, both at the moment of the fork.
    server.token_gate = threading.Event()
    parent_result: list[Any] = []
    leader = threading.Thread(target=lambda: parent_result.append(manager.get_token()), daemon=True)
    leader.start()
    assert wait_until(lambda: server.token_requests == 1)
    holding, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with manager._lock:
            holding.set()
            release.wait(JOIN)

    holder = threading.Thread(target=hold_lock, daemon=True)
    holder.start()
    assert holding.wait(JOIN)
    assert manager._flight is not None

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report on the pipe, always leave by os._exit
        code = 1
        try:
            os.close(read_end)
            if first_call == "set_token":
                manager.token = {"access_token": "by-hand", "expires_in": 60}
                manager.invalidate(manager.token)
            elif first_call == "fetch_token":
                manager.fetch_token()
            token = manager.get_token()
            os.write(write_end, f"{token.access_token} {manager.is_valid(token)}".encode())
            code = 0
        except BaseException as exc:
            os.write(write_end, f"error {type(exc).__name__}: {exc}".encode()[:500])
        finally:
            os._exit(code)

    os.close(write_end)
    server.token_gate.set()  # the parent's request may finish now; the child's is not held
    exit_code = _wait_for_child(pid)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode()
    release.set()
    join_all([holder, leader])

    assert exit_code == 0, report
    child_token, valid = report.split()
    assert valid == "True"
    assert parent_result and parent_result[0].access_token != child_token
    # One request by the parent's flight, one by the child: the child did not wait for a
    # flight whose thread does not exist in it, nor for a lock nobody there will release.
    assert server.token_requests == 2
    assert {parent_result[0].access_token, child_token} == {"tok-1", "tok-2"}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform has no os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_forked_children_do_not_share_the_parents_jitter(
    make_manager: Callable[..., ClientCredentialsManager],
) -> None:
    manager = make_manager()

    def draw() -> str:
        manager.token = None  # any use of the manager in the child
        return repr(manager._random.random())

    child_draw = float(_in_child(draw))
    # Workers forked from one parent must not back off in lockstep.
    assert child_draw != manager._random.random()


def _in_child(work: Callable[[], str]) -> str:
    """Fork; run ``work`` in the child and return what it returned (its error fails the test)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report on the pipe, always leave by os._exit
        code = 1
        try:
            os.close(read_end)
            os.write(write_end, work().encode())
            code = 0
        except BaseException as exc:
            os.write(write_end, f"error {type(exc).__name__}: {exc}".encode()[:500])
        finally:
            os._exit(code)
    os.close(write_end)
    exit_code = _wait_for_child(pid)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode()
    assert exit_code == 0, report
    return report


def _in_child_while_held(lock: Any, work: Callable[[], str]) -> str:
    """Fork while another thread of this process holds ``lock``; run ``work`` in the child.

    Return what ``work`` returned there; a child that hangs, blocked on the inherited
    lock, is killed and fails the test.
    """
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            holding.set()
            release.wait(JOIN)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    try:
        assert holding.wait(JOIN)
        return _in_child(work)
    finally:
        release.set()
        holder.join(JOIN)
        assert not holder.is_alive()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform has no os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork() with threads running
def test_a_forked_child_signs_dpop_proofs_while_the_parent_held_the_nonce_lock() -> None:
    # The warm DPoP path (a valid token: the manager's own fork check is not on it) reads
    # the origin's nonce for every proof and stores the one each answer brings.
    pytest.importorskip("jwt")
    import requests_mock

    from reqcc import ClientCredentialsAdapter

    api = requests_mock.Adapter()
    api.register_uri("GET", "https://api.example.com/books", text="ok", headers={"DPoP-Nonce": "n-child"})
    adapter = ClientCredentialsAdapter(
        api, token_url="https://auth.example.com/token", client_id="c", client_secret=SECRET,
        dpop=True, token={"access_token": "warm", "token_type": "DPoP", "expires_in": 3600},
    )
    dpop = adapter.manager.dpop
    assert dpop is not None
    dpop.nonces.set("https://api.example.com/", "n-parent")

    def child() -> str:
        prepared = requests.Request("GET", "https://api.example.com/books").prepare()
        response = adapter.send(prepared)
        proof = api.last_request.headers["DPoP"]  # type: ignore[union-attr]
        import jwt

        claims = jwt.decode(proof, options={"verify_signature": False})
        return f"{response.status_code} {claims['nonce']} {dpop.nonces.get('https://api.example.com/')}"

    # The child kept the parent's nonce, used it, and stored the new one under its own lock.
    assert _in_child_while_held(dpop.nonces._lock, child) == "200 n-parent n-child"
    assert dpop.nonces.get("https://api.example.com/") == "n-parent"  # the parent's is its own


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform has no os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork() with threads running
def test_a_forked_child_keeps_the_401_cool_down_while_the_parent_held_its_lock() -> None:
    # The cool-down is the manager's and is reset with it after a fork: a 401 in the child,
    # its first call (the warm token needs no fork check), reads it under a lock of its own.
    import requests_mock

    from reqcc import ClientCredentialsAdapter

    url = "https://api.example.com/forbidden"
    api = requests_mock.Adapter()
    api.register_uri("GET", url, status_code=401)
    adapter = ClientCredentialsAdapter(
        api, token_url="https://auth.example.com/token", client_id="c", client_secret=SECRET,
        token={"access_token": "warm", "expires_in": 3600},
    )
    cooldown = adapter.manager.rejection_cooldown
    cooldown.start(f"GET {url}")

    def child() -> str:
        response = adapter.send(requests.Request("GET", url).prepare())
        token = adapter.manager.token
        return f"{response.status_code} {token.access_token if token else None}"

    # The child still knew the endpoint: the 401 retired no token and was not replayed.
    assert _in_child_while_held(cooldown._lock, child) == "401 warm"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform has no os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_forked_child_retries_with_its_own_jitter(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager], sleeps: list[float]
) -> None:
    # The token endpoint's retry waits, not the manager's: a child that kept the parent's
    # generator state would back off in lockstep with the parent and its siblings.
    server.fail_always = Failure(503)
    manager = make_manager(max_retries=4)

    def retry_waits() -> str:
        with pytest.raises(TokenResponseError, match="HTTP 503"):
            manager.fetch_token()
        return json.dumps(sleeps)

    child_waits = json.loads(_in_child(retry_waits))
    parent_waits = json.loads(retry_waits())
    assert len(child_waits) == len(parent_waits) == 4
    assert child_waits != parent_waits


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform has no os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_forked_child_does_not_send_on_the_parents_pooled_connection(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager]
) -> None:
    manager = make_manager()
    manager.get_token()  # the parent's token session now pools a keep-alive connection
    child_token = _in_child(lambda: manager.fetch_token().access_token)
    parent_token = manager.fetch_token().access_token
    assert {child_token, parent_token} == {"tok-2", "tok-3"}
    first, by_child, by_parent = server.token_peers
    # The child opened its own connection; the parent's pooled one is still its own.
    assert by_child != first
    assert by_parent == first




@pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform has no os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_forked_child_warns_about_untokened_http_while_the_parent_held_that_lock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import requests_mock

    from reqcc import _untokened

    session = ClientCredentialsSession(
        token_url="https://auth.example.com/token", client_id="c", client_secret=SECRET,
        token={"access_token": "warm", "expires_in": 3600},
    )
    notice = session.get_adapter("http://example.com/")
    assert isinstance(notice, _untokened.UntokenedNotice)
    plain = requests_mock.Adapter()
    plain.register_uri("GET", requests_mock.ANY, text="ok")
    notice.inner = plain

    def child() -> str:
        status = session.get("http://example.com/books").status_code
        return f"{status} {len(notice._warned)}"

    with caplog.at_level(logging.WARNING, logger="reqcc"):
        assert _in_child_while_held(notice._lock, child) == "200 1"
    session.close()


# -- 9. callbacks outside the lock --------------------------------------------------------


def test_callbacks_that_use_the_manager_do_not_deadlock(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager]
) -> None:
    provider_calls: list[Any] = []
    updates: list[Any] = []
    manager: ClientCredentialsManager

    def provider(last: OAuthToken | None, mgr: ClientCredentialsManager) -> OAuthToken:
        provider_calls.append((last, mgr.token))
        token = mgr.fetch_token()
        assert mgr.token is token and mgr.is_valid(token)
        return token

    def on_update(token: OAuthToken) -> None:
        updates.append((token.access_token, manager.token is token, manager.is_valid(token)))

    manager = make_manager(token_provider=provider, on_token_update=on_update)
    tokens = Crowd(THREADS, lambda i: manager.get_token()).join()

    assert all(isinstance(t, OAuthToken) and t is tokens[0] for t in tokens)
    assert server.token_requests == 1
    assert provider_calls == [(None, None)]
    assert updates == [("tok-1", True, True)]

    # Again after a 401: the provider sees the retired token as last_token.
    manager.invalidate(tokens[0])
    assert manager.get_token().access_token == "tok-2"
    assert provider_calls[1][0] is tokens[0]
    assert updates[1] == ("tok-2", True, True)


def test_update_callback_of_a_background_renewal_can_use_the_manager(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager], mono: FakeClock
) -> None:
    server.expires_in = 100
    seen: list[Any] = []
    manager: ClientCredentialsManager

    def on_update(token: OAuthToken) -> None:
        seen.append((token.access_token, manager.token is token, manager.is_valid(token)))
        seen.append(manager.get_token().access_token)

    manager = make_manager(clock_skew=0, on_token_update=on_update)
    manager.get_token()
    mono.advance(90)
    manager.get_token()
    join_refresh_threads()
    assert seen == [("tok-1", True, True), "tok-1", ("tok-2", True, True), "tok-2"]


def test_provider_calling_get_token_fails_fast_instead_of_waiting_for_itself(
    server: TokenServer, make_manager: Callable[..., ClientCredentialsManager]
) -> None:
    def provider(last: OAuthToken | None, mgr: ClientCredentialsManager) -> OAuthToken:
        return mgr.get_token()  # a mistake: the manager is asking this very provider

    manager = make_manager(token_provider=provider)
    [result] = Crowd(1, lambda i: manager.get_token()).join()
    assert isinstance(result, TokenProviderError)
    assert "fetch_token" in str(result)
    assert server.token_requests == 0


# -- robustness ---------------------------------------------------------------------------


def test_a_renewal_thread_that_cannot_start_does_not_wedge_the_manager(
    server: TokenServer,
    make_manager: Callable[..., ClientCredentialsManager],
    mono: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server.expires_in = 100
    manager = make_manager(clock_skew=0)
    first = manager.get_token()

    class NoThreads:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def start(self) -> None:
            raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(reusing_module.threading, "Thread", NoThreads)
    mono.advance(90)
    assert manager.get_token() is first  # the caller still gets the valid token
    monkeypatch.undo()

    # Nothing is left in flight: at the deadline the next caller fetches by itself.
    mono.advance(10)
    [result] = Crowd(1, lambda i: manager.get_token()).join()
    assert isinstance(result, OAuthToken) and result.access_token == "tok-2"
    assert server.token_requests == 2
