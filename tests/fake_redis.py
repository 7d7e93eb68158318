"""A fake Redis on 127.0.0.1 speaking RESP2, holding one huge string value it never builds whole.

Every key holds the same value: ``prefix`` followed by ``size - len(prefix) - 2`` zeros and
``"}`` (a JSON object with one huge string field when ``prefix`` opens one). ``GET``,
``GETRANGE`` and ``STRLEN`` answer honestly about that value; ``HELLO`` is refused (RESP2
only); every other command answers ``+OK``. The value is sent in pieces of 64 KiB, so the
test process stays small even when the client reads everything; ``bytes_sent`` counts the
value bytes handed to the kernel and ``commands`` the command names received.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

from .hostile_server import LoopbackServer

__all__ = ["FakeRedis"]

_PIECE = 64 * 1024
#: The default start of the value: a Bearer token ``big`` with a huge ``pad`` field.
TOKEN_PREFIX = b'{"access_token":"big","token_type":"Bearer","pad":"'


class FakeRedis(LoopbackServer):
    """A RESP2 server whose every key holds one ``size``-byte string (see the module doc)."""

    def __init__(self, size: int, prefix: bytes = TOKEN_PREFIX) -> None:
        self.size = size
        self.prefix = prefix
        self.bytes_sent = 0
        self.commands: list[str] = []
        super().__init__(name="fake-redis")
        # RESP2 asked for outright: this server speaks no RESP3, and redis-py 8.1 (the last for
        # Python 3.10) does not fall back when HELLO is refused.
        self.url = f"redis://127.0.0.1:{self.port}/0?protocol=2"

    # -- the value, in pieces ----------------------------------------------------------

    def _byte_range(self, start: int, end: int) -> Iterator[bytes]:
        """Yield bytes ``start`` to ``end`` (exclusive) of the value, 64 KiB at a time."""
        tail = b'"}'
        body_end = self.size - len(tail)
        n_prefix = len(self.prefix)
        position = start
        while position < end:
            stop = min(end, position + _PIECE)
            zeros = max(0, min(stop, body_end) - max(position, n_prefix))
            piece = (
                self.prefix[position:stop]
                + b"0" * zeros
                + tail[max(0, position - body_end) : max(0, stop - body_end)]
            )
            position = stop
            yield piece

    # -- serving -----------------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        buffer = b""
        try:
            while not self._stopping():
                command, buffer = self._read_command(conn, buffer)
                if command is None:
                    return
                with self._lock:
                    self.commands.append(command[0].upper())
                if not self._answer(conn, command):
                    return
        finally:
            conn.close()

    def _recv(self, conn: socket.socket) -> bytes:
        while not self._stopping():
            try:
                return conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return b""
        return b""

    def _line(self, conn: socket.socket, buffer: bytes) -> tuple[bytes | None, bytes]:
        while b"\r\n" not in buffer:
            data = self._recv(conn)
            if not data:
                return None, buffer
            buffer += data
        line, _, buffer = buffer.partition(b"\r\n")
        return line, buffer

    def _read_command(self, conn: socket.socket, buffer: bytes) -> tuple[list[str] | None, bytes]:
        line, buffer = self._line(conn, buffer)
        if line is None or not line.startswith(b"*"):
            return None, buffer
        words = []
        for _ in range(int(line[1:])):
            head, buffer = self._line(conn, buffer)
            if head is None:
                return None, buffer
            length = int(head[1:])
            while len(buffer) < length + 2:
                data = self._recv(conn)
                if not data:
                    return None, buffer
                buffer += data
            words.append(buffer[:length].decode("latin-1"))
            buffer = buffer[length + 2 :]
        return words, buffer

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

    def _bulk(self, conn: socket.socket, start: int, end: int) -> bool:
        end = max(start, min(end, self.size))
        if not self._send(conn, b"$%d\r\n" % (end - start)):
            return False
        for piece in self._byte_range(start, end):
            if not self._send(conn, piece):
                return False
            with self._lock:
                self.bytes_sent += len(piece)
        return self._send(conn, b"\r\n")

    def _answer(self, conn: socket.socket, command: list[str]) -> bool:
        name = command[0].upper()
        if name == "GET":
            return self._bulk(conn, 0, self.size)
        if name == "GETRANGE":
            start, end = int(command[2]), int(command[3])
            end = self.size + end if end < 0 else end
            return self._bulk(conn, start, end + 1)
        if name == "STRLEN":
            return self._send(conn, b":%d\r\n" % self.size)
        if name == "HELLO":  # RESP2 only: redis-py falls back to it
            return self._send(conn, b"-ERR unknown command 'HELLO'\r\n")
        return self._send(conn, b"+OK\r\n")
