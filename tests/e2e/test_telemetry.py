"""Telemetry wired into the manager (contract item 26), counted against what the local server saw.

Each test passes SDK providers with in-memory readers as ``meter_provider=`` /
``tracer_provider=``; the global providers are never set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from reqcc import ClientCredentialsSession, InvalidClient, TokenResponseError
from reqcc.telemetry import SPAN_NAME
from reqcc.testing import FakeClock, LocalAuthorizationServer
from tests.otel_sdk import Otel
from tests.threads import wait_until

SECRET = "bookstore-secret"


@pytest.fixture
def session_for(
    reqcc_server: LocalAuthorizationServer, otel: Otel
) -> Iterator[Callable[..., ClientCredentialsSession]]:
    sessions: list[ClientCredentialsSession] = []

    def build(**kwargs: Any) -> ClientCredentialsSession:
        kwargs.setdefault("scopes", ["books.read"])
        kwargs.setdefault("refresh_ahead", 0)
        session = ClientCredentialsSession(
            **reqcc_server.credentials(),
            meter_provider=otel.meter_provider,
            tracer_provider=otel.tracer_provider,
            **kwargs,
        )
        sessions.append(session)
        return session

    yield build
    for session in sessions:
        session.close()


def get_books(session: ClientCredentialsSession, server: LocalAuthorizationServer) -> int:
    return session.get(server.api_url + "books", timeout=10).status_code


def test_one_request_per_token_request_and_nothing_on_the_warm_path(
    reqcc_server: LocalAuthorizationServer, otel: Otel, session_for: Callable[..., ClientCredentialsSession]
) -> None:
    session = session_for()
    for _ in range(5):
        assert get_books(session, reqcc_server) == 200
    assert reqcc_server.token_requests == 1
    assert otel.requests_by() == {("success", None): 1}
    assert otel.total("reqcc.token.request.duration") == 1
    [span] = otel.exporter.get_finished_spans()
    assert span.name == SPAN_NAME and span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "reqcc.client_id": "bookstore-app",
        "server.address": "127.0.0.1",
        "server.port": reqcc_server.port,
    }
    # The first request waited for the token it fetched (item 34); the warm path never waits.
    [waits] = otel.points("reqcc.token.wait.duration")
    assert waits.count == 1
    assert otel.points("reqcc.token.rejections") == []


def test_a_failure_carries_its_error_type(
    reqcc_server: LocalAuthorizationServer, otel: Otel, session_for: Callable[..., ClientCredentialsSession]
) -> None:
    reqcc_server.fail_token_requests(error="invalid_client", description=f"bad secret {SECRET}")
    session = session_for(failure_backoff=0, probe_interval=0)
    with pytest.raises(InvalidClient):
        get_books(session, reqcc_server)
    assert get_books(session, reqcc_server) == 200
    assert reqcc_server.token_requests == 2
    assert otel.requests_by() == {("error", "invalid_client"): 1, ("success", None): 1}
    statuses = [s.status.status_code for s in otel.exporter.get_finished_spans()]
    assert statuses == [StatusCode.ERROR, StatusCode.UNSET]


def test_each_retry_is_a_request_of_its_own(
    reqcc_server: LocalAuthorizationServer, otel: Otel, session_for: Callable[..., ClientCredentialsSession]
) -> None:
    reqcc_server.fail_token_requests(2, status=503)
    session = session_for(max_retries=2, sleep=lambda seconds: None)
    assert get_books(session, reqcc_server) == 200
    assert reqcc_server.token_requests == 3
    assert otel.requests_by() == {("error", "TokenResponseError"): 2, ("success", None): 1}
    assert otel.total("reqcc.token.request.duration") == 3
    assert len(otel.exporter.get_finished_spans()) == 3


def test_retries_that_all_fail(
    reqcc_server: LocalAuthorizationServer, otel: Otel, session_for: Callable[..., ClientCredentialsSession]
) -> None:
    reqcc_server.fail_token_requests(2, status=503)
    session = session_for(max_retries=1, sleep=lambda seconds: None)
    with pytest.raises(TokenResponseError):
        get_books(session, reqcc_server)
    assert reqcc_server.token_requests == 2
    assert otel.requests_by() == {("error", "TokenResponseError"): 2}


def test_a_401_rejection_is_counted_once(
    reqcc_server: LocalAuthorizationServer, otel: Otel, session_for: Callable[..., ClientCredentialsSession]
) -> None:
    session = session_for()
    assert get_books(session, reqcc_server) == 200
    token = session.manager.token
    assert token is not None
    reqcc_server.revoke_all()
    assert get_books(session, reqcc_server) == 200  # retired, refetched, replayed
    assert session.manager.invalidate(token) is False  # not current any more: not a rejection
    assert reqcc_server.token_requests == 2 and reqcc_server.api_401s == 1
    [rejections] = otel.points("reqcc.token.rejections")
    assert rejections.value == 1 and dict(rejections.attributes) == {"reqcc.client_id": "bookstore-app"}
    assert otel.requests_by() == {("success", None): 2}


def test_every_caller_that_waited_records_its_wait_the_leader_included(
    reqcc_server: LocalAuthorizationServer, otel: Otel, session_for: Callable[..., ClientCredentialsSession]
) -> None:
    # contract item 34: the caller that led the fetch waited for the token too. The wait is
    # read on the manager's monotonic clock, moved by 2.5 s while the fetch is held: each
    # of the 5 callers records exactly 2.5 s (a wait recorded as 0 s fails this).
    clock = FakeClock(100.0)
    session = session_for(monotonic=clock.monotonic)
    manager = session.manager
    flights = manager._flights
    entered = threading.Semaphore(0)
    original_wait = flights.wait

    def counting_wait(flight: Any, *, leader: bool) -> Any:
        if not leader:
            entered.release()
        return original_wait(flight, leader=leader)

    flights.wait = counting_wait  # type: ignore[method-assign]
    gate = reqcc_server.hold_token_requests(timeout=10)
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(get_books(session, reqcc_server)), daemon=True)
        for _ in range(5)
    ]
    for t in threads:
        t.start()
    for _ in range(4):  # every thread but the leader is waiting on the leader's flight
        assert entered.acquire(timeout=10)
    clock.advance(2.5)
    gate.set()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert statuses == [200] * 5
    assert reqcc_server.token_requests == 1
    assert otel.requests_by() == {("success", None): 1}
    [waits] = otel.points("reqcc.token.wait.duration")
    assert waits.count == 5 and waits.sum == pytest.approx(5 * 2.5)
    assert dict(waits.attributes) == {"reqcc.client_id": "bookstore-app"}
    # Later requests use the token: nobody waits any more.
    assert get_books(session, reqcc_server) == 200
    [waits] = otel.points("reqcc.token.wait.duration")
    assert waits.count == 5


def test_a_single_threaded_service_records_each_wait_for_its_token(
    reqcc_server: LocalAuthorizationServer, otel: Otel, session_for: Callable[..., ClientCredentialsSession]
) -> None:
    # One thread, each token fetched by the caller itself.
    clock = FakeClock(100.0)
    session = session_for(monotonic=clock.monotonic)
    gate = reqcc_server.hold_token_requests(timeout=10)
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(get_books(session, reqcc_server)), daemon=True)
    thread.start()
    assert wait_until(lambda: reqcc_server.token_requests == 1)
    clock.advance(0.3)
    gate.set()
    thread.join(10)
    assert done == [200]
    [waits] = otel.points("reqcc.token.wait.duration")
    assert waits.count == 1 and waits.sum == pytest.approx(0.3)


def test_discovery_is_not_a_token_request(
    reqcc_server: LocalAuthorizationServer, otel: Otel
) -> None:
    with ClientCredentialsSession(
        **reqcc_server.credentials(discover=True),
        meter_provider=otel.meter_provider,
        tracer_provider=otel.tracer_provider,
    ) as session:
        assert get_books(session, reqcc_server) == 200
    assert reqcc_server.metadata_requests == 1 and reqcc_server.token_requests == 1
    assert otel.requests_by() == {("success", None): 1}


def test_no_secret_or_token_in_anything_recorded(
    reqcc_server: LocalAuthorizationServer, otel: Otel, session_for: Callable[..., ClientCredentialsSession]
) -> None:
    reqcc_server.fail_token_requests(error="invalid_client", description=f"secret {SECRET} refused")
    session = session_for(failure_backoff=0, probe_interval=0)
    with pytest.raises(InvalidClient):
        get_books(session, reqcc_server)
    assert get_books(session, reqcc_server) == 200
    token = session.manager.token
    assert token is not None
    reqcc_server.revoke_all()
    assert get_books(session, reqcc_server) == 200
    text = otel.recorded_text()
    assert "bookstore-app" in text and "invalid_client" in text  # it reads what was recorded
    assert SECRET not in text
    assert token.access_token not in text
    assert session.manager.token is not None and session.manager.token.access_token not in text


@pytest.mark.reqcc_server(token_dpop_nonce=True)
def test_a_dpop_nonce_replay_is_a_request_of_its_own(
    reqcc_server: LocalAuthorizationServer, otel: Otel, session_for: Callable[..., ClientCredentialsSession]
) -> None:
    session = session_for(dpop=True)
    assert get_books(session, reqcc_server) == 200
    assert reqcc_server.token_requests == 2  # asked for a nonce, then answered
    assert otel.requests_by() == {("error", "use_dpop_nonce"): 1, ("success", None): 1}
    assert len(otel.exporter.get_finished_spans()) == 2
