"""The adapter's less common paths: requests not built by requests, a replay with the same token.

A ``PreparedRequest`` built or altered by hand may have headers that are not a
``CaseInsensitiveDict`` or ``hooks`` that are not requests' dict; the adapter must still find
an explicit ``Authorization`` whatever its case, and send without the redirect guard (which
needs that dict). A replay refused with the very token it was refused with before says
nothing about the endpoint: no 401 cool-down (contract item 19).
"""

from __future__ import annotations

import types
from typing import Any

import pytest
import requests
import requests_mock

from reqcc import ClientCredentialsAdapter
from reqcc.testing import FakeClock

from .conftest import API, Env, TokenIssuer, manager_kwargs

BOOKS = API + "books"


def adapter_with(clock: FakeClock) -> tuple[ClientCredentialsAdapter, requests_mock.Adapter, TokenIssuer]:
    api, auth, issuer = requests_mock.Adapter(), requests_mock.Adapter(), TokenIssuer()
    auth.register_uri("POST", requests_mock.ANY, text=issuer)
    api.register_uri(requests_mock.ANY, requests_mock.ANY, text="ok")
    return ClientCredentialsAdapter(api, **manager_kwargs(clock, auth)), api, issuer


def sent_authorization(api: requests_mock.Adapter) -> list[str | None]:
    """The ``Authorization`` of each request sent (the sent headers may be a plain dict)."""
    return [
        {name.lower(): value for name, value in r.headers.items()}.get("authorization")
        for r in api.request_history
    ]


# -- headers that are not a CaseInsensitiveDict -----------------------------------------------


@pytest.mark.parametrize("name", ["Authorization", "authorization", "AUTHORIZATION"])
def test_an_explicit_authorization_in_plain_dict_headers_is_untouched(clock: FakeClock, name: str) -> None:
    adapter, api, issuer = adapter_with(clock)
    request = requests.Request("GET", BOOKS).prepare()
    request.headers = {name: "Basic dXNlcjpwYXNz", "Accept": "*/*"}  # type: ignore[assignment]
    adapter.send(request)
    assert sent_authorization(api) == ["Basic dXNlcjpwYXNz"]
    assert issuer.count == 0


def test_plain_dict_headers_without_authorization_get_the_token_on_a_copy(clock: FakeClock) -> None:
    adapter, api, issuer = adapter_with(clock)
    request = requests.Request("GET", BOOKS).prepare()
    headers = {"Accept": "*/*"}
    request.headers = headers  # type: ignore[assignment]
    adapter.send(request)
    assert sent_authorization(api) == ["Bearer tok-1"]
    assert api.request_history[0].headers["Accept"] == "*/*"
    assert headers == {"Accept": "*/*"} and issuer.count == 1


# -- hooks that are not requests' dict: no redirect guard, the token is still sent -------------


@pytest.mark.parametrize(
    "hooks",
    [None, types.MappingProxyType({"response": []})],
    ids=["none", "read-only-mapping"],
)
def test_hooks_that_are_not_a_dict_are_left_alone_and_the_token_is_sent(clock: FakeClock, hooks: Any) -> None:
    adapter, api, _ = adapter_with(clock)
    request = requests.Request("GET", BOOKS).prepare()
    request.hooks = hooks
    response = adapter.send(request)
    assert response.status_code == 200 and response.request is request
    assert request.hooks is hooks  # nothing noted on it (a read-only mapping cannot take it)
    assert sent_authorization(api) == ["Bearer tok-1"]


def test_requests_hooks_dict_notes_the_chain_url(clock: FakeClock) -> None:
    # The usual case, for contrast: requests' own dict gets the URL its chain started at.
    adapter, _, _ = adapter_with(clock)
    request = requests.Request("GET", BOOKS).prepare()
    adapter.send(request)
    assert request.hooks["reqcc.chain_url"] == BOOKS


# -- a replay refused with the same token: no cool-down ---------------------------------------


SAME = {"json": {"access_token": "same-token", "token_type": "Bearer", "expires_in": 3600}}


def test_a_replay_refused_with_the_same_token_starts_no_cool_down(make_env: Any) -> None:
    # The token endpoint hands back the token the API just refused: the replay's 401 is
    # that token's, not proof that the endpoint refuses every token.
    env: Env = make_env(issuer=TokenIssuer(answers=[SAME, SAME]))
    env.api.register_uri("GET", BOOKS, status_code=401)
    assert env.session.get(BOOKS).status_code == 401
    assert env.issuer.count == 2 and env.api.call_count == 2  # first token, its replay with "fresh"
    assert not env.manager.rejection_cooldown.active("GET " + BOOKS)
    # Not cooling down: the next 401 retires the token again and replays with a new one.
    env.api.register_uri("GET", BOOKS, [{"status_code": 401}, {"json": {"ok": True}}])
    assert env.session.get(BOOKS).json() == {"ok": True}
    assert env.issuer.count == 3
    assert env.bearers()[-1] == "Bearer tok-1"


def test_a_replay_refused_with_a_fresh_token_starts_the_cool_down(make_env: Any) -> None:
    # For contrast: a different fresh token refused too is the endpoint's fault.
    env: Env = make_env()
    env.api.register_uri("GET", BOOKS, status_code=401)
    assert env.session.get(BOOKS).status_code == 401
    assert env.bearers() == ["Bearer tok-1", "Bearer tok-2"]
    assert env.manager.rejection_cooldown.active("GET " + BOOKS)
