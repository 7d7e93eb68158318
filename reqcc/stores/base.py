"""The token store protocol and the key under which a client's token is shared."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigurationError
from ..oauth_token import OAuthToken

__all__ = [
    "DEFAULT_LEASE_TIMEOUT",
    "Outage",
    "OutageStore",
    "TokenStore",
    "check_token_store",
    "token_store_key",
]

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


#: The longest an outage record is kept after its next probe was due (a fleet that stopped).
OUTAGE_RECORD_TTL = 300.0
#: The most characters of an outage record's error description that are stored.
_MAX_OUTAGE_ERROR = 400


@dataclass(frozen=True)
class Outage:
    """A token-endpoint outage as the processes sharing a store see it (contract item 29).

    Kept in the store beside the token by the process whose fetch failed, and removed when
    a token is written: while it is there, no process sends a token request before
    ``next_probe``, and the callers of every process get ``error`` meanwhile.

    :ivar next_probe: wall-clock time (Unix seconds) of the fleet's next probe.
    :ivar failed_at: wall-clock time of the failure.
    :ivar error: the failure, described (exception type and a short, redacted message).
    """

    next_probe: float
    failed_at: float
    error: str

    def to_dict(self) -> dict[str, Any]:
        """The record as stored (JSON types)."""
        return {"next_probe": self.next_probe, "failed_at": self.failed_at, "error": self.error}

    @classmethod
    def from_dict(cls, data: object) -> Outage | None:
        """The record stored as ``data``, or ``None`` when it is not one (a corrupt entry is no outage)."""
        if not isinstance(data, dict):
            return None
        next_probe, failed_at, error = data.get("next_probe"), data.get("failed_at"), data.get("error")
        for number in (next_probe, failed_at):
            if not isinstance(number, (int, float)) or isinstance(number, bool) or not math.isfinite(number):
                return None
        if not isinstance(error, str):
            return None
        assert isinstance(next_probe, (int, float)) and isinstance(failed_at, (int, float))
        return cls(float(next_probe), float(failed_at), error[:_MAX_OUTAGE_ERROR])


@runtime_checkable
class OutageStore(Protocol):
    """A :class:`TokenStore` that also keeps the fleet's :class:`Outage` record (optional).

    A store without these methods shares tokens all the same; its processes then probe a
    failing token endpoint each on their own schedule. ``TokenStore.write`` of a token
    removes the record.
    """

    def read_outage(self, key: str) -> Outage | None:
        """Return the outage record stored under ``key``, or ``None``."""
        ...

    def write_outage(self, key: str, outage: Outage) -> None:
        """Store ``outage`` under ``key``, replacing the one there."""
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
