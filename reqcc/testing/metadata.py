"""The local server's authorization server metadata (RFC 8414 / OpenID Connect Discovery).

:class:`MetadataEndpoint` answers ``GET`` at the well-known URLs of the server's issuer:
``{issuer}/.well-known/openid-configuration`` and the RFC 8414 §3.1 path-aware
``{origin}/.well-known/oauth-authorization-server{issuer path}``. The document names the
server's endpoints and the client authentication methods its token endpoint accepts.
Tests may change fields of it (another ``issuer``, say) and make its next answers fail.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .responses import Answer, json_answer

__all__ = ["AUTH_METHODS_SUPPORTED", "WELL_KNOWN_DOCUMENTS", "MetadataEndpoint", "check_issuer_path"]

#: What the local token endpoint accepts (see :func:`reqcc.testing.clients.client_credentials`).
AUTH_METHODS_SUPPORTED = ("client_secret_basic", "client_secret_post", "none")
#: The well-known documents the server can publish, by their well-known name.
WELL_KNOWN_DOCUMENTS = ("openid-configuration", "oauth-authorization-server")


def check_issuer_path(issuer_path: str) -> str:
    """Validate the ``issuer_path`` keyword: ``""`` or ``/segments`` without a trailing slash."""
    if not isinstance(issuer_path, str):
        raise TypeError("issuer_path must be a string such as '/tenant-a'")
    if issuer_path and (
        not issuer_path.startswith("/")
        or issuer_path.endswith("/")
        or any(c in issuer_path for c in "?#% ")
    ):
        raise ValueError(
            f"issuer_path must be '' or '/segment[/segment…]' (no trailing '/'), got {issuer_path!r}"
        )
    return issuer_path


class MetadataEndpoint:
    """Publishes one issuer's metadata document.

    :param issuer: the issuer identifier (the server's base URL plus its issuer path).
    :param document: returns the document the server publishes now (before overrides).
    :param served: the well-known documents served (a subset of :data:`WELL_KNOWN_DOCUMENTS`).
    """

    def __init__(
        self,
        issuer: str,
        document: Callable[[], dict[str, Any]],
        *,
        served: Iterable[str] = WELL_KNOWN_DOCUMENTS,
    ) -> None:
        served = tuple(served)
        unknown = [name for name in served if name not in WELL_KNOWN_DOCUMENTS]
        if unknown:
            raise ValueError(f"well_known: unknown documents {unknown}; choose from {WELL_KNOWN_DOCUMENTS}")
        self.issuer = issuer
        self.served = served
        self._document = document
        self._lock = threading.Lock()
        self._overrides: dict[str, Any] = {}
        self._failures: list[int] = []  # statuses of the next answers, in order
        self.requests = 0

    def paths(self) -> dict[str, str]:
        """The path of each served document, by its well-known name."""
        issuer_path = urlsplit(self.issuer).path.rstrip("/")
        paths = {
            "openid-configuration": f"{issuer_path}/.well-known/openid-configuration",
            "oauth-authorization-server": f"/.well-known/oauth-authorization-server{issuer_path}",
        }
        return {name: paths[name] for name in self.served}

    def set_fields(self, fields: Mapping[str, Any]) -> None:
        """Publish these fields over the document's own (``None`` removes a field)."""
        with self._lock:
            self._overrides.update(fields)

    def fail(self, times: int, status: int) -> None:
        """Answer the next ``times`` requests with ``status`` and a plain-text body."""
        with self._lock:
            self._failures.extend([status] * times)

    def document(self) -> dict[str, Any]:
        """The document as published now (overrides applied)."""
        with self._lock:
            overrides = dict(self._overrides)
        document = {**self._document(), **overrides}
        return {k: v for k, v in document.items() if v is not None}

    def handle(self, method: str, uri: str, headers: dict[str, str], body: bytes) -> Answer:
        """``GET`` a well-known document."""
        with self._lock:
            self.requests += 1
            status = self._failures.pop(0) if self._failures else None
        if status is not None:
            return status, {"Content-Type": "text/plain"}, b"metadata unavailable (injected)"
        status, response_headers, payload = json_answer(200, self.document())
        response_headers["Cache-Control"] = "max-age=3600"
        return status, response_headers, payload

    def __repr__(self) -> str:
        return f"MetadataEndpoint({self.issuer!r}, served={self.served!r})"
