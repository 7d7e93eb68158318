"""An independent DPoP implementation for the tests, written from RFC 9449 with jwcrypto.

It shares no code with reqcc (it must not import ``reqcc.dpop`` or ``reqcc.testing.dpop``):
reqcc's proofs are checked by :func:`verify_proof`, and reqcc's server-side verifier is fed
proofs made by :func:`sign_proof`, so that neither side is only checked by itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from jwcrypto import jwk, jws
from jwcrypto.common import JWException

#: RFC 9449 §4.2: "alg" is an asymmetric JWS algorithm (never "none", never a MAC).
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
#: JWK members that are private key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2).
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
# RFC 3986 Appendix B: the regular expression that splits a URI reference into its parts.
_URI = re.compile(r"^(([^:/?#]+):)?(//([^/?#]*))?([^?#]*)(\?([^#]*))?(#(.*))?")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


class Rejected(Exception):
    """The reference refuses a proof; ``reason`` names the RFC 9449 §4.3 check."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS (a proof, a JWT), decoded without any check: to look, not to trust."""
    return dict(json.loads(b64url_decode(token.split(".")[0])))


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a compact JWS (a proof, a JWT), decoded without any check: to look, not to trust."""
    return dict(json.loads(b64url_decode(token.split(".")[1])))


def reference_htu(url: str) -> str:
    """The target URI of RFC 9110 §7.1 without query and fragment, normalized per RFC 3986 §6.2.2-6.2.3."""
    match = _URI.match(url)
    assert match is not None
    scheme = (match.group(2) or "").lower()
    authority = match.group(4) or ""
    authority = authority.rpartition("@")[2]  # no userinfo in a target URI
    if authority.startswith("["):
        host, _, rest = authority.partition("]")
        host += "]"
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = authority.partition(":")
    host = host.lower()
    if port and port.lstrip("0") != _DEFAULT_PORTS.get(scheme):
        host += ":" + str(int(port))
    return f"{scheme}://{host}{match.group(5) or '/'}"


def reference_ath(access_token: str) -> str:
    """RFC 9449 §4.2: base64url of the SHA-256 hash of the ASCII encoding of the token."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest())


def reference_thumbprint(public_jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint, computed by jwcrypto."""
    return str(jwk.JWK(**dict(public_jwk)).thumbprint())


def verify_proof(
    proof: str,
    *,
    method: str,
    url: str,
    now: float,
    access_token: str | None = None,
    nonce: str | None = None,
    max_age: float = 300,
) -> dict[str, Any]:
    """Check ``proof`` as RFC 9449 §4.3 lists; return its claims plus ``"jkt"`` and ``"header"``."""
    parts = proof.split(".")
    if len(parts) != 3:
        raise Rejected("malformed")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except ValueError as exc:
        raise Rejected("malformed") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise Rejected("malformed")
    if header.get("typ") != "dpop+jwt":
        raise Rejected("typ")
    alg = header.get("alg")
    if alg not in ASYMMETRIC:
        raise Rejected("alg")
    public = header.get("jwk")
    if not isinstance(public, dict):
        raise Rejected("jwk")
    if PRIVATE_MEMBERS & set(public):
        raise Rejected("private_key")
    key = jwk.JWK(**public)
    if key.has_private:
        raise Rejected("private_key")
    verifier = jws.JWS()
    verifier.allowed_algs = [alg]
    try:
        verifier.deserialize(proof)
        verifier.verify(key, alg=alg)
    except JWException as exc:
        raise Rejected("signature") from exc
    for name in ("jti", "htm", "htu", "iat"):
        if name not in claims:
            raise Rejected("claims")
    if not isinstance(claims["jti"], str) or len(claims["jti"]) < 16:  # enough entropy to be unique
        raise Rejected("jti")
    if claims["htm"] != method:
        raise Rejected("htm")
    if claims["htu"] != reference_htu(claims["htu"]) or claims["htu"] != reference_htu(url):
        raise Rejected("htu")
    if nonce is not None and claims.get("nonce") != nonce:
        raise Rejected("nonce")
    if nonce is None and "nonce" in claims:
        raise Rejected("nonce")
    if not isinstance(claims["iat"], int) or not now - max_age <= claims["iat"] <= now + 5:
        raise Rejected("iat")
    if access_token is not None and claims.get("ath") != reference_ath(access_token):
        raise Rejected("ath")
    if access_token is None and "ath" in claims:
        raise Rejected("ath")
    return {**claims, "jkt": key.thumbprint(), "header": header}


def sign_proof(header: Mapping[str, Any], claims: Mapping[str, Any], key: jwk.JWK) -> str:
    """Return a compact JWS of ``claims`` with the protected ``header``, signed by jwcrypto with ``key``."""
    signer = jws.JWS(json.dumps(dict(claims)).encode("utf-8"))
    signer.allowed_algs = [header["alg"]]
    signer.add_signature(key, None, protected=json.dumps(dict(header)))
    return str(signer.serialize(compact=True))


def unsigned_proof(header: Mapping[str, Any], claims: Mapping[str, Any], signature: bytes = b"") -> str:
    """Return ``header.claims.signature`` with the given signature bytes (for ``alg: none`` forgeries)."""
    return ".".join(
        (
            b64url(json.dumps(dict(header)).encode()),
            b64url(json.dumps(dict(claims)).encode()),
            b64url(signature),
        )
    )
