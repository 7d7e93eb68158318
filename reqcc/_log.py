"""The package's one logger and the helpers that keep secrets out of what it writes."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable

#: The only logger reqcc writes to.
log = logging.getLogger("reqcc")

_SENSITIVE_JSON_FIELD = re.compile(
    r'("(?:access_token|refresh_token|id_token|client_secret|client_assertion|assertion|password)"'
    r'\s*:\s*)"(?:[^"\\]|\\.)*"',
    re.IGNORECASE,
)
_SENSITIVE_FORM_FIELD = re.compile(
    r"((?:access_token|refresh_token|id_token|client_secret|client_assertion|assertion|password)=)[^&\s]*",
    re.IGNORECASE,
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


def fingerprint(secret: str) -> str:
    """Return a short, stable, non-reversible tag for ``secret`` (8 hex digits of SHA-256)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:8]


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with known secrets and token-like values replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    text = _SENSITIVE_JSON_FIELD.sub(r'\1"***"', text)
    text = _SENSITIVE_FORM_FIELD.sub(r"\1***", text)
    return _JWT.sub("***", text)


def excerpt(text: str, secrets: Iterable[str | None] = (), limit: int = 200) -> str:
    """Return a redacted, single-line excerpt of at most ``limit`` characters of ``text``."""
    flat = " ".join(redact(text, secrets).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
