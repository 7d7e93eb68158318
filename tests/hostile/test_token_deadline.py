"""The manager against stalling token endpoints: ``token_deadline`` for every waiting thread
(contract item 14) and a ``BaseException`` kept in the thread it was raised in (item 21).

The servers are raw-socket ones on loopback (tests/hostile_server.py) that stall or drip;
the deadline runs on the real monotonic clock (a fraction of a second), and "released in
time" is checked against a generous bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from reqcc import ClientCredentialsManager, ConfigurationError, OAuthToken, ReqccError
from reqcc.errors import TokenDeadlineError

from ..hostile_server import HostileServer, Reply
from ..threads import JOIN, run_threads

THREADS = 4
DEADLINE = 0.5
#: A generous bound for "released by the deadline" (0.1 waits 150 s, or forever).
PROMPT = 5.0


def crowd(n: int, call: Callable[[], Any]) -> list[Any]:
    """Run ``call`` in ``n`` daemon threads at once; return each one's result or exception (any)."""
    return run_threads(lambda _: call(), n)


def manager_for(url: str, **kwargs: Any) -> ClientCredentialsManager:
    kwargs.setdefault("token_deadline", DEADLINE)
    return ClientCredentialsManager(
        token_url=url + "/oauth/token", client_id="books-client", client_secret="s3cret", **kwargs
    )


def token(value: str) -> dict[str, Any]:
    return {"access_token": value, "token_type": "Bearer", "expires_in": 3600}


# -- item 14: one fetch, every waiting thread, one deadline --------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(stall=True), id="never-answers"),
        pytest.param(
            Reply(body=b'{"access_token":"tok-1","token_type":"Bearer"}', drip=0.05), id="drips"
        ),
    ],
)
def test_a_slow_token_endpoint_releases_every_waiting_thread_by_the_deadline(
    serve: Callable[..., HostileServer], reply: Reply
) -> None:
    server = serve(reply)
    manager = manager_for(server.url)
    started = time.monotonic()
    results = crowd(THREADS, manager.get_token)
    elapsed = time.monotonic() - started
    assert all(isinstance(r, TokenDeadlineError) for r in results), results
    assert elapsed < PROMPT
    assert server.token_requests == 1  # one fetch, the three others waited for it
    assert server.bytes_sent < 40  # the dripped answer was abandoned, not read to its end


def test_a_token_provider_that_never_returns_releases_the_other_threads_by_the_deadline() -> None:
    release, calls = threading.Event(), []

    def provider(last: OAuthToken | None, mgr: ClientCredentialsManager) -> dict[str, Any]:
        calls.append(threading.get_ident())
        if len(calls) == 1:
            release.wait(JOIN)  # stuck (until the test lets it go)
            return token("late")
        return token(f"tok-{len(calls)}")

    manager = manager_for("https://auth.example.com", token_provider=provider)
    started = time.monotonic()
    results: list[Any] = []
    stuck = threading.Thread(target=lambda: results.append(manager.get_token()), daemon=True)
    stuck.start()
    while not calls:
        time.sleep(0.005)
    waiting = crowd(THREADS - 1, manager.get_token)
    assert all(isinstance(r, TokenDeadlineError) for r in waiting), waiting
    assert "token_provider" in str(waiting[0])
    assert time.monotonic() - started < PROMPT
    assert len(calls) == 1  # they waited for the stuck one instead of calling it again

    # The single flight is not stuck: the next caller starts a new fetch and gets its token.
    assert manager.get_token().access_token == "tok-2"
    assert len(calls) == 2

    # The stuck provider finally returns: its caller gets that token, the manager keeps the newer one.
    release.set()
    stuck.join(JOIN)
    assert not stuck.is_alive()
    assert [t.access_token for t in results] == ["late"]
    assert manager.token is not None and manager.token.access_token == "tok-2"
    assert manager.get_token().access_token == "tok-2"


def test_a_late_failure_starts_no_backoff_once_a_newer_token_arrived() -> None:
    release, calls = threading.Event(), []

    def provider(last: OAuthToken | None, mgr: ClientCredentialsManager) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            release.wait(JOIN)
            raise RuntimeError("late failure")
        return token(f"tok-{len(calls)}")

    manager = manager_for("https://auth.example.com", token_provider=provider, token_deadline=0.2)
    errors: list[BaseException] = []

    def first() -> None:
        try:
            manager.get_token()
        except ReqccError as exc:
            errors.append(exc)

    stuck = threading.Thread(target=first, daemon=True)
    stuck.start()
    while not calls:
        time.sleep(0.005)
    time.sleep(0.25)  # past the stuck fetch's deadline
    assert manager.get_token().access_token == "tok-2"
    release.set()
    stuck.join(JOIN)
    assert not stuck.is_alive() and len(errors) == 1  # the late leader gets its own failure
    manager.token = None  # drop the token: the next call must fetch at once, not back off
    assert manager.get_token().access_token == "tok-3"


def test_the_deadline_reaches_each_token_request(serve: Callable[..., HostileServer]) -> None:
    # fetch_token() (what a token_provider calls) is bounded too, with no thread waiting.
    server = serve(Reply(stall=True))
    manager = manager_for(server.url)
    started = time.monotonic()
    with pytest.raises(TokenDeadlineError):
        manager.fetch_token()
    assert time.monotonic() - started < PROMPT


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "30", True, None])
def test_token_deadline_must_be_a_positive_number_of_seconds(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="token_deadline"):
        manager_for("https://auth.example.com", token_deadline=value)


def test_token_deadline_defaults_to_30_seconds() -> None:
    assert manager_for("https://auth.example.com", token_deadline=30).token_deadline == 30.0
    manager = ClientCredentialsManager(
        token_url="https://auth.example.com/t", client_id="c", auth_method="none"
    )
    assert manager.token_deadline == 30.0


# -- item 21: a BaseException stays in its thread -----------------------------------------


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_in_the_fetching_thread_is_raised_in_that_thread_only(
    interrupt: type[BaseException],
) -> None:
    release, calls, waiting = threading.Event(), [], threading.Semaphore(0)

    def provider(last: OAuthToken | None, mgr: ClientCredentialsManager) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            release.wait(JOIN)
            raise interrupt
        return token(f"tok-{len(calls)}")

    manager = manager_for("https://auth.example.com", token_provider=provider, token_deadline=JOIN)
    results: list[Any] = []

    def first() -> None:
        try:
            results.append(manager.get_token())
        except BaseException as exc:
            results.append(exc)

    leader = threading.Thread(target=first, daemon=True)
    leader.start()
    while not calls:
        time.sleep(0.005)

    def join_then_wait() -> Any:
        waiting.release()
        return manager.get_token()

    def let_go() -> None:
        for _ in range(THREADS - 1):
            assert waiting.acquire(timeout=JOIN)
        time.sleep(0.1)  # the waiters are now inside get_token, waiting on the stuck fetch
        release.set()

    opener = threading.Thread(target=let_go, daemon=True)
    opener.start()
    others = crowd(THREADS - 1, join_then_wait)
    leader.join(JOIN)
    opener.join(JOIN)
    assert not leader.is_alive() and not opener.is_alive()
    assert len(results) == 1 and isinstance(results[0], interrupt)  # the fetching thread's own
    # The waiters started over: one of them fetched, the others waited for it.
    assert all(isinstance(r, OAuthToken) for r in others), others
    assert {r.access_token for r in others} == {"tok-2"}
    assert len(calls) == 2
