"""reqcc.token_messages: the token request built, and its answer parsed, without I/O (issue 20).

The pure functions are called directly with data: no session, no server. The Hypothesis
properties of the parser are in tests/test_properties.py.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests

from reqcc.auth_base import AuthParts
from reqcc.errors import (
    InvalidClient,
    InvalidScope,
    NotATokenEndpoint,
    OAuthProviderError,
    TemporarilyUnavailable,
    TokenResponseError,
)
from reqcc.oauth_token import OAuthToken
from reqcc.token_messages import (
    BASIC_ENCODING_HINT,
    AnswerContext,
    TokenRequest,
    answer_response,
    build_token_request,
    parse_retry_after,
    parse_token_answer,
    with_dpop_proof,
)

NOW = 1_700_000_000.0
URL = "https://as.example/token"
CONTEXT = AnswerContext(
    where="as.example/token", client_id="client-1", auth_method="client_secret_post",
    scope="books.read", secrets=("s3cret",),
)
JSON = {"Content-Type": "application/json"}


def parse(status: int, body: Any, headers: dict[str, str] | None = None, **context: Any) -> OAuthToken:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ctx = AnswerContext(**{**CONTEXT.__dict__, **context})
    return parse_token_answer(status, JSON if headers is None else headers, raw, ctx, now=NOW)


# -- building ---------------------------------------------------------------------------------


def test_the_form_carries_the_grant_the_scope_the_auth_parts_and_the_extra_fields() -> None:
    request = build_token_request(
        URL, AuthParts(form={"client_id": "client-1", "client_secret": "s3cret"}),
        client_id="client-1", scope="books.read books.write", fields={"audience": "api", "resource": "r"},
    )
    assert request.url == URL
    fields = parse_qsl(request.body)
    assert sorted(fields[:4]) == sorted([
        ("grant_type", "client_credentials"), ("scope", "books.read books.write"),
        ("client_id", "client-1"), ("client_secret", "s3cret"),
    ])
    assert fields[4:] == [("audience", "api"), ("resource", "r")]  # appended after oauthlib's
    assert request.headers == {
        "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded",
    }


def test_no_client_id_in_the_form_unless_the_auth_method_puts_it_there() -> None:
    request = build_token_request(
        URL, AuthParts(headers={"Authorization": "Basic abc"}), client_id="client-1", scope=None, fields={},
    )
    assert parse_qsl(request.body) == [("grant_type", "client_credentials")]
    assert request.headers["Authorization"] == "Basic abc"


def test_credential_headers_are_told_apart_in_any_case() -> None:
    request = TokenRequest(URL, {"authorization": "Basic abc", "Accept": "application/json"}, "")
    assert request.auth_headers == {"authorization": "Basic abc"}
    assert request.plain_headers == {"Accept": "application/json"}


def test_a_dpop_proof_is_added_to_a_new_request() -> None:
    request = TokenRequest(URL, {"Accept": "application/json"}, "grant_type=client_credentials")
    proofed = with_dpop_proof(request, "proof.jwt")
    assert proofed.headers == {"Accept": "application/json", "DPoP": "proof.jwt"}
    assert (proofed.url, proofed.body) == (request.url, request.body)
    assert "DPoP" not in request.headers


# -- parsing: tokens --------------------------------------------------------------------------


def test_a_token_answer_is_a_token_expiring_from_now() -> None:
    token = parse(200, {"access_token": "tok", "token_type": "Bearer", "expires_in": 3600})
    assert token.access_token == "tok" and token.token_type == "Bearer"
    assert token.expiry == NOW + 3600
    assert token.scope == "books.read"  # no scope in the answer: the one asked for


def test_the_token_type_asked_for_is_the_only_one_accepted() -> None:
    with pytest.raises(TokenResponseError, match="refusing the downgrade") as downgrade:
        parse(200, {"access_token": "tok", "token_type": "Bearer"}, token_type="DPoP")
    assert downgrade.value.status_code == 200
    with pytest.raises(TokenResponseError, match="did not ask for one"):
        parse(200, {"access_token": "tok", "token_type": "DPoP"})
    assert parse(200, {"access_token": "tok", "token_type": "DPoP"}, token_type="DPoP").token_type == "DPoP"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON that is not an object"),
        (b"[" * 100, "not JSON"),
        (b'{"token_type": "Bearer"}', "unusable token response"),
    ],
)
def test_an_unusable_success_is_a_token_response_error(body: bytes, match: str) -> None:
    with pytest.raises(TokenResponseError, match=match) as caught:
        parse(200, body)
    assert not isinstance(caught.value, NotATokenEndpoint)


# -- parsing: errors --------------------------------------------------------------------------


def test_an_oauth_error_is_its_typed_error_with_retry_after_read_in_any_case() -> None:
    with pytest.raises(TemporarilyUnavailable) as caught:
        parse(503, {"error": "temporarily_unavailable", "error_description": "busy"},
              headers={"content-type": "application/json", "retry-after": "7"})
    error = caught.value
    assert (error.error, error.description, error.status_code, error.retry_after) == (
        "temporarily_unavailable", "busy", 503, 7.0,
    )
    assert str(error) == (
        "token endpoint as.example/token refused client 'client-1': temporarily_unavailable (busy) [HTTP 503]"
    )


def test_invalid_client_names_the_auth_method_and_hints_at_the_basic_encoding() -> None:
    with pytest.raises(InvalidClient) as plain:
        parse(401, {"error": "invalid_client"})
    assert "sent with auth method 'client_secret_post'" in str(plain.value)
    assert BASIC_ENCODING_HINT not in str(plain.value)
    with pytest.raises(InvalidClient) as hinted:
        parse(401, {"error": "invalid_client"}, basic_encoding_changed=True)
    assert str(hinted.value).endswith(BASIC_ENCODING_HINT)


def test_invalid_scope_names_the_scopes_asked_for() -> None:
    with pytest.raises(InvalidScope, match=r"scopes asked for: 'books\.read'"):
        parse(400, {"error": "invalid_scope"})
    with pytest.raises(InvalidScope, match=r"scopes asked for: none \(no scope parameter\)"):
        parse(400, {"error": "invalid_scope"}, scope=None)


def test_an_error_that_is_not_a_string_is_a_token_response_error() -> None:
    with pytest.raises(TokenResponseError, match='"error" that is not a non-empty string') as caught:
        parse(400, {"error": 5}, headers={"Retry-After": "3"})
    assert not isinstance(caught.value, OAuthProviderError)
    assert caught.value.retry_after == 3.0


def test_a_failure_without_an_oauth_error_keeps_its_status_and_retry_after() -> None:
    with pytest.raises(TokenResponseError, match="HTTP 500 without an OAuth error") as caught:
        parse(500, {"detail": "boom"}, headers={"Retry-After": "2"})
    assert (caught.value.status_code, caught.value.retry_after) == (500, 2.0)


@pytest.mark.parametrize(
    ("status", "headers", "body", "match"),
    [
        (302, {"Location": "/login"}, b"", "do not follow redirects"),
        (404, JSON, {"error": "invalid_client"}, "check token_url"),
        (405, JSON, b"", "check token_url"),
        (401, JSON, {"error": "invalid_token"}, "with error 'invalid_token'"),
        (200, {"Content-Type": "text/html; charset=utf-8"}, b"Sign in to continue", "check token_url"),
        (200, {}, b"  <!doctype html>", "check token_url"),
    ],
)
def test_what_no_token_endpoint_answers_is_not_a_token_endpoint(
    status: int, headers: dict[str, str], body: Any, match: str
) -> None:
    with pytest.raises(NotATokenEndpoint, match=match):
        parse(status, body, headers=headers)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_an_html_server_failure_is_not_a_wrong_url(status: int) -> None:
    with pytest.raises(TokenResponseError) as caught:
        parse(status, b"<html>down</html>", headers={"Content-Type": "text/html"})
    assert not isinstance(caught.value, NotATokenEndpoint)


def test_a_secret_in_the_answer_is_redacted_from_the_error() -> None:
    with pytest.raises(InvalidClient) as caught:
        parse(401, {"error": "invalid_client", "error_description": "bad secret s3cret"})
    assert "s3cret" not in str(caught.value) and "s3cret" not in repr(caught.value.description)


def test_the_errors_response_is_the_one_given_or_one_made_of_the_answer() -> None:
    with pytest.raises(TokenResponseError) as made:
        parse(500, b"oops", headers={"X-Trace": "t1"})
    response = made.value.response
    assert isinstance(response, requests.Response)
    assert (response.status_code, response.headers["x-trace"], response.content) == (500, "t1", b"oops")
    given = answer_response(500, {}, b"oops")
    with pytest.raises(TokenResponseError) as passed:
        parse_token_answer(500, {}, b"oops", CONTEXT, now=NOW, response=given)
    assert passed.value.response is given


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("  12 ", NOW) == 12.0
    assert parse_retry_after("-3", NOW) == 0.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:40 GMT", NOW) == 20.0
    assert parse_retry_after("nan", NOW) is None
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("", NOW) is None
