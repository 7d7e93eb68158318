"""reqcc.testing.LocalAuthorizationServer and the pytest plugin's fixtures, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import logging
import ssl
import time
from urllib.parse import unquote_plus

import pytest
import requests

from reqcc import (
    ClientCredentialsManager,
    ClientCredentialsSession,
    InvalidClient,
    InvalidScope,
    OAuthProviderError,
    OAuthScope,
    TokenResponseError,
)
from reqcc.testing import DEFAULT_CLIENTS, LocalAuthorizationServer, RegisteredClient

from .threads import join_all, run_threads, start_daemon

SECRET = DEFAULT_CLIENTS["bookstore-app"].secret
assert SECRET is not None


def _session(
    server: LocalAuthorizationServer, client_id: str = "bookstore-app", **kwargs: object
) -> ClientCredentialsSession:
    config = {
        **server.credentials(client_id), "max_retries": 0, "failure_backoff": 0, "probe_interval": 0, **kwargs
    }
    return ClientCredentialsSession(**config)


def _token_post(server: LocalAuthorizationServer, **kwargs: object) -> requests.Response:
    data = {"grant_type": "client_credentials", **kwargs.pop("data", {})}  # type: ignore[dict-item]
    return requests.post(server.token_url, data=data, timeout=5, **kwargs)  # type: ignore[arg-type]


# -- the fixture ---------------------------------------------------------------------------


def test_fixture_serves_tokens_and_the_api(reqcc_server: LocalAuthorizationServer) -> None:
    session = _session(reqcc_server, scopes=[OAuthScope.BooksRead])
    for _ in range(3):
        response = session.get(reqcc_server.api_url + "books")
        assert response.status_code == 200
        assert response.json()["books"]
    assert reqcc_server.token_requests == 1
    assert reqcc_server.tokens_issued == 1
    assert reqcc_server.api_requests == 3
    assert reqcc_server.token_url.startswith("http://127.0.0.1:")


@pytest.mark.reqcc_server(token_ttl=None, clients={"only": ("pw", {"orders.read"})})
def test_marker_configures_the_fixture(reqcc_server: LocalAuthorizationServer) -> None:
    assert set(reqcc_server.clients) == {"only"}
    response = _token_post(reqcc_server, auth=("only", "pw"))
    assert response.status_code == 200
    body = response.json()
    assert "expires_in" not in body  # token_ttl=None: a token that never expires by the clock
    assert body["scope"] == "orders.read"  # no scope requested: the client's allowed scopes


def test_factory_starts_independent_servers(reqcc_server_factory) -> None:  # type: ignore[no-untyped-def]
    one = reqcc_server_factory()
    two = reqcc_server_factory(token_ttl=5)
    assert one.port != two.port
    _session(one, scopes=["books.read"]).get(one.api_url + "books")
    assert (one.token_requests, two.token_requests) == (1, 0)


# -- client authentication -----------------------------------------------------------------


def test_basic_credentials_are_form_urlencoded_before_base64(reqcc_server: LocalAuthorizationServer) -> None:
    secret = "s p:a%c+e/é&="
    reqcc_server.register_client("odd id:+", secret, ["books.read"])
    session = ClientCredentialsSession(
        token_url=reqcc_server.token_url,
        client_id="odd id:+",
        client_secret=secret,
        base_url=reqcc_server.api_url,
    )
    assert session.get(reqcc_server.api_url + "books").status_code == 200
    record = reqcc_server.last_token_request
    assert record is not None and record.auth_method == "client_secret_basic"
    assert record.client_id == "odd id:+"
    header = record.header("authorization")
    assert header is not None
    # Form-urlencoded before Base64: every reserved character escaped (reqcc writes a space
    # as %20, which form decoders and plain percent-decoders both read as a space).
    user, colon, password = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
    assert colon and (unquote_plus(user), unquote_plus(password)) == ("odd id:+", secret)
    assert not set(" :+/&=é") & set(user + password)


def test_raw_basic_encoding_of_a_plus_is_refused(reqcc_server: LocalAuthorizationServer) -> None:
    # "a+b" sent unencoded is decoded as "a b" (RFC 6749 §2.3.1): the server must refuse it.
    reqcc_server.register_client("plus", "a+b", ["books.read"])
    manager = ClientCredentialsManager(
        token_url=reqcc_server.token_url,
        client_id="plus",
        client_secret="a+b",
        basic_auth_encoding="raw",
        max_retries=0,
    )
    with pytest.raises(InvalidClient):
        manager.fetch_token()


def test_client_secret_post_and_public_clients(reqcc_server: LocalAuthorizationServer) -> None:
    post = _session(reqcc_server, auth_method="client_secret_post", scopes=["orders.read"])
    assert post.get(reqcc_server.api_url + "orders").status_code == 200
    public = _session(reqcc_server, "bookstore-public")
    assert public.get(reqcc_server.api_url + "books").status_code == 200
    methods = [(r.client_id, r.auth_method, r.status) for r in reqcc_server.token_request_log]
    assert methods == [
        ("bookstore-app", "client_secret_post", 200),
        ("bookstore-public", "none", 200),
    ]


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"auth": ("bookstore-app", "wrong")}, 401),
        ({"auth": ("nobody", "x")}, 401),
        ({"data": {"client_id": "bookstore-app"}}, 401),  # a confidential client without its secret
        ({"data": {"client_id": "bookstore-public", "client_secret": "x"}}, 401),  # public with a secret
        ({}, 401),  # no client at all
        ({"auth": ("bookstore-app", SECRET), "data": {"client_secret": SECRET}}, 401),  # two methods
        ({"headers": {"Authorization": "Basic !!notbase64"}}, 401),
    ],
)
def test_bad_client_authentication_is_invalid_client(
    reqcc_server: LocalAuthorizationServer, kwargs: dict[str, object], status: int
) -> None:
    response = _token_post(reqcc_server, **kwargs)
    assert response.status_code == status
    assert response.json()["error"] == "invalid_client"
    assert reqcc_server.tokens_issued == 0


def test_wrong_grant_type_is_refused(reqcc_server: LocalAuthorizationServer) -> None:
    response = requests.post(
        reqcc_server.token_url, data={"grant_type": "password"}, auth=("bookstore-app", SECRET), timeout=5
    )
    assert response.json()["error"] == "unsupported_grant_type"


# -- scopes --------------------------------------------------------------------------------


def test_scope_checks_on_the_api(reqcc_server: LocalAuthorizationServer) -> None:
    reader = _session(reqcc_server, "bookstore-reader", scopes=["books.read", "orders.read"])
    assert reader.get(reqcc_server.api_url + "orders").status_code == 200
    refused = reader.post(reqcc_server.api_url + "orders", json={"book": 1})
    assert refused.status_code == 403
    challenge = refused.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="orders.write"' in challenge
    assert reqcc_server.api_403s == 1 and reqcc_server.token_requests == 1  # a 403 retires nothing

    writer = _session(reqcc_server, scopes=["orders.write"])
    created = writer.post(reqcc_server.api_url + "orders", json={"book": 1})
    assert created.status_code == 201
    assert reqcc_server.orders == [{"book": 1, "id": 1}]


def test_scope_beyond_the_allowed_is_invalid_scope(reqcc_server: LocalAuthorizationServer) -> None:
    reader = _session(reqcc_server, "bookstore-reader", scopes=["orders.write"])
    with pytest.raises(InvalidScope) as info:
        reader.get(reqcc_server.api_url + "books")
    assert info.value.status_code == 400
    assert reqcc_server.api_requests == 0


@pytest.mark.reqcc_server(narrow_scopes=True)
def test_narrowing_grants_the_allowed_part(reqcc_server: LocalAuthorizationServer) -> None:
    reader = _session(reqcc_server, "bookstore-reader", scopes=["books.read", "orders.write"])
    assert reader.get(reqcc_server.api_url + "books").status_code == 200
    token = reader.manager.token
    assert token is not None and token.scopes == ("books.read",)


# -- token lifetime and revocation ---------------------------------------------------------


def test_expired_token_gets_invalid_token_and_reqcc_recovers() -> None:
    now = [1_000_000.0]
    with LocalAuthorizationServer(token_ttl=60, clock=lambda: now[0]) as server:
        session = _session(server, scopes=["books.read"])
        assert session.get(server.api_url + "books").status_code == 200
        now[0] += 61  # the server's clock passes the expiry; the client's does not
        response = session.get(server.api_url + "books")
        assert response.status_code == 200
        assert (server.api_401s, server.token_requests, server.api_requests) == (1, 2, 3)


def test_revoke_one_or_all(reqcc_server: LocalAuthorizationServer) -> None:
    a = _session(reqcc_server, scopes=["books.read"])
    b = _session(reqcc_server, "bookstore-reader", scopes=["books.read"])
    a.get(reqcc_server.api_url + "books")
    b.get(reqcc_server.api_url + "books")
    token_a, token_b = a.manager.token, b.manager.token
    assert reqcc_server.revoke(token_a) == 1
    assert not reqcc_server.is_active(token_a) and reqcc_server.is_active(token_b)
    assert reqcc_server.revoke(token_a) == 0
    assert reqcc_server.revoke_all() == 1
    assert not reqcc_server.is_active(token_b)
    bare = requests.get(
        reqcc_server.api_url + "books", headers={"Authorization": f"Bearer {token_b.access_token}"}, timeout=5
    )
    assert bare.status_code == 401
    assert 'error="invalid_token"' in bare.headers["WWW-Authenticate"]


def test_rfc7009_revocation_endpoint_revokes_only_own_tokens(reqcc_server: LocalAuthorizationServer) -> None:
    a = _session(reqcc_server, scopes=["books.read"])
    a.get(reqcc_server.api_url + "books")
    token = a.manager.token
    assert token is not None
    other = requests.post(
        reqcc_server.revocation_url,
        data={"token": token.access_token},
        auth=("bookstore-reader", "reader-secret"),
        timeout=5,
    )
    assert other.status_code == 200 and reqcc_server.is_active(token)
    own = requests.post(
        reqcc_server.revocation_url,
        data={"token": token.access_token},
        auth=("bookstore-app", SECRET),
        timeout=5,
    )
    assert own.status_code == 200 and not reqcc_server.is_active(token)
    unauthenticated = requests.post(
        reqcc_server.revocation_url, data={"token": token.access_token}, timeout=5
    )
    assert unauthenticated.status_code == 401


def test_introspection(reqcc_server: LocalAuthorizationServer) -> None:
    a = _session(reqcc_server, scopes=["books.read"])
    a.get(reqcc_server.api_url + "books")
    token = a.manager.token
    assert token is not None
    answer = requests.post(
        reqcc_server.introspection_url,
        data={"token": token.access_token},
        auth=("bookstore-app", SECRET),
        timeout=5,
    ).json()
    assert (
        answer["active"] is True
        and answer["scope"] == "books.read"
        and answer["client_id"] == "bookstore-app"
    )
    reqcc_server.revoke(token)
    answer = requests.post(
        reqcc_server.introspection_url,
        data={"token": token.access_token},
        auth=("bookstore-app", SECRET),
        timeout=5,
    ).json()
    assert answer == {"active": False}


def test_api_without_a_token_and_unknown_routes(reqcc_server: LocalAuthorizationServer) -> None:
    bare = requests.get(reqcc_server.api_url + "books", timeout=5)
    assert bare.status_code == 401
    assert "error=" not in bare.headers["WWW-Authenticate"]  # RFC 6750 §3.1: no credentials, no code
    assert requests.get(reqcc_server.base_url + "nope", timeout=5).status_code == 404
    wrong = requests.delete(reqcc_server.api_url + "books", timeout=5)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET"
    assert requests.get(reqcc_server.base_url, timeout=5).json()["token_endpoint"] == reqcc_server.token_url


# -- failure injection ---------------------------------------------------------------------


def test_injected_503_then_recovery(reqcc_server: LocalAuthorizationServer) -> None:
    reqcc_server.fail_token_requests(2)
    session = _session(reqcc_server, scopes=["books.read"])
    for _ in range(2):
        with pytest.raises(TokenResponseError) as info:
            session.get(reqcc_server.api_url + "books")
        assert info.value.status_code == 503
    assert session.get(reqcc_server.api_url + "books").status_code == 200
    stats = reqcc_server.stats()
    assert (stats["token_requests"], stats["injected_failures"], stats["tokens_issued"]) == (3, 2, 1)
    assert [r.injected for r in reqcc_server.token_request_log] == [True, True, False]


def test_injected_429_carries_retry_after(reqcc_server: LocalAuthorizationServer) -> None:
    reqcc_server.throttle_token_requests(retry_after=7)
    response = _token_post(reqcc_server, auth=("bookstore-app", SECRET))
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert _token_post(reqcc_server, auth=("bookstore-app", SECRET)).status_code == 200


def test_injected_oauth_error(reqcc_server: LocalAuthorizationServer) -> None:
    reqcc_server.fail_token_requests(error="invalid_client", description="rotated")
    manager = ClientCredentialsManager(
        **{k: v for k, v in reqcc_server.credentials().items() if k != "base_url"}, max_retries=0
    )
    with pytest.raises(InvalidClient) as info:
        manager.fetch_token()
    assert (info.value.status_code, info.value.description) == (401, "rotated")
    reqcc_server.fail_token_requests(error="access_denied", status=403)
    with pytest.raises(OAuthProviderError) as other:
        manager.fetch_token()
    assert (other.value.error, other.value.status_code) == ("access_denied", 403)
    assert manager.fetch_token().access_token


def test_failures_until_cleared_and_delays(reqcc_server: LocalAuthorizationServer) -> None:
    reqcc_server.fail_token_requests(None, status=500)
    for _ in range(3):
        assert _token_post(reqcc_server, auth=("bookstore-app", SECRET)).status_code == 500
    reqcc_server.clear_failures()
    reqcc_server.delay_token_requests(0.05, times=2)
    for _ in range(3):
        assert _token_post(reqcc_server, auth=("bookstore-app", SECRET)).status_code == 200
    with pytest.raises(ValueError):
        reqcc_server.fail_token_requests(0)


# -- records, counters, secrets ------------------------------------------------------------


def test_token_request_record_shows_extra_fields_but_repr_hides_secrets(
    reqcc_server: LocalAuthorizationServer,
) -> None:
    session = _session(
        reqcc_server,
        auth_method="client_secret_post",
        scopes=["books.read"],
        token_params={"audience": "https://api.bookstore.example", "resource": "urn:books"},
    )
    session.get(reqcc_server.api_url + "books")
    record = reqcc_server.last_token_request
    assert record is not None
    assert record.field("audience") == "https://api.bookstore.example"
    assert record.field("resource") == "urn:books"
    assert record.field("client_secret") == SECRET
    assert record.header("Accept") == "application/json"
    assert SECRET not in repr(record)
    basic = _session(reqcc_server, scopes=["books.read"])
    basic.manager.fetch_token()
    last = reqcc_server.last_token_request
    assert last is not None and "Basic" not in repr(last) and SECRET not in repr(reqcc_server.clients)


def test_nothing_secret_in_any_log(
    reqcc_server: LocalAuthorizationServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    session = _session(reqcc_server, scopes=["books.read"])
    session.get(reqcc_server.api_url + "books")
    reqcc_server.revoke_all()
    session.get(reqcc_server.api_url + "books")
    _token_post(reqcc_server, auth=("bookstore-app", "a-wrong-secret"))
    token = session.manager.token
    assert token is not None
    text = caplog.text
    assert "oauthlib" in text  # the server side did log, at DEBUG
    for secret in (SECRET, token.access_token, "a-wrong-secret"):
        assert secret not in text


def test_counters_are_exact_under_threads(reqcc_server: LocalAuthorizationServer) -> None:
    reqcc_server.delay_token_requests(0.2)  # keep the one fetch in flight while all threads ask
    session = _session(reqcc_server, scopes=["books.read"])

    def worker(i: int) -> list[int]:
        return [session.get(reqcc_server.api_url + "books").status_code for _ in range(5)]

    results = run_threads(worker, 16)
    assert results == [[200] * 5] * 16
    assert reqcc_server.token_requests == 1
    assert reqcc_server.api_requests == 80


# -- construction, https -------------------------------------------------------------------


def test_host_must_be_loopback_ipv4() -> None:
    with pytest.raises(ValueError):
        LocalAuthorizationServer(host="192.0.2.1")
    with LocalAuthorizationServer(host="localhost") as server:
        assert server.token_url == f"http://localhost:{server.port}/token"
        assert requests.get(server.base_url, timeout=5).status_code == 200


def test_closed_server_refuses_connections() -> None:
    server = LocalAuthorizationServer().start()
    session = _session(server, scopes=["books.read"])
    assert session.get(server.api_url + "books").status_code == 200  # keeps a pooled connection
    server.close()
    with pytest.raises(requests.ConnectionError):
        session.get(server.api_url + "books")
    with pytest.raises(RuntimeError):
        server.start()


def test_clients_as_registered_client_objects() -> None:
    clients = [RegisteredClient("x", "y", frozenset({"books.read"}))]
    with LocalAuthorizationServer(clients) as server:
        assert server.clients == {"x": clients[0]}
        assert _session(server, "x", scopes=["books.read"]).get(server.api_url + "books").ok


def test_https_with_a_trustme_certificate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with LocalAuthorizationServer(ssl_context=context, host="localhost") as server:
        assert server.token_url.startswith("https://localhost:")
        # trust_env=False: a REQUESTS_CA_BUNDLE in the environment would override session.verify.
        token_session = requests.Session()
        token_session.trust_env = False
        token_session.verify = str(bundle)
        session = _session(server, scopes=["books.read"], token_session=token_session)
        session.trust_env = False
        session.verify = str(bundle)
        assert session.get(server.api_url + "books").status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.api_url + "books", timeout=5)  # not trusted by default
        assert server.token_requests == 1


def test_hold_keeps_a_fetch_in_flight_until_released(reqcc_server: LocalAuthorizationServer) -> None:
    gate = reqcc_server.hold_token_requests()
    session = _session(reqcc_server, scopes=["books.read"])
    results: list[int] = []
    thread = start_daemon(lambda: results.append(session.get(reqcc_server.api_url + "books").status_code))
    for _ in range(500):  # wait (bounded) until the fetch is held at the server
        if reqcc_server.token_requests == 1:
            break
        time.sleep(0.01)
    assert reqcc_server.token_requests == 1 and reqcc_server.tokens_issued == 0 and results == []
    gate.set()
    join_all([thread])
    assert results == [200] and reqcc_server.tokens_issued == 1


def test_clear_failures_releases_held_requests(reqcc_server: LocalAuthorizationServer) -> None:
    gate = reqcc_server.hold_token_requests(None)
    reqcc_server.clear_failures()
    assert gate.is_set()
    assert _token_post(reqcc_server, auth=("bookstore-app", SECRET)).status_code == 200


def test_chunked_request_bodies_and_keep_alive(reqcc_server: LocalAuthorizationServer) -> None:
    session = _session(reqcc_server, scopes=["orders.write"])

    def body():  # type: ignore[no-untyped-def]
        yield b'{"book_id": '
        yield b"7}"

    for _ in range(2):  # the second request reuses the connection: the first body was fully read
        response = session.post(
            reqcc_server.api_url + "orders", data=body(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 201
    assert [o["book_id"] for o in reqcc_server.orders] == [7, 7]


def test_registered_client_scopes_become_a_frozenset() -> None:
    assert RegisteredClient("a", None, {"books.read"}).scopes == frozenset({"books.read"})  # type: ignore[arg-type]
    assert RegisteredClient("a", None, "books.read orders.read").scopes == frozenset(  # type: ignore[arg-type]
        {"books.read", "orders.read"}
    )
