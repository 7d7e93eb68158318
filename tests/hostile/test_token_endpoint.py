"""A raw-socket hostile token endpoint (contract items 14-16, 20) and the messages that point at the fix.

Every case counts what the server managed to send and how many token requests it got,
and keeps the test small in memory: bodies are bounded (a few tens of MiB at most, most
of it never sent once the cap works), and the peak of Python allocations is measured.
"""

from __future__ import annotations

import gzip
import time
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import requests

from reqcc.client_auth import ClientSecretBasic
from reqcc.errors import (
    InvalidClient,
    NotATokenEndpoint,
    OAuthProviderError,
    ReqccError,
    TokenDeadlineError,
    TokenResponseError,
)
from reqcc.token_endpoint import MAX_RESPONSE_BYTES, TokenEndpoint

from ..hostile_server import HostileServer, Reply

MiB = 1 << 20
SECRET = "hostile-s3cret/+ &\"<é"
CLIENT = "books-client"
#: A generous bound for "returned promptly" (the slow cases wait seconds, or forever, on 0.1).
PROMPT = 5.0

T = TypeVar("T")


def endpoint(server: HostileServer, **kwargs: Any) -> TokenEndpoint:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", (2.0, 2.0))
    return TokenEndpoint(server.url + "/oauth/token?tenant=t1", ClientSecretBasic(CLIENT, SECRET), **kwargs)


def measured(call: Callable[[], T]) -> tuple[BaseException | T, float, int]:
    """Run ``call``; return its result or exception, the seconds it took, its peak allocation."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        outcome: BaseException | T = call()
    except BaseException as exc:
        outcome = exc
    elapsed = time.monotonic() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return outcome, elapsed, peak


# -- item 15: bodies capped at 1 MiB after decoding ---------------------------------------

BIG = 8 * MiB  # what a broken reader would take in whole: a few tens of MiB with its copies


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(gzip_inflated=BIG, prefix=b'{"access_token":"'), id="gzip-bomb"),
        pytest.param(Reply(body=b"a" * 4096, repeat=BIG // 4096, framing="close"), id="endless"),
        pytest.param(Reply(body=b"a" * 4096, repeat=BIG // 4096, framing="chunked"), id="chunked"),
        pytest.param(Reply(body=b"a" * 4096, repeat=BIG // 4096), id="oversized-with-length"),
    ],
)
def test_a_large_body_is_abandoned_at_1_MiB_after_decoding(
    serve: Callable[..., HostileServer], reply: Reply
) -> None:
    server = serve(reply)
    outcome, elapsed, peak = measured(endpoint(server).request_token)

    assert isinstance(outcome, TokenResponseError), outcome
    assert f"larger than {MAX_RESPONSE_BYTES} bytes (after decoding)" in str(outcome)
    assert server.token_requests == 1
    # 0.1 read every byte (a 24 MiB bomb peaked at 4 GiB of Python allocations, mostly the
    # redaction regex's stack; a 100 MiB bomb grew the process by ~15 GiB).
    # Now the client stops at 1 MiB; what the server got rid of is at most that plus what
    # the kernel's socket buffers hold.
    print(f"\n[observed] {reply.framing}/{'gzip' if reply.gzip_inflated else 'plain'}: server sent "
          f"{server.bytes_sent} of {reply.length()} bytes; peak {peak / MiB:.1f} MiB; {elapsed:.2f}s")
    if reply.gzip_inflated is None:  # a bomb is a few KiB on the wire: its cost is memory
        assert server.bytes_sent < reply.length()
    assert peak < 6 * MiB  # a reader without the cap holds the 8 MiB body at least twice
    assert elapsed < PROMPT


def test_a_declared_length_over_the_cap_is_refused_before_reading(
    serve: Callable[..., HostileServer],
) -> None:
    server = serve(Reply(body=b"a" * 4096, repeat=1024, framing="declared", declared_length=400 * MiB))
    outcome, _, peak = measured(endpoint(server).request_token)

    assert isinstance(outcome, TokenResponseError)
    assert "larger than" in str(outcome)
    assert peak < MiB  # not a byte of the body was read into memory


def test_a_body_just_under_the_cap_is_read(serve: Callable[..., HostileServer]) -> None:
    padding = b" " * (MAX_RESPONSE_BYTES - 64)
    server = serve(Reply(body=b'{"access_token":"ok-token","token_type":"Bearer"}' + padding))
    token = endpoint(server).request_token()
    assert token.access_token == "ok-token"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw"])
def test_a_small_compressed_answer_is_decoded(serve: Callable[..., HostileServer], encoding: str) -> None:
    data = b'{"access_token":"gz-token","expires_in":60}'
    if encoding == "gzip":
        body = gzip.compress(data) + gzip.compress(b"")  # two members, as urllib3 accepts
    else:
        wbits = zlib.MAX_WBITS if encoding == "deflate" else -zlib.MAX_WBITS
        packer = zlib.compressobj(wbits=wbits)
        body = packer.compress(data) + packer.flush()
    server = serve(Reply(body=body, headers={"Content-Encoding": encoding.split("-")[0]}))
    token = endpoint(server).request_token()
    assert token.access_token == "gz-token" and token.expires_in == 60


# -- item 14 (the endpoint's part): a deadline over the whole fetch ----------------------


def test_a_dripping_body_is_abandoned_at_the_deadline(serve: Callable[..., HostileServer]) -> None:
    body = b'{"access_token":"drip-token","token_type":"Bearer"}'
    server = serve(Reply(body=body, drip=0.05))
    ep = endpoint(server)
    outcome, elapsed, _ = measured(lambda: ep.request_token(deadline=time.monotonic() + 0.5))

    # 0.1: one byte a second held the callers for 150 s (every read succeeds, so the
    # per-read timeout never fires). Now the body read stops at the deadline.
    assert isinstance(outcome, TokenDeadlineError), outcome
    assert "still sending its answer" in str(outcome)
    print(f"\n[observed] drip: {server.bytes_sent} of {len(body)} bytes sent, {elapsed:.2f}s")
    assert server.bytes_sent < len(body)
    assert 0.4 <= elapsed < PROMPT
    assert server.token_requests == 1


def test_a_stalled_endpoint_is_abandoned_at_the_deadline(serve: Callable[..., HostileServer]) -> None:
    server = serve(Reply(stall=True))
    ep = endpoint(server, timeout=(10.0, 10.0), max_retries=3)
    outcome, elapsed, _ = measured(lambda: ep.request_token(deadline=time.monotonic() + 0.5))

    assert isinstance(outcome, TokenDeadlineError), outcome
    assert isinstance(outcome.__cause__, requests.Timeout)
    assert elapsed < PROMPT  # the 10 s read timeout was cut to what was left of the deadline
    assert server.token_requests == 1


def test_retry_waits_never_outlast_the_deadline(serve: Callable[..., HostileServer]) -> None:
    server = serve(Reply(status=503, body=b"busy", headers={"Content-Type": "text/plain"}))
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    ep = endpoint(server, max_retries=10, retry_backoff=1.0, max_retry_wait=100.0,
                  sleep=sleep, monotonic=lambda: now[0])
    # No jitter (the top of its 50-100 % range): waits of 1, 2, 4, ... s. Jitter would let the
    # fake clock end a hair before the deadline, and the last attempt's real socket read
    # would then get the few milliseconds left as its timeout (a flaky ReadTimeout under load).
    ep._random = type("NoJitter", (), {"random": lambda self: 1.0})()
    with pytest.raises(TokenResponseError) as caught:
        ep.request_token(deadline=5.0)
    # 1 + 2 s waited; the next wait (4 s) would end past the 5 s deadline, so none is taken.
    assert slept == [1.0, 2.0]
    assert server.token_requests == 3
    assert caught.value.status_code == 503


def test_no_deadline_keeps_the_old_behaviour(serve: Callable[..., HostileServer]) -> None:
    server = serve(Reply(body=b'{"access_token":"t"}'))
    assert endpoint(server).request_token(deadline=None).access_token == "t"


# -- item 16 over the wire: an injected header line never becomes a token ------------------


def test_a_token_with_crlf_is_refused_without_echoing_it(serve: Callable[..., HostileServer]) -> None:
    injected = "tok\\r\\nX-Injected: yes"
    server = serve(Reply(body=b'{"access_token":"' + injected.encode() + b'"}'))
    with pytest.raises(TokenResponseError) as caught:
        endpoint(server).request_token()
    message = str(caught.value)
    assert "CR/LF" in message and "cannot be sent in an HTTP header" in message
    assert "X-Injected" not in message and "tok\r" not in message and "tok\\r" not in message


# -- messages that point at the fix -------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "hint"),
    [
        (Reply(status=404, body=b"<html>Not Found</html>", headers={"Content-Type": "text/html"}),
         "check token_url"),
        (Reply(status=405, body=b'{"detail":"Method Not Allowed"}'), "check token_url"),
        (Reply(status=200, body=b"<!doctype html><title>Login</title>",
               headers={"Content-Type": "text/html"}), "check token_url"),
        (Reply(status=302, headers={"Location": "https://elsewhere.example/token"}),
         "(token requests do not follow redirects)"),
    ],
    ids=["404-html", "405-json", "200-html", "302"],
)
def test_a_wrong_token_url_says_check_token_url(
    serve: Callable[..., HostileServer], reply: Reply, hint: str
) -> None:
    server = serve(reply)
    with pytest.raises(NotATokenEndpoint) as caught:  # a TokenResponseError (item 35)
        endpoint(server).request_token()
    message = str(caught.value)
    assert hint in message and "does not look like a token endpoint: check token_url" in message
    assert f"127.0.0.1:{server.port}/oauth/token" in message
    assert "tenant" not in message  # no query: it may hold something private
    assert server.token_requests == 1  # a redirect is not followed


@pytest.mark.parametrize("status", [404, 405])
def test_a_wrong_token_url_with_a_json_error_says_check_token_url(
    serve: Callable[..., HostileServer], status: int
) -> None:
    # The local server (and many frameworks) answer a wrong path with a JSON "error" of their own:
    # one exception type for a wrong URL whatever the body (0.2: an OAuthProviderError).
    server = serve(Reply(status=status, body=b'{"error":"not_found"}'))
    with pytest.raises(NotATokenEndpoint) as caught:
        endpoint(server).request_token()
    assert not isinstance(caught.value, OAuthProviderError)
    assert caught.value.error == "not_found"
    assert "check token_url" in str(caught.value)
    assert f"127.0.0.1:{server.port}/oauth/token" in str(caught.value)


def test_an_oauth_error_on_400_gives_no_token_url_hint(serve: Callable[..., HostileServer]) -> None:
    server = serve(Reply(status=400, body=b'{"error":"invalid_scope"}'))
    with pytest.raises(OAuthProviderError) as caught:
        endpoint(server).request_token()
    assert "check token_url" not in str(caught.value)


def test_invalid_client_names_the_client_the_endpoint_and_the_auth_method(
    serve: Callable[..., HostileServer],
) -> None:
    server = serve(Reply(status=401, body=b'{"error":"invalid_client"}'))
    with pytest.raises(InvalidClient) as caught:
        endpoint(server).request_token()
    message = str(caught.value)
    assert f"127.0.0.1:{server.port}/oauth/token" in message
    assert "'books-client'" in message
    assert "client_secret_basic" in message
    assert caught.value.error == "invalid_client" and caught.value.status_code == 401


# -- item 20: the secret as servers echo it -----------------------------------------------


def _echoes(secret: str) -> dict[str, str]:
    import html
    import json
    from urllib.parse import quote, quote_plus

    return {
        "raw": secret,
        "json": json.dumps(secret)[1:-1],
        "json-ascii": json.dumps(secret, ensure_ascii=True)[1:-1],
        "html": html.escape(secret),
        "percent": quote(secret, safe=""),
        "form": quote_plus(secret),
    }


@pytest.mark.parametrize("form", [*_echoes(SECRET), "percent-lower"])
def test_an_echoed_secret_is_redacted_in_every_form(serve: Callable[..., HostileServer], form: str) -> None:
    import json

    echoed = _echoes(SECRET).get(form, "")
    if form == "percent-lower":  # hex digits lowered, the secret's own letters kept
        import re

        echoed = re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), _echoes(SECRET)["percent"])
    document = {
        "error": "invalid_client",
        "error_description": f"bad secret {echoed} for {CLIENT}",
        "error_uri": f"https://idp.example/help?secret={echoed}",
    }
    # The raw "json" form is the document's own encoding; the others ride inside a string.
    body = json.dumps(document).encode() if form != "json" else (
        b'{"error":"invalid_client","error_description":"bad secret ' + echoed.encode()
        + b'","error_uri":"https://idp.example/help?secret=' + echoed.encode() + b'"}'
    )
    server = serve(Reply(status=401, body=body))
    with pytest.raises(InvalidClient) as caught:
        endpoint(server).request_token()
    exc = caught.value
    for text in (str(exc), exc.description or "", exc.uri or "", repr(exc.args)):
        for variant in _echoes(SECRET).values():
            assert variant not in text, (form, text)
        assert "s3cret" not in text
    assert exc.uri is not None and exc.uri.startswith("https://idp.example/help")


def test_every_malformed_answer_is_a_reqcc_error(serve: Callable[..., HostileServer]) -> None:
    bodies = [
        b"[" * 100_000 + b"]" * 100_000,                               # RecursionError on 0.1
        b'{"access_token":"t","expires_in":' + b"9" * 400 + b"}",     # OverflowError on 0.1
        b'{"error":{"code":"x"}}',                                     # oauthlib's error on 0.1
        b'{"error":42,"access_token":"t"}',
        b'"just a string"',
        b'{"access_token":"t","token_type":"mac"}',
        b"\xff\xfe\x00garbage",
    ]
    server = serve(*(Reply(body=b) for b in bodies))
    ep = endpoint(server)
    for body in bodies:
        with pytest.raises(ReqccError) as caught:
            ep.request_token()
        assert isinstance(caught.value, TokenResponseError), (body[:40], caught.value)
    assert server.token_requests == len(bodies)
