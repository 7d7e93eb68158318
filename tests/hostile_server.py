"""A small raw-socket HTTP/1.1 server on 127.0.0.1 that misbehaves on purpose.

Each request gets the next :class:`Reply` of the script (the last one repeats). A reply can
drip its bytes, stall, send a body larger than it declares, an endless (close-delimited)
or chunked body, a gzip bomb made on the fly (compressed zeros, never held whole in
memory), or a redirect. Every body is bounded (``total``), so a test stays small in memory
even when the code under test reads everything; the server counts what it managed to send.

The server runs in daemon threads, stops by itself after ``lifetime`` seconds, and is
stopped (threads joined with a timeout) by ``close()`` / the ``with`` block.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = ["Reply", "HostileServer", "gzip_zeros"]

_PIECE = 64 * 1024


@dataclass
class Reply:
    """What the server answers to one request.

    :param status: the HTTP status.
    :param headers: extra headers (``Content-Length``/``Transfer-Encoding`` come from ``framing``).
    :param body: the body, sent ``repeat`` times (the body bytes are never built whole).
    :param repeat: how many times ``body`` is sent.
    :param framing: ``"length"`` (Content-Length of what is sent), ``"chunked"``, ``"close"``
        (no length: the body ends when the connection closes), or ``"declared"`` (sends
        ``Content-Length: declared_length`` whatever the body).
    :param declared_length: the Content-Length sent with ``framing="declared"``.
    :param drip: seconds to wait between two body bytes (one byte per send), or ``None``.
    :param stall: accept the request, never answer (until the server stops).
    :param gzip_inflated: if set, the body is a gzip stream of this many ``b"0"`` bytes,
        compressed on the fly (``Content-Encoding: gzip``); ``body``/``repeat`` are then ignored.
    :param prefix: bytes put before the gzip zeros (e.g. ``b'{"access_token":"'``).
    :param reset: after the body, abort the connection (TCP RST) instead of keeping or
        closing it (with ``framing="declared"``: a connection reset in the middle of a body).
    :param header_lines: more header lines, ``(name, value)``, sent after ``headers`` (a name
        may repeat: several ``WWW-Authenticate`` lines).
    :param reset_at_once: read the request, answer nothing and reset the connection (TCP RST).
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    repeat: int = 1
    framing: str = "length"
    declared_length: int = 0
    drip: float | None = None
    stall: bool = False
    gzip_inflated: int | None = None
    prefix: bytes = b""
    header_lines: list[tuple[str, str]] = field(default_factory=list)
    reset: bool = False
    reset_at_once: bool = False

    def pieces(self) -> Iterator[bytes]:
        """The body, in pieces of at most 64 KiB (compressed pieces for a gzip bomb)."""
        if self.gzip_inflated is not None:
            yield from gzip_zeros(self.gzip_inflated, self.prefix)
            return
        if not self.body:
            return
        per = max(1, _PIECE // len(self.body))
        left = self.repeat
        while left > 0:
            n = min(per, left)
            left -= n
            yield self.body * n

    def length(self) -> int:
        """The body length in bytes as sent (compressed for a gzip bomb)."""
        if self.gzip_inflated is not None:
            return sum(len(p) for p in gzip_zeros(self.gzip_inflated, self.prefix))
        return len(self.body) * self.repeat


def gzip_zeros(inflated: int, prefix: bytes = b"") -> Iterator[bytes]:
    """Yield a gzip stream that inflates to ``prefix`` plus ``b"0"`` up to ``inflated`` bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"0" * (1 << 20)
    head = compressor.compress(prefix)
    if head:
        yield head
    left = inflated - len(prefix)
    while left > 0:
        n = min(left, len(block))
        left -= n
        out = compressor.compress(block[:n])
        if out:
            yield out
    yield compressor.flush()


_Server = TypeVar("_Server", bound="LoopbackServer")


class LoopbackServer:
    """A raw-socket server on 127.0.0.1: one thread accepts, one thread serves each connection.

    Bounded whatever the client does: at most ``max_connections`` connections are served,
    and every loop ends by ``lifetime`` seconds or :meth:`close`. A subclass sets what its
    ``_serve`` needs before calling ``__init__`` (the accepting thread starts there) and
    implements ``_serve(conn)``, looping while not :meth:`_stopping`.

    :ivar connections: connections accepted.
    """

    def __init__(self, *, lifetime: float = 20.0, max_connections: int = 16, name: str = "loopback") -> None:
        self.connections = 0
        self._name = name
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + lifetime
        self._max_connections = max_connections
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, name=f"{name}-accept", daemon=True)
        self._accepter.start()

    def __enter__(self: _Server) -> _Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the server and join its threads (each with a timeout)."""
        self._stop.set()
        self._accepter.join(5)
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(5)
        self._listener.close()
        assert not self._accepter.is_alive() and not any(t.is_alive() for t in threads)

    def _stopping(self) -> bool:
        return self._stop.is_set() or time.monotonic() >= self._deadline

    def _accept(self) -> None:
        while not self._stopping():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            with self._lock:
                if self.connections >= self._max_connections:
                    conn.close()
                    continue
                self.connections += 1
                t = threading.Thread(target=self._serve, args=(conn,), name=f"{self._name}-conn", daemon=True)
                self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


class HostileServer(LoopbackServer):
    """A loopback HTTP server answering each request with the next :class:`Reply`.

    :ivar requests: ``(method, path, headers, body)`` of every request received.
    :ivar bytes_sent: body bytes the server managed to hand to the kernel, all replies together.
    :ivar connections: connections accepted.
    """

    def __init__(self, *replies: Reply, lifetime: float = 20.0, max_connections: int = 16) -> None:
        self.replies = list(replies) or [Reply()]
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.bytes_sent = 0
        super().__init__(lifetime=lifetime, max_connections=max_connections, name="hostile")
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def token_requests(self) -> int:
        """Requests received so far."""
        with self._lock:
            return len(self.requests)

    # -- serving --------------------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        conn.settimeout(0.05)
        buffer = b""
        try:
            while not self._stopping():
                request, buffer = self._read_request(conn, buffer)
                if request is None:
                    return
                with self._lock:
                    index = len(self.requests)
                    self.requests.append(request)
                reply = self.replies[min(index, len(self.replies) - 1)]
                if not self._answer(conn, reply):
                    return
        finally:
            conn.close()

    def _read_request(
        self, conn: socket.socket, buffer: bytes
    ) -> tuple[tuple[str, str, dict[str, str], bytes] | None, bytes]:
        while b"\r\n\r\n" not in buffer:
            data = self._recv(conn)
            if not data:
                return None, buffer
            buffer += data
            if len(buffer) > 1 << 16:
                return None, b""
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path = lines[0].split(" ")[:2]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        while len(buffer) < length:
            data = self._recv(conn)
            if not data:
                return None, buffer
            buffer += data
        return (method, path, headers, buffer[:length]), buffer[length:]

    def _recv(self, conn: socket.socket) -> bytes:
        while not self._stopping():
            try:
                return conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return b""
        return b""

    def _send(self, conn: socket.socket, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            if self._stopping():
                return False
            try:
                n = conn.send(view)
            except TimeoutError:
                continue
            except OSError:
                return False
            view = view[n:]
        return True

    def _answer(self, conn: socket.socket, reply: Reply) -> bool:
        if reply.reset_at_once:  # SO_LINGER on, 0 seconds: close() sends RST instead of FIN
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if reply.stall:
            while not self._stopping():
                time.sleep(0.02)
            return False
        headers = dict(reply.headers)
        if reply.gzip_inflated is not None:
            headers.setdefault("Content-Encoding", "gzip")
        if reply.framing == "length":
            headers["Content-Length"] = str(reply.length())
        elif reply.framing == "declared":
            headers["Content-Length"] = str(reply.declared_length)
        elif reply.framing == "chunked":
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Connection"] = "close"
        headers.setdefault("Content-Type", "application/json")
        lines = [*headers.items(), *reply.header_lines]
        head = f"HTTP/1.1 {reply.status} Hostile\r\n" + "".join(f"{k}: {v}\r\n" for k, v in lines)
        if not self._send(conn, (head + "\r\n").encode("latin-1")):
            return False
        for piece in reply.pieces():
            if reply.drip is not None:
                for i in range(len(piece)):
                    if not self._send(conn, piece[i : i + 1]):
                        return False
                    with self._lock:
                        self.bytes_sent += 1
                    if self._stop.wait(reply.drip):
                        return False
                continue
            data = b"%x\r\n%s\r\n" % (len(piece), piece) if reply.framing == "chunked" else piece
            if not self._send(conn, data):
                return False
            with self._lock:
                self.bytes_sent += len(piece)
        if reply.framing == "chunked" and not self._send(conn, b"0\r\n\r\n"):
            return False
        if reply.reset:  # linger 0: close() sends RST, not FIN
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        return reply.framing in ("length", "chunked")
