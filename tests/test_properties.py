"""Hypothesis property tests of the parsers and encoders (issue 10).

- The token response parser (``reqcc.token_messages.parse_token_answer``): any JSON, any
  string in any field, any bytes, any status → a valid, header-safe token or a
  ``ReqccError``; nothing else escapes.
- Basic credential encoding (RFC 6749 §2.3.1): every client id and secret round-trips
  through a strict ``application/x-www-form-urlencoded`` decoder.
- Redaction: a secret echoed raw, JSON-, HTML- or percent-encoded never survives.
"""

from __future__ import annotations

import base64
import html
import json
import re
from typing import Any
from urllib.parse import quote, quote_plus, unquote_to_bytes

import requests
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from reqcc._log import redact
from reqcc.client_auth import ClientSecretBasic
from reqcc.errors import ReqccError
from reqcc.oauth_token import OAuthToken
from reqcc.token_messages import AnswerContext, parse_token_answer

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIELDS = ["access_token", "token_type", "expires_in", "scope", "refresh_token", "error",
          "error_description", "error_uri", "expires_at", "expiry"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
field_values = (
    st.text()
    | st.integers(min_value=-(10**500), max_value=10**500)
    | st.floats()
    | st.sampled_from(["Bearer", "bearer", "DPoP", "", "3600", "1e400", "nan", "-1", "tok\r\nX: y"])
    | json_values
)
token_documents = st.dictionaries(
    st.sampled_from(FIELDS), field_values, max_size=len(FIELDS)
) | st.fixed_dictionaries(
    {"access_token": st.text(min_size=1)},
    optional={name: field_values for name in FIELDS if name != "access_token"},
)


CONTEXT = AnswerContext(
    where="idp.example/token", client_id="client", auth_method="client_secret_basic",
    scope="books.read", secrets=ClientSecretBasic("client", "s3cret").secrets(),
)


def parsed_or_reqcc_error(status: int, body: bytes) -> OAuthToken | ReqccError:
    try:  # the pure parser: the answer as (status, headers, body), the token type checked
        token = parse_token_answer(
            status, {"Content-Type": "application/json"}, body, CONTEXT, now=1_700_000_000.0
        )
    except ReqccError as exc:
        assert "s3cret" not in str(exc)
        return exc
    assert isinstance(token, OAuthToken)
    assert re.fullmatch(r"[\x21-\x7e]+", token.access_token)  # header-safe
    assert token.token_type == "Bearer"
    assert token.expiry is None or token.expiry == token.expiry  # not NaN
    return token


@SETTINGS
@given(document=token_documents, status=st.sampled_from([200, 201, 400, 401, 500, 503]))
def test_any_token_document_is_a_token_or_a_reqcc_error(document: dict[str, Any], status: int) -> None:
    outcome = parsed_or_reqcc_error(status, json.dumps(document).encode())
    if isinstance(outcome, OAuthToken):
        assert 200 <= status < 300
        assert outcome.access_token == document["access_token"]


@SETTINGS
@given(value=json_values, status=st.integers(min_value=100, max_value=599))
def test_any_json_is_a_token_or_a_reqcc_error(value: Any, status: int) -> None:
    parsed_or_reqcc_error(status, json.dumps(value).encode())


@SETTINGS
@given(body=st.binary(max_size=200))
def test_any_bytes_are_a_token_or_a_reqcc_error(body: bytes) -> None:
    parsed_or_reqcc_error(200, body)


def test_deep_nesting_and_huge_numbers_are_reqcc_errors() -> None:
    for body in (b"[" * 200_000, b"{\"a\":" * 50_000 + b"1" + b"}" * 50_000,
                 b'{"access_token":"t","expires_in":' + b"9" * 5000 + b"}"):
        assert isinstance(parsed_or_reqcc_error(200, body), ReqccError)


# -- Basic credentials: what a strict form decoder reads back is what was configured --------


def strict_form_decode(part: str) -> str:
    """Decode one application/x-www-form-urlencoded value, refusing anything malformed."""
    assert re.fullmatch(r"(?:[A-Za-z0-9*\-._~+]|%[0-9A-Fa-f]{2})*", part), part
    return unquote_to_bytes(part.replace("+", " ")).decode("utf-8", errors="strict")


@SETTINGS
@given(client_id=st.text(min_size=1), secret=st.text(min_size=1))
def test_basic_credentials_round_trip_through_a_strict_form_decoder(client_id: str, secret: str) -> None:
    header = ClientSecretBasic(client_id, secret).prepare("https://idp.example/token").headers["Authorization"]
    scheme, _, blob = header.partition(" ")
    assert scheme == "Basic"
    decoded = base64.b64decode(blob, validate=True).decode("ascii")  # encoded: pure ASCII
    user, colon, password = decoded.partition(":")
    assert colon and ":" not in password  # the id's own colons are encoded
    assert strict_form_decode(user) == client_id
    assert strict_form_decode(password) == secret


# -- redaction of every echo form ---------------------------------------------------------


@SETTINGS
@given(secret=st.text(min_size=3, max_size=40).filter(lambda s: s.strip() == s and len(set(s)) > 2))
@example(secret="* |")  # found in the text a perfect redaction leaves: "*** | ***"
def test_an_echoed_secret_never_survives_redaction(secret: str) -> None:
    echoes = [
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        html.escape(secret),
        quote(secret, safe=""),
        quote_plus(secret),
    ]
    # A secret that the text around the echoes holds, or that a perfect redaction makes
    # ("* |" of "*** | ***"), cannot be told from a leak: the property is about the others.
    frame = "before " + " | ".join("***" for _ in echoes) + " after"
    assume(not any(echo in frame for echo in echoes))
    text = "before " + " | ".join(echoes) + " after"
    redacted = redact(text, [secret])
    for echo in echoes:
        assert echo not in redacted


# -- the adapter's memoised https-or-loopback decision -------------------------------------

_url_schemes = st.one_of(
    st.sampled_from(["https://", "http://"]),
    st.sampled_from(["https://", "http://", "HTTP://", "https:/", "http:\t//", " http://", ""]),
)
_url_hosts = st.sampled_from([
    "api.example.com", "api.example.com.evil.example", "127.0.0.1", "127.0.0.1.evil.example",
    "localhost", "evil.example", "[::1]", "user@127.0.0.1", "evil.example#@127.0.0.1",
    "127.0.0.1@evil.example", "",
])
_url_rests = st.one_of(
    st.sampled_from(["/", "/books", ":8080/", ".evil.example/", "?next=/", "#/"]),
    st.text(alphabet="/?#@:.0123456789abx%", max_size=12),
)
_urls = st.builds(lambda s, h, r: s + h + r, _url_schemes, _url_hosts, _url_rests)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(urls=st.lists(_urls, min_size=1, max_size=12))
@example(urls=["http://127.0.0.1/books", "http://127.0.0.1.evil.example/books"])
@example(urls=["http://127.0.0.1/books", "http://127.0.0.1?@evil.example/books"])
def test_the_adapters_remembered_decision_is_the_rule_on_the_whole_url(urls: list[str]) -> None:
    # The adapter decides the https-or-loopback rule once per origin and checks the last
    # origin used by a prefix: in any order of any URLs, what it lets through (or refuses)
    # must be exactly what the rule says about each whole URL.
    import requests_mock

    from reqcc import ClientCredentialsAdapter, InsecureTransportError
    from reqcc._urls import require_secure_url
    from reqcc.oauth_token import OAuthToken as Token

    api = requests_mock.Adapter()
    api.register_uri(requests_mock.ANY, requests_mock.ANY, text="ok")
    adapter = ClientCredentialsAdapter(
        api, token_url="https://auth.example.com/token", client_id="c", client_secret="s",
        token_provider=lambda: Token("tok-1", expires_in=3600),
    )
    for url in urls:
        try:
            require_secure_url(url, "a token")
            expected_secure = True
        except InsecureTransportError:
            expected_secure = False
        prepared = requests.Request("GET", "http://127.0.0.1/").prepare()
        prepared.url = url
        try:
            adapter.send(prepared)
            sent = True
        except InsecureTransportError:
            sent = False
        except (requests.RequestException, ValueError):
            sent = True  # got past the rule; the mock transport refused the URL itself
        assert sent == expected_secure, url
