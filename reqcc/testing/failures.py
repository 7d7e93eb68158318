"""Failure injection for the local token endpoint: queued errors, throttling, delays and holds."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass

from .responses import Answer, phrase

__all__ = ["FailureQueue", "Injection", "check_times", "default_status", "injected_answer"]


@dataclass
class Injection:
    """What the next token request(s) get instead of (or before) a normal answer."""

    remaining: int | None  # None: until clear_failures()
    status: int | None = None
    error: str | None = None
    description: str | None = None
    retry_after: str | None = None
    delay: float = 0.0
    gate: threading.Event | None = None


def default_status(error: str | None) -> int:
    """The status an injected failure gets when the test names none."""
    if error is None:
        return 503
    return {"invalid_client": 401, "server_error": 500, "temporarily_unavailable": 503}.get(error, 400)


def check_times(times: int | None) -> int | None:
    """Return ``times`` if it is a positive integer or ``None``, else raise ``ValueError``."""
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
        raise ValueError(f"times must be a positive integer or None, got {times!r}")
    return times


class FailureQueue:
    """The injections not used up yet, taken in order; guarded by the server's lock."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._injections: deque[Injection] = deque()

    def add(self, injection: Injection) -> None:
        """Queue ``injection`` after the ones already waiting."""
        with self._lock:
            self._injections.append(injection)

    def take(self) -> Injection | None:
        """The injection for the request arriving now (call with the lock held), or ``None``."""
        if not self._injections:
            return None
        injection = self._injections[0]
        if injection.remaining is not None:
            injection.remaining -= 1
            if injection.remaining <= 0:
                self._injections.popleft()
        return injection

    def clear(self) -> None:
        """Forget every queued injection; requests held at a gate are released."""
        with self._lock:
            for injection in self._injections:
                if injection.gate is not None:
                    injection.gate.set()
            self._injections.clear()


def injected_answer(injection: Injection) -> Answer:
    """The answer of an injected failure: a §5.2 JSON error, or a plain-text HTTP error."""
    assert injection.status is not None
    headers: dict[str, str] = {"Cache-Control": "no-store"}
    if injection.retry_after is not None:
        headers["Retry-After"] = injection.retry_after
    if injection.error is not None:
        data: dict[str, str] = {"error": injection.error}
        if injection.description is not None:
            data["error_description"] = injection.description
        headers["Content-Type"] = "application/json"
        return injection.status, headers, json.dumps(data).encode()
    headers["Content-Type"] = "text/plain; charset=utf-8"
    text = f"{injection.status} {phrase(injection.status)} (injected by the test)\n"
    return injection.status, headers, text.encode()
