"""reqcc.dpop's fixed sizes: EC JWK coordinates padded to the curve, the nonce length cap.

RFC 7518 §6.2.1.2: an EC JWK's ``x`` and ``y`` are the full size of the curve's coordinates,
leading zero bytes included. A random key has a coordinate with a leading zero byte about
once in 128 (P-256), so a test with a random key almost never sees one: the keys below are
fixed private scalars, found by trying 1, 2, 3, … until that coordinate began with a zero
byte (P-521's coordinates are 521 bits in 66 bytes: its top byte is 0 or 1). A server
(PyJWT here) refuses an unpadded JWK, and its RFC 7638 thumbprint (``jkt``) differs.
"""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk as jwcrypto_jwk

from reqcc import DPoPKey
from reqcc.dpop import DPoPNonces, is_valid_nonce

from .dpop_reference import b64url_decode, reference_thumbprint, unverified_header, verify_proof

CURVES = {"P-256": (ec.SECP256R1(), 32), "P-384": (ec.SECP384R1(), 48), "P-521": (ec.SECP521R1(), 66)}
#: (curve, short coordinate, private scalar): the first scalar whose coordinate is short.
SHORT = [
    ("P-256", "x", 379),
    ("P-256", "y", 43),
    ("P-384", "x", 197),
    ("P-384", "y", 176),
    ("P-521", "x", 1),
    ("P-521", "y", 9),
]
NOW = 1_700_000_000


@pytest.mark.parametrize(("crv", "short", "scalar"), SHORT, ids=[f"{c}-{s}" for c, s, _ in SHORT])
def test_ec_jwk_coordinates_are_padded_to_the_curve_size(crv: str, short: str, scalar: int) -> None:
    curve, size = CURVES[crv]
    private = ec.derive_private_key(scalar, curve)
    numbers = private.public_key().public_numbers()
    assert getattr(numbers, short).bit_length() <= 8 * size - 8, "the fixed key lost its short coordinate"

    key = DPoPKey(private, clock=lambda: NOW)
    public = key.public_jwk
    assert [len(b64url_decode(public[c])) for c in ("x", "y")] == [size, size]
    assert b64url_decode(public[short])[0] == 0
    # An independent encoder (jwcrypto) gives the same JWK and thumbprint.
    expected = jwcrypto_jwk.JWK.from_pyca(private.public_key()).export_public(as_dict=True)
    assert public == {k: expected[k] for k in ("kty", "crv", "x", "y")}
    assert key.thumbprint == reference_thumbprint(expected)
    # The proof's header carries that JWK; PyJWT (which checks the size) verifies the proof.
    proof = key.proof("POST", "https://as.example/token")
    header = unverified_header(proof)
    assert header["jwk"] == public
    jwt.decode(proof, jwt.PyJWK(header["jwk"]).key, algorithms=[header["alg"]])
    checked = verify_proof(proof, method="POST", url="https://as.example/token", now=NOW)
    assert checked["jkt"] == key.thumbprint


def test_a_nonce_of_the_longest_length_is_kept_and_one_longer_is_not() -> None:
    longest, too_long = "n" * 2048, "n" * 2049
    assert is_valid_nonce(longest) and not is_valid_nonce(too_long)
    nonces = DPoPNonces()
    assert nonces.update("https://api.example/", {"DPoP-Nonce": longest}) == longest
    assert nonces.update("https://api.example/", {"DPoP-Nonce": too_long}) is None
    assert nonces.get("https://api.example/") == longest
