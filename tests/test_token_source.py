"""The token sources at the end of a manager's chain (reqcc/token_source.py), and the chain.

x/oauth2's shape: the manager (the reusing source) -> the store source, with a token store
(tests/test_store_source.py) -> the provider source | the endpoint source. Each is tested
through its one method, ``token(deadline, *, retries)``; the chain's behaviour as a whole
is the manager's, tested everywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests_mock

from reqcc import ClientCredentialsManager, OAuthToken, ReqccError, TokenProviderError
from reqcc.store_source import StoreSource
from reqcc.stores import FileTokenStore
from reqcc.token_source import EndpointSource, Obtained, ProviderSource

from .conftest import TOKEN_URL, FakeClock, manager_kwargs


def endpoint_answers(*answers: dict[str, Any]) -> requests_mock.Adapter:
    auth = requests_mock.Adapter()
    auth.register_uri("POST", TOKEN_URL, list(answers))
    return auth


def test_the_chain_a_manager_builds(clock: FakeClock, tmp_path: Path) -> None:
    auth = requests_mock.Adapter()
    store = FileTokenStore(tmp_path / "tokens.json", clock=clock.time)

    def provider(last: Any, manager: Any) -> OAuthToken:
        raise AssertionError("not called")

    def chain(**kwargs: Any) -> list[type]:
        manager = ClientCredentialsManager(**manager_kwargs(clock, auth, **kwargs))
        source: Any = manager._source
        links = [type(source)]
        while hasattr(source, "inner"):
            source = source.inner
            links.append(type(source))
        return links

    assert chain() == [EndpointSource]
    assert chain(token_provider=provider) == [ProviderSource]
    assert chain(token_store=store) == [StoreSource, EndpointSource]
    assert chain(token_store=store, token_provider=provider) == [StoreSource, ProviderSource]


def test_the_endpoint_source_sends_one_request_for_a_probe(clock: FakeClock) -> None:
    unavailable = {"status_code": 503, "json": {"error": "temporarily_unavailable"}}
    auth = endpoint_answers(unavailable)
    manager = ClientCredentialsManager(**manager_kwargs(clock, auth, max_retries=2, retry_backoff=0))
    endpoints = manager._endpoints
    with pytest.raises(ReqccError):
        endpoints.token(clock.monotonic() + 30, retries=True)
    assert auth.call_count == 3  # the first attempt and two retries
    with pytest.raises(ReqccError):
        endpoints.token(clock.monotonic() + 30, retries=False)
    assert auth.call_count == 4  # a probe: one request
    auth.register_uri("POST", TOKEN_URL, json={"access_token": "tok-1", "token_type": "Bearer"})
    obtained = endpoints.token(None)
    assert obtained == Obtained(obtained.token, True) and obtained.token.access_token == "tok-1"


def test_the_provider_source_gives_the_provider_the_last_token_and_checks_its_answer(
    clock: FakeClock,
) -> None:
    seen: list[Any] = []
    answers: list[Any] = [{"access_token": "p-1", "expires_in": 60}, "not a token"]

    def provider(last: OAuthToken | None, manager: Any) -> Any:
        seen.append((last, manager))
        return answers.pop(0)

    last = OAuthToken("p-0")
    marker = object()
    source = ProviderSource(
        provider, marker, last=lambda: last, retired=lambda: None, clock_skew=lambda: 0.0,
        clock=clock.time, dpop=False,
    )
    obtained = source.token(None)
    assert obtained.token.access_token == "p-1" and obtained.fresh
    assert seen == [(last, marker)]
    with pytest.raises(TokenProviderError, match="must be an OAuthToken or a dict"):
        source.token(None)
