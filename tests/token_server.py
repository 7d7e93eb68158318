"""A threaded token endpoint and bearer-protected API on 127.0.0.1, for tests that need real HTTP.

Deliberately small (the standard library's ThreadingHTTPServer): it counts requests and can
be told to delay, fail with a status (and Retry-After), or answer a §5.2 error. The real
authorization servers (oauthlib, Authlib) are in the interoperability tests.

For races that must be exact rather than likely, ``token_gate`` and ``api_gate`` (a
``threading.Event``) hold every token or API request, after it has been counted, until the
test sets the event: a test can wait until N requests have arrived, then release them.

    with TokenServer() as server:
        server.token_url, server.api_url, server.token_requests
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Failure:
    """One scripted answer of the token endpoint instead of a token."""

    status: int = 503
    error: str | None = None  # a §5.2 code: answered as a JSON error body
    retry_after: str | None = None
    body: str | None = None


class _Server(ThreadingHTTPServer):
    # 64 threads connecting at once overflow the default listen backlog of 5, and the
    # kernel then delays the dropped connects by a second or more.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a deadline, a cap) closes its socket while an answer is being
        # written: expected in these tests, so not printed as a traceback on stderr.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class TokenServer:
    """Token endpoint at ``/token``, protected API at ``/api/...`` (accepts the tokens it issued).

    :param expires_in: lifetime put in issued tokens (``None``: no ``expires_in``).
    :param delay: seconds each token request waits before answering (to widen races).

    Attributes a test may set at any time: ``failures`` (answered in order, one per token
    request), ``fail_always``, ``delay``, ``token_gate`` and ``api_gate`` (``None``, or an
    Event that requests wait on, up to ``GATE_TIMEOUT`` seconds, before being answered).
    """

    #: The longest a gated request waits, so that a broken test cannot hang the server.
    GATE_TIMEOUT = 30.0

    def __init__(self, expires_in: float | None = 3600, delay: float = 0.0) -> None:
        self.expires_in = expires_in
        self.delay = delay
        self.failures: deque[Failure] = deque()
        self.fail_always: Failure | None = None
        self.token_gate: threading.Event | None = None
        self.api_gate: threading.Event | None = None
        self.lock = threading.Lock()
        self.token_requests = 0
        self.api_requests = 0
        self.api_401s = 0
        self.token_forms: list[dict[str, list[str]]] = []
        #: The client (host, port) of each token request: which connection it came on.
        self.token_peers: list[tuple[str, int]] = []
        self.valid_tokens: set[str] = set()
        self._counter = itertools.count(1)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The headers and the body go out in two writes: with Nagle's algorithm the body
            # waits for the client's delayed ACK, 40 ms per keep-alive request.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # silence stderr
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                if self.path != "/token":
                    self._send(404, b"")
                    return
                with server.lock:
                    server.token_requests += 1
                    server.token_forms.append(form)
                    server.token_peers.append(self.client_address[:2])
                    failure = server.failures.popleft() if server.failures else server.fail_always
                gate = server.token_gate
                if gate is not None:
                    gate.wait(server.GATE_TIMEOUT)
                if server.delay:
                    time.sleep(server.delay)
                if failure is not None:
                    headers = {"Content-Type": "application/json"}
                    if failure.retry_after is not None:
                        headers["Retry-After"] = failure.retry_after
                    if failure.body is not None:
                        body = failure.body.encode()
                    elif failure.error is not None:
                        body = json.dumps({"error": failure.error}).encode()
                    else:
                        body = b'{"message": "unavailable"}'
                    self._send(failure.status, body, headers)
                    return
                token = f"tok-{next(server._counter)}"
                with server.lock:
                    server.valid_tokens.add(token)
                payload: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
                if server.expires_in is not None:
                    payload["expires_in"] = server.expires_in
                self._send(200, json.dumps(payload).encode(), {"Content-Type": "application/json"})

            def do_GET(self) -> None:
                auth = self.headers.get("Authorization", "")
                token = auth[7:] if auth.startswith("Bearer ") else None
                with server.lock:
                    server.api_requests += 1
                    ok = token in server.valid_tokens
                    if not ok:
                        server.api_401s += 1
                gate = server.api_gate
                if gate is not None:
                    gate.wait(server.GATE_TIMEOUT)
                if ok:
                    self._send(200, b'{"ok": true}', {"Content-Type": "application/json"})
                else:
                    self._send(401, b"", {"WWW-Authenticate": 'Bearer error="invalid_token"'})

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/"
        self.token_url = f"{self.base_url}token"
        self.api_url = f"{self.base_url}api/"
        # A short poll interval: shutdown() waits up to one interval (0.5 s by default).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def revoke_all(self) -> None:
        """Make every token issued so far invalid at the API."""
        with self.lock:
            self.valid_tokens.clear()

    def __enter__(self) -> TokenServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
