"""JWT client assertions: ``client_secret_jwt`` and ``private_key_jwt`` (RFC 7523 §2.2, OIDC Core §9).

Each token request carries a freshly signed assertion::

    client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
    client_assertion=<JWT: iss = sub = client_id, aud = token URL, jti, iat, exp>

Signing uses PyJWT (``pip install 'reqcc[jwt]'``, which brings ``PyJWT[crypto]``). This
module imports without it; building a method without it raises a
:class:`~reqcc.ConfigurationError` that names the extra.

The key is parsed once, at construction, into a ``cryptography`` key object (or HMAC
bytes); the PEM text or JWK dict given is not kept, and no repr, log record or error
message carries the key, the secret or an assertion.
"""

from __future__ import annotations

import secrets as _secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, quote_plus

from .auth_base import AuthParts, ClientAuth
from .errors import ConfigurationError, ReqccError

try:  # the optional dependency
    import jwt as _jwt
    from jwt.algorithms import has_crypto as _has_crypto
except ImportError:  # pragma: no cover - exercised by simulating the missing package
    _jwt = None  # type: ignore[assignment]
    _has_crypto = False

__all__ = [
    "ASSERTION_TYPE",
    "DEFAULT_ASSERTION_LIFETIME",
    "JWTAssertionAuth",
    "ClientSecretJWT",
    "PrivateKeyJWT",
]

#: The ``client_assertion_type`` of a JWT assertion (RFC 7523 §2.2).
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Seconds from ``iat`` to ``exp`` of an assertion: it is used once, right away.
DEFAULT_ASSERTION_LIFETIME = 60.0

_INSTALL_HINT = "pip install 'reqcc[jwt]'"
_HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
_ASYMMETRIC_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES256K", "ES384", "ES512", "EdDSA",
)


def _require_pyjwt(method: str, *, crypto: bool) -> Any:
    if _jwt is None:
        raise ConfigurationError(
            f"auth_method={method!r} needs PyJWT, which is not installed: {_INSTALL_HINT}"
        )
    if crypto and not _has_crypto:
        raise ConfigurationError(
            f"auth_method={method!r} needs the 'cryptography' package for asymmetric keys: {_INSTALL_HINT}"
        )
    return _jwt


def _check_audience(audience: str | Sequence[str] | None) -> str | list[str] | None:
    if audience is None:
        return None
    if isinstance(audience, str):
        if not audience:
            raise ConfigurationError("assertion_audience must be a non-empty string (or a list of them)")
        return audience
    if isinstance(audience, Sequence) and audience and all(isinstance(a, str) and a for a in audience):
        return list(audience)
    raise ConfigurationError("assertion_audience must be a non-empty string (or a list of them)")


def _key_kind(key: Any) -> str:
    """Return a hint such as `` (an EC key: use ES256, …)`` naming the algorithms that fit ``key``."""
    try:
        from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
    except ImportError:  # pragma: no cover - HMAC only
        return ""
    if isinstance(key, rsa.RSAPrivateKey):
        return " (an RSA key: use RS256, RS384, RS512 or PS256, PS384, PS512)"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return " (an EC key: use ES256, ES384, ES512 or ES256K, matching its curve)"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return " (an Ed25519/Ed448 key: use EdDSA)"
    return ""


class JWTAssertionAuth(ClientAuth):
    """Base of the JWT client-assertion methods: builds and signs one assertion per request.

    :param client_id: the client identifier, sent as ``iss`` and ``sub``.
    :param algorithm: the JWS ``alg``.
    :param audience: the ``aud`` claim (default: the token URL of each request).
    :param lifetime: seconds from ``iat`` to ``exp``.
    :param key_id: a ``kid`` header naming the key among those the server knows.
    :param clock: the wall clock in Unix seconds that stamps ``iat`` and ``exp``.
    """

    def __init__(
        self,
        client_id: str,
        *,
        algorithm: str,
        audience: str | Sequence[str] | None = None,
        lifetime: float = DEFAULT_ASSERTION_LIFETIME,
        key_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(client_id)
        if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or not 0 < lifetime <= 3600:
            raise ConfigurationError(f"assertion lifetime must be seconds in (0, 3600], got {lifetime!r}")
        if key_id is not None and (not isinstance(key_id, str) or not key_id):
            raise ConfigurationError("key_id must be a non-empty string")
        if not callable(clock):
            raise ConfigurationError("clock must be callable")
        self.algorithm = algorithm
        self.audience = _check_audience(audience)
        self.lifetime = float(lifetime)
        self.key_id = key_id
        self._clock = clock
        self._key: Any = None  # set by the subclass: cryptography key object or HMAC bytes

    def claims(self, token_url: str) -> dict[str, Any]:
        """Return the claims of a new assertion for a request to ``token_url``.

        No ``nbf`` (optional in RFC 7523): set to "now", servers whose clock trails the
        client's refuse it (idpyoidc refuses ``nbf`` = ``iat``). contract item 35.
        """
        now = int(self._clock())
        return {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.audience if self.audience is not None else token_url,
            "jti": _secrets.token_urlsafe(24),
            "iat": now,
            "exp": now + max(1, int(self.lifetime)),
        }

    def assertion(self, token_url: str) -> str:
        """Return a newly signed assertion for a request to ``token_url``."""
        try:
            return self._sign(self.claims(token_url))
        except Exception as exc:  # the library's message may quote the key: keep only its type
            raise ReqccError(
                f"signing the client assertion with {self.algorithm} failed ({type(exc).__name__})"
            ) from None

    def _sign(self, claims: dict[str, Any]) -> str:
        assert _jwt is not None  # checked at construction
        headers = {"kid": self.key_id} if self.key_id else None
        token: str = _jwt.encode(claims, self._key, algorithm=self.algorithm, headers=headers)
        return token

    def prepare(self, token_url: str) -> AuthParts:
        # client_id rides along: RFC 7521 §4.2 allows it, and some servers require it.
        return AuthParts(
            form={
                "client_id": self.client_id,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.assertion(token_url),
            }
        )

    def _check_signs(self, what: str) -> None:
        """Sign one throw-away assertion so that a bad key fails now, not at the first request."""
        try:
            self._sign(self.claims("https://reqcc.invalid/token"))
        except Exception as exc:  # the library's message may quote the key: keep only its type
            raise ConfigurationError(
                f"{what}{_key_kind(self._key)} cannot sign with assertion_algorithm={self.algorithm!r} "
                f"({type(exc).__name__}); check the key and the algorithm"
            ) from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client_id={self.client_id!r}, algorithm={self.algorithm!r})"


class ClientSecretJWT(JWTAssertionAuth):
    """``client_secret_jwt``: an assertion signed with HMAC keyed by the client secret.

    :param client_secret: the shared secret (the HMAC key, UTF-8).
    :param algorithm: ``HS256`` (default), ``HS384`` or ``HS512``. PyJWT warns
        (``InsecureKeyLengthWarning``) when the secret is shorter than the hash.
    """

    method = "client_secret_jwt"

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        algorithm: str | None = None,
        audience: str | Sequence[str] | None = None,
        lifetime: float = DEFAULT_ASSERTION_LIFETIME,
        key_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        algorithm = "HS256" if algorithm is None else algorithm
        if algorithm not in _HMAC_ALGORITHMS:
            raise ConfigurationError(
                f"assertion_algorithm for client_secret_jwt must be one of {', '.join(_HMAC_ALGORITHMS)}, "
                f"got {algorithm!r} (an asymmetric key means auth_method='private_key_jwt')"
            )
        if not isinstance(client_secret, str) or not client_secret:
            raise ConfigurationError("client_secret is required for auth_method='client_secret_jwt'")
        _require_pyjwt(self.method, crypto=False)
        super().__init__(
            client_id, algorithm=algorithm, audience=audience, lifetime=lifetime, key_id=key_id, clock=clock
        )
        self._key = client_secret.encode("utf-8")
        self._check_signs("client_secret")

    def secrets(self) -> tuple[str, ...]:
        secret = self._key.decode("utf-8")
        return (secret, quote(secret, safe=""), quote_plus(secret, safe=""))


class PrivateKeyJWT(JWTAssertionAuth):
    """``private_key_jwt``: an assertion signed with the client's private key.

    :param private_key: a PEM string, PEM bytes (unencrypted PKCS#8 or traditional) or a
        JWK dict holding the private part. Its ``kid``, if any, goes into the header.
    :param algorithm: the JWS ``alg``; default: the JWK's ``alg`` (or the one its key type
        implies) for a JWK, ``RS256`` for PEM.
    """

    method = "private_key_jwt"

    def __init__(
        self,
        client_id: str,
        private_key: str | bytes | Mapping[str, Any],
        *,
        algorithm: str | None = None,
        audience: str | Sequence[str] | None = None,
        lifetime: float = DEFAULT_ASSERTION_LIFETIME,
        key_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if algorithm is not None and algorithm not in _ASYMMETRIC_ALGORITHMS:
            raise ConfigurationError(
                "assertion_algorithm for private_key_jwt must be one of "
                f"{', '.join(_ASYMMETRIC_ALGORITHMS)}, got {algorithm!r} "
                "(a shared secret means auth_method='client_secret_jwt')"
            )
        jwt = _require_pyjwt(self.method, crypto=True)
        if isinstance(private_key, Mapping):
            try:
                jwk = jwt.PyJWK(dict(private_key), algorithm=algorithm)
            except Exception as exc:
                raise ConfigurationError(
                    f"private_key is not a usable private JWK ({type(exc).__name__}); it needs 'kty' and the "
                    "private members (such as 'd')"
                ) from None
            key: Any = jwk.key
            algorithm = algorithm or jwk.algorithm_name
            kid = private_key.get("kid")
            key_id = key_id or (kid if isinstance(kid, str) and kid else None)
        elif isinstance(private_key, (str, bytes)):
            pem = private_key.encode("utf-8") if isinstance(private_key, str) else private_key
            if b"-----BEGIN" not in pem:
                raise ConfigurationError(
                    "private_key must be PEM text (-----BEGIN … PRIVATE KEY-----) or a JWK dict"
                )
            key = self._load_pem(pem)
            algorithm = algorithm or "RS256"
        else:
            raise ConfigurationError(
                f"private_key must be a PEM str, PEM bytes or a JWK dict, got {type(private_key).__name__}"
            )
        if algorithm not in _ASYMMETRIC_ALGORITHMS:
            raise ConfigurationError(f"private_key_jwt cannot sign with the JWK's algorithm {algorithm!r}")
        if not hasattr(key, "sign"):
            raise ConfigurationError(
                "private_key holds a public key only; private_key_jwt needs the private key"
            )
        super().__init__(
            client_id, algorithm=algorithm, audience=audience, lifetime=lifetime, key_id=key_id, clock=clock
        )
        self._key = key
        self._check_signs("private_key")

    @staticmethod
    def _load_pem(pem: bytes) -> Any:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            return load_pem_private_key(pem, password=None)
        except TypeError:
            raise ConfigurationError(
                "private_key is encrypted; decrypt it first (cryptography's load_pem_private_key with "
                "the password) and pass the key as unencrypted PEM or a JWK"
            ) from None
        except Exception as exc:
            raise ConfigurationError(
                f"private_key is not a readable PEM private key ({type(exc).__name__})"
            ) from None
