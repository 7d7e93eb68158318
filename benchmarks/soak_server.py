"""The soak's authorization server: reqcc.testing's local server, with a token endpoint that flaps.

:class:`FlappingServer` is a :class:`~reqcc.testing.LocalAuthorizationServer` whose token
endpoint the soak switches between working and three ways of failing:

- ``"503"``: an immediate ``503 temporarily_unavailable`` (JSON, RFC 6749 §5.2);
- ``"reset"``: the connection is closed without an answer (the client sees it dropped);
- ``"slow"``: a 503 after ``slow_delay`` seconds (a struggling endpoint).

It logs every token request (arrival, answer, status) and every token it issued (when it
was asked for, when the answer went out, ``expires_in``), in the monotonic clock the
server also uses for expiry, so the soak can tell when a usable token existed. The log
holds no token value.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reqcc.testing import LocalAuthorizationServer

MODES = ("up", "503", "reset", "slow")
_UNAVAILABLE = b'{"error": "temporarily_unavailable", "error_description": "soak outage"}'


class DroppedConnection(Exception):
    """Raised out of the WSGI app: the HTTP server closes the connection without an answer."""


@dataclass(frozen=True)
class TokenHit:
    """One request to the token endpoint."""

    received: float
    answered: float
    status: int  # 0: the connection was dropped


@dataclass(frozen=True)
class Issued:
    """One token the endpoint issued: usable from ``sent`` until ``expires`` (server's clock)."""

    asked: float  # the request arrived (the server saved the token after this)
    sent: float  # the answer was handed to the HTTP server
    expires: float  # asked + expires_in: no later than the server's own expiry


class FlappingServer(LocalAuthorizationServer):
    """A :class:`LocalAuthorizationServer` whose token endpoint can be taken down in three ways."""

    def __init__(self, *, slow_delay: float = 2.0, **kwargs: Any) -> None:
        kwargs.setdefault("clock", time.monotonic)
        super().__init__(**kwargs)
        self.slow_delay = slow_delay
        self.mode = "up"
        self.hits: list[TokenHit] = []
        self.issued: list[Issued] = []
        self._log_lock = threading.Lock()

    def set_mode(self, mode: str) -> None:
        """Switch the token endpoint to ``mode`` (one of :data:`MODES`)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """Serve as the local server does, except the token endpoint while it is down."""
        if (environ.get("PATH_INFO") or "").rstrip("/") != "/token":
            return super().wsgi_app(environ, start_response)
        received = time.monotonic()
        mode = self.mode
        if mode == "reset":
            self._log(TokenHit(received, time.monotonic(), 0))
            raise DroppedConnection
        if mode in ("503", "slow"):
            if mode == "slow":
                time.sleep(self.slow_delay)
            start_response("503 Service Unavailable", [
                ("Content-Type", "application/json"), ("Cache-Control", "no-store"),
            ])
            self._log(TokenHit(received, time.monotonic(), 503))
            return [_UNAVAILABLE]
        seen: list[str] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen.append(status)
            return start_response(status, headers, exc_info)

        body = super().wsgi_app(environ, capture)
        status = int(seen[0].split(" ", 1)[0]) if seen else 500
        sent = time.monotonic()
        self._log(TokenHit(received, sent, status))
        if status == 200:
            expires_in = json.loads(b"".join(body)).get("expires_in")
            if expires_in is not None:
                with self._log_lock:
                    self.issued.append(Issued(received, sent, received + float(expires_in)))
        return body

    def _log(self, hit: TokenHit) -> None:
        with self._log_lock:
            self.hits.append(hit)
