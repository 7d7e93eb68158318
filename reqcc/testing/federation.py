"""Federated credentials on the local server: trusting a platform's JWTs for a client, as Entra does.

A :class:`FederatedCredential` says "a JWT from ``issuer``, for ``subject``, with
``audience``, signed by ``key``, authenticates this client". A token request presents it
as an RFC 7523 client assertion (``client_assertion_type`` ``…:jwt-bearer``, the client's
``client_id`` in the form); :func:`check_federated_assertion` verifies it the way Entra ID
verifies a workload identity's token: the signature with the trusted public key, then
``iss``, ``sub`` and ``aud`` exactly, ``exp`` (required, on the server's clock) and ``nbf``
if present. Verification uses PyJWT, imported only when an assertion arrives
(``reqcc[jwt]``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ASSERTION_ALGORITHMS", "FederatedCredential", "check_federated_assertion"]

#: The signature algorithms a federated assertion may use (asymmetric only: the server
#: holds the platform's public key, never a shared secret).
ASSERTION_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


@dataclass(frozen=True)
class FederatedCredential:
    """A platform issuer's JWTs that the server accepts as one client's credential.

    :param issuer: the ``iss`` of the platform's tokens (e.g. the cluster's service-account
        issuer URL).
    :param subject: their ``sub`` (e.g. ``system:serviceaccount:NAMESPACE:NAME``).
    :param audience: the ``aud`` they must carry (Entra's is ``api://AzureADTokenExchange``).
    :param key: the issuer's public key: PEM (``str``/``bytes``) or a public JWK dict. A
        private key works too (only its public half is used).
    """

    issuer: str
    subject: str
    audience: str
    key: str | bytes | Mapping[str, Any]

    def __repr__(self) -> str:
        return (
            f"FederatedCredential(issuer={self.issuer!r}, subject={self.subject!r}, "
            f"audience={self.audience!r})"
        )


def _public_key(key: str | bytes | Mapping[str, Any]) -> Any:
    import jwt

    if isinstance(key, Mapping):
        return jwt.PyJWK(dict(key)).key
    from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

    pem = key.encode("ascii") if isinstance(key, str) else key
    if b"PRIVATE KEY" in pem:
        return load_pem_private_key(pem, password=None).public_key()
    return load_pem_public_key(pem)


def check_federated_assertion(
    credentials: tuple[FederatedCredential, ...], assertion: str, clock: Callable[[], float]
) -> str | None:
    """Return ``None`` if one of ``credentials`` accepts ``assertion``, else why none does.

    The reason is for the server's error description: it names claims, never the assertion.
    """
    import jwt

    if not credentials:
        return "the client has no federated credential"
    reasons: list[str] = []
    for credential in credentials:
        try:
            claims = jwt.decode(
                assertion,
                _public_key(credential.key),
                algorithms=list(ASSERTION_ALGORITHMS),
                audience=credential.audience,
                issuer=credential.issuer,
                # exp and nbf are checked below (iat is not) on the server's clock (tests inject one).
                options={
                    "require": ["exp", "iss", "sub", "aud"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            reasons.append(type(exc).__name__)
            continue
        now = clock()
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] <= now:
            reasons.append("expired")
        elif isinstance(claims.get("nbf"), (int, float)) and claims["nbf"] > now:
            reasons.append("not yet valid (nbf)")
        elif claims.get("sub") != credential.subject:
            reasons.append("another subject")
        else:
            return None
    return "the client assertion matches no federated credential of the client (" + ", ".join(reasons) + ")"
