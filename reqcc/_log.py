"""The package's one logger and the helpers that keep secrets out of what it writes."""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

#: The only logger reqcc writes to.
log = logging.getLogger("reqcc")

_SENSITIVE_JSON_FIELD = re.compile(
    r'("(?:access_token|refresh_token|id_token|client_secret|client_assertion|assertion|password)"'
    # The string as an "unrolled loop": linear time and constant memory on a hostile body
    # (the alternation form took ~170 bytes of regex stack per character of an unterminated
    # string). An unterminated string (a cut body) is hidden up to the end.
    r'\s*:\s*)"[^"\\]*(?:\\.[^"\\]*)*"?',
    re.IGNORECASE,
)
_SENSITIVE_FORM_FIELD = re.compile(
    r"((?:access_token|refresh_token|id_token|client_secret|client_assertion|assertion|password)=)[^&\s]*",
    re.IGNORECASE,
)
_PERCENT = re.compile(r"%[0-9A-F]{2}")
_JSON_ESCAPE = re.compile(r"\\u[0-9a-f]{4}")
# Only at the start of a run of base64url characters: "eyJeyJeyJ…" would be quadratic otherwise.
_JWT = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


def fingerprint(secret: str) -> str:
    """Return a short, stable, non-reversible tag for ``secret`` (8 hex digits of SHA-256)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:8]


def echo_forms(secret: str) -> list[str]:
    """Return the forms in which a server may echo ``secret``, longest first.

    Raw, JSON-escaped (``\\"``, ``\\uXXXX`` with and without ASCII escaping), HTML-escaped,
    percent-encoded (``%2F``, and ``+`` for spaces as in a form body), in both hex cases.
    """
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        html.escape(secret),
        html.escape(secret, quote=False),
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret, safe=""),
        quote_plus(secret, safe="/"),
    }
    forms |= {_PERCENT.sub(lambda m: m.group().lower(), f) for f in forms}
    forms |= {_JSON_ESCAPE.sub(lambda m: m.group().upper().replace("\\U", "\\u"), f) for f in forms}
    forms |= {f.replace("&#x27;", "&#39;") for f in forms}
    return sorted(forms, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with known secrets and token-like values replaced by ``***``.

    A secret is found in every form a server may echo it in (see :func:`echo_forms`).
    """
    for secret in secrets:
        if secret and len(secret) >= 3:
            for form in echo_forms(secret):
                text = text.replace(form, "***")
    text = _SENSITIVE_JSON_FIELD.sub(r'\1"***"', text)
    text = _SENSITIVE_FORM_FIELD.sub(r"\1***", text)
    return _JWT.sub("***", text)


def excerpt(text: str, secrets: Iterable[str | None] = (), limit: int = 200) -> str:
    """Return a redacted, single-line excerpt of at most ``limit`` characters of ``text``."""
    flat = " ".join(redact(text, secrets).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
