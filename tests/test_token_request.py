"""The token request: what is sent (item 6), how failures map (item 7), a narrowed scope (item 8)."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any
from urllib.parse import unquote, unquote_plus

import pytest
import requests

from reqcc import (
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    OAuthProviderError,
    OAuthScope,
    ReqccError,
    ServerError,
    TemporarilyUnavailable,
    TokenRequestError,
    TokenResponseError,
    UnauthorizedClient,
    UnsupportedGrantType,
)

from .conftest import CLIENT_ID, CLIENT_SECRET, START, TOKEN_URL, Env, TokenIssuer
from .reachable import reachable_text

BOOKS = "https://api.example.com/books"


def basic_pair(header: str) -> tuple[str, str]:
    """Decode ``Basic …`` the way an RFC 6749 §2.3.1 server does: Base64, split, form-decode."""
    scheme, _, blob = header.partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(blob).decode("ascii").partition(":")
    return unquote_plus(user), unquote_plus(password)


# -- item 6: what is sent ---------------------------------------------------------------


def test_client_secret_basic_request(make_env: Any) -> None:
    env: Env = make_env(scopes=[OAuthScope.BooksRead, OAuthScope.OrdersRead])
    env.session.get(BOOKS)
    assert env.issuer.count == 1
    request = env.issuer.requests[0]
    assert request.method == "POST"
    assert request.url == TOKEN_URL
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert env.issuer.form() == {"grant_type": ["client_credentials"], "scope": ["books.read orders.read"]}
    assert CLIENT_SECRET not in request.body.decode()


def test_client_secret_post_request(make_env: Any) -> None:
    env: Env = make_env(auth_method="client_secret_post", scopes=["books.read"])
    env.session.get(BOOKS)
    request = env.issuer.requests[0]
    assert "Authorization" not in request.headers
    assert request.headers["Accept"] == "application/json"
    assert env.issuer.form() == {
        "grant_type": ["client_credentials"],
        "client_id": [CLIENT_ID],
        "client_secret": [CLIENT_SECRET],
        "scope": ["books.read"],
    }


SPECIAL_ID = "id:ü 1"
SPECIAL_SECRET = "p:a%s+s w/ö€"
# application/x-www-form-urlencoded, UTF-8: ':'→%3A '%'→%25 '+'→%2B ' '→'+' '/'→%2F
SPECIAL_ID_FORM = "id%3A%C3%BC+1"
SPECIAL_SECRET_FORM = "p%3Aa%25s%2Bs+w%2F%C3%B6%E2%82%AC"
# The Basic credential writes a space as %20: form decoders read it as a space, and so do
# servers that percent-decode without form rules (Authlib), which would read '+' as a plus.
SPECIAL_ID_BASIC = "id%3A%C3%BC%201"
SPECIAL_SECRET_BASIC = "p%3Aa%25s%2Bs%20w%2F%C3%B6%E2%82%AC"


def test_basic_credentials_are_form_encoded_before_base64(make_env: Any) -> None:
    env: Env = make_env(client_id=SPECIAL_ID, client_secret=SPECIAL_SECRET)
    env.session.get(BOOKS)
    header = env.issuer.requests[0].headers["Authorization"]
    raw = base64.b64decode(header.removeprefix("Basic ")).decode("ascii")
    assert raw == f"{SPECIAL_ID_BASIC}:{SPECIAL_SECRET_BASIC}"
    assert basic_pair(header) == (SPECIAL_ID, SPECIAL_SECRET)
    user, _, password = raw.partition(":")
    assert (unquote(user), unquote(password)) == (SPECIAL_ID, SPECIAL_SECRET)  # percent-decoders too


def test_basic_raw_encoding_sends_the_values_unencoded(make_env: Any) -> None:
    env: Env = make_env(client_id="plain", client_secret=SPECIAL_SECRET, basic_auth_encoding="raw")
    env.session.get(BOOKS)
    header = env.issuer.requests[0].headers["Authorization"]
    assert base64.b64decode(header.removeprefix("Basic ")).decode("utf-8") == f"plain:{SPECIAL_SECRET}"


def test_posted_special_secret_survives_form_encoding(make_env: Any) -> None:
    env: Env = make_env(client_id=SPECIAL_ID, client_secret=SPECIAL_SECRET, auth_method="client_secret_post")
    env.session.get(BOOKS)
    body = env.issuer.requests[0].body.decode("ascii")
    assert f"client_secret={SPECIAL_SECRET_FORM}" in body.split("&")
    assert f"client_id={SPECIAL_ID_FORM}" in body.split("&")
    assert env.issuer.form()["client_secret"] == [SPECIAL_SECRET]


def test_scope_is_omitted_when_empty(make_env: Any) -> None:
    env: Env = make_env()
    env.session.get(BOOKS)
    assert env.issuer.form() == {"grant_type": ["client_credentials"]}


def test_token_params_are_sent_on_every_fetch(make_env: Any) -> None:
    env: Env = make_env(token_params={"audience": "https://api.example.com", "resource": "urn:books"})
    env.session.get(BOOKS)
    env.manager.invalidate(env.manager.token)  # type: ignore[arg-type]
    env.session.get(BOOKS)
    env.clock.advance(3600)  # expired: a third fetch
    env.session.get(BOOKS)
    assert env.issuer.count == 3
    for i in range(3):
        assert env.issuer.form(i) == {
            "grant_type": ["client_credentials"],
            "audience": ["https://api.example.com"],
            "resource": ["urn:books"],
        }
    assert env.bearers() == ["Bearer tok-1", "Bearer tok-2", "Bearer tok-3"]


def test_fetch_token_extra_params_are_added_and_override_token_params(make_env: Any) -> None:
    env: Env = make_env(token_params={"audience": "a1", "resource": "r1"})
    token = env.manager.fetch_token(audience="a2", tenant="t")
    assert token.access_token == "tok-1"
    assert env.issuer.form() == {
        "grant_type": ["client_credentials"],
        "audience": ["a2"],
        "resource": ["r1"],
        "tenant": ["t"],
    }
    env.manager.fetch_token()
    assert env.issuer.form() == {"grant_type": ["client_credentials"], "audience": ["a1"], "resource": ["r1"]}


def test_token_session_credentials_do_not_leak_into_the_token_request(make_env: Any) -> None:
    env: Env = make_env(auth_method="client_secret_post")
    token_session = env.manager._endpoint.session
    token_session.headers["Authorization"] = "Bearer from-the-token-session"
    env.session.get(BOOKS)
    assert "Authorization" not in env.issuer.requests[0].headers


def test_the_token_request_carries_no_bearer_token(make_env: Any) -> None:
    env: Env = make_env()
    env.session.get(BOOKS)
    env.manager.fetch_token()
    for request in env.issuer.requests:
        assert request.headers["Authorization"].startswith("Basic ")
    assert env.api.call_count == 1


# -- item 7: failures raise to the caller, typed, and a later request tries again ----------

SECTION_5_2 = [
    ("invalid_request", 400, InvalidRequest),
    ("invalid_client", 401, InvalidClient),
    ("invalid_grant", 400, InvalidGrant),
    ("unauthorized_client", 400, UnauthorizedClient),
    ("unsupported_grant_type", 400, UnsupportedGrantType),
    ("invalid_scope", 400, InvalidScope),
    ("some_vendor_code", 400, OAuthProviderError),
]


@pytest.mark.parametrize(("code", "status", "cls"), SECTION_5_2)
def test_each_section_5_2_code_raises_its_class_with_the_real_status(
    make_env: Any, code: str, status: int, cls: type[OAuthProviderError]
) -> None:
    body = {"error": code, "error_description": "what went wrong", "error_uri": "https://docs.example/e"}
    env: Env = make_env(issuer=TokenIssuer(answers=[{"status_code": status, "json": body}]))
    with pytest.raises(OAuthProviderError) as info:
        env.session.get(BOOKS)
    exc = info.value
    assert type(exc) is cls
    assert exc.error == code
    assert exc.description == "what went wrong"
    assert exc.uri == "https://docs.example/e"
    assert exc.status_code == status
    assert exc.response is not None and exc.response.status_code == status
    assert isinstance(exc, requests.RequestException) and isinstance(exc, ReqccError)
    assert code in str(exc) and str(status) in str(exc)
    assert env.issuer.count == 1  # not a transient failure: no retry
    assert env.api.call_count == 0


@pytest.mark.parametrize(
    ("code", "status", "cls"),
    [("temporarily_unavailable", 503, TemporarilyUnavailable), ("server_error", 500, ServerError)],
)
def test_transient_codes_have_classes_too(
    make_env: Any, code: str, status: int, cls: type[Exception]
) -> None:
    env: Env = make_env(
        max_retries=0, issuer=TokenIssuer(answers=[{"status_code": status, "json": {"error": code}}])
    )
    with pytest.raises(cls) as info:
        env.session.get(BOOKS)
    assert info.value.status_code == status  # type: ignore[attr-defined]
    assert info.value.description is None  # type: ignore[attr-defined]
    assert env.issuer.count == 1


def test_oauthlib_status_blind_mapping_does_not_leak(make_env: Any) -> None:
    # oauthlib maps invalid_request to InvalidClientIdError and forgets the status; we do not.
    env: Env = make_env(
        issuer=TokenIssuer(answers=[{"status_code": 400, "json": {"error": "invalid_request"}}])
    )
    with pytest.raises(InvalidRequest) as info:
        env.session.get(BOOKS)
    assert not isinstance(info.value, InvalidClient)
    assert info.value.status_code == 400


def response_error(make_env: Any, answer: dict[str, Any]) -> tuple[TokenResponseError, Env]:
    env: Env = make_env(max_retries=0, issuer=TokenIssuer(answers=[answer]))
    with pytest.raises(TokenResponseError) as info:
        env.session.get(BOOKS)
    assert env.issuer.count == 1
    assert env.api.call_count == 0
    assert isinstance(info.value, TokenRequestError) and not isinstance(info.value, OAuthProviderError)
    return info.value, env


def test_html_502_is_a_token_response_error_with_status_and_excerpt(make_env: Any) -> None:
    html = "<html><body><h1>502 Bad Gateway</h1>\n<p>nginx</p></body></html>"
    exc, _ = response_error(
        make_env, {"status_code": 502, "text": html, "headers": {"Content-Type": "text/html"}}
    )
    assert exc.status_code == 502
    assert exc.response is not None and exc.response.status_code == 502
    assert "HTTP 502" in str(exc)
    assert "<h1>502 Bad Gateway</h1> <p>nginx</p>" in str(exc)  # excerpt on one line


def test_a_long_body_is_cut_to_a_short_excerpt(make_env: Any) -> None:
    exc, _ = response_error(make_env, {"status_code": 500, "text": "x" * 5000})
    assert len(str(exc)) < 400
    assert str(exc).endswith("…")


def test_empty_200_is_a_token_response_error(make_env: Any) -> None:
    exc, _ = response_error(make_env, {"status_code": 200, "text": ""})
    assert exc.status_code == 200
    assert "not JSON" in str(exc) and "<empty>" in str(exc)


def test_json_array_is_a_token_response_error(make_env: Any) -> None:
    exc, _ = response_error(make_env, {"status_code": 200, "json": [{"access_token": "x"}]})
    assert "not an object" in str(exc)


def test_token_type_mac_is_a_token_response_error(make_env: Any) -> None:
    exc, _ = response_error(make_env, {"json": {"access_token": "mac-token-1", "token_type": "mac"}})
    assert "token_type" in str(exc) and "'mac'" in str(exc)


def test_missing_access_token_is_a_token_response_error(make_env: Any) -> None:
    exc, _ = response_error(make_env, {"json": {"token_type": "Bearer", "expires_in": 3600}})
    assert "access_token" in str(exc)


def test_expires_in_soon_is_a_typed_error(make_env: Any) -> None:
    exc, _ = response_error(make_env, {"json": {"access_token": "abc-123", "expires_in": "soon"}})
    assert "expires_in" in str(exc)
    assert "'soon'" in str(exc)


def test_non_2xx_without_an_oauth_error_is_a_token_response_error(make_env: Any) -> None:
    exc, _ = response_error(make_env, {"status_code": 404, "json": {"message": "no such route"}})
    assert exc.status_code == 404
    assert "no such route" in str(exc)


def test_a_redirect_from_the_token_endpoint_is_not_followed(make_env: Any) -> None:
    exc, _ = response_error(
        make_env, {"status_code": 302, "text": "", "headers": {"Location": "https://elsewhere.example/token"}}
    )
    assert exc.status_code == 302
    assert "token_url" in str(exc)


def test_missing_token_type_is_taken_as_bearer(make_env: Any) -> None:
    env: Env = make_env(issuer=TokenIssuer(answers=[{"json": {"access_token": "typeless"}}]))
    assert env.session.get(BOOKS).status_code == 200
    assert env.bearers() == ["Bearer typeless"]


@pytest.mark.parametrize("value", ["3600.5", 3600.5])
def test_fractional_expires_in_is_accepted(make_env: Any, value: Any) -> None:
    env: Env = make_env(issuer=TokenIssuer(expires_in=value))
    env.session.get(BOOKS)
    token = env.manager.token
    assert token is not None
    assert token.expires_in == 3600.5
    assert token.expiry == START + 3600.5


def test_expires_in_as_a_string_is_accepted(make_env: Any) -> None:
    env: Env = make_env(issuer=TokenIssuer(expires_in="3600"))
    env.session.get(BOOKS)
    token = env.manager.token
    assert token is not None
    assert token.expires_in == 3600
    assert token.expiry == START + 3600
    env.clock.advance(3600 - 31)
    env.session.get(BOOKS)
    assert env.issuer.count == 1
    env.clock.advance(1)  # expiry - 30s skew reached
    env.session.get(BOOKS)
    assert env.issuer.count == 2


@pytest.mark.parametrize("error", [requests.ConnectionError, requests.ConnectTimeout, requests.ReadTimeout])
def test_network_failures_stay_requests_exceptions(make_env: Any, error: type[Exception]) -> None:
    env: Env = make_env(max_retries=0)
    env.auth.register_uri("POST", TOKEN_URL, exc=error("boom"))
    with pytest.raises(error) as first:
        env.session.get(BOOKS)
    with pytest.raises(error) as repeat:  # during the failure backoff: the same type, chained
        env.session.get(BOOKS)
    assert repeat.value.__cause__ is first.value
    assert "boom" in str(repeat.value)
    assert env.auth.call_count == 1
    assert env.api.call_count == 0


def test_failure_then_recovery_on_a_later_request(make_env: Any) -> None:
    env: Env = make_env(
        issuer=TokenIssuer(answers=[{"status_code": 401, "json": {"error": "invalid_client"}}])
    )
    with pytest.raises(InvalidClient):
        env.session.get(BOOKS)
    # Within the failure backoff the same error is raised again at once (no new request) ...
    with pytest.raises(InvalidClient) as again:
        env.session.get(BOOKS)
    assert isinstance(again.value.__cause__, InvalidClient)
    assert env.issuer.count == 1
    # ... and once it has passed, the next request tries again and recovers: no sticky failure.
    # (No token is held: the next attempt is a probe, due within probe_interval ±20 %.)
    env.clock.advance(env.manager.probe_interval * 1.2 + 0.01)
    response = env.session.get(BOOKS)
    assert response.status_code == 200
    assert env.issuer.count == 2
    assert env.bearers() == ["Bearer tok-1"]
    env.session.get(BOOKS)
    assert env.issuer.count == 2


def test_failure_then_recovery_without_backoff(make_env: Any) -> None:
    env: Env = make_env(
        failure_backoff=0,
        probe_interval=0,
        max_retries=0,
        issuer=TokenIssuer(answers=[{"status_code": 503, "text": "busy"}, {"status_code": 200, "text": ""}]),
    )
    with pytest.raises(TokenResponseError, match="HTTP 503"):
        env.session.get(BOOKS)
    with pytest.raises(TokenResponseError, match="not JSON"):
        env.session.get(BOOKS)
    assert env.session.get(BOOKS).status_code == 200
    assert env.issuer.count == 3
    assert env.bearers() == ["Bearer tok-1"]


# -- item 8: a narrowed scope is accepted, recorded and logged at INFO ---------------------


def test_narrowed_scope_is_accepted_recorded_and_logged(
    make_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    env: Env = make_env(
        scopes=[OAuthScope.BooksRead, OAuthScope.OrdersWrite],
        issuer=TokenIssuer(extra={"scope": "books.read"}),
    )
    with caplog.at_level(logging.INFO, logger="reqcc"):
        assert env.session.get(BOOKS).status_code == 200
    token = env.manager.token
    assert token is not None and token.scope == "books.read"
    records = [r for r in caplog.records if r.name == "reqcc" and "granted scope" in r.getMessage()]
    assert len(records) == 1
    assert records[0].levelno == logging.INFO
    assert "'books.read'" in records[0].getMessage()
    assert "'books.read orders.write'" in records[0].getMessage()


def test_same_scope_in_another_order_is_not_logged(make_env: Any, caplog: pytest.LogCaptureFixture) -> None:
    env: Env = make_env(scopes=["a", "b"], issuer=TokenIssuer(extra={"scope": "b a"}))
    with caplog.at_level(logging.INFO, logger="reqcc"):
        env.session.get(BOOKS)
    assert not [r for r in caplog.records if "granted scope" in r.getMessage()]
    assert env.manager.token is not None and env.manager.token.scopes == ("b", "a")


def test_scope_omitted_in_response_records_the_requested_one(make_env: Any) -> None:
    env: Env = make_env(scopes=[OAuthScope.OrdersRead])
    env.session.get(BOOKS)
    assert env.manager.token is not None and env.manager.token.scope == "orders.read"


def test_token_params_are_sent_verbatim_even_empty_or_named_like_oauthlib_arguments(make_env: Any) -> None:
    env: Env = make_env(token_params={"audience": "", "body": "b", "include_client_id": "yes"})
    env.session.get(BOOKS)
    assert env.issuer.form() == {
        "grant_type": ["client_credentials"],
        "audience": [""],
        "body": ["b"],
        "include_client_id": ["yes"],
    }


# -- the token request's transport settings ------------------------------------------------


def test_token_request_timeout_default_and_configured(make_env: Any) -> None:
    env: Env = make_env()
    env.session.get(BOOKS, timeout=7)
    assert env.auth.request_history[0].timeout == (5.0, 15.0)
    assert env.api.request_history[0].timeout == 7  # the API request's own timeout is untouched
    configured: Env = make_env(timeout=2.5)
    configured.session.get(BOOKS)
    assert configured.auth.request_history[0].timeout == 2.5


def test_an_oauth2session_token_session_gets_its_compliance_hooks_applied(make_env: Any) -> None:
    from requests_oauthlib import OAuth2Session

    token_session = OAuth2Session(CLIENT_ID)
    seen: list[str] = []

    def on_request(url: str, headers: dict[str, str], body: str) -> tuple[str, dict[str, str], str]:
        seen.append(body)
        return url, {**headers, "X-Vendor": "1"}, body + "&vendor_flag=on"

    def on_response(response: requests.Response) -> requests.Response:
        # a non-standard server that wraps the token in {"data": ...}
        response._content = json.dumps(response.json()["data"]).encode()
        return response

    token_session.register_compliance_hook("access_token_request", on_request)
    token_session.register_compliance_hook("access_token_response", on_response)
    wrapped = TokenIssuer(answers=[{"json": {"data": {"access_token": "wrapped-1", "expires_in": 60}}}])
    env2: Env = make_env(issuer=wrapped, token_session=token_session)
    token_session.mount("https://", env2.auth)  # the mocked token endpoint
    assert env2.session.get(BOOKS).status_code == 200
    assert env2.bearers() == ["Bearer wrapped-1"]
    assert seen == ["grant_type=client_credentials"]
    assert env2.issuer.requests[0].headers["X-Vendor"] == "1"
    assert env2.issuer.form() == {"grant_type": ["client_credentials"], "vendor_flag": ["on"]}
    assert token_session.token == {}  # requests-oauthlib's own state is not touched


def test_an_oauth2session_token_session_may_use_loopback_http(make_env: Any) -> None:
    from requests_oauthlib import OAuth2Session

    env: Env = make_env()
    token_session = OAuth2Session(CLIENT_ID)
    token_session.mount("http://", env.auth)
    env.auth.register_uri("POST", "http://127.0.0.1:8080/token", text=env.issuer)
    local: Env = make_env(token_url="http://127.0.0.1:8080/token", token_session=token_session)
    local.session.get(BOOKS)  # OAuth2Session.request would refuse http (oauthlib InsecureTransportError)
    assert env.issuer.count == 1


# -- the token request an error carries holds no credential (items 13, 31) ----------------


def _request_text(request: Any) -> str:
    body = request.body
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    return text + "\n" + "\n".join(f"{name}: {value}" for name, value in request.headers.items())


def _credential_forms(client_id: str, secret: str) -> list[str]:
    from urllib.parse import quote_plus

    basic = base64.b64encode(f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()).decode()
    return [secret, quote_plus(secret), basic]


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_a_refused_secret_is_not_in_the_request_the_error_carries(auth_method: str) -> None:
    from reqcc import ClientCredentialsSession
    from reqcc.testing import LocalAuthorizationServer

    secret = "wrong+secret/XYZ=="
    with LocalAuthorizationServer() as server:
        keywords = {**server.credentials(), "client_secret": secret, "auth_method": auth_method}
        with ClientCredentialsSession(**keywords) as session, pytest.raises(InvalidClient) as caught:
            session.get(server.api_url + "books")
    exc = caught.value
    assert exc.response is not None and exc.request is exc.response.request
    carried = _request_text(exc.request)
    assert exc.request.method == "POST" and exc.request.url == server.token_url  # still useful
    assert "grant_type=client_credentials" in carried
    client_id = keywords["client_id"]
    reachable = reachable_text(exc)  # everything an error reporter could walk to, not frames
    for form in _credential_forms(client_id, secret):
        assert form not in carried and form not in reachable
    if auth_method == "client_secret_basic":
        assert exc.request.headers["Authorization"] == "<redacted>"
    else:
        assert "client_secret=%3Credacted%3E" in carried and f"client_id={client_id}" in carried


def test_a_network_failure_of_the_token_request_carries_no_secret() -> None:
    import socket

    from reqcc import ClientCredentialsSession

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    secret = "network-secret-123"
    session = ClientCredentialsSession(
        token_url=f"http://127.0.0.1:{port}/token", client_id=CLIENT_ID, client_secret=secret,
        auth_method="client_secret_post", base_url=f"http://127.0.0.1:{port}/", max_retries=0,
    )
    with session, pytest.raises(requests.ConnectionError) as caught:
        session.get(f"http://127.0.0.1:{port}/books")
    assert caught.value.request is not None
    carried = _request_text(caught.value.request)
    assert "client_secret=%3Credacted%3E" in carried
    reachable = reachable_text(caught.value)
    for form in _credential_forms(CLIENT_ID, secret):
        assert form not in carried and form not in reachable


# -- black box: the Basic-encoding hint (item 35) against a real loopback server ---------------


@pytest.mark.parametrize(
    ("secret", "wrong", "auth_method", "hint"),
    [
        ("p+a ss:w%rd/=", "q+a ss:w%rd/=", "client_secret_basic", True),  # encoding changes it
        ("plainsecret", "wrongsecret", "client_secret_basic", False),  # nothing to encode
        ("p+a ss:w%rd/=", "q+a ss:w%rd/=", "client_secret_post", False),  # no Basic at all
    ],
    ids=["basic-special", "basic-plain", "post-special"],
)
def test_the_basic_encoding_hint_only_where_encoding_changed_the_credential(
    secret: str, wrong: str, auth_method: str, hint: bool
) -> None:
    from urllib.parse import quote, quote_plus

    from reqcc import ClientCredentialsSession
    from reqcc.testing import LocalAuthorizationServer

    with LocalAuthorizationServer({"svc": (secret, ["books.read"])}) as server:
        keywords = {**server.credentials("svc"), "auth_method": auth_method, "scopes": ["books.read"]}
        with ClientCredentialsSession(**keywords) as good:  # the server form-decodes: accepted
            assert good.get(server.api_url + "books").status_code == 200
        with ClientCredentialsSession(**{**keywords, "client_secret": wrong}) as bad:
            with pytest.raises(InvalidClient) as caught:
                bad.get(server.api_url + "books")
    message = str(caught.value)
    assert ('basic_auth_encoding="raw"' in message) is hint
    for form in (wrong, quote(wrong, safe=""), quote_plus(wrong), base64.b64encode(wrong.encode()).decode()):
        assert form not in message and form not in repr(caught.value)


def test_a_token_session_hook_raising_for_the_status_carries_no_secret() -> None:
    from reqcc import ClientCredentialsSession
    from reqcc.testing import LocalAuthorizationServer

    secret = "hooked-secret-456"
    token_session = requests.Session()  # a house session that raises on any error status
    token_session.hooks["response"].append(lambda response, *args, **kwargs: response.raise_for_status())
    with LocalAuthorizationServer() as server:
        keywords = {**server.credentials(), "client_secret": secret, "token_session": token_session}
        with ClientCredentialsSession(**keywords) as session, pytest.raises(requests.HTTPError) as caught:
            session.get(server.api_url + "books")
    exc = caught.value
    assert exc.response is not None and exc.response.status_code == 401
    for carried in (exc.request, exc.response.request):
        assert carried is not None and carried.headers["Authorization"] == "<redacted>"
        for form in _credential_forms(keywords["client_id"], secret):
            assert form not in _request_text(carried)


# -- a refused credential is not a wrong token_url (item 35) ----------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        # Spring Boot's error page for a refused Basic credential (legacy Spring OAuth2).
        (b'{"timestamp":"2026-12-08T02:00:00Z","status":401,"error":"Unauthorized","path":"/oauth/token"}',
         "application/json", OAuthProviderError),
        (b"<html><body>401 Authorization Required</body></html>", "text/html", TokenResponseError),
    ],
    ids=["spring-json", "proxy-html"],
)
def test_a_basic_challenge_is_a_refused_credential_not_a_wrong_token_url(
    serve: Any, body: bytes, content_type: str, expected: type[Exception]
) -> None:
    from reqcc import ClientCredentialsManager, NotATokenEndpoint

    from .hostile_server import Reply

    challenge = {"WWW-Authenticate": 'Basic realm="oauth2/client"', "Content-Type": content_type}
    server = serve(Reply(status=401, headers=challenge, body=body), lifetime=5)
    manager = ClientCredentialsManager(
        token_url=server.url + "/oauth/token", client_id="c", client_secret="s", max_retries=0
    )
    with pytest.raises(expected) as caught:
        manager.fetch_token()
    assert not isinstance(caught.value, NotATokenEndpoint)
    assert "check token_url" not in str(caught.value) and "HTTP 401" in str(caught.value)


def test_an_api_path_with_a_bearer_challenge_is_still_a_wrong_token_url(serve: Any) -> None:
    from reqcc import ClientCredentialsManager, NotATokenEndpoint

    from .hostile_server import Reply

    answer = Reply(status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                   body=b'{"error":"invalid_token"}')
    server = serve(answer, lifetime=5)
    manager = ClientCredentialsManager(
        token_url=server.url + "/api/books", client_id="c", client_secret="s", max_retries=0
    )
    with pytest.raises(NotATokenEndpoint, match="check token_url"):
        manager.fetch_token()
