"""The small pieces every endpoint of the local server shares: answers, JSON bodies, WSGI input."""

from __future__ import annotations

import http
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["Answer", "headers_of", "json_answer", "oauth_answer", "phrase", "text_of"]

#: What an endpoint returns: ``(status, headers, body)``.
Answer = tuple[int, dict[str, str], bytes]


def headers_of(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request headers of a WSGI ``environ`` (names in ``Title-Case``)."""
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").title()] = value
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    return headers


def text_of(body: bytes) -> str:
    """A request body as text (UTF-8, undecodable bytes replaced)."""
    return body.decode("utf-8", errors="replace")


def json_answer(status: int, data: Any) -> Answer:
    """An answer with a JSON body."""
    return status, {"Content-Type": "application/json"}, json.dumps(data).encode()


def oauth_answer(headers: Mapping[str, str], body: str | None, status: int) -> Answer:
    """An answer from what oauthlib's server endpoints return (JSON unless they said otherwise)."""
    out = dict(headers or {})
    payload = (body or "").encode("utf-8")
    if payload and not any(k.lower() == "content-type" for k in out):
        out["Content-Type"] = "application/json"
    return status, out, payload


def phrase(status: int) -> str:
    """The reason phrase of an HTTP status (``"Unknown"`` for a code outside the standard)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
