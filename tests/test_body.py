"""reqcc._body: the one bounded JSON reader of what servers send (token answers, metadata)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from reqcc import TokenResponseError
from reqcc._body import MAX_JSON_DEPTH, load_json
from reqcc.client_auth import ClientSecretBasic
from reqcc.token_endpoint import TokenEndpoint

from .hostile_server import HostileServer, Reply


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_a_document_at_the_bound_is_read_and_one_level_deeper_is_not() -> None:
    assert load_json(nested(MAX_JSON_DEPTH)) == json.loads(nested(MAX_JSON_DEPTH))
    assert load_json(b'{"a": {"b": [1, {"c": null}]}}') == {"a": {"b": [1, {"c": None}]}}
    with pytest.raises(ValueError, match=f"nested more than {MAX_JSON_DEPTH} deep"):
        load_json(nested(MAX_JSON_DEPTH + 1))
    with pytest.raises(ValueError, match="nested more than"):
        load_json(json.dumps({"issuer": "x", "deep": {"a": json.loads(nested(MAX_JSON_DEPTH))}}))


@pytest.mark.parametrize("body", [b"[" * 200_000, nested(200_000).encode()], ids=["unclosed", "closed"])
def test_a_body_that_would_overflow_the_stack_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError, match=r"too deep|nested more than"):
        load_json(body)


def test_not_json_stays_a_value_error() -> None:
    with pytest.raises(ValueError):
        load_json(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError):
        load_json(b"<html>502</html>")


def test_a_token_answer_nested_700_deep_is_a_token_response_error(
    serve: Callable[..., HostileServer],
) -> None:
    # Valid JSON of 1.5 kB: json.loads reads it, then whatever walks it may overflow the stack.
    body = json.dumps({"access_token": "t", "token_type": "Bearer", "x": json.loads(nested(700))})
    server = serve(Reply(body=body.encode(), headers={"Content-Type": "application/json"}))
    endpoint = TokenEndpoint(server.url + "/token", ClientSecretBasic("c", "s"), max_retries=0, timeout=2.0)
    with pytest.raises(TokenResponseError, match="not JSON"):
        endpoint.request_token()
    assert server.token_requests == 1
