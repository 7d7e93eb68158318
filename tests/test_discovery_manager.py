"""issuer= end to end: the manager discovers its token endpoint on first need (DESIGN item 25).

Against the local server (which publishes its metadata) and, for what it cannot show
(mTLS aliases, JWT audiences), against ``requests_mock`` adapters.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import requests_mock

from reqcc import (
    ClientCredentialsManager,
    ClientCredentialsSession,
    ConfigurationError,
    InsecureTransportError,
    ReqccError,
)
from reqcc.discovery import MetadataError
from reqcc.stores import FileTokenStore
from reqcc.testing import LocalAuthorizationServer

from .conftest import CLIENT_ID, CLIENT_SECRET, FakeClock, token_session_for

ISSUER = "https://as.example.com"
METADATA_URL = ISSUER + "/.well-known/openid-configuration"


def session_for(server: LocalAuthorizationServer, **kwargs: Any) -> ClientCredentialsSession:
    kwargs.setdefault("scopes", ["books.read"])
    return ClientCredentialsSession(**server.credentials(discover=True), **kwargs)


def books(session: requests.Session, server: LocalAuthorizationServer) -> int:
    return session.get(server.api_url + "books", timeout=10).status_code


# -- configuration ------------------------------------------------------------------------


def test_token_url_and_issuer_together_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        ClientCredentialsManager(token_url=ISSUER + "/token", issuer=ISSUER, client_id="c", client_secret="s")


@pytest.mark.parametrize(
    ("issuer", "error"),
    [
        ("http://as.example.com", InsecureTransportError),
        ("https://as.example.com?tenant=a", ConfigurationError),
        ("https://as.example.com#x", ConfigurationError),
        ("as.example.com", ConfigurationError),
        ("", ConfigurationError),
    ],
)
def test_a_bad_issuer_is_refused_at_construction(issuer: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        ClientCredentialsManager(issuer=issuer, client_id="c", client_secret="s")


def test_nothing_is_fetched_in_the_constructor(reqcc_server: LocalAuthorizationServer) -> None:
    manager = ClientCredentialsManager(issuer=reqcc_server.issuer, client_id="c", client_secret="x")
    assert reqcc_server.metadata_requests == 0
    assert manager.token_url is None and manager.auth_method is None
    assert manager.issuer == reqcc_server.issuer and manager.metadata is None
    assert "token_url=None" in repr(manager) and reqcc_server.issuer in repr(manager)


def test_with_issuer_credentials_are_still_checked_at_construction() -> None:
    with pytest.raises(ConfigurationError, match=r"client_secret= \(or private_key=\)"):
        ClientCredentialsManager(issuer=ISSUER, client_id="c")
    with pytest.raises(ConfigurationError, match="assertion_audience is used only with a JWT method"):
        ClientCredentialsManager(issuer=ISSUER, client_id="c", client_secret="s", assertion_audience="x")
    with pytest.raises(ConfigurationError, match="basic_auth_encoding"):
        ClientCredentialsManager(issuer=ISSUER, client_id="c", client_secret="s", basic_auth_encoding="x")
    with pytest.raises(ConfigurationError, match="token_params"):
        ClientCredentialsManager(issuer=ISSUER, client_id="c", client_secret="s", token_params={"scope": "x"})
    with pytest.raises(ConfigurationError, match="client_secret is required"):
        ClientCredentialsManager(issuer=ISSUER, client_id="c", auth_method="client_secret_post")


# -- against the local server -------------------------------------------------------------


@pytest.mark.parametrize(
    "well_known", [("openid-configuration",), ("oauth-authorization-server",)], ids=["oidc", "rfc8414"]
)
@pytest.mark.parametrize("issuer_path", ["", "/tenant-a"], ids=["origin", "path"])
def test_discovers_from_either_well_known_document(
    reqcc_server_factory: Callable[..., LocalAuthorizationServer], well_known: tuple[str], issuer_path: str
) -> None:
    server = reqcc_server_factory(well_known=well_known, issuer_path=issuer_path)
    assert server.issuer == server.base_url.rstrip("/") + issuer_path
    with session_for(server) as session:
        assert books(session, server) == 200
        assert books(session, server) == 200
        manager = session.manager
        assert manager.token_url == server.token_url
        assert manager.auth_method == "client_secret_basic"  # the first listed one reqcc can use
        assert manager.metadata is not None and manager.metadata.source_url.endswith(
            f"/.well-known/{well_known[0]}" + (issuer_path if well_known[0] != "openid-configuration" else "")
        )
    assert server.metadata_requests == 1  # the published document was read once (a 404 is not counted)
    assert server.token_requests == 1


def test_many_threads_cause_one_metadata_and_one_token_request(
    reqcc_server: LocalAuthorizationServer,
) -> None:
    gate = reqcc_server.hold_token_requests(timeout=10)
    with session_for(reqcc_server) as session:
        statuses: list[int] = []
        threads = [
            threading.Thread(target=lambda: statuses.append(books(session, reqcc_server)), daemon=True)
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        _wait_for(lambda: reqcc_server.token_requests == 1)
        gate.set()
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads)
    assert statuses == [200] * 8
    assert (reqcc_server.metadata_requests, reqcc_server.token_requests) == (1, 1)


def test_another_issuer_in_the_document_is_refused_and_no_token_is_requested(
    reqcc_server: LocalAuthorizationServer,
) -> None:
    reqcc_server.set_metadata(issuer="https://evil.example")
    with session_for(reqcc_server) as session:
        with pytest.raises(ConfigurationError) as info:
            books(session, reqcc_server)
    message = str(info.value)
    assert "'https://evil.example'" in message and repr(reqcc_server.issuer) in message
    assert reqcc_server.token_requests == 0 and reqcc_server.api_requests == 0


def test_a_metadata_failure_is_backed_off_and_recovered_from(reqcc_server: LocalAuthorizationServer) -> None:
    clock = FakeClock()
    reqcc_server.fail_metadata_requests(1, status=503)
    with session_for(reqcc_server, monotonic=clock, failure_backoff=2.0) as session:
        with pytest.raises(MetadataError) as first:
            books(session, reqcc_server)
        assert first.value.status_code == 503 and isinstance(first.value, ReqccError)
        with pytest.raises(MetadataError, match=r"failed .* ago"):  # in the backoff: the same error again
            books(session, reqcc_server)
        assert reqcc_server.metadata_requests == 1 and reqcc_server.token_requests == 0
        assert session.manager.token_url is None
        clock.advance(2.0)
        assert books(session, reqcc_server) == 200
    assert (reqcc_server.metadata_requests, reqcc_server.token_requests) == (2, 1)


def test_the_method_is_one_the_server_lists(reqcc_server: LocalAuthorizationServer) -> None:
    reqcc_server.set_metadata(token_endpoint_auth_methods_supported=["private_key_jwt", "client_secret_post"])
    with session_for(reqcc_server) as session:
        assert books(session, reqcc_server) == 200
        assert session.manager.auth_method == "client_secret_post"
    record = reqcc_server.last_token_request
    assert record is not None and record.auth_method == "client_secret_post"


def test_no_method_that_fits_is_a_configuration_error_before_any_token_request(
    reqcc_server: LocalAuthorizationServer,
) -> None:
    reqcc_server.set_metadata(token_endpoint_auth_methods_supported=["private_key_jwt", "tls_client_auth"])
    with session_for(reqcc_server) as session:
        with pytest.raises(ConfigurationError, match="private_key_jwt, tls_client_auth"):
            books(session, reqcc_server)
    assert reqcc_server.token_requests == 0


def test_a_given_auth_method_is_used_even_if_not_listed(
    reqcc_server: LocalAuthorizationServer, caplog: pytest.LogCaptureFixture
) -> None:
    reqcc_server.set_metadata(token_endpoint_auth_methods_supported=["client_secret_basic"])
    with session_for(reqcc_server, auth_method="client_secret_post") as session:
        assert session.manager.auth_method == "client_secret_post"  # known before discovery
        assert books(session, reqcc_server) == 200
    assert "does not list auth_method 'client_secret_post'" in caplog.text


def test_a_public_client_discovers_too(reqcc_server: LocalAuthorizationServer) -> None:
    with ClientCredentialsSession(**reqcc_server.credentials("bookstore-public", discover=True)) as session:
        assert books(session, reqcc_server) == 200
    record = reqcc_server.last_token_request
    assert record is not None and record.auth_method == "none"


def test_dpop_with_a_discovered_endpoint(reqcc_server: LocalAuthorizationServer) -> None:
    with session_for(reqcc_server, dpop=True) as session:
        assert books(session, reqcc_server) == 200
        token = session.manager.token
        assert token is not None and token.token_type == "DPoP"
    record = reqcc_server.last_token_request
    assert record is not None and record.header("DPoP") is not None


def test_fetch_token_and_discover_read_the_metadata_once(reqcc_server: LocalAuthorizationServer) -> None:
    manager = ClientCredentialsManager(
        issuer=reqcc_server.issuer, client_id="bookstore-app", client_secret="bookstore-secret"
    )
    assert manager.discover() == reqcc_server.token_url
    assert manager.fetch_token().access_token
    assert manager.discover() == reqcc_server.token_url
    assert (reqcc_server.metadata_requests, reqcc_server.token_requests) == (1, 1)
    manager.close()


def test_a_token_provider_without_a_store_needs_no_discovery(reqcc_server: LocalAuthorizationServer) -> None:
    calls: list[Any] = []

    def provider(last: Any, manager: ClientCredentialsManager) -> dict[str, Any]:
        calls.append(last)
        return {"access_token": "from-provider", "expires_in": 600}

    manager = ClientCredentialsManager(
        issuer=reqcc_server.issuer, client_id="c", client_secret="s", token_provider=provider
    )
    assert manager.get_token().access_token == "from-provider"
    assert reqcc_server.metadata_requests == 0 and manager.token_url is None


def test_the_store_key_uses_the_discovered_endpoint(
    reqcc_server: LocalAuthorizationServer, tmp_path: Path
) -> None:
    # A manager given the token URL and one given the issuer of the same server are the same
    # client configuration: they share the stored token.
    store = FileTokenStore(tmp_path / "tokens.json")
    creds = {"client_id": "bookstore-app", "client_secret": "bookstore-secret", "scopes": ["books.read"]}
    by_url = ClientCredentialsManager(token_url=reqcc_server.token_url, token_store=store, **creds)
    by_issuer = ClientCredentialsManager(issuer=reqcc_server.issuer, token_store=store, **creds)
    first = by_url.get_token()
    assert by_issuer.get_token().access_token == first.access_token
    assert reqcc_server.token_requests == 1 and reqcc_server.metadata_requests == 1


# -- what the local server cannot show ------------------------------------------------------


def _mocked(document: dict[str, Any]) -> tuple[requests.Session, requests_mock.Adapter]:
    adapter = requests_mock.Adapter()
    adapter.register_uri("GET", METADATA_URL, json={"issuer": ISSUER, **document})
    adapter.register_uri(
        "POST", requests_mock.ANY, json={"access_token": "tok-1", "token_type": "Bearer", "expires_in": 60}
    )
    return token_session_for(adapter), adapter


def test_mutual_tls_uses_the_mtls_alias() -> None:
    session, adapter = _mocked(
        {
            "token_endpoint": ISSUER + "/token",
            "mtls_endpoint_aliases": {"token_endpoint": "https://mtls.as.example.com/token"},
            "token_endpoint_auth_methods_supported": ["tls_client_auth"],
        }
    )
    manager = ClientCredentialsManager(
        issuer=ISSUER, client_id=CLIENT_ID, auth_method="tls_client_auth", token_session=session
    )
    manager.get_token()
    assert manager.token_url == "https://mtls.as.example.com/token"
    assert [r.url for r in adapter.request_history] == [METADATA_URL, "https://mtls.as.example.com/token"]


def test_the_assertion_audience_is_the_discovered_token_endpoint() -> None:
    session, adapter = _mocked(
        {
            "token_endpoint": "https://token.as.example.com/oauth2/token",
            "token_endpoint_auth_methods_supported": ["client_secret_jwt"],
        }
    )
    manager = ClientCredentialsManager(
        issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET * 2, token_session=session
    )
    manager.get_token()
    assert manager.auth_method == "client_secret_jwt"
    form = adapter.request_history[-1].text
    assertion = dict(pair.split("=", 1) for pair in form.split("&"))["client_assertion"]
    claims = jwt.decode(assertion, options={"verify_signature": False})
    assert claims["aud"] == "https://token.as.example.com/oauth2/token"


def test_metadata_goes_through_the_token_session_with_its_timeout() -> None:
    session, adapter = _mocked({"token_endpoint": ISSUER + "/token"})
    manager = ClientCredentialsManager(
        issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, token_session=session, timeout=(2, 3)
    )
    manager.get_token()
    metadata_request = adapter.request_history[0]
    assert metadata_request.method == "GET" and metadata_request.timeout == (2, 3)
    assert "Authorization" not in metadata_request.headers


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not met in time")
