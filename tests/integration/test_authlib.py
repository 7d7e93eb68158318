"""reqcc against Authlib's AuthorizationServer, ClientCredentialsGrant and ResourceProtector.

Every case runs against the real server (Flask + werkzeug on 127.0.0.1) started by the
``start_authlib`` fixture; expiry is judged on a clock shared by server and client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import jwt
import pytest
import requests

from reqcc import ClientCredentialsSession, InvalidClient, InvalidScope, OAuthScope
from reqcc.client_auth import make_client_auth
from reqcc.jwt_auth import ASSERTION_TYPE
from reqcc.testing import FakeClock

from .authlib_server import AuthlibServer
from .conftest import SPECIAL_SECRET, RSAKeys

METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt")
CLIENT_IDS = {
    "client_secret_basic": "basic-client",
    "client_secret_post": "post-client",
    "client_secret_jwt": "secret-jwt-client",
    "private_key_jwt": "key-jwt-client",
}


def credentials(method: str, rsa_keys: RSAKeys, key_form: str = "pem") -> dict[str, Any]:
    """The keywords that authenticate ``method``'s client at the Authlib server."""
    kwargs: dict[str, Any] = {"client_id": CLIENT_IDS[method], "auth_method": method}
    if method == "private_key_jwt":
        kwargs["private_key"] = {
            "pem": rsa_keys.pem,
            "pem-bytes": rsa_keys.pem.encode(),
            "jwk": rsa_keys.private_jwk,
        }[key_form]
    else:
        kwargs["client_secret"] = SPECIAL_SECRET
    return kwargs


def session_for(server: AuthlibServer, **kwargs: Any) -> ClientCredentialsSession:
    kwargs.setdefault("scopes", [OAuthScope.BooksRead])
    return ClientCredentialsSession(token_url=server.token_url, base_url=server.api_url, **kwargs)


def revoke(server: AuthlibServer, creds: dict[str, Any], access_token: str) -> requests.Response:
    """Revoke ``access_token`` at the server's RFC 7009 endpoint, authenticated as ``creds``."""
    auth = make_client_auth(
        creds["auth_method"],
        creds["client_id"],
        creds.get("client_secret"),
        private_key=creds.get("private_key"),
    )
    # the assertion's audience is the token endpoint, which this server accepts for /revoke too
    parts = auth.prepare(server.token_url)
    form = {**parts.form, "token": access_token, "token_type_hint": "access_token"}
    return requests.post(server.revoke_url, data=form, headers=dict(parts.headers), timeout=5)


def check_client_auth_on_the_wire(server: AuthlibServer, method: str, index: int = -1) -> None:
    """What the server received authenticates the client the way ``method`` says, and only so."""
    form, headers = server.token_forms[index], server.token_headers[index]
    assert form["grant_type"] == "client_credentials"
    if method == "client_secret_basic":
        assert headers["Authorization"].startswith("Basic ")
        assert "client_secret" not in form and "client_assertion" not in form
    elif method == "client_secret_post":
        assert "Authorization" not in headers
        assert form["client_id"] == "post-client"
        assert form["client_secret"] == SPECIAL_SECRET
    else:
        assert "Authorization" not in headers and "client_secret" not in form
        assert form["client_assertion_type"] == ASSERTION_TYPE
        assert jwt.get_unverified_header(form["client_assertion"])["alg"] == (
            "HS256" if method == "client_secret_jwt" else "RS256"
        )


@pytest.mark.parametrize("method", METHODS)
def test_token_fetched_once_reused_and_accepted(
    start_authlib: Callable[..., AuthlibServer], rsa_keys: RSAKeys, method: str
) -> None:
    server = start_authlib()
    session = session_for(server, **credentials(method, rsa_keys))

    first = session.get(server.api_url + "books")
    second = session.get(server.api_url + "orders")

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json() == {"name": "books", "client_id": CLIENT_IDS[method], "scope": "books.read"}
    assert server.token_requests == 1
    assert server.api_statuses == [200, 200]
    check_client_auth_on_the_wire(server, method)
    token = session.manager.token
    assert token is not None and token.scope == "books.read" and token.expires_in == 3600


@pytest.mark.parametrize("key_form", ["pem", "pem-bytes", "jwk"])
def test_private_key_jwt_accepts_pem_str_pem_bytes_and_jwk(
    start_authlib: Callable[..., AuthlibServer], rsa_keys: RSAKeys, key_form: str
) -> None:
    server = start_authlib()
    session = session_for(server, **credentials("private_key_jwt", rsa_keys, key_form))

    assert session.get(server.api_url + "books").status_code == 200
    header = jwt.get_unverified_header(server.token_forms[0]["client_assertion"])
    assert header.get("kid") == ("reqcc-test-key" if key_form == "jwk" else None)


@pytest.mark.parametrize("method", ["client_secret_jwt", "private_key_jwt"])
def test_each_token_request_carries_a_fresh_assertion(
    start_authlib: Callable[..., AuthlibServer], rsa_keys: RSAKeys, method: str
) -> None:
    server = start_authlib()
    session = session_for(server, **credentials(method, rsa_keys))

    session.manager.fetch_token()
    session.manager.fetch_token()  # the server refuses a replayed jti: this proves it is new

    assert server.token_statuses == [200, 200]
    assertions = [form["client_assertion"] for form in server.token_forms]
    assert assertions[0] != assertions[1]
    claims = [jwt.decode(a, options={"verify_signature": False}) for a in assertions]
    for c in claims:
        assert c["iss"] == c["sub"] == CLIENT_IDS[method]
        assert c["aud"] == server.token_url
        assert 0 < c["exp"] - c["iat"] <= 60
    assert claims[0]["jti"] != claims[1]["jti"]


@pytest.mark.parametrize("method", ["client_secret_jwt", "private_key_jwt"])
def test_assertion_audience_overrides_aud(
    start_authlib: Callable[..., AuthlibServer], rsa_keys: RSAKeys, method: str
) -> None:
    server = start_authlib()
    accepted = session_for(server, assertion_audience=server.base_url, **credentials(method, rsa_keys))
    refused = session_for(
        server, assertion_audience="https://elsewhere.example/token", **credentials(method, rsa_keys)
    )

    assert accepted.get(server.api_url + "books").status_code == 200
    assert (
        jwt.decode(server.token_forms[0]["client_assertion"], options={"verify_signature": False})["aud"]
        == server.base_url
    )
    with pytest.raises(InvalidClient) as caught:
        refused.get(server.api_url + "books")
    assert caught.value.status_code == server.token_statuses[-1] == 400


def test_secret_with_reserved_characters_works_with_every_secret_method(
    start_authlib: Callable[..., AuthlibServer], rsa_keys: RSAKeys
) -> None:
    server = start_authlib()
    for char in ":%+/&= ":
        assert char in SPECIAL_SECRET
    for method in ("client_secret_basic", "client_secret_post", "client_secret_jwt"):
        session = session_for(server, **credentials(method, rsa_keys))
        assert session.get(server.api_url + "books").status_code == 200, method
    assert server.token_statuses == [200, 200, 200]


def test_raw_basic_encoding_breaks_on_authlib_for_a_percent_escape(
    start_authlib: Callable[..., AuthlibServer], rsa_keys: RSAKeys
) -> None:
    # Authlib percent-decodes the Basic credentials: sent raw, "%41" arrives as "A".
    # This is why basic_auth_encoding="raw" is a switch for other servers, not a default.
    server = start_authlib()
    session = session_for(server, basic_auth_encoding="raw", **credentials("client_secret_basic", rsa_keys))
    with pytest.raises(InvalidClient):
        session.get(server.api_url + "books")


def test_renewed_after_the_server_ttl(
    start_authlib: Callable[..., AuthlibServer], rsa_keys: RSAKeys, fake_clock: FakeClock
) -> None:
    server = start_authlib(expires_in=2, clock=fake_clock.time)
    session = session_for(
        server,
        clock_skew=0.5,
        refresh_ahead=0,
        clock=fake_clock.time,
        monotonic=fake_clock.monotonic,
        **credentials("client_secret_basic", rsa_keys),
    )
    assert session.get(server.api_url + "books").status_code == 200
    old = session.manager.token
    assert old is not None and old.expires_in == 2

    fake_clock.advance(1.0)
    assert session.get(server.api_url + "books").status_code == 200
    assert server.token_requests == 1  # still valid on both sides

    fake_clock.advance(1.5)  # past the server's TTL
    stale = requests.get(
        server.api_url + "books", headers={"Authorization": f"Bearer {old.access_token}"}, timeout=5
    )
    assert stale.status_code == 401  # the server expired it
    assert session.get(server.api_url + "books").status_code == 200
    assert server.token_requests == 2
    assert session.manager.token is not None and session.manager.token.access_token != old.access_token
    assert server.api_statuses == [200, 200, 401, 200]  # reqcc renewed before sending, no 401


def test_renewed_ahead_in_the_background_near_the_end_of_its_life(
    start_authlib: Callable[..., AuthlibServer], rsa_keys: RSAKeys, fake_clock: FakeClock
) -> None:
    server = start_authlib(expires_in=10, clock=fake_clock.time)
    renewed = threading.Event()
    session = session_for(
        server,
        clock_skew=0,
        clock=fake_clock.time,
        monotonic=fake_clock.monotonic,
        on_token_update=lambda token: renewed.set() if server.token_requests == 2 else None,
        **credentials("private_key_jwt", rsa_keys),
    )
    assert session.get(server.api_url + "books").status_code == 200
    first = session.manager.token
    fake_clock.advance(8.5)  # in the last 20 % of the lifetime

    assert session.get(server.api_url + "books").status_code == 200  # the old token, still valid
    assert renewed.wait(10)
    assert server.token_requests == 2
    assert session.manager.token is not None and session.manager.token is not first


def test_scope_narrowed_by_the_server_is_accepted_and_recorded(
    start_authlib: Callable[..., AuthlibServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = start_authlib()
    session = session_for(
        server,
        client_id="books-only",
        client_secret=SPECIAL_SECRET,
        scopes=[OAuthScope.BooksRead, OAuthScope.OrdersRead],
    )
    with caplog.at_level(logging.INFO, logger="reqcc"):
        assert session.get(server.api_url + "books").status_code == 200

    assert server.token_forms[0]["scope"] == "books.read orders.read"
    token = session.manager.token
    assert token is not None and token.scope == "books.read"
    assert any("granted scope" in r.getMessage() for r in caplog.records)
    assert server.token_requests == 1


@pytest.mark.parametrize(
    ("method", "status"),
    # Authlib answers invalid_client with 401 when the grant accepts Basic (it does here),
    # and with 400 when a JWT assertion is refused by its RFC 7523 verifier.
    [("client_secret_basic", 401), ("client_secret_post", 401), ("client_secret_jwt", 400)],
)
def test_wrong_secret_raises_invalid_client_with_the_real_status(
    start_authlib: Callable[..., AuthlibServer], rsa_keys: RSAKeys, method: str, status: int
) -> None:
    server = start_authlib()
    kwargs = {**credentials(method, rsa_keys), "client_secret": SPECIAL_SECRET + "-wrong"}
    session = session_for(server, **kwargs)
    with pytest.raises(InvalidClient) as caught:
        session.get(server.api_url + "books")
    assert caught.value.status_code == server.token_statuses[-1] == status
    assert caught.value.error == "invalid_client"
    assert server.token_requests == 1  # not retried
    assert SPECIAL_SECRET not in str(caught.value)


def test_wrong_private_key_raises_invalid_client(
    start_authlib: Callable[..., AuthlibServer], rsa_keys: RSAKeys
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    server = start_authlib()
    session = session_for(
        server, client_id="key-jwt-client", auth_method="private_key_jwt", private_key=other
    )
    with pytest.raises(InvalidClient) as caught:
        session.get(server.api_url + "books")
    assert caught.value.status_code == server.token_statuses[-1] == 400
    assert "PRIVATE KEY" not in str(caught.value)


def test_unknown_scope_raises_invalid_scope_with_the_real_status(
    start_authlib: Callable[..., AuthlibServer], rsa_keys: RSAKeys
) -> None:
    server = start_authlib()
    session = session_for(
        server, scopes=["books.read", "admin.all"], **credentials("client_secret_post", rsa_keys)
    )
    with pytest.raises(InvalidScope) as caught:
        session.get(server.api_url + "books")
    assert caught.value.status_code == server.token_statuses[-1] == 400
    assert caught.value.error == "invalid_scope"


@pytest.mark.parametrize("method", METHODS)
def test_token_revoked_at_the_server_is_retired_and_the_request_replayed(
    start_authlib: Callable[..., AuthlibServer], rsa_keys: RSAKeys, method: str
) -> None:
    server = start_authlib()
    updates: list[str] = []
    session = session_for(
        server, on_token_update=lambda t: updates.append(t.access_token), **credentials(method, rsa_keys)
    )
    assert session.get(server.api_url + "books").status_code == 200
    revoked = session.manager.token
    assert revoked is not None

    # RFC 7009 revocation at the server's own endpoint, the client authenticating as it does
    # at the token endpoint (reqcc's ClientAuth builds the headers and form).
    answer = revoke(server, credentials(method, rsa_keys), revoked.access_token)
    assert answer.status_code == 200, answer.text
    assert server.tokens[revoked.access_token].revoked

    response = session.get(server.api_url + "books", data=b"replayable body")

    assert response.status_code == 200
    assert server.api_statuses == [200, 401, 200]
    assert server.token_requests == 2  # exactly one new token
    assert len(updates) == 2 and updates[1] != revoked.access_token
    check_client_auth_on_the_wire(server, method, index=1)


def test_token_params_reach_the_server_on_every_fetch(
    start_authlib: Callable[..., AuthlibServer], rsa_keys: RSAKeys, fake_clock: FakeClock
) -> None:
    server = start_authlib(expires_in=2, clock=fake_clock.time)
    params = {"audience": "https://api.bookstore.test/", "resource": "https://api.bookstore.test/books"}
    session = session_for(
        server,
        token_params=params,
        clock_skew=0,
        refresh_ahead=0,
        clock=fake_clock.time,
        monotonic=fake_clock.monotonic,
        **credentials("client_secret_jwt", rsa_keys),
    )
    session.get(server.api_url + "books")
    fake_clock.advance(3)
    session.get(server.api_url + "books")  # renewal
    session.manager.fetch_token()  # forced

    assert server.token_requests == 3
    for form in server.token_forms:
        assert form["audience"] == params["audience"]
        assert form["resource"] == params["resource"]


@pytest.mark.parametrize("method", METHODS)
def test_no_secret_key_assertion_or_token_in_reqcc_logs_reprs_or_errors(
    start_authlib: Callable[..., AuthlibServer],
    rsa_keys: RSAKeys,
    caplog: pytest.LogCaptureFixture,
    method: str,
) -> None:
    server = start_authlib()
    session = session_for(server, **credentials(method, rsa_keys))
    bad = session_for(server, **{**credentials(method, rsa_keys), "client_id": "no-such-client"})
    with caplog.at_level(logging.DEBUG, logger="reqcc"):
        session.get(server.api_url + "books")
        with pytest.raises(InvalidClient) as caught:
            bad.get(server.api_url + "books")

    token = session.manager.token
    assert token is not None
    texts = [r.getMessage() for r in caplog.records if r.name.startswith("reqcc")]
    texts += [repr(session.manager), repr(session.token_adapter), repr(session.manager._endpoint)]
    texts += [repr(session.manager._endpoint.client_auth), str(caught.value), repr(caught.value)]
    forbidden = [token.access_token, SPECIAL_SECRET, quote(SPECIAL_SECRET, safe="")]
    forbidden += [form["client_assertion"] for form in server.token_forms if "client_assertion" in form]
    forbidden += [line for line in rsa_keys.pem.splitlines() if "PRIVATE KEY" not in line][:3]
    forbidden += [rsa_keys.private_jwk["d"][:20]]
    for text in texts:
        for secret in forbidden:
            assert secret not in text
