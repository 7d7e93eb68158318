"""reqcc.testing.dpop: the RFC 9449 §4.3 checks the local authorization server applies.

Proofs are forged with jwcrypto (tests/dpop_reference.py), not with reqcc, so that each
check is shown to reject what it must and to accept an independent client's proof.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from jwcrypto import jwk

from reqcc import ConfigurationError, ReqccError
from reqcc.dpop import DPoPKey, parse_www_authenticate
from reqcc.testing.dpop import (
    DPoPProofError,
    DPoPProofVerifier,
    ProofCheck,
    ServerNonces,
    VerifiedProof,
    dpop_challenge,
)
from tests.dpop_reference import b64url, reference_ath, sign_proof, unsigned_proof
from tests.threads import run_threads

NOW = 1_700_000_000
URL = "https://rs.example.com/books"
TOKEN = "tok-abc.def"

_KEY = jwk.JWK.generate(kty="EC", crv="P-256")
_PUBLIC = dict(_KEY.export_public(as_dict=True))
_JKT = _KEY.thumbprint()


def clock() -> float:
    return NOW


def verifier(**kwargs: Any) -> DPoPProofVerifier:
    return DPoPProofVerifier(clock=clock, **kwargs)


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "jti": b64url(f"jti-{id(overrides)}-{len(overrides)}".encode()),
        "htm": "GET",
        "htu": URL,
        "iat": NOW,
        "ath": reference_ath(TOKEN),
    }
    for name, value in overrides.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


_counter = iter(range(10**9))


def forge(header: dict[str, Any] | None = None, key: jwk.JWK = _KEY, **claim_overrides: Any) -> str:
    """A proof signed by jwcrypto; a fresh jti each time unless one is given."""
    claim_overrides.setdefault("jti", f"unique-jti-{next(_counter):012d}")
    head = {"typ": "dpop+jwt", "alg": "ES256", "jwk": _PUBLIC, **(header or {})}
    return sign_proof(head, claims(**claim_overrides), key)


def check(proof: Any, **kwargs: Any) -> VerifiedProof:
    kwargs.setdefault("method", "GET")
    kwargs.setdefault("url", URL)
    kwargs.setdefault("access_token", TOKEN)
    kwargs.setdefault("jkt", _JKT)
    return verifier().verify(proof, **kwargs)


def rejected(proof: Any, expected: ProofCheck, **kwargs: Any) -> DPoPProofError:
    with pytest.raises(DPoPProofError) as info:
        check(proof, **kwargs)
    assert info.value.check is expected, str(info.value)
    assert isinstance(info.value, ReqccError)
    return info.value


def test_an_independent_clients_proof_passes() -> None:
    result = check([forge()])
    assert result.jkt == _JKT and result.alg == "ES256" and result.htm == "GET" and result.iat == NOW
    assert result.ath == reference_ath(TOKEN) and result.nonce is None
    assert dict(result.jwk) == _PUBLIC


@pytest.mark.parametrize(
    ("kty", "params", "alg"),
    [
        ("EC", {"crv": "P-384"}, "ES384"),
        ("EC", {"crv": "P-521"}, "ES512"),
        ("RSA", {"size": 2048}, "PS256"),
        ("RSA", {"size": 2048}, "RS256"),
        ("OKP", {"crv": "Ed25519"}, "EdDSA"),
    ],
)
def test_other_key_types_pass(kty: str, params: dict[str, Any], alg: str) -> None:
    key = jwk.JWK.generate(kty=kty, **params)
    proof = forge({"alg": alg, "jwk": dict(key.export_public(as_dict=True))}, key=key)
    assert check(proof, jkt=key.thumbprint()).alg == alg


def test_reqcc_proofs_pass_at_token_endpoint_and_api() -> None:
    dpop = DPoPKey(clock=clock)
    v = verifier()
    at_token = v.verify(
        dpop.proof("POST", "https://as.example.com/token"), method="POST", url="https://as.example.com/token"
    )
    assert at_token.jkt == dpop.thumbprint and at_token.ath is None
    at_api = v.verify(
        dpop.proof("GET", URL + "?page=2", access_token=TOKEN, nonce="n"),
        method="GET",
        url=URL + "?page=2#x",
        access_token=TOKEN,
        jkt=dpop.thumbprint,
        nonce="n",
    )
    assert at_api.nonce == "n"


@pytest.mark.parametrize("proofs", [None, [], ["a.b.c", "a.b.c"]])
def test_not_exactly_one_header(proofs: Any) -> None:
    if proofs:
        proofs = [forge(), forge()]
    rejected(proofs, ProofCheck.HEADER)


@pytest.mark.parametrize(
    "proof",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!.!!.!!",
        b64url(b"[1]") + ".e30.",
        "é.é.é",
        "x" * 20000 + ".a.b",
        b64url(b'{"typ":"dpop+jwt","alg":"ES256","jwk":{}}') + ".bm90IGpzb24.AAAA",
    ],
)
def test_malformed(proof: str) -> None:
    rejected(proof, ProofCheck.MALFORMED)


def test_payload_that_is_not_json_is_malformed() -> None:
    head = {"typ": "dpop+jwt", "alg": "ES256", "jwk": _PUBLIC}
    from jwcrypto import jws

    signer = jws.JWS(b"not json")
    signer.add_signature(_KEY, None, protected=json.dumps(head))
    rejected(signer.serialize(compact=True), ProofCheck.MALFORMED)
    signer = jws.JWS(b"[1, 2]")
    signer.add_signature(_KEY, None, protected=json.dumps(head))
    rejected(signer.serialize(compact=True), ProofCheck.MALFORMED)


@pytest.mark.parametrize("typ", [None, "JWT", "DPOP+JWT", "at+jwt", "application/dpop+jwt"])
def test_wrong_typ(typ: str | None) -> None:
    head = {"typ": "dpop+jwt", "alg": "ES256", "jwk": _PUBLIC}
    if typ is None:
        del head["typ"]
    else:
        head["typ"] = typ
    rejected(sign_proof(head, claims(jti="t1"), _KEY), ProofCheck.TYP)


def test_alg_none() -> None:
    proof = unsigned_proof({"typ": "dpop+jwt", "alg": "none", "jwk": _PUBLIC}, claims())
    rejected(proof, ProofCheck.ALG)


def test_hs256_with_a_symmetric_key() -> None:
    secret = jwk.JWK.generate(kty="oct", size=256)
    head = {"typ": "dpop+jwt", "alg": "HS256", "jwk": dict(secret.export(as_dict=True))}
    rejected(sign_proof(head, claims(), secret), ProofCheck.ALG)


def test_hs256_signed_with_the_public_key_bytes() -> None:
    # the classic confusion attack: HMAC keyed with the public key the verifier holds
    head = {"typ": "dpop+jwt", "alg": "HS256", "jwk": _PUBLIC}
    rejected(unsigned_proof(head, claims(), b"x" * 32), ProofCheck.ALG)


def test_algorithm_outside_the_servers_list() -> None:
    key = jwk.JWK.generate(kty="RSA", size=2048)
    proof = forge({"alg": "RS256", "jwk": dict(key.export_public(as_dict=True))}, key=key)
    with pytest.raises(DPoPProofError) as info:
        DPoPProofVerifier(algorithms=["ES256"], clock=clock).verify(proof, method="GET", url=URL)
    assert info.value.check is ProofCheck.ALG


def test_alg_that_does_not_fit_the_key() -> None:
    key = jwk.JWK.generate(kty="EC", crv="P-384")
    head = {"typ": "dpop+jwt", "alg": "ES384", "jwk": _PUBLIC}  # a P-256 key announced as ES384
    rejected(sign_proof(head, claims(), key), ProofCheck.ALG)


def test_weak_rsa_key() -> None:
    key = jwk.JWK.generate(kty="RSA", size=1024)
    proof = forge({"alg": "PS256", "jwk": dict(key.export_public(as_dict=True))}, key=key)
    rejected(proof, ProofCheck.ALG, jkt=None)


def test_signature_by_another_key() -> None:
    rejected(forge(key=jwk.JWK.generate(kty="EC", crv="P-256")), ProofCheck.SIGNATURE)


def test_tampered_claims() -> None:
    head, _, sig = forge().split(".")
    body = b64url(json.dumps(claims(htm="GET", jti="tampered")).encode())
    rejected(f"{head}.{body}.{sig}", ProofCheck.SIGNATURE)


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "k"])
def test_private_member_in_the_jwk(member: str) -> None:
    private = dict(_KEY.export_private(as_dict=True))
    private.setdefault(member, private["d"])
    rejected(forge({"jwk": private}), ProofCheck.PRIVATE_KEY)


def test_header_without_jwk() -> None:
    head = {"typ": "dpop+jwt", "alg": "ES256"}
    rejected(sign_proof(head, claims(), _KEY), ProofCheck.CLAIMS)


@pytest.mark.parametrize(
    "overrides",
    [
        {"jti": ""},
        {"jti": 7},
        {"jti": "x" * 300},
        {"htm": None},
        {"htu": None},
        {"iat": None},
        {"iat": "now"},
        {"iat": True},
        {"htm": 1},
    ],
)
def test_missing_or_mistyped_claims(overrides: dict[str, Any]) -> None:
    proof = sign_proof({"typ": "dpop+jwt", "alg": "ES256", "jwk": _PUBLIC}, claims(**overrides), _KEY)
    rejected(proof, ProofCheck.CLAIMS)


@pytest.mark.parametrize("htm", ["POST", "get", "GET "])
def test_wrong_htm(htm: str) -> None:
    rejected(forge(htm=htm), ProofCheck.HTM)


@pytest.mark.parametrize(
    "htu",
    [
        "https://rs.example.com/other",
        "http://rs.example.com/books",
        "https://rs.example.com:8443/books",
        "https://evil.example.com/books",
        "https://rs.example.com/books/",
        "/books",
        "not a url",
    ],
)
def test_wrong_htu(htu: str) -> None:
    rejected(forge(htu=htu), ProofCheck.HTU)


@pytest.mark.parametrize(
    "htu",
    [
        "https://rs.example.com/books?page=1",
        "https://RS.example.com:443/books#x",
        "HTTPS://rs.example.com/books",
    ],
)
def test_htu_equivalents_pass(htu: str) -> None:
    check(forge(htu=htu), url="https://rs.example.com/books?other=2")


def test_nonce_when_demanded() -> None:
    rejected(forge(), ProofCheck.NONCE, nonce="server-nonce")
    error = rejected(forge(nonce="stale"), ProofCheck.NONCE, nonce="server-nonce")
    assert error.error == "use_dpop_nonce"
    assert check(forge(nonce="server-nonce"), nonce="server-nonce").nonce == "server-nonce"
    check(forge(nonce="anything"))  # a nonce the server did not ask for is harmless


def test_server_nonces_rotate_and_accept_the_previous_one() -> None:
    now = [1000.0]
    nonces = ServerNonces(lifetime=60, clock=lambda: now[0])
    first = nonces.current()
    assert nonces.current() == first and nonces.is_valid(first)
    now[0] += 60
    second = nonces.current()
    assert second != first and nonces.is_valid(first) and nonces.is_valid(second)
    third = nonces.rotate()
    assert not nonces.is_valid(first) and nonces.is_valid(second) and nonces.is_valid(third)
    assert not nonces.is_valid("made-up")
    check(forge(nonce=third), nonce=nonces)
    rejected(forge(nonce=first), ProofCheck.NONCE, nonce=nonces)
    assert first not in repr(nonces)


@pytest.mark.parametrize("lifetime", [0, -1, True, "60"])
def test_server_nonce_lifetime_must_be_positive(lifetime: Any) -> None:
    with pytest.raises(ConfigurationError):
        ServerNonces(lifetime=lifetime)


@pytest.mark.parametrize(
    ("iat", "ok"),
    [(NOW - 60, True), (NOW - 61, False), (NOW + 5, True), (NOW + 6, False), (0, False), (NOW + 0.5, True)],
)
def test_iat_window(iat: float, ok: bool) -> None:
    proof = forge(iat=iat)
    if ok:
        check(proof)
    else:
        rejected(proof, ProofCheck.IAT)


def test_replayed_jti() -> None:
    v = verifier()
    proof = forge()
    v.verify(proof, method="GET", url=URL)
    with pytest.raises(DPoPProofError) as info:
        v.verify(proof, method="GET", url=URL)
    assert info.value.check is ProofCheck.REPLAY
    # the same jti for another target URI is another context (RFC 9449 §11.1)
    v.verify(forge(jti="shared", htu=URL), method="GET", url=URL)
    v.verify(forge(jti="shared", htu=URL + "/1"), method="GET", url=URL + "/1")


def test_a_failed_proof_does_not_burn_its_jti() -> None:
    v = verifier()
    with pytest.raises(DPoPProofError):
        v.verify(forge(jti="retry-me"), method="GET", url=URL, nonce="n")
    v.verify(forge(jti="retry-me"), method="GET", url=URL)


def test_replay_cache_is_bounded_and_expires() -> None:
    now = [float(NOW)]
    v = DPoPProofVerifier(clock=lambda: now[0], replay_cache_size=3, max_age=10, leeway=0)
    for i in range(5):
        v.verify(forge(jti=f"j{i}"), method="GET", url=URL)
    assert len(v._seen) == 3
    with pytest.raises(DPoPProofError):
        v.verify(forge(jti="j4"), method="GET", url=URL)
    now[0] += 11  # everything seen is now older than any acceptable proof
    v.verify(forge(jti="j4", iat=int(now[0])), method="GET", url=URL)
    assert len(v._seen) == 1


def test_concurrent_replays_pass_once() -> None:
    v = verifier()
    proof = forge()

    def attempt(_: int) -> bool:
        try:
            v.verify(proof, method="GET", url=URL)
        except DPoPProofError:
            return False
        return True

    results = run_threads(attempt, 16, timeout=30)
    assert all(isinstance(r, bool) for r in results), results  # no other exception
    assert sorted(results) == [False] * 15 + [True]


def test_wrong_or_missing_ath() -> None:
    rejected(forge(ath=reference_ath("other-token")), ProofCheck.ATH)
    rejected(forge(ath=None), ProofCheck.ATH)


def test_wrong_key_binding() -> None:
    other = jwk.JWK.generate(kty="EC", crv="P-256").thumbprint()
    rejected(forge(), ProofCheck.KEY_BINDING, jkt=other)


def test_errors_carry_the_oauth_code() -> None:
    assert rejected(forge(htm="POST"), ProofCheck.HTM).error == "invalid_dpop_proof"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"algorithms": ["HS256"]},
        {"algorithms": ["none"]},
        {"algorithms": []},
        {"max_age": 0},
        {"leeway": -1},
        {"replay_cache_size": 0},
    ],
)
def test_verifier_configuration_is_checked(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        DPoPProofVerifier(**kwargs)


def test_dpop_challenge_parses_back() -> None:
    text = dpop_challenge("use_dpop_nonce", 'needs "a" nonce\\', algorithms=["ES256", "EdDSA"])
    assert parse_www_authenticate(text) == [
        ("dpop", {"error": "use_dpop_nonce", "error_description": 'needs "a" nonce\\', "algs": "ES256 EdDSA"})
    ]
    assert dpop_challenge().startswith('DPoP algs="ES256')
