"""A token answer cut off in the middle of its body is a transient failure of that attempt.

A connection reset or closed before the declared length, and a gzip body that ends before
its stream does, are retried like a reset before the answer (within ``max_retries`` and
the deadline; a probe is one request); after the last attempt they are a
:class:`~reqcc.TokenResponseError` that names no part of the answer. No prefix of the
answer is ever parsed: a cut gzip stream may well inflate to a complete JSON object. The
raw-socket server counts the token requests it got.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from reqcc.client_auth import ClientSecretBasic
from reqcc.errors import TokenAnswerCutOff, TokenResponseError
from reqcc.token_endpoint import TokenEndpoint

from ..hostile_server import HostileServer, Reply

SECRET = "cut-s3cret"
ACCESS = "cut-token-0123456789"
ANSWER = b'{"access_token":"' + ACCESS.encode() + b'","token_type":"Bearer","expires_in":3600}'
GOOD = Reply(body=ANSWER)


def _deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


#: Answers cut off mid-body, each the way a network or a server cuts one.
CUT = {
    # The connection reset after part of the declared length.
    "reset": Reply(body=ANSWER[:30], framing="declared", declared_length=len(ANSWER), reset=True),
    # The connection closed (FIN) after part of the declared length.
    "closed": Reply(body=ANSWER[:30], framing="declared", declared_length=len(ANSWER)),
    # A gzip body whose trailer (CRC and length) is missing: it inflates to the whole JSON
    # object (padded), which 0.3 before this fix parsed as a token.
    "gzip-trailer": Reply(body=gzip.compress(ANSWER + b" " * 64)[:-8], headers={"Content-Encoding": "gzip"}),
    # A gzip body cut in the middle of its compressed data.
    "gzip-middle": Reply(body=gzip.compress(ANSWER)[:40], headers={"Content-Encoding": "gzip"}),
    # A deflate body without its final block.
    "deflate": Reply(body=_deflate(ANSWER)[:-6], headers={"Content-Encoding": "deflate"}),
}


Make = Callable[..., TokenEndpoint]


@pytest.fixture
def endpoint() -> Iterator[Make]:
    """``endpoint(server, waits, **kwargs)``: a token endpoint on ``server``, closed after the test.

    Retry waits are recorded in ``waits`` instead of slept.
    """
    made: list[TokenEndpoint] = []

    def make(server: HostileServer, waits: list[float], **kwargs: Any) -> TokenEndpoint:
        made.append(TokenEndpoint(
            server.url + "/oauth/token", ClientSecretBasic("cut-client", SECRET),
            timeout=(2.0, 2.0), retry_backoff=0.01, sleep=waits.append, **kwargs,
        ))
        return made[-1]

    yield make
    for one in made:
        one.close()  # its session's sockets, not left to the garbage collector


def _shown(exc: BaseException) -> str:
    """Everything an error reporter prints of ``exc`` and its chain."""
    parts = []
    while exc is not None:
        parts += [str(exc), repr(exc), repr(getattr(exc, "args", ()))]
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return " ".join(parts)


@pytest.mark.parametrize("cut", list(CUT))
def test_a_cut_answer_is_retried_like_a_reset(
    serve: Callable[..., HostileServer], endpoint: Make, cut: str
) -> None:
    server = serve(CUT[cut], CUT[cut], GOOD)
    waits: list[float] = []
    token = endpoint(server, waits, max_retries=2).request_token()
    assert token.access_token == ACCESS
    assert server.token_requests == 3 and len(waits) == 2


@pytest.mark.parametrize("cut", list(CUT))
def test_a_cut_answer_after_the_last_retry_is_a_token_response_error_naming_nothing_of_it(
    serve: Callable[..., HostileServer], endpoint: Make, cut: str
) -> None:
    server = serve(CUT[cut])  # every answer cut
    waits: list[float] = []
    # A TokenResponseError, and still requests' ChunkedEncodingError (contract item 7).
    with pytest.raises(requests.exceptions.ChunkedEncodingError) as caught:
        endpoint(server, waits, max_retries=2).request_token()
    assert server.token_requests == 3 and len(waits) == 2
    error = caught.value
    assert isinstance(error, TokenAnswerCutOff) and isinstance(error, TokenResponseError)
    assert "cut its answer off before the end" in str(error) and error.status_code == 200
    assert isinstance(error.__cause__, requests.exceptions.ChunkedEncodingError)
    shown = _shown(error)
    assert ACCESS[:8] not in shown and SECRET not in shown  # no part of the answer, no secret
    assert error.response is not None and error.response.request is not None
    basic = requests.auth._basic_auth_str("cut-client", SECRET)
    assert basic not in repr(error.response.request.headers)  # the credentials scrubbed, as for a reset


def test_a_cut_answer_in_a_probe_is_one_request(serve: Callable[..., HostileServer], endpoint: Make) -> None:
    server = serve(CUT["reset"], GOOD)
    with pytest.raises(TokenResponseError):
        endpoint(server, [], max_retries=3).request_token(retries=False)
    assert server.token_requests == 1


def test_no_retry_of_a_cut_answer_waits_past_the_deadline(
    serve: Callable[..., HostileServer], endpoint: Make
) -> None:
    server = serve(CUT["gzip-middle"], GOOD)
    waits: list[float] = []
    ep = endpoint(server, waits, max_retries=3)
    ep.retry_backoff = 60.0  # the first wait (30-60 s) would end past the deadline
    with pytest.raises(TokenResponseError, match="cut its answer off"):
        ep.request_token(deadline=time.monotonic() + 10)
    assert server.token_requests == 1 and waits == []


def test_a_complete_compressed_answer_is_still_read(
    serve: Callable[..., HostileServer], endpoint: Make
) -> None:
    server = serve(Reply(body=gzip.compress(ANSWER), headers={"Content-Encoding": "gzip"}))
    assert endpoint(server, [], max_retries=0).request_token().access_token == ACCESS
    server = serve(Reply(body=b"", headers={"Content-Encoding": "gzip"}, status=503))
    with pytest.raises(TokenResponseError, match="503") as caught:
        endpoint(server, [], max_retries=0).request_token()
    assert "cut its answer off" not in str(caught.value)  # an empty body is no cut stream
