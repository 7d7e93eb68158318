"""reqcc against oauthlib's server side: reqcc.testing.LocalAuthorizationServer.

``BackendApplicationServer`` with a ``RequestValidator``, oauthlib's ``ResourceEndpoint`` on
the bookstore API and an RFC 7009 revocation endpoint (see :mod:`reqcc.testing`). oauthlib
has no JWT client authentication, so the JWT methods run against Authlib only; mutual TLS
runs here at the transport level (the server requires a client certificate).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import requests

from reqcc import ClientCredentialsSession, InvalidClient, InvalidScope, OAuthScope
from reqcc.client_auth import make_client_auth
from reqcc.testing import FakeClock, LocalAuthorizationServer

from .conftest import SPECIAL_SECRET, TLSFiles

Start = Callable[..., LocalAuthorizationServer]
SECRET_METHODS = ("client_secret_basic", "client_secret_post")


def session_for(server: LocalAuthorizationServer, **kwargs: Any) -> ClientCredentialsSession:
    kwargs.setdefault("client_id", "secret-client")
    if kwargs.get("auth_method") != "none":
        kwargs.setdefault("client_secret", SPECIAL_SECRET)
    kwargs.setdefault("scopes", [OAuthScope.BooksRead])
    return ClientCredentialsSession(token_url=server.token_url, base_url=server.api_url, **kwargs)


@pytest.mark.parametrize("method", SECRET_METHODS)
def test_token_fetched_once_reused_and_accepted(start_oauthlib: Start, method: str) -> None:
    server = start_oauthlib()
    session = session_for(server, auth_method=method)

    assert session.get(server.api_url + "books").status_code == 200
    assert session.get(server.api_url + "books").status_code == 200

    assert server.token_requests == 1 and server.api_requests == 2
    record = server.last_token_request
    assert record is not None and record.auth_method == method and record.status == 200
    assert record.client_id == "secret-client"  # the special secret was decoded intact
    if method == "client_secret_post":
        assert record.field("client_secret") == SPECIAL_SECRET
        assert record.header("Authorization") is None
    else:
        assert record.field("client_secret") is None
    token = session.manager.token
    assert token is not None and token.expires_in == 3600


def test_public_client_with_auth_method_none(start_oauthlib: Start) -> None:
    server = start_oauthlib()
    session = session_for(server, client_id="public-client", auth_method="none")
    assert session.get(server.api_url + "books").status_code == 200
    record = server.last_token_request
    assert record is not None and record.auth_method == "none"
    assert record.form == {
        "grant_type": ["client_credentials"],
        "scope": ["books.read"],
        "client_id": ["public-client"],
    }


def test_renewed_after_the_server_ttl(start_oauthlib: Start, fake_clock: FakeClock) -> None:
    server = start_oauthlib(token_ttl=2, clock=fake_clock.time)
    session = session_for(
        server, clock_skew=0.5, refresh_ahead=0, clock=fake_clock.time, monotonic=fake_clock.monotonic
    )
    assert session.get(server.api_url + "books").status_code == 200
    old = session.manager.token
    assert old is not None

    fake_clock.advance(1.0)
    assert session.get(server.api_url + "books").status_code == 200
    assert server.token_requests == 1

    fake_clock.advance(1.5)
    assert not server.is_active(old)  # expired at the server
    assert session.get(server.api_url + "books").status_code == 200
    assert server.token_requests == 2
    assert server.api_401s == 0  # renewed before sending, not after a 401


def test_scope_narrowed_by_the_server_is_accepted_and_recorded(
    start_oauthlib: Start, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_oauthlib(narrow_scopes=True)
    session = session_for(server, client_id="books-only", scopes=["books.read", "orders.read"])
    with caplog.at_level(logging.INFO, logger="reqcc"):
        assert session.get(server.api_url + "books").status_code == 200
    token = session.manager.token
    assert token is not None and token.scope == "books.read"
    assert any("granted scope" in r.getMessage() for r in caplog.records)
    # the narrowed token really lacks orders.read at the API (403, not a 401 that would retire it)
    assert session.get(server.api_url + "orders").status_code == 403
    assert server.token_requests == 1


@pytest.mark.parametrize("method", SECRET_METHODS)
def test_wrong_secret_raises_invalid_client_with_the_real_status(start_oauthlib: Start, method: str) -> None:
    server = start_oauthlib()
    session = session_for(server, auth_method=method, client_secret=SPECIAL_SECRET + "x")
    with pytest.raises(InvalidClient) as caught:
        session.get(server.api_url + "books")
    record = server.last_token_request
    assert record is not None
    assert caught.value.status_code == record.status == 401  # oauthlib: invalid_client is 401
    assert server.token_requests == 1
    assert SPECIAL_SECRET not in str(caught.value)


def test_scope_beyond_the_clients_raises_invalid_scope_with_the_real_status(start_oauthlib: Start) -> None:
    server = start_oauthlib(narrow_scopes=False)
    session = session_for(server, client_id="books-only", scopes=["books.read", "orders.write"])
    with pytest.raises(InvalidScope) as caught:
        session.get(server.api_url + "books")
    record = server.last_token_request
    assert record is not None
    assert caught.value.status_code == record.status == 400


@pytest.mark.parametrize("method", SECRET_METHODS)
def test_token_revoked_at_the_server_is_retired_and_the_request_replayed(
    start_oauthlib: Start, method: str
) -> None:
    server = start_oauthlib()
    session = session_for(server, auth_method=method, scopes=["books.read", "orders.write"])
    assert session.get(server.api_url + "books").status_code == 200
    revoked = session.manager.token
    assert revoked is not None

    # RFC 7009 at the server's endpoint, authenticated the way reqcc authenticates.
    parts = make_client_auth(method, "secret-client", SPECIAL_SECRET).prepare(server.revocation_url)
    answer = requests.post(
        server.revocation_url,
        data={**parts.form, "token": revoked.access_token},
        headers=dict(parts.headers),
        timeout=5,
    )
    assert answer.status_code == 200
    assert not server.is_active(revoked)

    # A POST with a body: refused (401), the token retired, the body replayed with a new token.
    response = session.post(server.api_url + "orders", json={"title": "SICP"})
    assert response.status_code == 201
    assert [o["title"] for o in server.orders] == ["SICP"]  # created once
    assert server.api_401s == 1
    assert server.token_requests == 2  # exactly one new token


def test_token_params_reach_the_server_on_every_fetch(start_oauthlib: Start, fake_clock: FakeClock) -> None:
    server = start_oauthlib(token_ttl=2, clock=fake_clock.time)
    params = {"audience": "https://api.bookstore.test/", "resource": "https://api.bookstore.test/books"}
    session = session_for(
        server, token_params=params, clock_skew=0, refresh_ahead=0,
        clock=fake_clock.time, monotonic=fake_clock.monotonic,
    )
    session.get(server.api_url + "books")
    fake_clock.advance(3)
    session.get(server.api_url + "books")
    server.revoke_all()
    session.get(server.api_url + "books")  # 401 → retired → new token
    assert server.token_requests == 3
    for record in server.token_request_log:
        assert record.field("audience") == params["audience"]
        assert record.field("resource") == params["resource"]


# -- TLS -----------------------------------------------------------------------------


@pytest.fixture
def no_ca_bundle_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def _token_session(verify: str | bool, cert: str | None = None) -> requests.Session:
    session = requests.Session()
    session.verify = verify
    session.cert = cert
    return session


@pytest.mark.usefixtures("no_ca_bundle_from_the_environment")
def test_https_with_verification_on(start_oauthlib: Start, tls: TLSFiles) -> None:
    server = start_oauthlib(ssl_context=tls.server_context())
    session = session_for(server, token_session=_token_session(tls.ca_file))
    session.verify = tls.ca_file
    assert server.token_url.startswith("https://127.0.0.1:")
    assert session.get(server.api_url + "books").status_code == 200
    assert session.get(server.api_url + "books").status_code == 200
    assert server.token_requests == 1


@pytest.mark.usefixtures("no_ca_bundle_from_the_environment")
def test_untrusted_certificate_fails_clearly_without_retries(start_oauthlib: Start, tls: TLSFiles) -> None:
    server = start_oauthlib(ssl_context=tls.server_context())
    sleeps: list[float] = []
    session = session_for(server, token_session=_token_session(tls.other_ca_file), sleep=sleeps.append)
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        session.get(server.api_url + "books")
    assert sleeps == [] and server.token_requests == 0


@pytest.mark.usefixtures("no_ca_bundle_from_the_environment")
def test_tls_client_auth_transport_against_a_server_requiring_a_client_certificate(
    start_oauthlib: Start, tls: TLSFiles
) -> None:
    # oauthlib has no RFC 8705 client binding; the validator sees a public client_id, and
    # the TLS layer refuses any connection without a certificate from the test CA.
    server = start_oauthlib(ssl_context=tls.server_context(require_client_cert=True))
    session = session_for(
        server,
        client_id="public-client",
        auth_method="tls_client_auth",
        token_session=_token_session(tls.ca_file, cert=tls.client_cert_file),
    )
    session.verify, session.cert = tls.ca_file, tls.client_cert_file
    assert session.get(server.api_url + "books").status_code == 200
    record = server.last_token_request
    assert record is not None and record.form["client_id"] == ["public-client"]

    without = session_for(
        server,
        client_id="public-client",
        auth_method="tls_client_auth",
        token_session=_token_session(tls.ca_file),
        max_retries=0,
    )
    with pytest.raises(requests.exceptions.ConnectionError):
        without.manager.fetch_token()
    assert server.token_requests == 1
