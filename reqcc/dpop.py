"""DPoP proofs (RFC 9449): the client's key, its proofs, and the server nonces it must echo.

A DPoP-bound access token is useless without the private key it is bound to. The client
proves possession by sending, with every token request and every API request, a fresh
``DPoP`` header: a JWT signed with that key whose header carries the public key::

    header  {"typ": "dpop+jwt", "alg": "ES256", "jwk": {<public key>}}
    claims  {"jti": <unique>, "htm": "POST", "htu": "https://as.example/token", "iat": <now>,
             "nonce": <server nonce, once known>, "ath": <hash of the access token, at the API>}

:class:`DPoPKey` holds the key and makes proofs; :class:`DPoPNonces` remembers the
``DPoP-Nonce`` each origin last sent; :func:`token_endpoint_demands_nonce` and
:func:`resource_demands_nonce` recognise a server's ``use_dpop_nonce`` answer;
:class:`DPoPProver` is the pair a client uses (its key and the nonces it was given).

Keys need ``cryptography`` and PyJWT (``pip install 'reqcc[dpop]'``). This module imports
without them; making a key without them raises a :class:`~reqcc.ConfigurationError` that
names the extra. The private key lives only inside the :class:`DPoPKey` object: no repr,
log record, error message or pickle carries it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets as _secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import fork_safety
from ._urls import origin
from .challenges import parse_www_authenticate as parse_www_authenticate
from .errors import ConfigurationError, ReqccError

__all__ = [
    "DPOP_HEADER",
    "DPOP_NONCE_HEADER",
    "DPOP_PROOF_TYPE",
    "DPOP_ALGORITHMS",
    "DEFAULT_DPOP_ALGORITHM",
    "DPoPError",
    "PRIVATE_JWK_MEMBERS",
    "DPoPKey",
    "DPoPNonces",
    "DPoPProver",
    "access_token_hash",
    "jwk_thumbprint",
    "normalize_htu",
    "is_valid_nonce",
    "parse_www_authenticate",
    "dpop_challenge_error",
    "resource_demands_nonce",
    "token_endpoint_demands_nonce",
]

#: The request header that carries a proof.
DPOP_HEADER = "DPoP"
#: The response header in which a server hands out a nonce (RFC 9449 §8, §9).
DPOP_NONCE_HEADER = "DPoP-Nonce"
#: The ``typ`` header of a DPoP proof (RFC 9449 §4.2).
DPOP_PROOF_TYPE = "dpop+jwt"
#: The algorithm of a key reqcc generates: ES256 (EC P-256), the one every DPoP server supports.
DEFAULT_DPOP_ALGORITHM = "ES256"
#: The JWS algorithms a :class:`DPoPKey` signs with: asymmetric only (RFC 9449 §4.2).
DPOP_ALGORITHMS = ("ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA")

_INSTALL_HINT = "pip install 'reqcc[dpop]'"
_EC_CURVES = {"P-256": ("secp256r1", "ES256", 32), "P-384": ("secp384r1", "ES384", 48),
              "P-521": ("secp521r1", "ES512", 66)}
_EC_ALGORITHMS = {alg: crv for crv, (_, alg, _) in _EC_CURVES.items()}
_RSA_ALGORITHMS = ("PS256", "PS384", "PS512", "RS256", "RS384", "RS512")
#: RSA keys sign PS256 unless told otherwise: FAPI 2.0 (the profile that asks for DPoP) allows
#: PS256, ES256 and EdDSA only, and RSASSA-PSS is the RSA signature scheme without PKCS#1 v1.5's
#: deterministic padding. ``algorithm="RS256"`` (or a JWK's ``"alg": "RS256"``) selects RS256.
_RSA_DEFAULT = "PS256"
_MIN_RSA_BITS = 2048
#: The thumbprint members of each key type, in RFC 7638 §3.2 (lexicographic) order.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
#: JWK members that hold private key material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_NONCE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 9449 §8.1: nonce = 1*NQCHAR
_MAX_NONCE_LENGTH = 2048
_HTM = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 §9.1: method = token


class DPoPError(ReqccError, ValueError):
    """A DPoP proof could not be made: a malformed argument, or the key failed to sign."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64_uint(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return _b64(value.to_bytes(size, "big"))


#: A stateless encoder built once: ``json.dumps`` with non-default arguments builds a new
#: ``JSONEncoder`` on every call, a sizeable share of a proof's non-signing cost.
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _compact_json(value: Mapping[str, Any]) -> bytes:
    return _JSON_ENCODER.encode(value).encode("utf-8")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """Return the RFC 7638 SHA-256 thumbprint of ``jwk``, base64url without padding.

    Only the required public members count (``crv``, ``kty``, ``x``, ``y`` for EC;
    ``e``, ``kty``, ``n`` for RSA; ``crv``, ``kty``, ``x`` for OKP), so a private JWK and
    its public half have the same thumbprint. This is the ``jkt`` a DPoP-bound token's
    ``cnf`` claim carries (RFC 9449 §6.1).

    :raises ValueError: for an unknown ``kty`` or a missing member.
    """
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise ValueError(f"cannot take the thumbprint of a JWK with kty={kty!r} (EC, RSA or OKP)")
    canonical: dict[str, str] = {}
    for name in members:
        value = jwk.get(name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"the JWK lacks its {name!r} member")
        canonical[name] = value
    text = json.dumps(canonical, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return _b64(hashlib.sha256(text.encode("utf-8")).digest())


def access_token_hash(access_token: str) -> str:
    """Return the ``ath`` claim for ``access_token``: base64url(SHA-256(ASCII token)), RFC 9449 §4.2."""
    return _b64(hashlib.sha256(access_token.encode("ascii")).digest())


def normalize_htu(url: str) -> str:
    """Return the ``htu`` claim for a request to ``url``.

    RFC 9449 §4.2: the HTTP target URI without query and fragment. Userinfo is dropped as
    well (it is not part of the target URI, and it may hold a password); scheme and host
    are lower-cased, the scheme's default port is dropped and an empty path becomes ``/``
    (RFC 3986 §6.2.2-6.2.3), so the claim matches what a server reconstructs from the
    request line and ``Host``. The path is kept as sent.

    :raises DPoPError: if ``url`` is not an absolute http(s) URL.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except (ValueError, TypeError, AttributeError):
        raise DPoPError("htu must be an absolute http(s) URL") from None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https") or not host:
        raise DPoPError("htu must be an absolute http(s) URL")
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if port is not None and port != (443 if scheme == "https" else 80):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", "", ""))


def is_valid_nonce(value: object) -> bool:
    """Return whether ``value`` is a usable ``DPoP-Nonce`` value (RFC 9449 §8.1 ``1*NQCHAR``, bounded)."""
    return (
        isinstance(value, str) and 0 < len(value) <= _MAX_NONCE_LENGTH and _NONCE.fullmatch(value) is not None
    )


def _require_crypto() -> None:
    try:
        import cryptography  # noqa: F401
        import jwt  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            f"DPoP needs the 'cryptography' and 'PyJWT' packages, which are not installed: {_INSTALL_HINT}"
        ) from None


class DPoPKey:
    """The private key a DPoP client proves possession of, and the proofs it signs.

    :param key: ``None`` to generate a new EC P-256 key (ES256); else a PEM private key
        (``str`` or ``bytes``, PKCS#8 or traditional, unencrypted), a JWK ``dict`` holding the
        private members, or a ``cryptography`` private key object. EC P-256/P-384/P-521 sign
        ES256/ES384/ES512, Ed25519 and Ed448 sign EdDSA, RSA (2048 bits or more) signs PS256
        by default.
    :param algorithm: the JWS ``alg`` when the key allows several (RSA: ``PS256``, ``PS384``,
        ``PS512``, ``RS256``, ``RS384``, ``RS512``). Default: a JWK's own ``alg`` member, else
        the key type's default.
    :param clock: the wall clock in Unix seconds that stamps each proof's ``iat``.
    :raises ConfigurationError: for a public key, an unreadable or encrypted key, an
        algorithm that does not fit the key, or when ``cryptography``/PyJWT are missing.

    The public JWK, its thumbprint and the encoded proof header are computed once. Each
    :meth:`proof` is new: fresh ``jti``, current ``iat``, own signature. A ``DPoPKey`` is
    safe to share between threads. Its repr shows the algorithm and the thumbprint only,
    and it refuses to be pickled.
    """

    __slots__ = ("_algorithm", "_ath", "_clock", "_header", "_key", "_public_jwk", "_sign", "_thumbprint")

    def __init__(
        self,
        key: str | bytes | Mapping[str, Any] | Any | None = None,
        *,
        algorithm: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _require_crypto()
        if not callable(clock):
            raise ConfigurationError("clock must be callable")
        if algorithm is not None and algorithm not in DPOP_ALGORITHMS:
            raise ConfigurationError(
                f"dpop algorithm must be one of {', '.join(DPOP_ALGORITHMS)}, got {algorithm!r}"
            )
        if key is None:
            private_key = _generate(algorithm or DEFAULT_DPOP_ALGORITHM)
        elif isinstance(key, Mapping):
            private_key, jwk_alg = _load_jwk(key)
            if algorithm is None and jwk_alg is not None:
                algorithm = jwk_alg
        elif isinstance(key, (str, bytes)):
            private_key = _load_pem(key)
        else:
            private_key = _check_key_object(key)
        self._algorithm, self._sign, self._public_jwk = _signer(private_key, algorithm)
        self._key = private_key
        self._clock = clock
        self._thumbprint = jwk_thumbprint(self._public_jwk)
        header = {"typ": DPOP_PROOF_TYPE, "alg": self._algorithm, "jwk": self._public_jwk}
        self._header = _b64(_compact_json(header)) + "."
        self._ath: tuple[str, str] | None = None  # (last access token, its ath)
        try:  # a bad key fails here, not at the first request
            self.proof("POST", "https://reqcc.invalid/token")
        except DPoPError:
            raise ConfigurationError(
                f"the DPoP key cannot sign with {self._algorithm}; check the key and the algorithm"
            ) from None

    @classmethod
    def generate(
        cls, algorithm: str = DEFAULT_DPOP_ALGORITHM, *, clock: Callable[[], float] = time.time
    ) -> DPoPKey:
        """Return a new key for ``algorithm`` (EC for ES*, Ed25519 for EdDSA, 2048-bit RSA for PS*/RS*)."""
        return cls(None, algorithm=algorithm, clock=clock)

    @property
    def algorithm(self) -> str:
        """The JWS ``alg`` of the proofs (``ES256``, ``PS256``, ``EdDSA``, …)."""
        return self._algorithm

    @property
    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK (a new dict each time; it never holds a private member)."""
        return dict(self._public_jwk)

    @property
    def thumbprint(self) -> str:
        """The RFC 7638 SHA-256 thumbprint of :attr:`public_jwk`: the ``jkt`` a bound token carries."""
        return self._thumbprint

    def ath(self, access_token: str) -> str:
        """Return the ``ath`` claim for ``access_token`` (remembered for the last token)."""
        cached = self._ath
        if cached is not None and cached[0] == access_token:
            return cached[1]
        if not isinstance(access_token, str) or not access_token or not access_token.isascii():
            raise DPoPError("access_token must be a non-empty ASCII string")
        value = access_token_hash(access_token)
        self._ath = (access_token, value)
        return value

    def proof(self, htm: str, htu: str, *, nonce: str | None = None, access_token: str | None = None) -> str:
        """Return a new DPoP proof for one HTTP request.

        :param htm: the request's method, as sent (``"POST"``, ``"GET"``).
        :param htu: the request's URL; its query, fragment and userinfo are left out
            (see :func:`normalize_htu`).
        :param nonce: the server's latest ``DPoP-Nonce`` for this origin, if any.
        :param access_token: the DPoP-bound token the request carries, for the ``ath`` claim;
            ``None`` for a token request.
        :raises DPoPError: for a malformed argument or a signing failure.
        """
        if not isinstance(htm, str) or _HTM.fullmatch(htm) is None:
            raise DPoPError("htm must be an HTTP method such as 'GET' or 'POST'")
        claims: dict[str, Any] = {
            "jti": _secrets.token_urlsafe(16),
            "htm": htm,
            "htu": normalize_htu(htu),
            "iat": int(self._clock()),
        }
        if nonce is not None:
            if not is_valid_nonce(nonce):
                raise DPoPError(
                    "nonce must be a DPoP-Nonce value (printable ASCII, no space, quote or backslash)"
                )
            claims["nonce"] = nonce
        if access_token is not None:
            claims["ath"] = self.ath(access_token)
        signing_input = self._header + _b64(_compact_json(claims))
        try:
            signature = self._sign(signing_input.encode("ascii"))
        except Exception as exc:  # the library's message may quote key material: keep only its type
            raise DPoPError(
                f"signing the DPoP proof with {self._algorithm} failed ({type(exc).__name__})"
            ) from None
        return signing_input + "." + _b64(signature)

    def __repr__(self) -> str:
        return f"DPoPKey(algorithm={self._algorithm!r}, thumbprint={self._thumbprint!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError(
            "a DPoPKey holds a private key and cannot be pickled; pass the key itself to each process"
        )

    def __copy__(self) -> DPoPKey:
        return self

    def __deepcopy__(self, memo: Any) -> DPoPKey:
        return self


def _generate(algorithm: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if algorithm in _EC_ALGORITHMS:
        curve_name = _EC_CURVES[_EC_ALGORITHMS[algorithm]][0]
        return ec.generate_private_key(ec.SECP256R1() if curve_name == "secp256r1"
                                       else ec.SECP384R1() if curve_name == "secp384r1" else ec.SECP521R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=_MIN_RSA_BITS)


def _load_pem(pem: str | bytes) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    data = pem.encode("utf-8") if isinstance(pem, str) else pem
    if b"-----BEGIN" not in data:
        raise ConfigurationError("dpop_key must be PEM text (-----BEGIN … PRIVATE KEY-----) or a JWK dict")
    if b"PUBLIC KEY-----" in data and b"PRIVATE KEY-----" not in data:
        raise ConfigurationError("dpop_key holds a public key only; DPoP needs the private key")
    try:
        key = load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigurationError(
            "dpop_key is encrypted; decrypt it first (cryptography's load_pem_private_key with the "
            "password) and pass the key as unencrypted PEM, a JWK or the key object"
        ) from None
    except Exception as exc:
        raise ConfigurationError(
            f"dpop_key is not a readable PEM private key ({type(exc).__name__})"
        ) from None
    return _check_key_object(key)


def _load_jwk(jwk: Mapping[str, Any]) -> tuple[Any, str | None]:
    import jwt

    if jwk.get("kty") not in _THUMBPRINT_MEMBERS:
        raise ConfigurationError(
            f"dpop_key JWK must have kty EC, RSA or OKP, got {jwk.get('kty')!r} "
            "(DPoP needs an asymmetric key)"
        )
    if "d" not in jwk:
        raise ConfigurationError("dpop_key JWK holds a public key only (no 'd'); DPoP needs the private key")
    alg = jwk.get("alg")
    try:
        # Tell PyJWK the algorithm family: it would otherwise trust the JWK's "alg" (which may be an
        # encryption algorithm) and, for OKP, know only Ed25519. The algorithm proper is chosen later.
        kty, crv = jwk.get("kty"), jwk.get("crv")
        family = {"RSA": "RS256", "OKP": "EdDSA"}.get(str(kty)) or (
            _EC_CURVES[crv][1] if isinstance(crv, str) and crv in _EC_CURVES else None
        )
        key = jwt.PyJWK(dict(jwk), algorithm=family).key
    except Exception as exc:
        raise ConfigurationError(f"dpop_key is not a usable private JWK ({type(exc).__name__})") from None
    return _check_key_object(key), alg if isinstance(alg, str) and alg in DPOP_ALGORITHMS else None


def _check_key_object(key: Any) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey,
                        ed448.Ed448PrivateKey)):
        return key
    if isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey,
                        ed448.Ed448PublicKey)):
        raise ConfigurationError("dpop_key holds a public key only; DPoP needs the private key")
    raise ConfigurationError(
        "dpop_key must be an EC (P-256, P-384, P-521), RSA or Ed25519/Ed448 private key, "
        f"got {type(key).__name__}"
    )


def _hash(bits: str) -> Any:
    from cryptography.hazmat.primitives import hashes

    if bits == "256":
        return hashes.SHA256()
    return hashes.SHA384() if bits == "384" else hashes.SHA512()


def _signer(key: Any, algorithm: str | None) -> tuple[str, Callable[[bytes], bytes], dict[str, str]]:
    """Return the algorithm, a signing function and the public JWK of ``key``."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    def refuse(kind: str, allowed: tuple[str, ...]) -> ConfigurationError:
        return ConfigurationError(f"a DPoP {kind} key signs {' or '.join(allowed)}, not {algorithm!r}")

    if isinstance(key, ec.EllipticCurvePrivateKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        crv = names.get(key.curve.name)
        if crv is None:
            raise ConfigurationError(
                f"dpop_key uses the EC curve {key.curve.name}; DPoP keys use P-256, P-384 or P-521"
            )
        _, expected, size = _EC_CURVES[crv]
        if algorithm not in (None, expected):
            raise refuse(f"EC {crv}", (expected,))
        ecdsa = ec.ECDSA(_hash(expected[2:]))
        numbers = key.public_key().public_numbers()
        jwk = {"kty": "EC", "crv": crv, "x": _b64_uint(numbers.x, size), "y": _b64_uint(numbers.y, size)}

        def sign_ec(data: bytes) -> bytes:
            r, s = decode_dss_signature(key.sign(data, ecdsa))
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")

        return expected, sign_ec, jwk
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < _MIN_RSA_BITS:
            raise ConfigurationError(
                f"dpop_key is a {key.key_size}-bit RSA key; DPoP needs {_MIN_RSA_BITS} bits or more"
            )
        chosen = algorithm or _RSA_DEFAULT
        if chosen not in _RSA_ALGORITHMS:
            raise refuse("RSA", _RSA_ALGORITHMS)
        hash_alg = _hash(chosen[2:])
        pad: padding.AsymmetricPadding = (
            padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=hash_alg.digest_size)
            if chosen.startswith("PS") else padding.PKCS1v15()
        )
        public = key.public_key().public_numbers()
        jwk = {"kty": "RSA", "n": _b64_uint(public.n), "e": _b64_uint(public.e)}

        def sign_rsa(data: bytes) -> bytes:
            return key.sign(data, pad, hash_alg)

        return chosen, sign_rsa, jwk
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        if algorithm not in (None, "EdDSA"):
            raise refuse("Ed25519/Ed448", ("EdDSA",))
        crv = "Ed25519" if isinstance(key, ed25519.Ed25519PrivateKey) else "Ed448"
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return "EdDSA", key.sign, {"kty": "OKP", "crv": crv, "x": _b64(raw)}
    raise _check_key_object(key)  # pragma: no cover - _check_key_object raises for anything else


class DPoPNonces:
    """The latest ``DPoP-Nonce`` of each origin (scheme, host, port), thread-safe and bounded.

    Servers hand out nonces in a ``DPoP-Nonce`` response header, on errors and successes
    alike (RFC 9449 §8.2, §9); the next proof to that origin must carry the newest one. The
    store keeps at most ``maxsize`` origins, forgetting the least recently used. A header
    value that is not a valid nonce is ignored.

    Fork-safe: in a process forked from the one that created it, :mod:`reqcc.fork_safety`
    replaces the lock right after the fork (another thread of the parent may have held it;
    no thread here would ever release it) and keeps the nonces, which stay valid for the
    servers.

    :param maxsize: the number of origins remembered.
    """

    def __init__(self, maxsize: int = 64) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ConfigurationError(f"maxsize must be a positive int, got {maxsize!r}")
        self.maxsize = maxsize
        self._nonces: OrderedDict[tuple[str, str, int | None], str] = OrderedDict()
        self._lock = threading.Lock()
        fork_safety.register(self._after_fork)

    def _after_fork(self) -> None:
        """In a forked child: a lock of its own (never the parent's, which may be held)."""
        self._lock = threading.Lock()

    def get(self, url: str) -> str | None:
        """Return the latest nonce of ``url``'s origin, or ``None``."""
        key = origin(url)
        with self._lock:
            nonce = self._nonces.get(key)
            if nonce is not None:
                self._nonces.move_to_end(key)
            return nonce

    def set(self, url: str, nonce: str) -> bool:
        """Remember ``nonce`` for ``url``'s origin; return False (and keep the old one) if it is not valid."""
        if not is_valid_nonce(nonce):
            return False
        key = origin(url)
        with self._lock:
            self._nonces[key] = nonce
            self._nonces.move_to_end(key)
            while len(self._nonces) > self.maxsize:
                self._nonces.popitem(last=False)
        return True

    def update(self, url: str, headers: Mapping[str, str]) -> str | None:
        """Remember the ``DPoP-Nonce`` of a response from ``url``; return it, or ``None`` if there was none.

        :param headers: the response headers (a ``requests`` ``CaseInsensitiveDict`` or any
            mapping; the name is matched case-insensitively).
        """
        value = _header(headers, DPOP_NONCE_HEADER)
        if value is None:
            return None
        value = value.strip()
        return value if self.set(url, value) else None

    def discard(self, url: str) -> None:
        """Forget the nonce of ``url``'s origin."""
        with self._lock:
            self._nonces.pop(origin(url), None)

    def clear(self) -> None:
        """Forget every nonce."""
        with self._lock:
            self._nonces.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._nonces)

    def __repr__(self) -> str:
        return f"DPoPNonces(origins={len(self)}, maxsize={self.maxsize})"


class DPoPProver:
    """One DPoP client's key and the nonces its servers gave it: makes each request's proof.

    The token endpoint and the transport adapter of one manager share one prover. Nonces
    are kept apart by role as well as by origin: RFC 9449 §9 says an authorization server's
    nonces and a resource server's "should not be confused with one another since nonces
    will be only accepted by the server that issued them", and the two often share an origin
    (one host behind a gateway). So answers from the token endpoint fill
    :attr:`token_nonces` and answers from the API fill :attr:`nonces`, and a proof carries
    only its own role's latest nonce for the origin, never the other role's: a resource
    server that uses no nonces gets proofs without one, however many the token endpoint on
    its origin hands out. Neither role overwrites the other: a token fetch does not cost the
    next API request a ``use_dpop_nonce`` round trip, nor the reverse. (A server that shares
    one nonce between its token endpoint and its API costs the API one ``use_dpop_nonce``
    round trip on first contact, after which each role knows it.)

    A replay after ``use_dpop_nonce`` signs with the nonce of *that* answer, passed as
    ``nonce=``: under concurrency the shared store may meanwhile hold another answer's nonce.

    :param key: the client's :class:`DPoPKey`.
    :param nonces: where the latest resource-server nonce of each origin is kept (default: a new one).
    :param token_nonces: where the latest authorization-server (token endpoint) nonce of
        each origin is kept (default: a new one).
    """

    __slots__ = ("key", "nonces", "token_nonces")

    def __init__(
        self, key: DPoPKey, nonces: DPoPNonces | None = None, token_nonces: DPoPNonces | None = None
    ) -> None:
        self.key = key
        self.nonces = nonces if nonces is not None else DPoPNonces()
        self.token_nonces = token_nonces if token_nonces is not None else DPoPNonces()

    @property
    def thumbprint(self) -> str:
        """The key's RFC 7638 thumbprint (the ``jkt`` the server binds tokens to)."""
        return self.key.thumbprint

    def proof(
        self, method: str, url: str, access_token: str | None = None, *, nonce: str | None = None
    ) -> str:
        """Return a new proof for the API request ``method url``.

        :param nonce: the nonce to sign with; default: the origin's latest API nonce (if any).
        """
        if nonce is None:
            nonce = self.nonces.get(url)
        return self.key.proof(method, url, nonce=nonce, access_token=access_token)

    def authorize(
        self,
        headers: MutableMapping[str, str],
        method: str,
        url: str,
        access_token: str,
        *,
        nonce: str | None = None,
    ) -> None:
        """Set ``Authorization: DPoP <token>`` and a fresh ``DPoP`` proof (with ``ath``) in ``headers``.

        :param nonce: the nonce to sign with; default: the origin's latest API nonce (if any).
        """
        headers["Authorization"] = f"DPoP {access_token}"
        headers[DPOP_HEADER] = self.proof(method, url, access_token, nonce=nonce)

    def update(self, url: str, headers: Mapping[str, str]) -> str | None:
        """Remember the ``DPoP-Nonce`` of an API response from ``url``; return it, or ``None``."""
        return self.nonces.update(url, headers)

    def token_proof(self, url: str, nonce: str | None = None) -> str:
        """Return a new proof for a token request (``POST url``).

        :param nonce: the nonce to sign with; default: the token endpoint's latest nonce for
            the origin (if any).
        """
        if nonce is None:
            nonce = self.token_nonces.get(url)
        return self.key.proof("POST", url, nonce=nonce)

    def update_token_nonce(self, url: str, headers: Mapping[str, str]) -> str | None:
        """Remember the ``DPoP-Nonce`` of a token endpoint response from ``url``; return it, or ``None``."""
        return self.token_nonces.update(url, headers)

    def __repr__(self) -> str:
        return f"DPoPProver({self.key!r})"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None and not hasattr(headers, "lower_items"):  # a plain dict: match case-insensitively
        lowered = name.lower()
        value = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == lowered), None)
    return value if isinstance(value, str) else None


def dpop_challenge_error(www_authenticate: str | None) -> str | None:
    """Return the ``error`` of the ``DPoP`` challenge in a ``WWW-Authenticate`` value, or ``None``.

    Only the DPoP challenge counts: a ``Bearer`` challenge's error in the same header is not
    attributed to DPoP.
    """
    if not www_authenticate:
        return None
    for scheme, params in parse_www_authenticate(www_authenticate):
        if scheme == "dpop":
            return params.get("error")
    return None


def resource_demands_nonce(status_code: int, www_authenticate: str | None) -> bool:
    """Return whether an API answer asks for a proof with a fresh nonce (RFC 9449 §9).

    That is a 401 whose ``WWW-Authenticate`` has a ``DPoP`` challenge with
    ``error="use_dpop_nonce"``; the request is to be replayed once with the nonce from the
    answer's ``DPoP-Nonce`` header. It does not mean the token is bad.
    """
    return status_code == 401 and dpop_challenge_error(www_authenticate) == "use_dpop_nonce"


def token_endpoint_demands_nonce(status_code: int, body: object) -> bool:
    """Return whether a token-endpoint answer asks for a proof with a fresh nonce (RFC 9449 §8).

    That is a 400 (some servers say 401) whose JSON ``body`` (already parsed) has
    ``"error": "use_dpop_nonce"``; the token request is to be sent once more with the nonce
    from the answer's ``DPoP-Nonce`` header.
    """
    return status_code in (400, 401) and isinstance(body, Mapping) and body.get("error") == "use_dpop_nonce"
