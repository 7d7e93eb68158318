"""The local server's shared state: clients, issued tokens, counters, the log, orders, failures.

One lock guards all of it. The oauthlib validator, the token endpoint and the bookstore API
read and change the server only through a :class:`ServerState`.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .clients import RegisteredClient
from .dpop_policy import DPoPPolicy
from .failures import FailureQueue
from .records import Counters, RecordedTokenRequest

__all__ = ["IssuedToken", "ServerState"]


@dataclass
class IssuedToken:
    """An access token the server issued, and what it is good for."""

    client_id: str
    scopes: frozenset[str]
    expires_at: float | None
    revoked: bool = False
    #: The thumbprint of the DPoP key the token is bound to (``cnf.jkt``), or ``None`` (Bearer).
    jkt: str | None = None


class ServerState:
    """Everything the endpoints share, behind :attr:`lock`.

    :param clients: the registered clients, keyed by client id.
    :param token_ttl: the ``expires_in`` of issued tokens (``None``: tokens never expire).
    :param narrow_scopes: grant the allowed part of a request for too many scopes.
    :param token_delay: seconds every token request waits before it is answered.
    :param clock: the server's clock in seconds, for token expiry.
    :param dpop: the server's DPoP settings, verifier and nonces (default: DPoP accepted,
        required of no one, no nonces).
    """

    def __init__(
        self,
        clients: dict[str, RegisteredClient],
        *,
        token_ttl: float | None,
        narrow_scopes: bool,
        token_delay: float,
        clock: Callable[[], float],
        dpop: DPoPPolicy | None = None,
    ) -> None:
        self.lock = threading.Lock()
        self.dpop = dpop if dpop is not None else DPoPPolicy(clock=clock)
        self.clock = clock
        self.token_ttl = token_ttl
        self.narrow_scopes = narrow_scopes
        self.token_delay = token_delay
        self.clients = clients
        self.tokens: dict[str, IssuedToken] = {}
        self.counters = Counters()
        self.records: list[RecordedTokenRequest] = []
        self.orders: list[dict[str, Any]] = []
        self.order_ids = itertools.count(1)
        self.failures = FailureQueue(self.lock)

    def expires_in(self, request: Any) -> float | None:
        """The lifetime of the token about to be issued (oauthlib's ``token_expires_in``)."""
        return self.token_ttl

    def client(self, client_id: str | None) -> RegisteredClient | None:
        """The registered client ``client_id``, or ``None``."""
        if client_id is None:
            return None
        with self.lock:
            return self.clients.get(client_id)

    def save(self, token: Mapping[str, Any], client_id: str, scopes: Iterable[str]) -> None:
        """Remember a token just issued to ``client_id`` for ``scopes``."""
        expires_in = token.get("expires_in")
        expires_at = None if expires_in is None else self.clock() + float(expires_in)
        with self.lock:
            self.tokens[token["access_token"]] = IssuedToken(client_id, frozenset(scopes), expires_at)

    def bind(self, token: str, jkt: str) -> None:
        """Bind the issued ``token`` to the DPoP key whose thumbprint is ``jkt``."""
        with self.lock:
            issued = self.tokens.get(token)
            if issued is not None:
                issued.jkt = jkt

    def bound_key(self, token: str) -> str | None:
        """The thumbprint ``token`` is bound to, or ``None`` (a Bearer token, or unknown)."""
        with self.lock:
            issued = self.tokens.get(token)
            return issued.jkt if issued is not None else None

    def check(self, token: str | None, scopes: Iterable[str]) -> str | None:
        """Return ``None`` if ``token`` is good for ``scopes``, else the RFC 6750 error code."""
        if not token:
            return "missing_token"
        with self.lock:
            issued = self.tokens.get(token)
        if issued is None or issued.revoked:
            return "invalid_token"
        if issued.expires_at is not None and self.clock() >= issued.expires_at:
            return "invalid_token"
        if not set(scopes) <= issued.scopes:
            return "insufficient_scope"
        return None

    def revoke(self, token: str | None) -> int:
        """Revoke ``token`` (``None``: every token). Returns how many were newly revoked."""
        with self.lock:
            if token is None:
                targets = [t for t in self.tokens.values() if not t.revoked]
            else:
                issued = self.tokens.get(token)
                targets = [issued] if issued is not None and not issued.revoked else []
            for issued in targets:
                issued.revoked = True
            self.counters.tokens_revoked += len(targets)
        return len(targets)

    def revoke_for(self, token: str, client_id: str) -> None:
        """Revoke ``token`` at ``client_id``'s request (RFC 7009: only its own tokens)."""
        with self.lock:
            issued = self.tokens.get(token)
            # RFC 7009 §2.1: a client revokes only its own tokens; anything else is ignored.
            if issued is not None and issued.client_id == client_id and not issued.revoked:
                issued.revoked = True
                self.counters.tokens_revoked += 1

    def introspect(self, token: str, client_id: str) -> dict[str, Any] | None:
        """The RFC 7662 claims of an active ``token``, or ``None`` when it is not active."""
        with self.lock:
            issued = self.tokens.get(token)
        if issued is None or self.check(token, []) is not None:
            return None
        claims: dict[str, Any] = {
            "client_id": issued.client_id,
            "scope": " ".join(sorted(issued.scopes)),
            "token_type": "Bearer" if issued.jkt is None else "DPoP",
        }
        if issued.jkt is not None:
            claims["cnf"] = {"jkt": issued.jkt}  # RFC 9449 §6.2
        if issued.expires_at is not None:
            claims["exp"] = int(issued.expires_at)
        return claims
