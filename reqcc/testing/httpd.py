"""The local server's HTTP plumbing: ``http.server`` on 127.0.0.1 running a WSGI app, TLS optional.

:class:`ThreadedWSGIServer` serves one thread per connection, wraps TLS per connection when
given an ``ssl.SSLContext``, and can drop every open connection (so ``close()`` does not
wait for keep-alive clients). :class:`WSGIBridgeHandler` speaks HTTP/1.1 keep-alive
(chunked request bodies included) and hands each request to the WSGI app. Nothing here
knows OAuth.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

from .._log import log

__all__ = ["ThreadedWSGIServer", "WSGIApp", "WSGIBridgeHandler"]

#: A WSGI application.
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ThreadedWSGIServer(ThreadingHTTPServer):
    """Threaded HTTP server that runs a WSGI app, wraps TLS per connection, and can drop them all."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, app: WSGIApp, ssl_context: ssl.SSLContext | None, port: int = 0) -> None:
        self.app = app
        self.ssl_context = ssl_context
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), WSGIBridgeHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        sock: socket.socket = request
        if self.ssl_context is not None:
            try:
                sock.settimeout(10)
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
                sock.settimeout(None)
            except (OSError, ssl.SSLError) as exc:
                log.debug("TLS handshake with the local server failed: %s", type(exc).__name__)
                request.close()
                return
        with self.connections_lock:
            self.connections.add(sock)
        try:
            super().finish_request(sock, client_address)
        finally:
            with self.connections_lock:
                self.connections.discard(sock)
            if sock is not request:
                try:
                    sock.close()
                except OSError:
                    pass

    def drop_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("local authorization server: connection error", exc_info=True)


class WSGIBridgeHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 (keep-alive) bridge from ``http.server`` to a WSGI app."""

    protocol_version = "HTTP/1.1"
    # Keep-alive answers go out at once: with Nagle's algorithm each one waited ~40 ms for
    # the client's delayed ACK, the cost of every API request in a user's test suite.
    disable_nagle_algorithm = True
    server: ThreadedWSGIServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _run_wsgi(self) -> None:
        parts = urlsplit(self.path)
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = self._read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": parts.path,
            "QUERY_STRING": parts.query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.server.ssl_context is not None else "http",
            "wsgi.input": BytesIO(body),
            "wsgi.errors": BytesIO(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if "Content-Type" in self.headers:
            environ["CONTENT_TYPE"] = self.headers["Content-Type"]
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        status_line: list[str] = []
        response_headers: list[tuple[str, str]] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            status_line[:] = [status]
            response_headers[:] = headers

        chunks = self.server.app(environ, start_response)
        payload = b"".join(chunks)
        code, _, reason = status_line[0].partition(" ")
        self.send_response(int(code), reason)
        for name, value in response_headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():  # trailer fields, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _run_wsgi
