"""The token store protocol and the key under which a client's token is shared."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from ..errors import ConfigurationError
from ..oauth_token import OAuthToken

__all__ = ["TokenStore", "token_store_key", "check_token_store", "DEFAULT_LEASE_TIMEOUT"]

#: Seconds a lease lasts unless its holder releases it first (a dead holder's lease runs out).
DEFAULT_LEASE_TIMEOUT = 10.0
#: Seconds between two looks at the store while another process holds the lease.
DEFAULT_POLL_INTERVAL = 0.05

# The label the secret's keyed fingerprint is computed over; versioned so that a change of
# the key's recipe never makes two releases share (or misread) each other's entries.
_SECRET_LABEL = b"reqcc token store key v1"


@runtime_checkable
class TokenStore(Protocol):
    """Where the processes of a fleet share one client's token.

    A store holds at most one token per key, and one lease per key: a lock that expires
    by itself ``lease_timeout`` seconds after it was taken, so a holder that dies never
    blocks the others. Implementations raise on an unreachable or broken backend (the
    manager then logs a warning, fetches for itself and tries the store again later);
    unreadable or corrupt *entries* are logged and read as "no token".

    :attr lease_timeout: seconds a lease lasts if it is not released.
    :attr poll_interval: seconds between two reads while waiting for another holder.
    """

    lease_timeout: float
    poll_interval: float

    def read(self, key: str) -> OAuthToken | None:
        """Return the token stored under ``key``, or ``None`` (none, or not readable)."""
        ...

    def write(self, key: str, token: OAuthToken) -> None:
        """Store ``token`` under ``key``, replacing what was there, for its remaining lifetime."""
        ...

    def acquire_lease(self, key: str) -> str | None:
        """Take the lease on ``key`` if nobody holds a live one; return its holder id, else ``None``.

        Never blocks waiting for another holder.
        """
        ...

    def release_lease(self, key: str, holder: str) -> None:
        """Give the lease on ``key`` back, only if ``holder`` still holds it."""
        ...


def check_token_store(store: object) -> TokenStore:
    """Return ``store`` if it implements :class:`TokenStore`, else raise ``ConfigurationError``."""
    if not isinstance(store, TokenStore):
        raise ConfigurationError(
            "token_store must implement reqcc.stores.TokenStore (read, write, acquire_lease, "
            "release_lease, lease_timeout, poll_interval), such as FileTokenStore or RedisTokenStore"
        )
    for name in ("lease_timeout", "poll_interval"):
        value = getattr(store, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigurationError(f"token_store.{name} must be a number of seconds > 0, got {value!r}")
    return store


def token_store_key(
    *,
    token_url: str,
    client_id: str,
    auth_method: str,
    scopes: Iterable[str],
    token_params: Mapping[str, str],
    secrets: Iterable[str],
    key_id: str | None = None,
    dpop_jkt: str | None = None,
) -> str:
    """Return the key under which tokens of this client configuration are shared.

    A SHA-256 digest of what makes two tokens interchangeable: the token URL, the client
    id, the client authentication method, the *sorted* scope set, the extra token
    parameters, and a keyed fingerprint of the client's secret(s) — an HMAC of a fixed
    label keyed by the secret, so the key changes when the secret does but neither the key
    nor the store ever contains the secret. Two clients, or one client after a scope or
    secret change, never share a token. ``key_id`` is the public id of the client's signing
    key (``private_key_jwt``'s ``kid``), so a key rotation that changes it starts a new entry.
    ``dpop_jkt`` is the RFC 7638 thumbprint of the client's DPoP key: a DPoP-bound token is
    useless without its key, so processes share one only when they share the key.
    """
    secret_material = "\x00".join(secrets).encode("utf-8")
    secret_tag = (
        hmac.new(secret_material, _SECRET_LABEL, hashlib.sha256).hexdigest() if secret_material else ""
    )
    identity = {
        "token_url": token_url,
        "client_id": client_id,
        "auth_method": auth_method,
        "scopes": sorted(set(scopes)),
        "token_params": sorted(token_params.items()),
        "secret": secret_tag,
    }
    if key_id is not None:
        identity["key_id"] = key_id
    if dpop_jkt is not None:
        identity["dpop_jkt"] = dpop_jkt
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()
