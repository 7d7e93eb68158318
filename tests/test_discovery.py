"""Authorization server metadata (RFC 8414 / OpenID Connect Discovery): reqcc.discovery."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import requests_mock
from hypothesis import given, settings
from hypothesis import strategies as st

from reqcc import ConfigurationError, InsecureTransportError, ReqccError, TokenDeadlineError
from reqcc._urls import NO_TOKEN_ATTRIBUTE
from reqcc.discovery import (
    MAX_METADATA_BYTES,
    AuthorizationServerMetadata,
    MetadataError,
    check_issuer,
    choose_auth_method,
    fetch_metadata,
    parse_metadata,
    well_known_urls,
)
from reqcc.token_endpoint import RetryPolicy, is_transient

ISSUER = "https://as.example"
OIDC_URL = "https://as.example/.well-known/openid-configuration"
OAUTH_URL = "https://as.example/.well-known/oauth-authorization-server"


def document(issuer: str = ISSUER, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"issuer": issuer, "token_endpoint": f"{issuer.rstrip('/')}/token"}
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not None}


@pytest.fixture
def http() -> tuple[requests.Session, requests_mock.Adapter]:
    adapter = requests_mock.Adapter()
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session, adapter


# -- well-known URLs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issuer", "urls"),
    [
        ("https://as.example", (OIDC_URL, OAUTH_URL)),
        ("https://as.example/", (OIDC_URL, OAUTH_URL)),
        (
            "https://as.example:8443/tenant/one",
            (
                "https://as.example:8443/tenant/one/.well-known/openid-configuration",
                "https://as.example:8443/.well-known/oauth-authorization-server/tenant/one",
                "https://as.example:8443/tenant/one/.well-known/oauth-authorization-server",
            ),
        ),
        (
            "https://as.example/tenant/",
            (
                "https://as.example/tenant/.well-known/openid-configuration",
                "https://as.example/.well-known/oauth-authorization-server/tenant",
                "https://as.example/tenant/.well-known/oauth-authorization-server",
            ),
        ),
        (
            "http://127.0.0.1:8080",
            (
                "http://127.0.0.1:8080/.well-known/openid-configuration",
                "http://127.0.0.1:8080/.well-known/oauth-authorization-server",
            ),
        ),
    ],
)
def test_well_known_urls_oidc_then_rfc8414_path_aware_then_appended(
    issuer: str, urls: tuple[str, ...]
) -> None:
    # Without a path, the appended form is the path-aware one: listed once.
    assert well_known_urls(issuer) == urls


@pytest.mark.parametrize(
    ("issuer", "error"),
    [
        ("http://as.example", InsecureTransportError),
        ("http://10.0.0.1/tenant", InsecureTransportError),
        ("https://as.example/?tenant=1", ConfigurationError),
        ("https://as.example/#x", ConfigurationError),
        ("https://user:pw@as.example", ConfigurationError),
        ("as.example", ConfigurationError),
        ("ftp://as.example", ConfigurationError),
        ("", ConfigurationError),
        (None, ConfigurationError),
    ],
)
def test_bad_issuer_is_refused_before_any_request(
    http: tuple[requests.Session, requests_mock.Adapter], issuer: Any, error: type[Exception]
) -> None:
    session, adapter = http
    with pytest.raises(error, match="issuer"):
        check_issuer(issuer)
    with pytest.raises(error):
        fetch_metadata(issuer, session)
    assert adapter.call_count == 0


def test_loopback_http_issuer_is_accepted() -> None:
    assert check_issuer("http://localhost:9000/realm") == "http://localhost:9000/realm"


# -- fetching ---------------------------------------------------------------------------------


def test_reads_the_openid_configuration_first(http: tuple[requests.Session, requests_mock.Adapter]) -> None:
    session, adapter = http
    adapter.register_uri("GET", OIDC_URL, json=document())
    adapter.register_uri("GET", OAUTH_URL, status_code=500)
    metadata = fetch_metadata(ISSUER, session)
    assert metadata.issuer == ISSUER
    assert metadata.token_endpoint == "https://as.example/token"
    assert metadata.source_url == OIDC_URL
    assert [r.url for r in adapter.request_history] == [OIDC_URL]


def test_a_404_falls_through_to_the_rfc8414_document(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    session, adapter = http
    adapter.register_uri("GET", OIDC_URL, status_code=404, text="not found")
    adapter.register_uri("GET", OAUTH_URL, json=document(token_endpoint="https://as.example/oauth/token"))
    metadata = fetch_metadata(ISSUER, session)
    assert metadata.token_endpoint == "https://as.example/oauth/token"
    assert metadata.source_url == OAUTH_URL
    assert [r.url for r in adapter.request_history] == [OIDC_URL, OAUTH_URL]


def test_issuer_with_a_path_uses_the_path_aware_rfc8414_url(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    session, adapter = http
    issuer = "https://as.example/tenants/blue"
    oidc, oauth, _ = well_known_urls(issuer)
    adapter.register_uri("GET", oidc, status_code=404)
    adapter.register_uri("GET", oauth, json=document(issuer))
    # The plain document at the origin belongs to another issuer and must not be read.
    adapter.register_uri("GET", OAUTH_URL, json=document())
    metadata = fetch_metadata(issuer, session)
    assert metadata.issuer == issuer
    assert metadata.token_endpoint == "https://as.example/tenants/blue/token"
    assert [r.url for r in adapter.request_history] == [
        "https://as.example/tenants/blue/.well-known/openid-configuration",
        "https://as.example/.well-known/oauth-authorization-server/tenants/blue",
    ]


def test_issuer_with_a_path_reads_its_openid_configuration(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    session, adapter = http
    issuer = "https://as.example/realms/x"
    adapter.register_uri("GET", f"{issuer}/.well-known/openid-configuration", json=document(issuer))
    assert fetch_metadata(issuer, session).token_endpoint == f"{issuer}/token"


def test_no_document_at_either_url_names_both(http: tuple[requests.Session, requests_mock.Adapter]) -> None:
    session, adapter = http
    adapter.register_uri("GET", OIDC_URL, status_code=404)
    adapter.register_uri("GET", OAUTH_URL, status_code=410)
    with pytest.raises(MetadataError) as info:
        fetch_metadata(ISSUER, session)
    message = str(info.value)
    assert OIDC_URL in message and "404" in message
    assert OAUTH_URL in message and "410" in message
    assert info.value.status_code == 410
    assert not is_transient(info.value)


def test_request_is_a_get_for_json_without_credentials(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    session, adapter = http
    session.auth = ("user", "session-password")
    seen: list[requests.PreparedRequest] = []

    def answer(request: Any, context: Any) -> str:
        seen.append(request._request)
        return json.dumps(document())

    adapter.register_uri("GET", OIDC_URL, text=answer)
    fetch_metadata(ISSUER, session, timeout=3.5)
    request = adapter.last_request
    assert request.headers["Accept"] == "application/json"
    assert "Authorization" not in request.headers
    assert getattr(seen[0], NO_TOKEN_ATTRIBUTE) is True  # a reqcc adapter on the session adds no token
    assert request.timeout == 3.5


def test_a_document_naming_another_issuer_is_refused(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    session, adapter = http
    adapter.register_uri("GET", OIDC_URL, json=document("https://evil.example"))
    adapter.register_uri("GET", OAUTH_URL, json=document())
    with pytest.raises(ConfigurationError) as info:
        fetch_metadata(ISSUER, session)
    message = str(info.value)
    assert "https://evil.example" in message and repr(ISSUER) in message and OIDC_URL in message
    assert not isinstance(info.value, MetadataError)
    # The mix-up defence stops here: the other well-known URL is not tried.
    assert [r.url for r in adapter.request_history] == [OIDC_URL]


@pytest.mark.parametrize(
    ("found", "shown"),
    [("https://as.example/", "'https://as.example/'"), (None, "no issuer"), (7, "a int as issuer")],
)
def test_issuer_must_match_exactly(found: Any, shown: str) -> None:
    doc = document()
    doc["issuer"] = found
    with pytest.raises(ConfigurationError, match="configured issuer") as info:
        parse_metadata(doc, ISSUER, OIDC_URL)
    assert shown in str(info.value)


def test_missing_token_endpoint(http: tuple[requests.Session, requests_mock.Adapter]) -> None:
    session, adapter = http
    adapter.register_uri("GET", OIDC_URL, json={"issuer": ISSUER})
    with pytest.raises(MetadataError, match="no token_endpoint") as info:
        fetch_metadata(ISSUER, session)
    assert OIDC_URL in str(info.value)
    assert info.value.url == OIDC_URL
    assert not is_transient(info.value)


@pytest.mark.parametrize(
    ("token_endpoint", "error"),
    [
        ("http://as.example/token", InsecureTransportError),
        ("/token", MetadataError),
        (42, MetadataError),
        ("", MetadataError),
    ],
)
def test_token_endpoint_must_be_a_secure_absolute_url(token_endpoint: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="token_endpoint") as info:
        parse_metadata(document(token_endpoint=token_endpoint), ISSUER, OIDC_URL)
    assert OIDC_URL in str(info.value)


@pytest.mark.parametrize("body", ["<html>login</html>", "", '["issuer"]', '"text"'])
def test_a_body_that_is_not_a_json_object(
    http: tuple[requests.Session, requests_mock.Adapter], body: str
) -> None:
    session, adapter = http
    adapter.register_uri("GET", OIDC_URL, text=body)
    with pytest.raises(MetadataError) as info:
        fetch_metadata(ISSUER, session)
    assert OIDC_URL in str(info.value)
    assert "JSON" in str(info.value)
    assert not is_transient(info.value)


class _EndlessBody(io.RawIOBase):
    """A body larger than the cap, but bounded, so that a broken reader cannot eat the memory.

    Served buffered (``io.BufferedReader``), as a socket's body is: the capped reader reads
    with ``read1``.
    """

    def __init__(self, total: int) -> None:
        self.left = total
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = b" " * n
        self.left -= n
        self.served += n
        return n


def test_an_oversized_body_is_refused_without_reading_it_all(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    session, adapter = http
    body = _EndlessBody(4 * MAX_METADATA_BYTES)
    adapter.register_uri("GET", OIDC_URL, body=io.BufferedReader(body))
    with pytest.raises(MetadataError, match="too large") as info:
        fetch_metadata(ISSUER, session)
    assert OIDC_URL in str(info.value)
    assert body.served <= MAX_METADATA_BYTES + 2 * 65536


def test_a_declared_oversized_body_is_refused_unread(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    session, adapter = http
    body = _EndlessBody(4 * MAX_METADATA_BYTES)
    adapter.register_uri(
        "GET", OIDC_URL, body=io.BufferedReader(body), headers={"Content-Length": str(4 * MAX_METADATA_BYTES)}
    )
    with pytest.raises(MetadataError, match="too large"):
        fetch_metadata(ISSUER, session)
    assert body.served == 0


def test_a_body_just_under_the_cap_is_read(http: tuple[requests.Session, requests_mock.Adapter]) -> None:
    session, adapter = http
    doc = json.dumps(document(padding="x")).encode()
    padded = doc[:-1] + b" " * (MAX_METADATA_BYTES - len(doc)) + b"}"
    assert len(padded) == MAX_METADATA_BYTES
    adapter.register_uri("GET", OIDC_URL, content=padded)
    assert fetch_metadata(ISSUER, session).token_endpoint == "https://as.example/token"


def test_a_server_error_is_transient_and_keeps_retry_after(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    session, adapter = http
    adapter.register_uri("GET", OIDC_URL, status_code=503, text="busy", headers={"Retry-After": "7"})
    with pytest.raises(MetadataError, match="HTTP 503") as info:
        fetch_metadata(ISSUER, session)
    assert OIDC_URL in str(info.value)
    assert info.value.status_code == 503
    assert info.value.retry_after == 7.0
    assert info.value.response is not None and info.value.response.text == "busy"
    assert is_transient(info.value)
    assert adapter.call_count == 1  # a failing server is not a missing document


def test_a_network_failure_propagates_as_requests_raised_it(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    session, adapter = http
    adapter.register_uri("GET", OIDC_URL, exc=requests.ConnectTimeout)
    with pytest.raises(requests.ConnectTimeout) as info:
        fetch_metadata(ISSUER, session)
    assert is_transient(info.value)


def test_with_a_retry_policy_each_metadata_request_is_retried_and_a_404_is_not(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    session, adapter = http
    adapter.register_uri("GET", OIDC_URL, status_code=404)
    adapter.register_uri(
        "GET", OAUTH_URL, [{"exc": requests.ConnectionError}, {"status_code": 502}, {"json": document()}]
    )
    slept: list[float] = []
    metadata = fetch_metadata(ISSUER, session, retries=RetryPolicy(max_retries=2, sleep=slept.append))
    assert metadata.source_url == OAUTH_URL
    assert [r.url for r in adapter.request_history] == [OIDC_URL, OAUTH_URL, OAUTH_URL, OAUTH_URL]
    assert len(slept) == 2


def test_same_origin_redirect_is_followed(http: tuple[requests.Session, requests_mock.Adapter]) -> None:
    session, adapter = http
    moved = "https://as.example/v2/openid-configuration"
    adapter.register_uri("GET", OIDC_URL, status_code=301, headers={"Location": "/v2/openid-configuration"})
    adapter.register_uri("GET", moved, json=document())
    metadata = fetch_metadata(ISSUER, session)
    assert metadata.source_url == moved


@pytest.mark.parametrize(
    "location",
    ["https://elsewhere.example/.well-known/openid-configuration", "http://as.example/x", "https://as.example:444/x"],
)
def test_redirect_to_another_origin_is_refused(
    http: tuple[requests.Session, requests_mock.Adapter], location: str
) -> None:
    session, adapter = http
    adapter.register_uri("GET", OIDC_URL, status_code=302, headers={"Location": location})
    adapter.register_uri("GET", location, json=document())
    with pytest.raises(MetadataError, match="another origin") as info:
        fetch_metadata(ISSUER, session)
    assert OIDC_URL in str(info.value)
    assert adapter.call_count == 1


def test_redirect_loop_ends(http: tuple[requests.Session, requests_mock.Adapter]) -> None:
    session, adapter = http
    adapter.register_uri("GET", OIDC_URL, status_code=302, headers={"Location": OIDC_URL})
    with pytest.raises(MetadataError, match="too many redirects"):
        fetch_metadata(ISSUER, session)
    assert adapter.call_count <= 6


# -- item 33: more places to look, metadata_url=, bounded JSON, no cleartext downgrade ---------


def test_a_path_issuer_finds_the_document_appended_to_it_after_two_404s(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    # django-oauth-toolkit's layout: {issuer}/.well-known/oauth-authorization-server.
    session, adapter = http
    issuer = "https://as.example/o"
    oidc, oauth, appended = well_known_urls(issuer)
    assert appended == "https://as.example/o/.well-known/oauth-authorization-server"
    adapter.register_uri("GET", oidc, status_code=404)
    adapter.register_uri("GET", oauth, status_code=404)
    adapter.register_uri("GET", appended, json=document(issuer))
    metadata = fetch_metadata(issuer, session)
    assert metadata.token_endpoint == "https://as.example/o/token" and metadata.source_url == appended
    assert [r.url for r in adapter.request_history] == [oidc, oauth, appended]


@pytest.mark.parametrize("status", [400, 401, 403, 405, 406])
def test_any_4xx_but_429_moves_on_to_the_next_url(
    http: tuple[requests.Session, requests_mock.Adapter], status: int
) -> None:
    # A gateway that answers 401 where nothing is published does not end discovery.
    session, adapter = http
    adapter.register_uri("GET", OIDC_URL, status_code=status, text="nope")
    adapter.register_uri("GET", OAUTH_URL, json=document())
    assert fetch_metadata(ISSUER, session).source_url == OAUTH_URL
    assert [r.url for r in adapter.request_history] == [OIDC_URL, OAUTH_URL]


def test_a_429_is_not_taken_for_not_here(http: tuple[requests.Session, requests_mock.Adapter]) -> None:
    session, adapter = http
    adapter.register_uri("GET", OIDC_URL, status_code=429, headers={"Retry-After": "3"})
    adapter.register_uri("GET", OAUTH_URL, json=document())
    with pytest.raises(MetadataError, match="HTTP 429") as info:
        fetch_metadata(ISSUER, session)
    assert is_transient(info.value) and info.value.retry_after == 3.0
    assert adapter.call_count == 1


def test_metadata_url_is_read_instead_of_the_well_known_urls(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    session, adapter = http
    url = "https://config.as.example/tenants/a/metadata.json?policy=b2c"
    adapter.register_uri("GET", url, json=document())
    metadata = fetch_metadata(ISSUER, session, metadata_url=url)
    assert metadata.issuer == ISSUER and metadata.source_url == url
    assert [r.url for r in adapter.request_history] == [url]


def test_metadata_url_with_issuer_still_checks_the_issuer(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    session, adapter = http
    url = "https://as.example/meta"
    adapter.register_uri("GET", url, json=document("https://evil.example"))
    with pytest.raises(ConfigurationError, match=r"evil\.example"):
        fetch_metadata(ISSUER, session, metadata_url=url)


def test_metadata_url_alone_takes_the_documents_issuer(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    session, adapter = http
    url = "https://as.example/meta"
    adapter.register_uri("GET", url, json=document("https://as.example/realm"))
    metadata = fetch_metadata(None, session, metadata_url=url)
    assert metadata.issuer == "https://as.example/realm"
    assert metadata.token_endpoint == "https://as.example/realm/token"


@pytest.mark.parametrize(
    ("issuer", "error", "match"),
    [
        ("http://as.example", InsecureTransportError, "https"),  # no plain http to a remote host
        ("https://as.example/?x=1", MetadataError, "query"),
        (None, MetadataError, "names no issuer"),
        (42, MetadataError, "names no issuer"),
    ],
)
def test_metadata_url_alone_checks_the_documents_issuer_like_a_configured_one(
    http: tuple[requests.Session, requests_mock.Adapter], issuer: Any, error: type[Exception], match: str
) -> None:
    session, adapter = http
    url = "https://as.example/meta"
    adapter.register_uri("GET", url, json={"issuer": issuer, "token_endpoint": "https://as.example/t"})
    with pytest.raises(error, match=match) as info:
        fetch_metadata(None, session, metadata_url=url)
    assert url in str(info.value)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://as.example/meta", InsecureTransportError),
        ("https://as.example/meta#x", ConfigurationError),
        ("https://u:p@as.example/meta", ConfigurationError),
        ("/meta", ConfigurationError),
        ("", ConfigurationError),
        (5, ConfigurationError),
    ],
)
def test_a_bad_metadata_url_is_refused_before_any_request(
    http: tuple[requests.Session, requests_mock.Adapter], url: Any, error: type[Exception]
) -> None:
    session, adapter = http
    with pytest.raises(error, match="metadata_url"):
        fetch_metadata(ISSUER, session, metadata_url=url)
    assert adapter.call_count == 0


def test_neither_issuer_nor_metadata_url_is_refused(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    with pytest.raises(ConfigurationError, match="metadata_url"):
        fetch_metadata(None, http[0])


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000,                                                   # RecursionError on 0.2
        json.dumps({**document(), "x": json.loads("[" * 700 + "]" * 700)}).encode(),  # 1.5 kB, valid
    ],
    ids=["200000-brackets", "valid-700-deep"],
)
def test_deep_json_is_a_metadata_error(
    http: tuple[requests.Session, requests_mock.Adapter], body: bytes
) -> None:
    session, adapter = http
    adapter.register_uri("GET", OIDC_URL, content=body)
    with pytest.raises(MetadataError, match=r"not JSON \(JSON nested") as info:
        fetch_metadata(ISSUER, session)
    assert info.value.url == OIDC_URL


def test_a_document_nested_within_the_bound_is_read(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    session, adapter = http
    adapter.register_uri("GET", OIDC_URL, json=document(x=json.loads("[" * 60 + "]" * 60)))
    assert fetch_metadata(ISSUER, session).token_endpoint == "https://as.example/token"


@pytest.mark.parametrize(
    ("issuer", "url", "accepted"),
    [
        ("https://as.example", OIDC_URL, False),        # a remote issuer: the observed attack
        ("https://localhost:8443", "https://localhost:8443/.well-known/openid-configuration", False),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000/.well-known/openid-configuration", True),
    ],
    ids=["remote-https", "loopback-https", "loopback-http"],
)
@pytest.mark.parametrize("field", ["token_endpoint", "mtls_endpoint_aliases"])
def test_a_plain_http_loopback_token_endpoint_only_from_a_plain_http_loopback_issuer(
    issuer: str, url: str, accepted: bool, field: str
) -> None:
    local = "http://127.0.0.1:8081/token"
    fields: dict[str, Any] = (
        {"token_endpoint": local} if field == "token_endpoint" else {field: {"token_endpoint": local}}
    )
    doc = {**document(issuer), **fields}
    if accepted:
        assert parse_metadata(doc, issuer, url).token_endpoint_for("tls_client_auth") == local
        return
    with pytest.raises(InsecureTransportError, match="plain-http loopback issuer"):
        parse_metadata(doc, issuer, url)


def test_the_token_sessions_own_authorization_header_never_reaches_the_metadata_url(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    session, adapter = http
    session.headers["Authorization"] = "Bearer session-wide-token"
    adapter.register_uri("GET", OIDC_URL, json=document())
    fetch_metadata(ISSUER, session)
    assert "Authorization" not in adapter.last_request.headers


def test_the_metadata_request_verifies_with_the_sessions_ca_bundle_not_the_environments(
    http: tuple[requests.Session, requests_mock.Adapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests lets REQUESTS_CA_BUNDLE override a session's verify unless verify is passed.
    session, adapter = http
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/from/the/environment.pem")
    session.verify = "/the/token/sessions/ca.pem"
    adapter.register_uri("GET", OIDC_URL, json=document())
    fetch_metadata(ISSUER, session)
    assert adapter.last_request.verify == "/the/token/sessions/ca.pem"


def test_no_metadata_request_starts_after_the_deadline(
    http: tuple[requests.Session, requests_mock.Adapter],
) -> None:
    session, adapter = http
    now = [100.0]

    def not_here(request: Any, context: Any) -> str:
        now[0] += 5.0  # the 404 takes the whole deadline
        context.status_code = 404
        return ""

    adapter.register_uri("GET", OIDC_URL, text=not_here)
    adapter.register_uri("GET", OAUTH_URL, json=document())
    with pytest.raises(TokenDeadlineError, match="no token request was sent"):
        fetch_metadata(ISSUER, session, deadline=105.0, monotonic=lambda: now[0])
    assert [r.url for r in adapter.request_history] == [OIDC_URL]


# -- the parsed metadata ----------------------------------------------------------------------


def test_fields_kept_and_raw_is_a_copy() -> None:
    doc = document(
        token_endpoint_auth_methods_supported=["private_key_jwt", "client_secret_post"],
        mtls_endpoint_aliases={"token_endpoint": "https://mtls.as.example/token", "odd": 3},
        scopes_supported=["a"],
    )
    metadata = parse_metadata(doc, ISSUER, OIDC_URL)
    doc["scopes_supported"].append("b")
    doc["issuer"] = "changed"
    assert metadata.token_endpoint_auth_methods_supported == ("private_key_jwt", "client_secret_post")
    assert metadata.auth_methods == ("private_key_jwt", "client_secret_post")
    assert dict(metadata.mtls_endpoint_aliases) == {"token_endpoint": "https://mtls.as.example/token"}
    assert metadata.raw["scopes_supported"] == ["a"]
    assert metadata.raw["issuer"] == ISSUER
    with pytest.raises(TypeError):
        metadata.raw["issuer"] = "x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        metadata.token_endpoint = "https://other"  # type: ignore[misc]


def test_mtls_alias_is_used_for_the_tls_methods_only() -> None:
    doc = document(mtls_endpoint_aliases={"token_endpoint": "https://mtls.as.example/token"})
    metadata = parse_metadata(doc, ISSUER, OIDC_URL)
    assert metadata.token_endpoint_for("tls_client_auth") == "https://mtls.as.example/token"
    assert metadata.token_endpoint_for("self_signed_tls_client_auth") == "https://mtls.as.example/token"
    assert metadata.token_endpoint_for("client_secret_basic") == "https://as.example/token"
    plain = parse_metadata(document(), ISSUER, OIDC_URL)
    assert plain.token_endpoint_for("tls_client_auth") == "https://as.example/token"


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("mtls_endpoint_aliases", {"token_endpoint": "http://mtls.as.example/token"}, InsecureTransportError),
        ("mtls_endpoint_aliases", ["https://x"], MetadataError),
        ("mtls_endpoint_aliases", {"token_endpoint": 5}, MetadataError),
        ("token_endpoint_auth_methods_supported", "client_secret_basic", MetadataError),
        ("token_endpoint_auth_methods_supported", ["client_secret_basic", 1], MetadataError),
    ],
)
def test_malformed_optional_fields(field: str, value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=field) as info:
        parse_metadata(document(**{field: value}), ISSUER, OIDC_URL)
    assert OIDC_URL in str(info.value)


FIELDS = ["issuer", "token_endpoint", "token_endpoint_auth_methods_supported", "mtls_endpoint_aliases", "x"]


@settings(max_examples=150, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(FIELDS),
            inner,
            max_size=5,
        ),
        max_leaves=12,
    ),
    st.booleans(),
)
def test_any_json_document_parses_or_raises_a_reqcc_error(doc: Any, seed: bool) -> None:
    if seed and isinstance(doc, dict):
        doc.setdefault("issuer", ISSUER)
        doc.setdefault("token_endpoint", "https://as.example/t")
    try:
        metadata = parse_metadata(doc, ISSUER, OIDC_URL)
    except ReqccError as exc:
        assert OIDC_URL in str(exc) or "issuer" in str(exc)
        return
    assert isinstance(metadata, AuthorizationServerMetadata)
    assert metadata.issuer == ISSUER


# -- choosing an auth method --------------------------------------------------------------------


def metadata_listing(methods: list[str] | None) -> AuthorizationServerMetadata:
    return parse_metadata(document(token_endpoint_auth_methods_supported=methods), ISSUER, OIDC_URL)


@pytest.mark.parametrize(
    ("listed", "secret", "key", "chosen"),
    [
        (None, True, False, "client_secret_basic"),  # RFC 8414 §2 default
        (["client_secret_post", "client_secret_basic"], True, False, "client_secret_basic"),
        (["private_key_jwt", "client_secret_post"], True, False, "client_secret_post"),
        (["client_secret_jwt", "tls_client_auth"], True, False, "client_secret_jwt"),
        (["client_secret_basic", "private_key_jwt"], False, True, "private_key_jwt"),
        (["client_secret_basic", "private_key_jwt"], True, True, "private_key_jwt"),
    ],
)
def test_choose_auth_method(listed: list[str] | None, secret: bool, key: bool, chosen: str) -> None:
    metadata = metadata_listing(listed)
    assert choose_auth_method(metadata, has_client_secret=secret, has_private_key=key) == chosen


@pytest.mark.parametrize(
    ("listed", "secret", "key", "chosen"),
    [
        (["none"], True, False, "client_secret_basic"),  # oauth2-mock-server's list
        (["private_key_jwt"], True, False, "client_secret_basic"),
        ([], True, False, "client_secret_basic"),
        (["client_secret_basic"], False, True, "private_key_jwt"),
        (None, False, True, "private_key_jwt"),
    ],
)
def test_without_a_fit_the_default_method_is_used_with_one_warning(
    listed: list[str] | None, secret: bool, key: bool, chosen: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="reqcc")
    metadata = metadata_listing(listed)
    assert choose_auth_method(metadata, has_client_secret=secret, has_private_key=key) == chosen
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert chosen in message and "auth_method=" in message
    for method in listed or []:
        assert method in message


def test_without_a_credential_the_method_must_be_given() -> None:
    with pytest.raises(ConfigurationError, match="auth_method"):
        choose_auth_method(
            metadata_listing(["client_secret_basic"]), has_client_secret=False, has_private_key=False
        )


# -- over real HTTP on loopback ---------------------------------------------------------------


class MetadataServer:
    """Publishes metadata on 127.0.0.1 at the paths given; ``statuses`` answer other paths; else a 404."""

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}
        self.statuses: dict[str, int] = {}
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.paths.append(self.path)
                body = outer.documents.get(self.path)
                if body is None:
                    self.send_response(outer.statuses.get(self.path, 404))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if body == b"chunked-forever":  # chunked, no Content-Length, larger than the cap
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    chunk = b" " * 65536
                    try:
                        for _ in range(4 * MAX_METADATA_BYTES // len(chunk)):
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.write(b"0\r\n\r\n")
                    except OSError:
                        pass
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.issuer = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval: shutdown() waits up to one interval (0.5 s by default).
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> MetadataServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


@pytest.fixture
def server() -> Iterator[MetadataServer]:
    with MetadataServer() as s:
        yield s


def test_over_http_both_well_known_paths(server: MetadataServer) -> None:
    issuer = server.issuer + "/tenant"
    server.documents["/.well-known/oauth-authorization-server/tenant"] = json.dumps(document(issuer)).encode()
    with requests.Session() as session:
        metadata = fetch_metadata(issuer, session, timeout=5)
        assert metadata.token_endpoint == issuer + "/token"
        assert server.paths == ["/tenant/.well-known/openid-configuration",
                                "/.well-known/oauth-authorization-server/tenant"]
        server.documents["/tenant/.well-known/openid-configuration"] = json.dumps(
            document(issuer, token_endpoint=server.issuer + "/oidc/token")
        ).encode()
        assert fetch_metadata(issuer, session, timeout=5).token_endpoint == server.issuer + "/oidc/token"


def test_over_http_a_streamed_oversized_body_is_refused(server: MetadataServer) -> None:
    server.documents["/.well-known/openid-configuration"] = b"chunked-forever"
    with requests.Session() as session, pytest.raises(MetadataError, match="too large"):
        fetch_metadata(server.issuer, session, timeout=5)


def test_over_http_the_django_oauth_toolkit_layout_is_found(server: MetadataServer) -> None:
    # issuer .../o, document at {issuer}/.well-known/oauth-authorization-server: 0.2 gave up.
    issuer = server.issuer + "/o"
    server.documents["/o/.well-known/oauth-authorization-server"] = json.dumps(document(issuer)).encode()
    with requests.Session() as session:
        metadata = fetch_metadata(issuer, session, timeout=5)
    assert metadata.token_endpoint == issuer + "/token"
    assert server.paths == [
        "/o/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/o",
        "/o/.well-known/oauth-authorization-server",
    ]


def test_over_http_a_gateways_401_leads_on_to_the_next_url(server: MetadataServer) -> None:
    server.statuses["/.well-known/openid-configuration"] = 401
    server.documents["/.well-known/oauth-authorization-server"] = json.dumps(document(server.issuer)).encode()
    with requests.Session() as session:
        assert fetch_metadata(server.issuer, session, timeout=5).token_endpoint == server.issuer + "/token"
    assert server.paths == ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]

