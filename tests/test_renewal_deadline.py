"""A background renewal stuck past ``token_deadline`` does not hold renewals back (contract items 12, 14).

A renewal ahead of expiry that never ends (a token endpoint that never answers, a hook or
a DNS lookup that hangs) counts as failed once its deadline has passed: the next request
in the renewal window, after the failure backoff, starts a new renewal, and the stuck
one's late result never replaces the newer token.

The token endpoint is a ``requests_mock`` callback that holds the first renewal behind a
gate, either in the transport (its late result is a ``TokenDeadlineError``) or after the
answer was read, in an ``access_token_response`` compliance hook (its late result is a
token). Time is a fake clock; only the threads are real.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import requests_mock

from reqcc import ClientCredentialsManager, OAuthToken
from reqcc.testing import FakeClock

from .conftest import CLIENT_ID, TOKEN_URL, manager_kwargs, token_session_for
from .threads import JOIN, Crowd, join_all, wait_until

#: Every token lives 100 s; with ``clock_skew=0`` its renewal window opens at 80 s.
LIFETIME = 100
DEADLINE = 5.0
#: The token request that renews the first token ahead of expiry: the one held at the gate.
HELD = 2
REFRESH_THREAD = "reqcc-token-refresh"
STUCK_WARNING = "did not end within token_deadline"


class GatedEndpoint:
    """The token endpoint: request ``n`` issues ``tok-n``; request :data:`HELD` waits for ``gate``.

    ``where`` is where it waits: ``"transport"`` (before the answer is sent) or ``"answer"``
    (after it was read, in the token session's ``access_token_response`` hook).
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.lock = threading.Lock()
        self.calls = 0
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __call__(self, request: Any, context: Any) -> str:
        with self.lock:
            self.calls += 1
            n = self.calls
        if n == HELD and self.where == "transport":
            self._hold()
        context.headers["Content-Type"] = "application/json"
        return json.dumps({"access_token": f"tok-{n}", "token_type": "Bearer", "expires_in": LIFETIME})

    def hook(self, response: requests.Response) -> requests.Response:
        if response.json()["access_token"] == f"tok-{HELD}":
            self._hold()
        return response

    def _hold(self) -> None:
        self.entered.set()
        self.gate.wait(JOIN)


def current(manager: ClientCredentialsManager) -> str | None:
    token = manager.token
    return token.access_token if token is not None else None


def refresh_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == REFRESH_THREAD}


@pytest.fixture(params=["transport", "answer"])
def endpoint(request: pytest.FixtureRequest) -> Iterator[GatedEndpoint]:
    gated = GatedEndpoint(request.param)
    yield gated
    gated.gate.set()  # never leave a renewal thread waiting after the test


def make_manager(clock: FakeClock, endpoint: GatedEndpoint, **kwargs: Any) -> ClientCredentialsManager:
    auth = requests_mock.Adapter()
    auth.register_uri("POST", TOKEN_URL, text=endpoint)
    if endpoint.where == "answer":
        from requests_oauthlib import OAuth2Session

        session: requests.Session = OAuth2Session(CLIENT_ID)
        session.mount("https://", auth)
        session.register_compliance_hook("access_token_response", endpoint.hook)
    else:
        session = token_session_for(auth)
    options = manager_kwargs(
        clock, auth,
        refresh_ahead=0.2, clock_skew=0, token_deadline=DEADLINE, failure_backoff=1.0,
        token_session=session,
    )
    options.update(kwargs)
    return ClientCredentialsManager(**options)


def start_stuck_renewal(
    clock: FakeClock, endpoint: GatedEndpoint, manager: ClientCredentialsManager, first: OAuthToken
) -> threading.Thread:
    """Move into the renewal window; return the renewal thread, held at the gate."""
    before = refresh_threads()
    clock.advance(85)  # the window: 80 s to 100 s
    assert manager.get_token() is first
    assert endpoint.entered.wait(JOIN)
    (stuck,) = refresh_threads() - before
    return stuck


def test_a_renewal_stuck_past_its_deadline_is_replaced_and_its_late_result_not_adopted(
    clock: FakeClock, endpoint: GatedEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    updates: list[str] = []
    manager = make_manager(clock, endpoint, on_token_update=lambda t: updates.append(t.access_token))
    first = manager.get_token()
    stuck = start_stuck_renewal(clock, endpoint, manager, first)

    clock.advance(DEADLINE - 0.1)  # 89.9 s: the renewal still has time
    assert manager.get_token() is first
    assert refresh_threads() == {stuck} and endpoint.calls == HELD

    clock.advance(0.2)  # 90.1 s: past its deadline, still in the window
    with caplog.at_level(logging.WARNING, logger="reqcc"):
        results = Crowd(8, lambda i: manager.get_token()).join()
    assert all(r is first for r in results), results
    # It counts as failed: the failure backoff (1 s, jittered to >= 0.5 s) starts, no request yet.
    assert endpoint.calls == HELD and refresh_threads() == {stuck}
    warnings = [r.getMessage() for r in caplog.records if STUCK_WARNING in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "tok-1" not in caplog.text

    clock.advance(0.45)
    assert manager.get_token() is first
    assert endpoint.calls == HELD and refresh_threads() == {stuck}

    clock.advance(0.6)  # past the longest first backoff: one new renewal, not stuck
    results = Crowd(8, lambda i: manager.get_token()).join()
    # Each got the token in use, or already the new one (the renewal is not held).
    assert {r.access_token for r in results} <= {"tok-1", "tok-3"}, results
    assert wait_until(lambda: current(manager) == "tok-3"), "no new renewal in the renewal window"
    join_all(refresh_threads() - {stuck})
    assert endpoint.calls == HELD + 1
    assert manager.get_token().access_token == "tok-3"
    assert updates == ["tok-1", "tok-3"]

    # The stuck renewal ends at last: its late token (or its failure) changes nothing.
    endpoint.gate.set()
    stuck.join(JOIN)
    assert not stuck.is_alive()
    assert manager.get_token().access_token == "tok-3"
    assert updates == ["tok-1", "tok-3"]
    assert endpoint.calls == HELD + 1
    # ... and starts no backoff: without a token the next call fetches at once.
    manager.token = None
    assert manager.get_token().access_token == "tok-4"
    assert endpoint.calls == HELD + 2


def test_a_late_token_is_adopted_when_no_newer_one_arrived_meanwhile(clock: FakeClock) -> None:
    endpoint = GatedEndpoint("answer")
    try:
        manager = make_manager(clock, endpoint)
        first = manager.get_token()
        stuck = start_stuck_renewal(clock, endpoint, manager, first)
        clock.advance(DEADLINE + 0.1)  # past its deadline: counted as failed, backoff
        assert manager.get_token() is first
    finally:
        endpoint.gate.set()
    stuck.join(JOIN)
    assert not stuck.is_alive()
    # Nothing newer was obtained: its token replaces the older one in use, and the backoff ends.
    assert manager.get_token().access_token == "tok-2"
    assert endpoint.calls == HELD and refresh_threads() == set()


def test_a_slow_renewal_that_ends_before_its_deadline_changes_nothing(
    clock: FakeClock, endpoint: GatedEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    updates: list[str] = []
    manager = make_manager(clock, endpoint, on_token_update=lambda t: updates.append(t.access_token))
    first = manager.get_token()
    with caplog.at_level(logging.WARNING, logger="reqcc"):
        stuck = start_stuck_renewal(clock, endpoint, manager, first)
        clock.advance(DEADLINE - 1)  # 89 s: slow, not late
        assert manager.get_token() is first
        assert refresh_threads() == {stuck} and endpoint.calls == HELD
        endpoint.gate.set()
        stuck.join(JOIN)
        assert not stuck.is_alive()
        assert manager.get_token().access_token == "tok-2"
        clock.advance(2)  # 91 s: past where its deadline was
        assert manager.get_token().access_token == "tok-2"
    assert refresh_threads() == set() and endpoint.calls == HELD
    assert updates == ["tok-1", "tok-2"]
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def test_the_late_failure_of_a_renewal_counted_at_its_deadline_is_not_counted_again(
    clock: FakeClock,
) -> None:
    endpoint = GatedEndpoint("transport")
    try:
        manager = make_manager(clock, endpoint)
        first = manager.get_token()
        stuck = start_stuck_renewal(clock, endpoint, manager, first)
        clock.advance(DEADLINE + 0.1)  # 90.1 s: counted as failed; next renewal from 90.6-91.1 s
        assert manager.get_token() is first
        clock.advance(0.4)
    finally:
        endpoint.gate.set()  # it ends now, with its TokenDeadlineError
    stuck.join(JOIN)
    assert not stuck.is_alive()
    # Counted again, that would be a second failure: a backoff of 1-2 s from 90.5 s.
    clock.advance(0.65)  # 91.15 s
    assert manager.get_token() is first
    assert wait_until(lambda: current(manager) == "tok-3"), "the backoff should have ended"
    join_all(refresh_threads())
    assert endpoint.calls == HELD + 1
