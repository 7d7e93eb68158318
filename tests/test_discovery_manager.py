"""issuer= end to end: the manager discovers its token endpoint on first need (contract item 25).

Against the local server (which publishes its metadata) and, for what it cannot show
(mTLS aliases, JWT audiences), against ``requests_mock`` adapters.
"""

from __future__ import annotations

import json
import ssl
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
    TokenDeadlineError,
)
from reqcc.discovery import MetadataError
from reqcc.stores import FileTokenStore
from reqcc.testing import FakeClock, LocalAuthorizationServer

from .conftest import CLIENT_ID, CLIENT_SECRET, token_session_for
from .hostile_server import HostileServer, Reply

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
    reqcc_server.fail_metadata_requests(3, status=503)  # outlasts the 2 retries within the fetch
    timing = {"monotonic": clock.monotonic, "sleep": clock.sleep}
    with session_for(reqcc_server, **timing, failure_backoff=2.0) as session:
        with pytest.raises(MetadataError) as first:
            books(session, reqcc_server)
        assert first.value.status_code == 503 and isinstance(first.value, ReqccError)
        with pytest.raises(MetadataError, match=r"failed .* ago"):  # in the backoff: the same error again
            books(session, reqcc_server)
        assert reqcc_server.metadata_requests == 3 and reqcc_server.token_requests == 0
        assert session.manager.token_url is None
        clock.advance(2.0)
        assert books(session, reqcc_server) == 200
    assert (reqcc_server.metadata_requests, reqcc_server.token_requests) == (4, 1)
    assert len(clock.sleeps) == 2


def test_a_transient_metadata_failure_is_retried_within_the_fetch(
    reqcc_server: LocalAuthorizationServer,
) -> None:
    clock = FakeClock()
    reqcc_server.fail_metadata_requests(1, status=503)
    with session_for(reqcc_server, monotonic=clock.monotonic, sleep=clock.sleep) as session:
        assert books(session, reqcc_server) == 200
    assert (reqcc_server.metadata_requests, reqcc_server.token_requests) == (2, 1)
    assert len(clock.sleeps) == 1 and 0.25 <= clock.sleeps[0] <= 0.5


def test_the_method_is_one_the_server_lists(reqcc_server: LocalAuthorizationServer) -> None:
    reqcc_server.set_metadata(token_endpoint_auth_methods_supported=["private_key_jwt", "client_secret_post"])
    with session_for(reqcc_server) as session:
        assert books(session, reqcc_server) == 200
        assert session.manager.auth_method == "client_secret_post"
    record = reqcc_server.last_token_request
    assert record is not None and record.auth_method == "client_secret_post"


def test_no_method_that_fits_means_client_secret_basic_with_one_warning(
    reqcc_server: LocalAuthorizationServer, caplog: pytest.LogCaptureFixture
) -> None:
    # oauth2-mock-server lists only "none", yet takes Basic: RFC 8414's default is used.
    caplog.set_level("WARNING", logger="reqcc")
    reqcc_server.set_metadata(token_endpoint_auth_methods_supported=["none"])
    with session_for(reqcc_server, token_deadline=10) as session:
        for _ in range(3):
            assert books(session, reqcc_server) == 200
        session.manager.invalidate(session.manager.token)
        assert books(session, reqcc_server) == 200
        assert session.manager.auth_method == "client_secret_basic"
    record = reqcc_server.last_token_request
    assert record is not None and record.auth_method == "client_secret_basic"
    assert reqcc_server.token_requests == 2 and reqcc_server.metadata_requests == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "client_secret_basic" in warnings[0] and "none" in warnings[0]


def _ec_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


@pytest.mark.parametrize("given", ["private_key", "client_assertion_file", "client_assertion"])
def test_the_fallback_warning_names_the_key_material_given(
    given: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="reqcc")
    session, _ = _mocked(
        {"token_endpoint": ISSUER + "/token", "token_endpoint_auth_methods_supported": ["none"]}
    )
    assertion = jwt.encode({"sub": CLIENT_ID, "exp": 4_000_000_000}, "k" * 32, algorithm="HS256")
    (tmp_path / "token").write_text(assertion)
    credential: dict[str, Any] = {
        "private_key": {"private_key": _ec_key_pem(), "assertion_algorithm": "ES256"},
        "client_assertion_file": {"client_assertion_file": tmp_path / "token"},
        "client_assertion": {"client_assertion": lambda audience: assertion},
    }[given]
    manager = ClientCredentialsManager(
        issuer=ISSUER, client_id=CLIENT_ID, token_session=session, **credential
    )
    manager.discover()
    assert manager.auth_method == "private_key_jwt"
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    named = {"private_key": "a private_key", "client_assertion_file": "a client_assertion_file",
             "client_assertion": "a client_assertion callable"}[given]
    assert f"reqcc can use with {named} (private_key_jwt)" in warning
    assert assertion not in warning


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


# -- retries of the metadata request (the token requests' rules and settings) ----------------

DOCUMENT = {"issuer": ISSUER, "token_endpoint": ISSUER + "/token"}
OAUTH_METADATA_URL = ISSUER + "/.well-known/oauth-authorization-server"


def _retrying_manager(
    metadata: list[dict[str, Any]], clock: FakeClock, *, url: str = METADATA_URL, **kwargs: Any
) -> tuple[ClientCredentialsManager, requests_mock.Adapter]:
    """A manager whose metadata URL answers ``metadata`` in turn (the last one from then on)."""
    adapter = requests_mock.Adapter()
    adapter.register_uri("GET", url, metadata)
    adapter.register_uri(
        "POST", ISSUER + "/token", json={"access_token": "tok-1", "token_type": "Bearer", "expires_in": 60}
    )
    kwargs = {**clock.keywords(), **kwargs}
    manager = ClientCredentialsManager(
        issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
        token_session=token_session_for(adapter), refresh_ahead=0, **kwargs,
    )
    return manager, adapter


def _sent(adapter: requests_mock.Adapter, method: str) -> list[str]:
    return [r.url for r in adapter.request_history if r.method == method]


BUSY: dict[str, Any] = {"status_code": 503, "text": "busy"}


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_a_transient_status_then_the_document_is_one_successful_call(status: int) -> None:
    clock = FakeClock()
    manager, adapter = _retrying_manager([{"status_code": status, "text": "busy"}, {"json": DOCUMENT}], clock)
    assert manager.get_token().access_token == "tok-1"
    assert _sent(adapter, "GET") == [METADATA_URL] * 2
    assert _sent(adapter, "POST") == [ISSUER + "/token"]
    assert len(clock.sleeps) == 1 and 0.25 <= clock.sleeps[0] <= 0.5  # retry_backoff 0.5, jittered


def test_a_metadata_failure_that_outlasts_the_retries_is_a_metadata_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    manager, adapter = _retrying_manager([BUSY], clock, max_retries=3, retry_backoff=1.0, max_retry_wait=3.0)
    with pytest.raises(MetadataError, match="HTTP 503") as info:
        manager.get_token()
    assert info.value.status_code == 503
    assert _sent(adapter, "GET") == [METADATA_URL] * 4 and _sent(adapter, "POST") == []
    # 1 s × 2**n, jittered to 50-100 %, capped at max_retry_wait.
    assert len(clock.sleeps) == 3
    assert 0.5 <= clock.sleeps[0] <= 1.0 and 1.0 <= clock.sleeps[1] <= 2.0 and 2.0 <= clock.sleeps[2] <= 3.0
    assert "retry 3 of 3" in caplog.text
    assert CLIENT_SECRET not in caplog.text and CLIENT_SECRET not in str(info.value)


@pytest.mark.parametrize(
    "retry_after",
    ["7", "Tue, 14 Nov 2023 22:13:27 GMT"],  # the fake clock's start (1_700_000_000) + 7 s
    ids=["seconds", "http-date"],
)
def test_retry_after_is_waited_instead_of_the_backoff(retry_after: str) -> None:
    clock = FakeClock()
    manager, adapter = _retrying_manager(
        [{"status_code": 503, "text": "busy", "headers": {"Retry-After": retry_after}}, {"json": DOCUMENT}],
        clock,
    )
    assert manager.get_token().access_token == "tok-1"
    assert clock.sleeps == [7.0]
    assert len(_sent(adapter, "GET")) == 2


def test_while_the_metadata_keeps_failing_each_probe_is_one_request() -> None:
    # contract item 27: discovery is part of the fetch, so of the probe too.
    clock = FakeClock()
    manager, adapter = _retrying_manager([BUSY], clock)
    with pytest.raises(MetadataError):
        manager.get_token()
    assert _sent(adapter, "GET") == [METADATA_URL] * 3  # not known to fail yet: retried
    for probe in range(1, 4):
        clock.advance(1.2)
        with pytest.raises(MetadataError):
            manager.get_token()
        assert _sent(adapter, "GET") == [METADATA_URL] * (3 + probe)
    assert len(clock.sleeps) == 2 and _sent(adapter, "POST") == []


def test_a_retry_after_longer_than_max_retry_wait_ends_the_retries() -> None:
    clock = FakeClock()
    manager, adapter = _retrying_manager(
        [
            {"status_code": 429, "text": "slow down", "headers": {"Retry-After": "1"}},
            {"status_code": 429, "text": "slow down", "headers": {"Retry-After": "60"}},
            {"json": DOCUMENT},
        ],
        clock,
    )
    with pytest.raises(MetadataError, match="HTTP 429") as info:
        manager.get_token()
    assert info.value.retry_after == 60.0  # what the manager's failure backoff honours
    assert clock.sleeps == [1.0] and len(_sent(adapter, "GET")) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 405])
def test_a_client_error_is_not_retried_and_moves_on_to_the_next_url(status: int) -> None:
    # The first (transient) answer is retried; the client error that follows is not: it
    # means "not here", like a 404, and the RFC 8414 document is asked next.
    clock = FakeClock()
    manager, adapter = _retrying_manager(
        [BUSY, {"status_code": status, "text": "no"}, {"json": DOCUMENT}], clock
    )
    adapter.register_uri("GET", OAUTH_METADATA_URL, status_code=status, text="no")
    with pytest.raises(MetadataError, match=f"HTTP {status}") as info:
        manager.get_token()
    assert info.value.status_code == status
    assert _sent(adapter, "GET") == [METADATA_URL, METADATA_URL, OAUTH_METADATA_URL]
    assert len(clock.sleeps) == 1


@pytest.mark.parametrize(
    "failure", [requests.ConnectionError, requests.ConnectTimeout, requests.ReadTimeout]
)
def test_a_network_failure_is_retried(failure: type[Exception]) -> None:
    clock = FakeClock()
    manager, adapter = _retrying_manager([{"exc": failure}, {"exc": failure}, {"json": DOCUMENT}], clock)
    assert manager.get_token().access_token == "tok-1"
    assert len(_sent(adapter, "GET")) == 3 and len(clock.sleeps) == 2


def test_a_retry_wait_that_would_pass_the_deadline_is_not_taken() -> None:
    clock = FakeClock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    busy = {**BUSY, "headers": {"Retry-After": "2"}}
    manager, adapter = _retrying_manager(
        [busy, busy, busy, {"json": DOCUMENT}], clock, sleep=sleep, max_retries=5, token_deadline=5
    )
    with pytest.raises(MetadataError, match="HTTP 503"):  # its own error, not a deadline error
        manager.get_token()
    # 2 s waited (t=2), then 2 s more (t=4); a third wait would end at 6 s, past the 5 s deadline.
    assert slept == [2.0, 2.0]
    assert len(_sent(adapter, "GET")) == 3 and _sent(adapter, "POST") == []


def test_a_deadline_passed_during_an_attempt_ends_the_retries() -> None:
    clock = FakeClock()

    def slow_failure(request: Any, context: Any) -> str:
        clock.advance(3.0)  # each attempt takes 3 s of the 5 s deadline, then times out
        raise requests.ConnectTimeout("timed out")

    manager, adapter = _retrying_manager([{"text": slow_failure}], clock, token_deadline=5)
    with pytest.raises(TokenDeadlineError, match=r"token deadline \(last failure: ConnectTimeout\)") as info:
        manager.get_token()
    assert isinstance(info.value.__cause__, requests.ConnectTimeout)
    assert len(_sent(adapter, "GET")) == 2 and len(clock.sleeps) == 1


def test_the_oidc_404_falls_back_to_rfc8414_whose_failure_is_retried() -> None:
    clock = FakeClock()
    manager, adapter = _retrying_manager([BUSY, {"json": DOCUMENT}], clock, url=OAUTH_METADATA_URL)
    adapter.register_uri("GET", METADATA_URL, status_code=404)
    assert manager.get_token().access_token == "tok-1"
    # The 404 is not a transient failure: asked once, then the RFC 8414 document (retried once).
    assert _sent(adapter, "GET") == [METADATA_URL, OAUTH_METADATA_URL, OAUTH_METADATA_URL]
    assert len(clock.sleeps) == 1
    assert manager.metadata is not None and manager.metadata.source_url == OAUTH_METADATA_URL


def test_a_forked_child_reseeds_the_metadata_retry_jitter() -> None:
    manager, _ = _retrying_manager([{"json": DOCUMENT}], FakeClock())
    discovery = manager._config.discovery
    assert discovery is not None
    state = discovery._retries.rng.getstate()
    discovery.after_fork()
    assert discovery._retries.rng.getstate() != state


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not met in time")


# -- item 33 end to end: real servers on loopback --------------------------------------------


def test_metadata_url_alone_discovers_and_takes_the_documents_issuer(
    reqcc_server_factory: Callable[..., LocalAuthorizationServer],
) -> None:
    server = reqcc_server_factory(issuer_path="/o", well_known=("oauth-authorization-server",))
    url = server.metadata_urls["oauth-authorization-server"]
    credentials = server.credentials()
    del credentials["token_url"]
    with ClientCredentialsSession(metadata_url=url, scopes=["books.read"], **credentials) as session:
        assert session.manager.issuer is None  # not known before the document is read
        assert books(session, server) == 200
        assert session.manager.issuer == server.issuer
        assert session.manager.metadata is not None and session.manager.metadata.source_url == url
        assert f"metadata_url={url!r}" in repr(session.manager)
    assert server.metadata_requests == 1 and server.token_requests == 1


def test_metadata_url_with_another_issuer_in_the_document_is_refused(
    reqcc_server: LocalAuthorizationServer,
) -> None:
    url = reqcc_server.metadata_urls["openid-configuration"]
    with session_for(reqcc_server, metadata_url=url) as session:
        reqcc_server.set_metadata(issuer=reqcc_server.issuer + "/other")
        with pytest.raises(ConfigurationError, match="/other"):
            books(session, reqcc_server)
    assert reqcc_server.token_requests == 0


@pytest.mark.parametrize(
    ("keywords", "match"),
    [
        (
            {"token_url": ISSUER + "/token", "metadata_url": METADATA_URL},
            "token_url= or metadata_url=, not both",
        ),
        ({"metadata_url": "http://as.example.com/meta"}, "metadata_url"),
        ({"metadata_url": "as.example.com/meta"}, "metadata_url"),
    ],
)
def test_metadata_url_mistakes_are_refused_at_construction(keywords: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        ClientCredentialsManager(client_id="c", client_secret="s", **keywords)


def test_metadata_url_flows_through_mount(reqcc_server: LocalAuthorizationServer) -> None:
    from reqcc import mount

    url = reqcc_server.metadata_urls["openid-configuration"]
    with requests.Session() as session:
        adapter = mount(
            session, reqcc_server.api_url, metadata_url=url, client_id="bookstore-app",
            client_secret=reqcc_server.clients["bookstore-app"].secret, scopes=["books.read"],
        )
        assert session.get(reqcc_server.api_url + "books", timeout=10).status_code == 200
        assert adapter.manager.metadata is not None and adapter.manager.metadata.source_url == url


DEEP = json.dumps(
    {"issuer": "{issuer}", "token_endpoint": "{issuer}/token", "x": json.loads("[" * 700 + "]" * 700)}
)


@pytest.mark.parametrize("body", [b"[" * 200_000, None], ids=["200000-brackets", "valid-700-deep"])
def test_deep_metadata_is_a_metadata_error_from_discover_and_session_get(
    serve: Callable[..., HostileServer], body: bytes | None
) -> None:
    server = serve(Reply(body=b"placeholder"))
    issuer = server.url
    server.replies = [Reply(body=body if body is not None else DEEP.replace("{issuer}", issuer).encode())]
    manager = ClientCredentialsManager(issuer=issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    with pytest.raises(MetadataError, match="nested"):
        manager.discover()
    with ClientCredentialsSession(
        issuer=issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=issuer + "/"
    ) as session, pytest.raises(MetadataError, match="nested"):
        session.get(issuer + "/books", timeout=5)
    assert all(method == "GET" for method, *_ in server.requests)  # no token request followed


def test_an_https_issuer_cannot_send_the_secret_in_cleartext_to_a_local_port(
    tmp_path: Path, serve: Callable[..., HostileServer]
) -> None:
    # Seen on 0.2: the metadata of an https issuer named http://127.0.0.1:<port>/token and the
    # client secret went there in cleartext Basic.
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    listener = serve(Reply(body=b'{"access_token":"stolen","token_type":"Bearer"}'))
    with LocalAuthorizationServer(ssl_context=context, host="localhost") as server:
        assert server.issuer.startswith("https://localhost:")
        server.set_metadata(token_endpoint=listener.url + "/token")
        token_session = requests.Session()
        token_session.trust_env = False
        token_session.verify = str(bundle)
        manager = ClientCredentialsManager(
            issuer=server.issuer, token_session=token_session, client_id="bookstore-app",
            client_secret=server.clients["bookstore-app"].secret,
        )
        with pytest.raises(InsecureTransportError, match="plain-http loopback issuer"):
            manager.get_token()
        assert server.metadata_requests == 1
    assert listener.connections == 0 and listener.token_requests == 0
