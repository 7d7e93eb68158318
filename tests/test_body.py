"""reqcc._body: read_capped (the cap after decoding, every encoding path, read errors; issue 19),
and load_json, the one bounded JSON reader of what servers send (token answers, metadata).

Each test reads a real response from the raw-socket :class:`HostileServer` on 127.0.0.1
(``stream=True``, as reqcc reads), except where a body already read or a read error that
needs TLS is the point. Bodies stay a few MiB at most even when the cap is broken.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import random
import socket
import ssl
import sys
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import requests_mock
import urllib3
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

from reqcc import TokenResponseError
from reqcc._body import DEFAULT_BODY_LIMIT, MAX_JSON_DEPTH, BodyLimitError, load_json, read_capped
from reqcc.client_auth import ClientSecretBasic
from reqcc.token_endpoint import TokenEndpoint, is_transient

from .hostile_server import HostileServer, Reply

MiB = 1 << 20
#: A small cap for the boundary tests: one read of the socket holds the whole body.
LIMIT = 1000


def fetch(server: HostileServer, timeout: float = 5.0) -> requests.Response:
    """The server's answer with its body unread, as reqcc asks for it."""
    return requests.get(server.url + "/body", stream=True, timeout=timeout)


def incompressible(size: int) -> bytes:
    """``size`` bytes that gzip cannot shrink (a seeded generator: the same bytes every run)."""
    return random.Random(19).randbytes(size)


def deflate(data: bytes, wbits: int) -> bytes:
    packer = zlib.compressobj(wbits=wbits)
    return packer.compress(data) + packer.flush()


# -- the identity body: exactly the limit is accepted, one byte more is not ---------------


@pytest.mark.parametrize("framing", ["length", "close", "chunked"])
def test_an_identity_body_of_exactly_the_limit_is_read(
    serve: Callable[..., HostileServer], framing: str
) -> None:
    server = serve(Reply(body=b"x" * LIMIT, framing=framing))
    assert read_capped(fetch(server), LIMIT) == b"x" * LIMIT


@pytest.mark.parametrize("framing", ["length", "close", "chunked"])
def test_an_identity_body_one_byte_over_the_limit_is_refused(
    serve: Callable[..., HostileServer], framing: str
) -> None:
    # "length": refused from its Content-Length, before a byte is read; the others while reading.
    server = serve(Reply(body=b"x" * (LIMIT + 1), framing=framing))
    with pytest.raises(BodyLimitError) as caught:
        read_capped(fetch(server), LIMIT)
    assert caught.value.reason == "too large" and caught.value.limit == LIMIT
    assert caught.value.received == (0 if framing == "length" else LIMIT + 1)


def test_a_content_length_over_the_limit_is_refused_before_reading(
    serve: Callable[..., HostileServer],
) -> None:
    # The header alone decides: a server declaring LIMIT + 1 but sending less is not read.
    server = serve(Reply(body=b"x" * 10, framing="declared", declared_length=LIMIT + 1))
    with pytest.raises(BodyLimitError) as caught:
        read_capped(fetch(server), LIMIT)
    assert caught.value.received == 0


# -- gzip and deflate, inflated here with an output bound ---------------------------------


def test_a_large_gzip_body_of_low_ratio_is_refused_at_the_limit(serve: Callable[..., HostileServer]) -> None:
    # 3 MiB that gzip cannot shrink: each 16 KiB read inflates to about 16 KiB, far under the
    # whole limit. Only "what is left of the limit" per read stops it at DEFAULT_BODY_LIMIT.
    data = incompressible(3 * MiB)
    server = serve(Reply(body=gzip.compress(data, 1), headers={"Content-Encoding": "gzip"}))
    with pytest.raises(BodyLimitError) as caught:
        read_capped(fetch(server), DEFAULT_BODY_LIMIT)
    assert caught.value.reason == "too large"
    assert caught.value.received == DEFAULT_BODY_LIMIT + 1  # never a byte more than needed to know


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw"])
def test_a_compressed_body_of_exactly_the_limit_is_read_and_one_more_byte_is_not(
    serve: Callable[..., HostileServer], encoding: str
) -> None:
    def pack(data: bytes) -> bytes:
        if encoding == "gzip":
            return gzip.compress(data)
        return deflate(data, zlib.MAX_WBITS if encoding == "deflate" else -zlib.MAX_WBITS)

    header = {"Content-Encoding": encoding.split("-")[0]}
    exact = incompressible(LIMIT)
    server = serve(Reply(body=pack(exact), headers=header), Reply(body=pack(exact + b"!"), headers=header))
    assert read_capped(fetch(server), LIMIT) == exact
    with pytest.raises(BodyLimitError) as caught:
        read_capped(fetch(server), LIMIT)
    assert caught.value.received == LIMIT + 1


def test_raw_deflate_spanning_many_reads_is_inflated_whole(serve: Callable[..., HostileServer]) -> None:
    # "deflate" without its zlib header: the first read falls back to raw deflate, and every
    # later read (the body is 200 KiB on the wire, many 16 KiB reads) goes on with it.
    data = incompressible(200 * 1024)
    server = serve(Reply(body=deflate(data, -zlib.MAX_WBITS), headers={"Content-Encoding": "deflate"}))
    assert read_capped(fetch(server), MiB) == data


def test_multi_member_gzip_is_inflated_whole(serve: Callable[..., HostileServer]) -> None:
    members = [incompressible(40 * 1024), b'{"a": 1}', incompressible(30 * 1024)]
    body = b"".join(gzip.compress(m) for m in members)
    server = serve(Reply(body=body, headers={"Content-Encoding": "gzip"}))
    assert read_capped(fetch(server), MiB) == b"".join(members)


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        pytest.param("gzip", b"this is not gzip at all, just text", id="gzip-not-gzip"),
        pytest.param("gzip", gzip.compress(b"x" * 100)[:10] + b"\xff" * 20, id="gzip-corrupt-after-header"),
        # 0xff: no zlib header, and as raw deflate a block of the reserved type 3.
        pytest.param("deflate", b"\xff" * 32, id="deflate-neither-zlib-nor-raw"),
    ],
)
def test_a_corrupt_compressed_body_is_a_content_decoding_error(
    serve: Callable[..., HostileServer], encoding: str, body: bytes
) -> None:
    server = serve(Reply(body=body, headers={"Content-Encoding": encoding}))
    with pytest.raises(requests.exceptions.ContentDecodingError) as caught:
        read_capped(fetch(server), LIMIT)
    assert f"not valid {encoding}" in str(caught.value)
    assert not is_transient(caught.value)  # the same answer again would fail the same way


# -- encodings left to urllib3: chains, br, zstd (the cap still holds) --------------------


def test_a_chained_encoding_is_decoded_by_urllib3(serve: Callable[..., HostileServer]) -> None:
    data = b'{"access_token": "chained"}'
    server = serve(Reply(body=gzip.compress(gzip.compress(data)), headers={"Content-Encoding": "gzip, gzip"}))
    assert read_capped(fetch(server), LIMIT) == data


def test_a_chained_encoding_is_capped_after_decoding(serve: Callable[..., HostileServer]) -> None:
    # 3 MiB of zeros, gzip inside gzip: a few KiB on the wire, 3 MiB decoded.
    body = gzip.compress(gzip.compress(b"0" * 3 * MiB))
    server = serve(Reply(body=body, headers={"Content-Encoding": "gzip, gzip"}))
    with pytest.raises(BodyLimitError) as caught:
        read_capped(fetch(server), MiB)
    assert caught.value.reason == "too large"
    assert MiB < caught.value.received <= MiB + 64 * 1024  # stopped within a read of the cap


def _packer(encoding: str) -> Callable[[bytes], bytes]:
    """The compressor of ``encoding`` (``br``, ``zstd``), or skip when urllib3 cannot decode it.

    urllib3 decodes them only with its ``brotli`` and ``zstd`` extras installed (the ``test``
    extra installs them); it says which it can in ``ACCEPT_ENCODING``.
    """
    if encoding not in urllib3.util.request.ACCEPT_ENCODING.split(","):
        pytest.skip(f"urllib3 cannot decode {encoding} here: install urllib3[brotli,zstd]")
    if encoding == "br":
        module = "brotlicffi" if importlib.util.find_spec("brotlicffi") else "brotli"
    else:
        module = "compression.zstd" if sys.version_info >= (3, 14) else "backports.zstd"
    compress: Callable[[bytes], bytes] = importlib.import_module(module).compress
    return compress


@pytest.mark.parametrize("encoding", ["br", "zstd"])
def test_br_and_zstd_are_decoded_by_urllib3(serve: Callable[..., HostileServer], encoding: str) -> None:
    pack = _packer(encoding)
    data = b'{"access_token": "' + encoding.encode() + b'"}'
    server = serve(Reply(body=pack(data), headers={"Content-Encoding": encoding}))
    assert read_capped(fetch(server), LIMIT) == data


@pytest.mark.parametrize("encoding", ["br", "zstd"])
def test_br_and_zstd_are_capped_after_decoding(serve: Callable[..., HostileServer], encoding: str) -> None:
    pack = _packer(encoding)
    server = serve(Reply(body=pack(b"0" * 3 * MiB), headers={"Content-Encoding": encoding}))
    with pytest.raises(BodyLimitError) as caught:
        read_capped(fetch(server), MiB)
    assert MiB < caught.value.received <= MiB + 64 * 1024


# -- a body requests has already read -----------------------------------------------------


def _read_by_requests(body: bytes) -> requests.Response:
    adapter = requests_mock.Adapter()
    adapter.register_uri("GET", "https://as.example/body", content=body)
    with requests.Session() as session:
        session.mount("https://", adapter)
        return session.get("https://as.example/body")  # stream=False: the body is read


def test_a_body_already_read_is_checked_against_the_limit() -> None:
    with pytest.raises(BodyLimitError) as caught:
        read_capped(_read_by_requests(b"y" * (LIMIT + 1)), LIMIT)
    assert caught.value.received == LIMIT + 1
    assert read_capped(_read_by_requests(b"y" * LIMIT), LIMIT) == b"y" * LIMIT


def test_a_response_without_raw_is_checked_against_the_limit() -> None:
    response = requests.Response()
    response._content = b"z" * (LIMIT + 1)
    with pytest.raises(BodyLimitError):
        read_capped(response, LIMIT)
    response._content = b"z" * LIMIT
    assert read_capped(response, LIMIT) == b"z" * LIMIT


# -- read errors in the middle of a body: requests' exceptions, as retries expect them ------


def test_a_connection_reset_mid_body_is_a_chunked_encoding_error(serve: Callable[..., HostileServer]) -> None:
    server = serve(Reply(body=b'{"access_token": "cut', framing="declared", declared_length=500, reset=True))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        read_capped(fetch(server), LIMIT)


def test_a_read_timeout_mid_body_is_a_retryable_connection_error(serve: Callable[..., HostileServer]) -> None:
    # One byte, then the next only after 30 s: the 0.2 s read timeout fires in the body.
    server = serve(Reply(body=b'{"access_token": "slow"}', drip=30.0))
    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        read_capped(fetch(server, timeout=0.2), LIMIT)
    assert isinstance(caught.value.args[0], ReadTimeoutError)
    assert is_transient(caught.value)


def test_a_corrupt_tls_record_mid_body_is_a_requests_ssl_error(tmp_path: Path) -> None:
    # A real TLS connection: the server sends the head and part of the body, then a TLS
    # record that is not one (written under the TLS layer): the client cannot decrypt it.
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    done = threading.Event()

    def serve_one() -> None:
        try:
            raw, _ = listener.accept()
            with context.wrap_socket(raw, server_side=True) as tls:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += tls.recv(4096)
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b'{"access_token": "')
                # Under the TLS layer (wrap_socket took over raw's descriptor): a record
                # that claims to be application data and is garbage.
                os.write(tls.fileno(), b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
                done.wait(10)
        except OSError:
            pass

    server = threading.Thread(target=serve_one, daemon=True)
    server.start()
    try:
        url = f"https://127.0.0.1:{listener.getsockname()[1]}/body"
        response = requests.get(url, stream=True, timeout=5, verify=str(ca_file))
        with pytest.raises(requests.exceptions.SSLError) as caught:
            read_capped(response, LIMIT)
        assert isinstance(caught.value.args[0], SSLError)
        assert not is_transient(caught.value)
    finally:
        done.set()
        server.join(10)
        listener.close()


class _FailingRaw:
    """A stand-in for urllib3's response: some body, then ``error`` (TLS needs no server here)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.reads = 0

    def read1(self, amt: int, decode_content: bool = True) -> bytes:
        self.reads += 1
        if self.reads == 1:
            return b'{"access_token": "'
        raise self.error

    def release_conn(self) -> None:
        pass

    def close(self) -> None:
        pass


def _failing_response(error: Exception) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response.raw = _FailingRaw(error)
    return response


@pytest.mark.parametrize(
    ("error", "mapped", "transient"),
    [
        pytest.param(ProtocolError("Connection broken", ConnectionResetError(104, "reset")),
                     requests.exceptions.ChunkedEncodingError, True, id="reset"),
        pytest.param(ReadTimeoutError(None, "/token", "Read timed out."),  # type: ignore[arg-type]
                     requests.exceptions.ConnectionError, True, id="timeout"),
        pytest.param(SSLError("bad record mac"), requests.exceptions.SSLError, False, id="tls"),
        pytest.param(DecodeError("bad brotli"), requests.exceptions.ContentDecodingError, False, id="decode"),
        pytest.param(ConnectionResetError(104, "reset"), requests.exceptions.ConnectionError, True,
                     id="oserror"),
    ],
)
def test_read_errors_become_the_requests_exceptions_retries_decide_on(
    error: Exception, mapped: type[requests.RequestException], transient: bool
) -> None:
    response = _failing_response(error)
    with pytest.raises(requests.RequestException) as caught:
        read_capped(response, LIMIT)
    assert type(caught.value) is mapped
    assert caught.value.args[0] is error and caught.value.response is response
    assert is_transient(caught.value) is transient


def test_a_requests_exception_while_reading_is_raised_as_it_is() -> None:
    error = requests.exceptions.ConnectTimeout("already a requests exception")
    with pytest.raises(requests.exceptions.ConnectTimeout) as caught:
        read_capped(_failing_response(error), LIMIT)
    assert caught.value is error


def test_an_unexpected_error_while_reading_is_raised_as_it_is() -> None:
    with pytest.raises(KeyError):
        read_capped(_failing_response(KeyError("not a read error")), LIMIT)


# -- load_json: bounded nesting (token answers and metadata alike) --


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
