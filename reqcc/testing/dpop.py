"""The server side of DPoP (RFC 9449): checking proofs, handing out nonces.

Used by :class:`reqcc.testing.LocalAuthorizationServer` at its token endpoint and its
protected resource, so that reqcc (and its users) test DPoP clients against a server that
checks every item of RFC 9449 §4.3:

1. exactly one ``DPoP`` header; 2. a well-formed JWT; 3. every required claim;
4. ``typ`` is ``dpop+jwt``; 5. ``alg`` is an allowed asymmetric algorithm (never ``none``
or a MAC); 6. the signature verifies with the header's ``jwk``; 7. that ``jwk`` has no
private member; 8. ``htm`` is the request's method; 9. ``htu`` is its URI, ignoring query
and fragment; 10. ``nonce`` is the server's current one, when the server demands one;
11. ``iat`` is within the accepted window; 12. with an access token: ``ath`` is its hash
and the token is bound (``cnf.jkt``) to the proof's key. Plus §11.1: a ``jti`` is
accepted once (a bounded replay cache).

A failed check raises :class:`DPoPProofError` naming the check; a passed proof returns a
:class:`VerifiedProof` with the key's thumbprint, which a token endpoint puts into the
token's ``cnf.jkt``.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..dpop import (
    DPOP_PROOF_TYPE,
    PRIVATE_JWK_MEMBERS,
    DPoPError,
    access_token_hash,
    jwk_thumbprint,
    normalize_htu,
)
from ..errors import ConfigurationError, ReqccError

__all__ = [
    "ALLOWED_ALGORITHMS",
    "DPoPProofError",
    "DPoPProofVerifier",
    "ProofCheck",
    "ServerNonces",
    "VerifiedProof",
    "dpop_challenge",
]

#: The algorithms a verifier accepts by default: every asymmetric JWS algorithm DPoP clients use.
ALLOWED_ALGORITHMS = (
    "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA",
)
_ALGORITHM_KEY_TYPES = {
    "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
    "PS256": ("RSA", None), "PS384": ("RSA", None), "PS512": ("RSA", None),
    "RS256": ("RSA", None), "RS384": ("RSA", None), "RS512": ("RSA", None),
    "EdDSA": ("OKP", None),
}
_MIN_RSA_BITS = 2048
_MAX_PROOF_LENGTH = 16 * 1024
_MAX_JTI_LENGTH = 256


class ProofCheck(str, Enum):
    """The RFC 9449 §4.3 check a proof failed."""

    HEADER = "header"  #: not exactly one DPoP header
    MALFORMED = "malformed"  #: not a well-formed JWT
    CLAIMS = "claims"  #: a required claim is missing or of the wrong type
    TYP = "typ"  #: typ is not dpop+jwt
    ALG = "alg"  #: alg is not an allowed asymmetric algorithm, or does not fit the key
    SIGNATURE = "signature"  #: the signature does not verify with the header's jwk
    PRIVATE_KEY = "private_key"  #: the header's jwk carries private key material
    HTM = "htm"  #: htm is not the request's method
    HTU = "htu"  #: htu is not the request's URI
    NONCE = "nonce"  #: the nonce is missing or not the server's current one
    IAT = "iat"  #: iat is outside the accepted window
    REPLAY = "jti"  #: the jti was seen before
    ATH = "ath"  #: ath is missing or is not the hash of the presented token
    KEY_BINDING = "key_binding"  #: the token is bound to another key


class DPoPProofError(ReqccError):
    """A DPoP proof failed a check of RFC 9449 §4.3.

    :ivar check: the :class:`ProofCheck` that failed.
    :ivar error: the OAuth error code to answer with: ``use_dpop_nonce`` for a missing or
        stale nonce (the client retries with the new one), else ``invalid_dpop_proof``.
    """

    def __init__(self, check: ProofCheck, message: str) -> None:
        super().__init__(message)
        self.check = check
        self.error = "use_dpop_nonce" if check is ProofCheck.NONCE else "invalid_dpop_proof"


@dataclass(frozen=True)
class VerifiedProof:
    """A proof that passed every check.

    :ivar jkt: the RFC 7638 thumbprint of the proof's key (the ``cnf.jkt`` to bind a token to).
    :ivar jwk: the proof's public key.
    """

    jkt: str
    alg: str
    jti: str
    htm: str
    htu: str
    iat: float
    nonce: str | None = None
    ath: str | None = None
    jwk: Mapping[str, Any] = field(default_factory=dict, repr=False)


def dpop_challenge(
    error: str | None = None, description: str | None = None, algorithms: Iterable[str] = ALLOWED_ALGORITHMS
) -> str:
    """Return a ``WWW-Authenticate`` challenge for the DPoP scheme (RFC 9449 §7.1).

    For example ``DPoP error="use_dpop_nonce", error_description="…", algs="ES256 PS256"``.
    """
    params = []
    if error:
        params.append(f'error="{error}"')
    if description:
        params.append('error_description="{}"'.format(description.replace("\\", "\\\\").replace('"', '\\"')))
    params.append('algs="{}"'.format(" ".join(algorithms)))
    return "DPoP " + ", ".join(params)


class ServerNonces:
    """The nonces a server hands out in ``DPoP-Nonce`` (RFC 9449 §8, §9), thread-safe.

    :meth:`current` returns the nonce to send, making a new one when it is older than
    ``lifetime`` seconds; :meth:`is_valid` accepts the current nonce and the one before it,
    so a client that raced a rotation is not turned away twice.

    :param lifetime: seconds a nonce is handed out before the next one replaces it.
    :param clock: the wall clock in Unix seconds.
    """

    def __init__(self, *, lifetime: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or lifetime <= 0:
            raise ConfigurationError(f"nonce lifetime must be positive seconds, got {lifetime!r}")
        self.lifetime = float(lifetime)
        self._clock = clock
        self._lock = threading.Lock()
        self._current = secrets.token_urlsafe(16)
        self._previous: str | None = None
        self._since = clock()

    def current(self) -> str:
        """Return the nonce to hand out now."""
        with self._lock:
            if self._clock() - self._since >= self.lifetime:
                self._rotate_locked()
            return self._current

    def rotate(self) -> str:
        """Replace the current nonce with a new one and return it; the old one stays valid one more round."""
        with self._lock:
            self._rotate_locked()
            return self._current

    def is_valid(self, nonce: str) -> bool:
        """Return whether ``nonce`` is the current nonce or the one before it."""
        with self._lock:
            candidates = [self._current] if self._previous is None else [self._current, self._previous]
        return any(hmac.compare_digest(nonce.encode(), c.encode()) for c in candidates)

    def _rotate_locked(self) -> None:
        self._previous, self._current = self._current, secrets.token_urlsafe(16)
        self._since = self._clock()

    def __repr__(self) -> str:
        return f"ServerNonces(lifetime={self.lifetime})"


class DPoPProofVerifier:
    """Checks DPoP proofs as RFC 9449 §4.3 lists; thread-safe.

    :param algorithms: the ``alg`` values accepted (asymmetric ones only).
    :param max_age: seconds a proof's ``iat`` may lie in the past.
    :param leeway: seconds a proof's ``iat`` may lie in the future (clock skew).
    :param replay_cache_size: the number of ``jti`` values remembered; the oldest are
        forgotten first. Entries also expire once their proof would be too old anyway.
    :param clock: the wall clock in Unix seconds.
    """

    def __init__(
        self,
        *,
        algorithms: Sequence[str] = ALLOWED_ALGORITHMS,
        max_age: float = 60.0,
        leeway: float = 5.0,
        replay_cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        unknown = [a for a in algorithms if a not in _ALGORITHM_KEY_TYPES]
        if unknown or not algorithms:
            raise ConfigurationError(
                "DPoP algorithms must be asymmetric ones among "
                f"{', '.join(ALLOWED_ALGORITHMS)}, got {unknown!r}"
            )
        if max_age <= 0 or leeway < 0:
            raise ConfigurationError("max_age must be positive and leeway not negative")
        if replay_cache_size < 1:
            raise ConfigurationError("replay_cache_size must be at least 1")
        self.algorithms = tuple(algorithms)
        self.max_age = float(max_age)
        self.leeway = float(leeway)
        self.replay_cache_size = replay_cache_size
        self._clock = clock
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()  # (htu, jti) -> forget after
        self._lock = threading.Lock()

    def verify(
        self,
        proofs: str | Sequence[str] | None,
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        jkt: str | None = None,
        nonce: str | ServerNonces | None = None,
    ) -> VerifiedProof:
        """Check the proof(s) a request carried; return the verified proof.

        :param proofs: the request's ``DPoP`` header values (all of them), or ``None``.
        :param method: the request's method.
        :param url: the request's full URL as the server sees it.
        :param access_token: the DPoP token the request presented (at a protected resource).
        :param jkt: the thumbprint the presented token is bound to (its ``cnf.jkt``).
        :param nonce: the server's nonce (or :class:`ServerNonces`) when it demands one.
        :raises DPoPProofError: naming the failed check.
        """
        import jwt

        values = [proofs] if isinstance(proofs, str) else list(proofs or ())
        if len(values) != 1:
            raise DPoPProofError(ProofCheck.HEADER, f"expected exactly one DPoP header, got {len(values)}")
        token = values[0].strip()
        if len(token) > _MAX_PROOF_LENGTH or not token.isascii() or token.count(".") != 2:
            raise DPoPProofError(ProofCheck.MALFORMED, "the DPoP header is not a compact JWS")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise DPoPProofError(ProofCheck.MALFORMED, "the DPoP proof's header is not valid JSON") from None
        if header.get("typ") != DPOP_PROOF_TYPE:
            raise DPoPProofError(ProofCheck.TYP, f"typ must be {DPOP_PROOF_TYPE!r}")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise DPoPProofError(ProofCheck.ALG, f"alg {alg!r} is not one of {', '.join(self.algorithms)}")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise DPoPProofError(ProofCheck.CLAIMS, "the header has no jwk object")
        if PRIVATE_JWK_MEMBERS & set(jwk):
            raise DPoPProofError(ProofCheck.PRIVATE_KEY, "the header's jwk carries private key material")
        if jwk.get("kty") not in ("EC", "RSA", "OKP"):
            raise DPoPProofError(ProofCheck.MALFORMED, "the jwk is not an EC, RSA or OKP public key")
        kty, crv = _ALGORITHM_KEY_TYPES[alg]
        if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
            raise DPoPProofError(ProofCheck.ALG, f"alg {alg} does not fit the jwk's {jwk.get('kty')!r} key")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg).key
            thumbprint = jwk_thumbprint(jwk)
        except (jwt.PyJWTError, ValueError, TypeError):
            raise DPoPProofError(ProofCheck.MALFORMED, "the jwk is not a usable public key") from None
        if kty == "RSA" and getattr(key, "key_size", 0) < _MIN_RSA_BITS:
            raise DPoPProofError(ProofCheck.ALG, f"RSA keys must have at least {_MIN_RSA_BITS} bits")
        try:
            decoded = jwt.api_jws.PyJWS().decode_complete(token, key, algorithms=[alg])
        except jwt.InvalidSignatureError:
            raise DPoPProofError(ProofCheck.SIGNATURE, "the signature does not verify with the jwk") from None
        except jwt.PyJWTError:
            raise DPoPProofError(ProofCheck.MALFORMED, "the DPoP proof is not a well-formed JWS") from None
        try:
            claims = json.loads(decoded["payload"])
        except (ValueError, UnicodeDecodeError):
            raise DPoPProofError(ProofCheck.MALFORMED, "the DPoP proof's payload is not JSON") from None
        if not isinstance(claims, dict):
            raise DPoPProofError(ProofCheck.MALFORMED, "the DPoP proof's payload is not a JSON object")
        return self._check_claims(claims, alg, jwk, thumbprint, method, url, access_token, jkt, nonce)

    def _check_claims(
        self,
        claims: dict[str, Any],
        alg: str,
        jwk: Mapping[str, Any],
        thumbprint: str,
        method: str,
        url: str,
        access_token: str | None,
        jkt: str | None,
        nonce: str | ServerNonces | None,
    ) -> VerifiedProof:
        jti, htm, htu, iat = claims.get("jti"), claims.get("htm"), claims.get("htu"), claims.get("iat")
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI_LENGTH:
            raise DPoPProofError(ProofCheck.CLAIMS, "jti is missing or not a short string")
        if not isinstance(htm, str) or not isinstance(htu, str):
            raise DPoPProofError(ProofCheck.CLAIMS, "htm and htu must be strings")
        if isinstance(iat, bool) or not isinstance(iat, (int, float)):
            raise DPoPProofError(ProofCheck.CLAIMS, "iat is missing or not a number")
        if htm != method:
            raise DPoPProofError(ProofCheck.HTM, f"htm {htm!r} is not the request's method {method!r}")
        try:
            htu_matches = normalize_htu(htu) == normalize_htu(url)
        except DPoPError:
            htu_matches = False
        if not htu_matches:
            raise DPoPProofError(ProofCheck.HTU, "htu is not the request's URI")
        proof_nonce = claims.get("nonce")
        if nonce is not None:
            if not isinstance(proof_nonce, str):
                raise DPoPProofError(ProofCheck.NONCE, "the server requires a nonce in the DPoP proof")
            valid = (
                nonce.is_valid(proof_nonce)
                if isinstance(nonce, ServerNonces)
                else hmac.compare_digest(proof_nonce.encode(), nonce.encode())
            )
            if not valid:
                raise DPoPProofError(ProofCheck.NONCE, "the DPoP proof's nonce is not the current one")
        now = self._clock()
        if not now - self.max_age <= iat <= now + self.leeway:
            raise DPoPProofError(ProofCheck.IAT, "iat is outside the accepted window")
        ath = claims.get("ath")
        if access_token is not None:
            if not isinstance(ath, str):
                raise DPoPProofError(ProofCheck.ATH, "ath is required with an access token")
            if not hmac.compare_digest(ath.encode(), access_token_hash(access_token).encode()):
                raise DPoPProofError(ProofCheck.ATH, "ath is not the hash of the presented access token")
        if jkt is not None and not hmac.compare_digest(jkt.encode(), thumbprint.encode()):
            raise DPoPProofError(ProofCheck.KEY_BINDING, "the access token is bound to another key")
        self._remember(normalize_htu(htu), jti, now)
        return VerifiedProof(
            jkt=thumbprint, alg=alg, jti=jti, htm=htm, htu=htu, iat=iat,
            nonce=proof_nonce if isinstance(proof_nonce, str) else None,
            ath=ath if isinstance(ath, str) else None, jwk=dict(jwk),
        )

    def _remember(self, htu: str, jti: str, now: float) -> None:
        key = (htu, jti)
        with self._lock:
            while self._seen:
                oldest_key, forget_after = next(iter(self._seen.items()))
                if forget_after > now and len(self._seen) < self.replay_cache_size:
                    break
                del self._seen[oldest_key]
            if key in self._seen:
                raise DPoPProofError(ProofCheck.REPLAY, "this jti was used before")
            self._seen[key] = now + self.max_age + self.leeway

    def __repr__(self) -> str:
        return (
            f"DPoPProofVerifier(algorithms={self.algorithms!r}, max_age={self.max_age}, leeway={self.leeway})"
        )
