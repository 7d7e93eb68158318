"""Reading a response body from an untrusted server: streamed, capped after decoding.

The token endpoint, the discovery document and the 401 body before a replay are read
with :func:`read_capped`: at most ``limit`` bytes *after* decoding, so an oversized,
endless or gzip-bomb body costs at most ``limit`` bytes of memory and is abandoned
(its connection closed, never drained) as soon as it is known to be too large.

``gzip`` and ``deflate`` (the encodings requests asks for) are inflated here with an
output bound (``zlib`` ``max_length``), whatever the urllib3 version: urllib3 before 2.6
inflates a whole compressed chunk at once (CVE-2025-66471). Other encodings (``br``,
``zstd``, chains) are left to urllib3's own bounded streaming decoder.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable
from typing import Any

import requests

from .errors import ReqccError

__all__ = ["DEFAULT_BODY_LIMIT", "MAX_JSON_DEPTH", "BodyLimitError", "load_json", "read_capped"]

#: The most bytes (after decoding) read from a response reqcc parses: 1 MiB, like Go's x/oauth2.
DEFAULT_BODY_LIMIT = 1 << 20
#: The deepest nesting of arrays and objects accepted in a JSON body from a server.
MAX_JSON_DEPTH = 64
#: Raw bytes asked of the socket per read.
_CHUNK = 16 * 1024


class BodyLimitError(ReqccError):
    """A response body was abandoned: larger than the limit, or still arriving at the deadline.

    :ivar reason: ``"too large"`` or ``"deadline"``.
    :ivar limit: the limit in bytes after decoding.
    :ivar received: the decoded bytes read before giving up.
    """

    def __init__(self, message: str, *, reason: str, limit: int, received: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.limit = limit
        self.received = received


class _Inflater:
    """Inflates gzip (possibly multi-member) or deflate (zlib-wrapped or raw) with an output bound."""

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding in ("gzip", "x-gzip")
        self._first = True
        self._obj = self._new()
        #: Compressed bytes were fed (an empty body is no stream, and not a cut one).
        self.fed = False

    @property
    def complete(self) -> bool:
        """Whether the last stream fed ended (a gzip member's trailer, a deflate final block).

        ``False`` after some input: the body was cut off before its stream's end (the
        connection closed early, or the server sent a truncated stream), and what was
        inflated is a prefix of the answer, never to be parsed.
        """
        return bool(self._obj.eof)

    def _new(self, raw_deflate: bool = False) -> Any:
        if self._gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj(-zlib.MAX_WBITS if raw_deflate else zlib.MAX_WBITS)

    def feed(self, data: bytes, room: int) -> tuple[bytes, bool]:
        """Inflate ``data``; return the output and whether it exceeded ``room`` bytes.

        No call ever produces more than ``room + 1`` bytes.
        """
        out = bytearray()
        self.fed = self.fed or bool(data)
        while data:
            budget = room - len(out) + 1  # >= 1: max_length=0 would mean "unbounded"
            try:
                piece = self._obj.decompress(data, budget)
            except zlib.error:
                if self._first and not self._gzip:  # "deflate" sent without its zlib header
                    self._obj = self._new(raw_deflate=True)
                    self._first = False
                    continue
                raise
            self._first = False
            out += piece
            if len(out) > room:
                return bytes(out), True
            if self._obj.unconsumed_tail:
                data = self._obj.unconsumed_tail
            elif self._obj.eof and self._obj.unused_data:
                data = self._obj.unused_data
                if not self._gzip:
                    break  # trailing bytes after a deflate stream: ignored, as urllib3 does
                self._obj = self._new()  # the next gzip member
            else:
                break
        return bytes(out), False


def _too_large(limit: int, received: int) -> BodyLimitError:
    return BodyLimitError(
        f"the response body is larger than {limit} bytes (after decoding); the rest was not read",
        reason="too large", limit=limit, received=received,
    )


def read_capped(
    response: requests.Response,
    limit: int = DEFAULT_BODY_LIMIT,
    *,
    deadline: float | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> bytes:
    """Return the body of ``response`` (decoded), reading at most ``limit`` decoded bytes.

    The response should have been sent with ``stream=True``; a body requests has already
    read (``stream=False``, or a test transport) is checked against the limit as it is.
    On success the body is also stored on the response, so ``response.content`` and
    ``response.text`` work afterwards. On failure the connection is closed, not drained.

    :param limit: the most bytes accepted after decoding.
    :param deadline: a ``monotonic()`` time after which reading stops (a server dripping
        a byte at a time never trips the per-read timeout).
    :raises BodyLimitError: the body is larger than ``limit``, or the deadline passed.
    :raises requests.RequestException: the connection failed while reading.
    """
    if getattr(response, "_content_consumed", False) or response.raw is None:
        body = response.content or b""
        if len(body) > limit:
            raise _too_large(limit, len(body))
        return body
    try:
        body = _read(response, limit, deadline, monotonic)
    except BaseException:
        response.close()
        raise
    response._content = body
    response._content_consumed = True  # type: ignore[attr-defined]
    response.close()  # fully read: the connection goes back to the pool
    return body


def _read(
    response: requests.Response, limit: int, deadline: float | None, monotonic: Callable[[], float]
) -> bytes:
    raw = response.raw
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        inflater = None
        length = response.headers.get("Content-Length", "")
        if length.strip().isdigit() and int(length) > limit:
            raise _too_large(limit, 0)
    elif encoding in ("gzip", "x-gzip", "deflate"):
        inflater = _Inflater(encoding)
    else:
        inflater = None
    decode_by_urllib3 = inflater is None and encoding not in ("", "identity")
    read = getattr(raw, "read1", None) or raw.read
    body = bytearray()
    try:
        while True:
            if deadline is not None and monotonic() >= deadline:
                raise BodyLimitError(
                    "the response body was still arriving at the deadline; the rest was not read",
                    reason="deadline", limit=limit, received=len(body),
                )
            chunk = read(_CHUNK, decode_content=decode_by_urllib3)
            if not chunk:
                break
            if inflater is not None:
                chunk, over = inflater.feed(chunk, limit - len(body))
                body += chunk
                if over:
                    raise _too_large(limit, len(body))
            else:
                body += chunk
                if len(body) > limit:
                    raise _too_large(limit, len(body))
    except zlib.error as exc:
        raise requests.exceptions.ContentDecodingError(
            f"the response body is not valid {encoding}: {exc}", response=response
        ) from None
    except BodyLimitError:
        raise
    except Exception as exc:
        raise _as_requests_error(exc, response) from exc
    if inflater is not None and inflater.fed and not inflater.complete:
        # A connection cut mid-body, as urllib3 reports one cut before Content-Length:
        # the caller may try again, and never parses the prefix inflated so far.
        raise requests.exceptions.ChunkedEncodingError(
            f"the response body ended before its {encoding} stream did ({len(body)} bytes "
            "inflated): the answer was cut off", response=response,
        )
    return bytes(body)


def _as_requests_error(exc: Exception, response: requests.Response) -> Exception:
    """Map urllib3's read errors to requests' exceptions, as ``iter_content`` does."""
    if isinstance(exc, requests.RequestException):
        return exc
    from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

    if isinstance(exc, ProtocolError):
        return requests.exceptions.ChunkedEncodingError(exc, response=response)
    if isinstance(exc, DecodeError):
        return requests.exceptions.ContentDecodingError(exc, response=response)
    if isinstance(exc, ReadTimeoutError):
        return requests.exceptions.ConnectionError(exc, response=response)
    if isinstance(exc, SSLError):
        return requests.exceptions.SSLError(exc, response=response)
    if isinstance(exc, OSError):
        return requests.exceptions.ConnectionError(exc, response=response)
    return exc


def load_json(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode a JSON body from an untrusted server, within a nesting bound.

    The one JSON reader of the bodies reqcc parses (token answers and metadata documents
    alike). A document nested deeper than ``max_depth`` arrays and objects is refused, the
    same whether it would overflow the stack while decoding (``[`` × 200,000) or only
    later, in code that walks it (a small document with one field 700 deep): no caller
    ever sees a bare ``RecursionError``.

    :raises ValueError: not JSON (or not UTF-8/16/32), or nested deeper than ``max_depth``.
    """
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
    level: list[Any] = [data]
    for _ in range(max_depth):
        inner: list[Any] = []
        for value in level:
            if isinstance(value, dict):
                inner.extend(value.values())
            elif isinstance(value, list):
                inner.extend(value)
        if not inner:
            return data
        level = inner
    raise ValueError(f"JSON nested more than {max_depth} deep")
