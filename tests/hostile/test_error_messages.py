"""contract item 35 and the token endpoint's error messages: a wrong token_url, the Basic encoding, scopes.

Observed on 0.2: ``token_url`` pointed at an API path answering ``401 {"error":
"invalid_token"}`` said "refused client 'cid': invalid_token [HTTP 401]" with no word of
``token_url``, and a JSON ``404 {"error": "not_found"}`` was an ``OAuthProviderError``
although docs/errors.rst says a 404 is a ``TokenResponseError``. Three of four servers do
not form-decode Basic credentials: a secret with ``+ % : & = /`` or a space failed with
reqcc's RFC-correct default, and nothing said ``basic_auth_encoding="raw"`` would work.
An ``InvalidScope`` did not name the scopes asked for.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator

import pytest

from reqcc import (
    ClientAuth,
    ClientCredentialsSession,
    InvalidClient,
    InvalidScope,
    NotATokenEndpoint,
    OAuthProviderError,
    TokenResponseError,
    UnauthorizedClient,
)
from reqcc.client_auth import ClientSecretBasic, ClientSecretPost
from reqcc.testing import LocalAuthorizationServer
from reqcc.token_endpoint import TokenEndpoint

from ..hostile_server import HostileServer, Reply

CHECK = "does not look like a token endpoint: check token_url"
RAW_HINT = 'basic_auth_encoding="raw"'


def endpoint(server: HostileServer, auth: ClientAuth | None = None) -> TokenEndpoint:
    client_auth = auth if auth is not None else ClientSecretBasic("cid", "plain-secret")
    return TokenEndpoint(server.url + "/oauth/token", client_auth, max_retries=0, timeout=(2.0, 2.0))


# -- one exception type for a wrong token_url ------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, b'{"error":"invalid_token"}'),  # RFC 6750: an API's answer, never a token endpoint's
        (403, b'{"error":"insufficient_scope"}'),
        (401, b'{"error":"unauthorized"}'),  # unregistered
        (403, b'{"error":"forbidden","message":"no"}'),
        (404, b'{"error":"not_found"}'),
        (404, b'{"error":"invalid_client"}'),  # a 404 whatever the body
        (405, b'{"error":"method_not_allowed"}'),
        (404, b"Not Found"),
        (401, b"<html><body>Sign in</body></html>"),
    ],
)
def test_a_wrong_token_url_is_one_exception_type_whatever_the_body(
    serve: Callable[..., HostileServer], status: int, body: bytes
) -> None:
    server = serve(Reply(status=status, body=body))
    with pytest.raises(NotATokenEndpoint) as caught:
        endpoint(server).request_token()
    exc = caught.value
    assert isinstance(exc, TokenResponseError) and not isinstance(exc, OAuthProviderError)
    assert CHECK in str(exc) and f"HTTP {status}" in str(exc)
    assert exc.status_code == status
    assert server.token_requests == 1


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (401, "invalid_client", InvalidClient),
        (403, "unauthorized_client", UnauthorizedClient),
        (403, "access_denied", OAuthProviderError),  # Auth0's answer to a client not allowed the API
        (400, "not_found", OAuthProviderError),  # a 400 is a token endpoint's answer: its own code
    ],
)
def test_a_token_endpoints_own_refusal_is_no_wrong_url(
    serve: Callable[..., HostileServer], status: int, code: str, kind: type[Exception]
) -> None:
    server = serve(Reply(status=status, body=b'{"error":"%s"}' % code.encode()))
    with pytest.raises(kind) as caught:
        endpoint(server).request_token()
    assert not isinstance(caught.value, NotATokenEndpoint)
    assert "check token_url" not in str(caught.value)


@pytest.fixture
def local_server() -> Iterator[LocalAuthorizationServer]:
    with LocalAuthorizationServer() as server:
        yield server


@pytest.mark.parametrize("path", ["books", "orders", "nowhere"])
def test_a_session_whose_token_url_names_an_api_path_says_check_token_url(
    local_server: LocalAuthorizationServer, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    credentials = {**local_server.credentials(), "token_url": local_server.api_url + path}
    with ClientCredentialsSession(**credentials, max_retries=0) as session, caplog.at_level(logging.CRITICAL):
        with pytest.raises(NotATokenEndpoint, match=CHECK):
            session.get(local_server.api_url + "books")


# -- the Basic encoding hint ------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["a+b", "100%", "k:v", "a&b=c", "x/y", "with space"])
def test_a_refused_basic_credential_that_form_encoding_changed_names_the_raw_encoding(
    serve: Callable[..., HostileServer], secret: str
) -> None:
    # A server that does not form-decode: it refuses what reqcc sends by default...
    server = serve(Reply(status=401, body=b'{"error":"invalid_client"}'), Reply(body=b'{"access_token":"t"}'))
    with pytest.raises(InvalidClient) as caught:
        endpoint(server, ClientSecretBasic("cid", secret)).request_token()
    message = str(caught.value)
    assert RAW_HINT in message
    assert secret not in message
    # ...and takes the raw credential that the hint names.
    raw_auth = ClientSecretBasic("cid", secret, encoding="raw")
    assert endpoint(server, raw_auth).request_token().access_token == "t"
    raw = base64.b64decode(server.requests[1][2]["authorization"].split()[1]).decode()
    assert raw == f"cid:{secret}"


@pytest.mark.parametrize(
    "auth",
    [
        ClientSecretBasic("cid", "Plain-secret_1.~"),  # form-encoding leaves it as it is
        ClientSecretBasic("cid", "a+b", encoding="raw"),  # already raw
        ClientSecretPost("cid", "a+b"),  # not Basic
    ],
    ids=["unchanged", "raw", "post"],
)
def test_no_raw_encoding_hint_when_it_would_not_help(
    serve: Callable[..., HostileServer], auth: ClientAuth
) -> None:
    server = serve(Reply(status=401, body=b'{"error":"invalid_client"}'))
    with pytest.raises(InvalidClient) as caught:
        endpoint(server, auth).request_token()
    assert "basic_auth_encoding" not in str(caught.value)


def test_a_client_id_that_form_encoding_changes_gets_the_hint_too(
    serve: Callable[..., HostileServer],
) -> None:
    server = serve(Reply(status=401, body=b'{"error":"invalid_client"}'))
    with pytest.raises(InvalidClient, match=RAW_HINT):
        endpoint(server, ClientSecretBasic("app@example.com", "plain")).request_token()


# -- InvalidScope names the scopes asked for --------------------------------------------------


def test_invalid_scope_names_the_scopes_asked_for(local_server: LocalAuthorizationServer) -> None:
    with ClientCredentialsSession(
        **local_server.credentials(), scopes=["books.write", "orders.read"], max_retries=0
    ) as session:
        with pytest.raises(InvalidScope) as caught:
            session.get(local_server.api_url + "books")
    assert "scopes asked for: 'books.write orders.read'" in str(caught.value)


def test_invalid_scope_without_scopes_says_none_were_asked_for(serve: Callable[..., HostileServer]) -> None:
    server = serve(Reply(status=400, body=b'{"error":"invalid_scope"}'))
    with pytest.raises(InvalidScope, match=r"scopes asked for: none \(no scope parameter\)"):
        endpoint(server).request_token()
