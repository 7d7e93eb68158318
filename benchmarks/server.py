"""The benchmark's local servers: a token endpoint and a bearer-protected API on 127.0.0.1.

Runs in its own process (``python benchmarks/server.py``; it prints its port on the first
line of stdout, and stops when its stdin closes) so that serving requests does not compete
with the measured client threads for the GIL. A small asyncio HTTP/1.1 keep-alive server:
much faster than ``http.server`` (so the client libraries' cost is not drowned in the
server's), answers in one write (TCP_NODELAY is on), and serves every library identically:

- ``POST /token``: issues ``tok-N`` with ``expires_in = lifetime`` after ``delay`` seconds
  (concurrent token requests are served concurrently), or answers 503 at once while the
  endpoint is "down". Counts every hit.
- ``GET /api/...``: 200 with a small JSON body if the bearer token was issued here and has
  not expired by the server's own clock (or is the floor's static token), else 401 with
  ``WWW-Authenticate: Bearer error="invalid_token"``. The token is judged on arrival; the
  answer then waits ``api_latency`` (a ``[low, high]`` pair: uniformly random seconds,
  from a generator seeded at each reset, so runs draw the same delays; ``[0, 0]`` by
  default: at once), as a real API takes time to answer.
- ``POST /_control`` (JSON: ``reset``, ``lifetime``, ``delay``, ``down``, ``api_latency``) and
  ``GET /_stats`` (JSON counters and timestamps) for the benchmark driver.

Timestamps are ``time.monotonic()``, which on Linux is one system-wide clock, so the driver
can compare them with its own.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sys
import threading
import time
from typing import Any

#: The floor's bearer token: always accepted by the API.
STATIC_TOKEN = "bench-static-token"

_API_BODY = b'{"id": 1, "title": "The Left Hand of Darkness"}'
_REASONS = {200: b"OK", 401: b"Unauthorized", 404: b"Not Found", 503: b"Service Unavailable"}


class State:
    """Everything the endpoints share (one event loop: no locks needed)."""

    def __init__(self) -> None:
        self.counter = itertools.count(1)
        self.lifetime = 3600.0
        self.delay = 0.0
        self.down = False
        self.api_latency = (0.0, 0.0)
        self.reset()

    def reset(self) -> None:
        """Forget every token and counter."""
        self.tokens: dict[str, float] = {STATIC_TOKEN: float("inf")}  # token -> expires at
        self.token_hits: list[tuple[float, float, bool]] = []  # (received, answered, issued?)
        self.issued: list[tuple[float, float]] = []  # (issued at, expires at)
        self.api_requests = 0
        self.api_401s = 0
        self.random = random.Random(20)  # the API's delays: the same sequence in every run

    def stats(self) -> dict[str, Any]:
        """The counters and timestamps since the last reset."""
        return {
            "token_hits": self.token_hits,
            "issued": self.issued,
            "api_requests": self.api_requests,
            "api_401s": self.api_401s,
        }


def _response(status: int, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
        % (status, _REASONS.get(status, b"Status"), len(body), extra)
    ) + body


async def _answer(
    state: State, method: bytes, path: bytes, headers: dict[bytes, bytes], body: bytes
) -> bytes:
    if method == b"GET" and path.startswith(b"/api/"):
        auth = headers.get(b"authorization", b"")
        scheme, _, value = auth.partition(b" ")
        token = value.decode() if scheme.lower() in (b"bearer", b"dpop") else ""
        state.api_requests += 1
        accepted = time.monotonic() < state.tokens.get(token, 0.0)
        low, high = state.api_latency
        if high > 0:
            await asyncio.sleep(state.random.uniform(low, high))
        if accepted:
            return _response(200, _API_BODY)
        state.api_401s += 1
        return _response(401, b"", b'WWW-Authenticate: Bearer error="invalid_token"\r\n')
    if method == b"POST" and path.startswith(b"/token"):
        received = time.monotonic()
        if state.down:
            state.token_hits.append((received, time.monotonic(), False))
            return _response(503, b'{"error": "temporarily_unavailable"}')
        lifetime = state.lifetime
        if state.delay:
            await asyncio.sleep(state.delay)
        token = f"tok-{next(state.counter)}"
        issued = time.monotonic()
        state.tokens[token] = issued + lifetime
        state.issued.append((issued, issued + lifetime))
        state.token_hits.append((received, issued, True))
        expires_in: float | int = int(lifetime) if lifetime == int(lifetime) else lifetime
        token_type = "DPoP" if b"dpop" in headers else "Bearer"  # proofs are not checked here
        payload = {"access_token": token, "token_type": token_type, "expires_in": expires_in}
        return _response(200, json.dumps(payload).encode(), b"Cache-Control: no-store\r\n")
    if method == b"POST" and path == b"/_control":
        command = json.loads(body or b"{}")
        if command.get("reset"):
            state.reset()
        state.lifetime = float(command.get("lifetime", state.lifetime))
        state.delay = float(command.get("delay", state.delay))
        state.down = bool(command.get("down", state.down))
        if "api_latency" in command:
            low, high = (float(x) for x in command["api_latency"])
            state.api_latency = (low, high)
        return _response(200, b"{}")
    if method == b"GET" and path == b"/_stats":
        return _response(200, json.dumps(state.stats()).encode())
    return _response(404, b"{}")


def make_handler(state: State) -> Any:
    """The per-connection coroutine: HTTP/1.1 requests in a loop until the client closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, path, _version = lines[0].split(b" ", 2)
                headers: dict[bytes, bytes] = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(b":")
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get(b"content-length", b"0"))
                body = await reader.readexactly(length) if length else b""
                writer.write(await _answer(state, method, path, headers, body))
                await writer.drain()
                if headers.get(b"connection", b"").lower() == b"close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        except asyncio.CancelledError:  # the server is shutting down
            pass
        finally:
            writer.close()

    return handle


async def serve(ready: Any = None) -> None:
    """Serve on 127.0.0.1 (any free port) until stdin closes; print the port first."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    server = await asyncio.start_server(make_handler(State()), "127.0.0.1", 0, backlog=256)
    print(server.sockets[0].getsockname()[1], flush=True)

    def wait_for_stdin() -> None:
        sys.stdin.read()  # the driver closes our stdin (or dies): time to go
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=wait_for_stdin, daemon=True).start()
    async with server:
        await done.wait()


if __name__ == "__main__":
    asyncio.run(serve())
