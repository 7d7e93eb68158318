"""token_provider and on_token_update (items 3-5), hand-set tokens, and the manager's token API."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import requests

from reqcc import (
    ClientCredentialsManager,
    InvalidTokenValue,
    OAuthToken,
    ReqccError,
    TokenProviderError,
)

from .conftest import START, Env, FakeClock

BOOKS = "https://api.example.com/books"


class Provider:
    """A token_provider that records its calls and hands out ``p-1``, ``p-2``, … (or what it is told)."""

    def __init__(self, clock: FakeClock, lifetime: float = 3600) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls: list[tuple[OAuthToken | None, ClientCredentialsManager]] = []
        self.result: Any = None  # when set, returned instead of a new token

    def __call__(self, last: OAuthToken | None, manager: ClientCredentialsManager) -> Any:
        self.calls.append((last, manager))
        if self.result is not None:
            return self.result
        return OAuthToken(
            access_token=f"p-{len(self.calls)}", expires_in=self.lifetime, expiry=self.clock() + self.lifetime
        )


class Updates(list[OAuthToken]):
    """An on_token_update callback that records the tokens it is given."""

    def __call__(self, token: OAuthToken) -> None:
        self.append(token)


# -- item 3: without a provider the manager fetches; with one, the provider replaces the fetch --


def test_without_provider_the_manager_fetches_itself(make_env: Any) -> None:
    env: Env = make_env()
    assert env.manager.token is None
    assert env.session.get(BOOKS).status_code == 200
    assert env.issuer.count == 1
    assert env.bearers() == ["Bearer tok-1"]


def test_provider_replaces_the_fetch_and_is_called_only_when_needed(make_env: Any, clock: FakeClock) -> None:
    provider = Provider(clock)
    env: Env = make_env(token_provider=provider)
    for _ in range(10):
        env.session.get(BOOKS)
    assert len(provider.calls) == 1
    last, manager = provider.calls[0]
    assert last is None
    assert manager is env.manager
    assert env.issuer.count == 0  # the built-in fetch never ran
    assert env.bearers() == ["Bearer p-1"] * 10

    first = env.manager.token
    clock.advance(3600 - 30)  # p-1 expired (30 s skew)
    env.session.get(BOOKS)
    assert len(provider.calls) == 2
    assert provider.calls[1][0] is first
    assert provider.calls[1][1] is env.manager
    assert env.bearers()[-1] == "Bearer p-2"
    assert env.issuer.count == 0


def test_provider_is_called_after_a_401_retires_the_token(make_env: Any, clock: FakeClock) -> None:
    provider = Provider(clock)
    env: Env = make_env(token_provider=provider)
    env.api.register_uri("GET", BOOKS, [{"status_code": 401}, {"status_code": 200, "json": {"ok": True}}])
    assert env.session.get(BOOKS).status_code == 200
    assert [last.access_token if last else None for last, _ in provider.calls] == [None, "p-1"]
    assert env.bearers() == ["Bearer p-1", "Bearer p-2"]


def test_provider_may_call_fetch_token(make_env: Any) -> None:
    calls: list[OAuthToken | None] = []
    updates = Updates()

    def provider(last: OAuthToken | None, manager: ClientCredentialsManager) -> OAuthToken:
        calls.append(last)
        return manager.fetch_token()

    env: Env = make_env(token_provider=provider, on_token_update=updates)
    env.session.get(BOOKS)
    env.session.get(BOOKS)
    assert calls == [None]
    assert env.issuer.count == 1
    assert env.bearers() == ["Bearer tok-1", "Bearer tok-1"]
    assert [t.access_token for t in updates] == ["tok-1"]  # once, not once per adoption


def test_provider_loading_a_stored_token_checks_is_valid(make_env: Any, clock: FakeClock) -> None:
    """The README's pattern: reuse the stored token while valid, else fetch and store."""
    store: dict[str, Any] = {
        "token": OAuthToken(access_token="stored", expires_in=3600, expiry=clock() + 100).to_dict()
    }

    def provider(last: OAuthToken | None, manager: ClientCredentialsManager) -> OAuthToken:
        stored = OAuthToken.from_dict(store["token"])
        if manager.is_valid(stored):
            return stored
        return manager.fetch_token()

    def save(token: OAuthToken) -> None:
        store["token"] = token.to_dict()

    env: Env = make_env(token_provider=provider, on_token_update=save)
    env.session.get(BOOKS)
    assert env.issuer.count == 0
    clock.advance(100 - 30)  # the stored token is expired now
    env.session.get(BOOKS)
    assert env.issuer.count == 1
    assert store["token"]["access_token"] == "tok-1"
    assert env.bearers() == ["Bearer stored", "Bearer tok-1"]


# -- item 4: what the provider returns is checked ------------------------------------------


def test_provider_returning_an_expired_token(make_env: Any, clock: FakeClock) -> None:
    provider = Provider(clock)
    provider.result = OAuthToken(access_token="old", expires_in=3600, expiry=clock() - 1)
    env: Env = make_env(token_provider=provider)
    with pytest.raises(TokenProviderError) as info:
        env.session.get(BOOKS)
    message = str(info.value)
    assert "expired" in message
    assert "manager.is_valid(stored)" in message  # names the fix
    assert env.sent() == 0  # nothing went out with it
    assert env.manager.token is None


def test_provider_returning_a_token_inside_the_skew_counts_as_expired(
    make_env: Any, clock: FakeClock
) -> None:
    provider = Provider(clock)
    provider.result = OAuthToken(access_token="almost", expiry=clock() + 10)  # skew 30 s
    env: Env = make_env(token_provider=provider)
    with pytest.raises(TokenProviderError, match="expired"):
        env.session.get(BOOKS)
    assert env.sent() == 0


@pytest.mark.parametrize("result", [None, 42, "a-bare-token-string", ["x"], object()])
def test_provider_returning_a_non_token(make_env: Any, clock: FakeClock, result: Any) -> None:
    def provider(last: OAuthToken | None, manager: ClientCredentialsManager) -> Any:
        return result

    env: Env = make_env(token_provider=provider)
    with pytest.raises(TokenProviderError) as info:
        env.session.get(BOOKS)
    assert "token_provider" in str(info.value)
    assert "OAuthToken" in str(info.value)
    assert type(result).__name__ in str(info.value)
    assert env.sent() == 0


def test_provider_returning_a_malformed_dict(make_env: Any) -> None:
    env: Env = make_env(token_provider=lambda last, manager: {"token_type": "Bearer"})
    with pytest.raises(TokenProviderError, match="access_token"):
        env.session.get(BOOKS)
    assert env.sent() == 0


def test_provider_returning_a_dict_is_converted(make_env: Any, clock: FakeClock) -> None:
    updates = Updates()
    env: Env = make_env(
        token_provider=lambda last, manager: {"access_token": "from-dict", "expires_in": 60},
        on_token_update=updates,
    )
    env.session.get(BOOKS)
    assert env.bearers() == ["Bearer from-dict"]
    token = env.manager.token
    assert isinstance(token, OAuthToken)
    assert token.expiry == START + 60
    assert updates == [token]


def test_provider_raising_is_a_chained_token_provider_error(make_env: Any) -> None:
    def provider(last: OAuthToken | None, manager: ClientCredentialsManager) -> OAuthToken:
        raise KeyError("no row")

    env: Env = make_env(token_provider=provider)
    with pytest.raises(TokenProviderError, match="KeyError") as info:
        env.session.get(BOOKS)
    assert isinstance(info.value.__cause__, KeyError)
    assert isinstance(info.value, requests.RequestException)
    assert env.sent() == 0


def test_provider_building_an_unsendable_token_is_a_token_provider_error(make_env: Any) -> None:
    # OAuthToken(bad) raises InvalidTokenValue, a ReqccError (so a RequestException): it is
    # still the provider's fault, reported as such, not passed through as a requests error.
    def provider(last: OAuthToken | None, manager: ClientCredentialsManager) -> OAuthToken:
        return OAuthToken("leaked\r\nX-Injected: 1", expires_in=3600)

    env: Env = make_env(token_provider=provider)
    with pytest.raises(TokenProviderError, match="InvalidTokenValue: access_token contains") as info:
        env.session.get(BOOKS)
    assert isinstance(info.value.__cause__, InvalidTokenValue)
    assert "leaked" not in str(info.value) and "X-Injected" not in str(info.value)
    assert env.sent() == 0


def test_provider_raising_a_requests_error_keeps_it(make_env: Any) -> None:
    def provider(last: OAuthToken | None, manager: ClientCredentialsManager) -> OAuthToken:
        raise requests.ConnectionError("vault unreachable")

    env: Env = make_env(token_provider=provider)
    with pytest.raises(requests.ConnectionError, match="vault unreachable") as info:
        env.session.get(BOOKS)
    assert not isinstance(info.value, ReqccError)


def test_provider_failure_then_recovery(make_env: Any, clock: FakeClock) -> None:
    provider = Provider(clock)
    provider.result = "not a token"
    env: Env = make_env(token_provider=provider, failure_backoff=0, probe_interval=0)
    with pytest.raises(TokenProviderError):
        env.session.get(BOOKS)
    provider.result = None
    assert env.session.get(BOOKS).status_code == 200
    assert len(provider.calls) == 2
    assert env.bearers() == ["Bearer p-2"]


def test_provider_returning_the_token_a_401_just_retired(make_env: Any, clock: FakeClock) -> None:
    stored = OAuthToken(access_token="stale-in-db", expires_in=3600, expiry=clock() + 3600)
    env: Env = make_env(token_provider=lambda last, manager: stored)
    env.api.register_uri("GET", BOOKS, status_code=401)
    with pytest.raises(TokenProviderError, match="rejected") as info:
        env.session.get(BOOKS)
    assert "manager.is_valid(stored)" in str(info.value)
    assert env.api.call_count == 1  # the first try; the replay never went out
    assert env.manager.is_valid(stored) is False


# -- item 5: on_token_update ---------------------------------------------------------------


def test_on_token_update_fires_once_per_new_token(make_env: Any, clock: FakeClock) -> None:
    updates = Updates()
    env: Env = make_env(on_token_update=updates)
    for _ in range(5):
        env.session.get(BOOKS)
    assert [t.access_token for t in updates] == ["tok-1"]
    assert updates[0] is env.manager.token
    clock.advance(3600)
    for _ in range(5):
        env.session.get(BOOKS)
    env.manager.fetch_token()
    assert [t.access_token for t in updates] == ["tok-1", "tok-2", "tok-3"]


def test_on_token_update_does_not_fire_for_the_same_token_again(make_env: Any, clock: FakeClock) -> None:
    updates = Updates()
    same = OAuthToken(access_token="same", expires_in=3600, expiry=clock() + 3600)
    provider = Provider(clock)
    provider.result = same
    env: Env = make_env(token_provider=provider, on_token_update=updates)
    env.session.get(BOOKS)
    env.manager.token = None  # dropped: the provider is asked again and returns the same token
    env.session.get(BOOKS)
    assert len(provider.calls) == 2
    assert updates == [same]


def test_on_token_update_exception_is_logged_and_does_not_fail_the_request(
    make_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[OAuthToken] = []

    def update(token: OAuthToken) -> None:
        calls.append(token)
        raise RuntimeError("database is down")

    env: Env = make_env(on_token_update=update)
    with caplog.at_level(logging.DEBUG):
        response = env.session.get(BOOKS)
    assert response.status_code == 200
    assert env.bearers() == ["Bearer tok-1"]
    assert len(calls) == 1
    errors = [r for r in caplog.records if r.name == "reqcc" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "on_token_update" in errors[0].getMessage()
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is RuntimeError
    env.session.get(BOOKS)
    assert env.issuer.count == 1  # the token was adopted anyway


def test_token_given_at_construction_is_used_without_fetch_or_update(make_env: Any, clock: FakeClock) -> None:
    updates = Updates()
    given = OAuthToken(access_token="given", expires_in=3600, expiry=clock() + 3600)
    env: Env = make_env(token=given, on_token_update=updates)
    for _ in range(3):
        env.session.get(BOOKS)
    assert env.issuer.count == 0
    assert env.bearers() == ["Bearer given"] * 3
    assert updates == []
    assert env.manager.token is given


def test_token_given_as_a_dict_at_construction(make_env: Any, clock: FakeClock) -> None:
    env: Env = make_env(token={"access_token": "given-dict", "expiry": clock() + 3600})
    env.session.get(BOOKS)
    assert env.issuer.count == 0
    assert env.bearers() == ["Bearer given-dict"]


def test_token_set_by_hand_is_used_without_fetch_or_update(make_env: Any, clock: FakeClock) -> None:
    updates = Updates()
    provider = Provider(clock)
    env: Env = make_env(token_provider=provider, on_token_update=updates)
    env.session.get(BOOKS)
    assert [t.access_token for t in updates] == ["p-1"]
    env.manager.token = {"access_token": "by-hand", "expires_in": 3600}
    env.session.get(BOOKS)
    assert env.bearers() == ["Bearer p-1", "Bearer by-hand"]
    assert len(provider.calls) == 1
    assert [t.access_token for t in updates] == ["p-1"]
    assert env.issuer.count == 0


def test_an_expired_token_given_at_construction_is_replaced(make_env: Any, clock: FakeClock) -> None:
    updates = Updates()
    env: Env = make_env(token=OAuthToken(access_token="stale", expiry=clock() - 5), on_token_update=updates)
    env.session.get(BOOKS)
    assert env.issuer.count == 1
    assert env.bearers() == ["Bearer tok-1"]
    assert [t.access_token for t in updates] == ["tok-1"]


def test_a_token_without_expiry_is_never_renewed_by_the_clock(make_env: Any, clock: FakeClock) -> None:
    from .conftest import TokenIssuer

    env: Env = make_env(issuer=TokenIssuer(expires_in=None))
    env.session.get(BOOKS)
    clock.advance(10 * 365 * 86400)
    env.session.get(BOOKS)
    assert env.issuer.count == 1
    assert env.manager.token is not None and env.manager.token.expiry is None
    env.api.register_uri("GET", BOOKS, [{"status_code": 401}, {"status_code": 200, "json": {}}])
    env.session.get(BOOKS)  # only a 401 retires it
    assert env.issuer.count == 2
    assert env.bearers() == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


# -- the manager's token API --------------------------------------------------------------


def test_is_valid_is_expired_and_invalidate(make_env: Any, clock: FakeClock) -> None:
    env: Env = make_env()
    manager = env.manager
    assert manager.is_valid(None) is False
    token = manager.fetch_token()
    assert manager.is_valid(token) is True
    assert manager.is_expired(token) is False
    other = OAuthToken(access_token="other", expires_in=100, expiry=clock() + 100)
    assert manager.is_expired(other) is False
    clock.advance(69)
    assert manager.is_expired(other) is False
    clock.advance(1)  # expiry - 30 s skew
    assert manager.is_expired(other) is True
    assert manager.is_valid(other) is False
    assert manager.invalidate(token) is True
    assert manager.invalidate(token) is False  # retired once only
    assert manager.token is None
    assert manager.is_valid(token) is False
    assert manager.invalidate(other) is False


def test_a_provider_token_built_with_only_expires_in_expires_by_the_clock(
    make_env: Any, clock: FakeClock
) -> None:
    calls: list[OAuthToken | None] = []

    def provider(last: OAuthToken | None, manager: ClientCredentialsManager) -> OAuthToken:
        calls.append(last)
        return OAuthToken(f"p-{len(calls)}", expires_in=600)  # no absolute expiry given

    env: Env = make_env(token_provider=provider)
    env.session.get(BOOKS)
    assert env.manager.token is not None and env.manager.token.expiry == clock() + 600
    clock.advance(600 - 30)  # expired (30 s skew): taken as received when the provider returned it
    env.session.get(BOOKS)
    assert len(calls) == 2
    assert env.bearers() == ["Bearer p-1", "Bearer p-2"]


def test_a_token_set_by_hand_with_only_expires_in_expires_by_the_clock(clock: FakeClock) -> None:
    manager = ClientCredentialsManager(
        token_url="https://auth.example.com/token", client_id="c", client_secret="s",
        clock=clock, monotonic=clock,
    )
    manager.token = OAuthToken("by-hand", expires_in=100)
    assert manager.is_valid(manager.token)
    clock.advance(100)
    assert manager.token is not None and not manager.is_valid(manager.token)
