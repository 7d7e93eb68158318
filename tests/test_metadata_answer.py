"""The metadata answer checked without I/O: its status, then its body (issue 20).

``reqcc.discovery.metadata_answer_status`` and ``parse_metadata_body`` are the pure halves
of a metadata read (sending is ``reqcc.to_server.send``); they are called here with data.
"""

from __future__ import annotations

import json

import pytest

from reqcc.discovery import MetadataError, metadata_answer_status, parse_metadata_body
from reqcc.errors import ConfigurationError
from reqcc.token_endpoint import is_transient
from reqcc.token_messages import answer_response

ISSUER = "https://as.example"
URL = "https://as.example/.well-known/openid-configuration"
NOW = 1_700_000_000.0


def status(code: int, headers: dict[str, str] | None = None, body: bytes = b"") -> bool:
    return metadata_answer_status(code, headers or {}, body, url=URL, now=lambda: NOW)


@pytest.mark.parametrize("code", [200, 203])
def test_a_success_is_a_document(code: int) -> None:
    assert status(code) is True


@pytest.mark.parametrize("code", [400, 401, 403, 404, 410, 499])
def test_a_4xx_other_than_429_is_no_document_here(code: int) -> None:
    assert status(code) is False


@pytest.mark.parametrize("code", [429, 500, 503])
def test_a_429_or_5xx_is_a_transient_metadata_error_with_its_retry_after(code: int) -> None:
    with pytest.raises(MetadataError) as caught:
        status(code, {"retry-after": "Tue, 14 Nov 2023 22:13:25 GMT"}, b"busy s")
    error = caught.value
    assert (error.status_code, error.retry_after, error.url) == (code, 5.0, URL)
    assert f"{URL} answered HTTP {code}; body: busy s" in str(error)
    assert is_transient(error)


def test_another_status_is_a_metadata_error_that_is_not_retried() -> None:
    with pytest.raises(MetadataError, match="answered HTTP 304; body: <empty>") as caught:
        status(304)
    assert not is_transient(caught.value)
    given = answer_response(500, {}, b"")
    with pytest.raises(MetadataError) as passed:
        metadata_answer_status(500, {}, b"", url=URL, now=lambda: NOW, response=given)
    assert passed.value.response is given


def test_a_body_is_parsed_into_the_metadata() -> None:
    body = json.dumps({"issuer": ISSUER, "token_endpoint": "https://as.example/token"}).encode()
    metadata = parse_metadata_body(body, ISSUER, URL)
    assert (metadata.issuer, metadata.token_endpoint, metadata.source_url) == (
        ISSUER, "https://as.example/token", URL,
    )


@pytest.mark.parametrize("body", [b"<html>", b"", b"[" * 100 + b"]" * 100, b"\xff\xfe\xfd"])
def test_a_body_that_is_not_json_is_a_metadata_error(body: bytes) -> None:
    response = answer_response(200, {}, body)
    with pytest.raises(MetadataError, match=f"metadata at {URL} is not JSON") as caught:
        parse_metadata_body(body, ISSUER, URL, response=response)
    assert caught.value.response is response and caught.value.url == URL


def test_the_document_is_checked_after_decoding() -> None:
    body = json.dumps({"issuer": "https://evil.example", "token_endpoint": "https://evil.example/t"})
    with pytest.raises(ConfigurationError, match="not the configured issuer"):
        parse_metadata_body(body.encode(), ISSUER, URL)
