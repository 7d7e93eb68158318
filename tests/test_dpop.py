"""reqcc.dpop: keys, proofs, thumbprints and nonces, checked against an independent verifier.

tests/dpop_reference.py implements RFC 9449 §4.3 and RFC 7638 with jwcrypto; every proof
reqcc makes here must pass it.
"""

from __future__ import annotations

import copy
import pickle
import string
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwcrypto import jwk as jwcrypto_jwk

from reqcc import ConfigurationError, ReqccError
from reqcc.dpop import (
    DPOP_ALGORITHMS,
    PRIVATE_JWK_MEMBERS,
    DPoPError,
    DPoPKey,
    DPoPNonces,
    access_token_hash,
    dpop_challenge_error,
    is_valid_nonce,
    jwk_thumbprint,
    normalize_htu,
    parse_www_authenticate,
    resource_demands_nonce,
    token_endpoint_demands_nonce,
)
from tests.dpop_reference import (
    Rejected,
    b64url_decode,
    reference_ath,
    reference_htu,
    reference_thumbprint,
    unverified_claims,
    unverified_header,
    verify_proof,
)

NOW = 1_700_000_000
API = "https://api.example.com/books"


def clock() -> float:
    return NOW + 0.9


# --- keys of every supported type, from cryptography (so not made by the code under test) ---


def _rsa(bits: int = 2048) -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


_KEY_FACTORIES = {
    "EC P-256": (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
    "EC P-384": (lambda: ec.generate_private_key(ec.SECP384R1()), "ES384"),
    "EC P-521": (lambda: ec.generate_private_key(ec.SECP521R1()), "ES512"),
    "RSA": (_rsa, "PS256"),
    "Ed25519": (ed25519.Ed25519PrivateKey.generate, "EdDSA"),
    "Ed448": (ed448.Ed448PrivateKey.generate, "EdDSA"),
}
_KEYS: dict[str, Any] = {}


def crypto_key(kind: str) -> Any:
    if kind not in _KEYS:  # RSA generation is slow: one key per type for the whole module
        _KEYS[kind] = _KEY_FACTORIES[kind][0]()
    return _KEYS[kind]


def pem_of(key: Any, fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def private_jwk_of(key: Any) -> dict[str, Any]:
    """The private JWK of ``key``, exported by jwcrypto (not by reqcc)."""
    return dict(jwcrypto_jwk.JWK.from_pem(pem_of(key)).export_private(as_dict=True))


# --- proofs pass the independent verifier ---


@pytest.mark.parametrize("kind", list(_KEY_FACTORIES))
@pytest.mark.parametrize("form", ["pem-str", "pem-bytes", "jwk", "object"])
def test_each_key_type_and_form_makes_proofs_the_reference_accepts(kind: str, form: str) -> None:
    key = crypto_key(kind)
    source: Any = {
        "pem-str": pem_of(key).decode(),
        "pem-bytes": pem_of(key),
        "jwk": private_jwk_of(key),
        "object": key,
    }[form]
    dpop = DPoPKey(source, clock=clock)
    assert dpop.algorithm == _KEY_FACTORIES[kind][1]
    proof = dpop.proof("GET", API, access_token="tok-123", nonce="n-1")
    claims = verify_proof(proof, method="GET", url=API, now=NOW, access_token="tok-123", nonce="n-1")
    assert claims["jkt"] == dpop.thumbprint == reference_thumbprint(dpop.public_jwk)
    assert claims["header"]["alg"] == dpop.algorithm
    assert claims["header"]["jwk"] == dpop.public_jwk
    assert claims["iat"] == NOW


def test_traditional_pem_formats_load() -> None:
    for kind in ("EC P-256", "RSA"):
        pem = pem_of(crypto_key(kind), serialization.PrivateFormat.TraditionalOpenSSL)
        assert b"BEGIN EC PRIVATE KEY" in pem or b"BEGIN RSA PRIVATE KEY" in pem
        dpop = DPoPKey(pem, clock=clock)
        verify_proof(dpop.proof("POST", API), method="POST", url=API, now=NOW)


@pytest.mark.parametrize("algorithm", ["ES256", "ES384", "ES512", "EdDSA"])
def test_generated_keys(algorithm: str) -> None:
    dpop = DPoPKey.generate(algorithm, clock=clock)
    assert dpop.algorithm == algorithm
    verify_proof(dpop.proof("POST", API), method="POST", url=API, now=NOW)


def test_default_key_is_a_fresh_ec_p256_es256() -> None:
    first, second = DPoPKey(), DPoPKey()
    assert first.algorithm == "ES256"
    assert first.public_jwk["kty"] == "EC" and first.public_jwk["crv"] == "P-256"
    assert first.thumbprint != second.thumbprint


@pytest.mark.parametrize("algorithm", ["PS256", "PS384", "PS512", "RS256", "RS384", "RS512"])
def test_rsa_signs_any_rsa_algorithm_asked_for(algorithm: str) -> None:
    dpop = DPoPKey(crypto_key("RSA"), algorithm=algorithm, clock=clock)
    assert dpop.algorithm == algorithm
    claims = verify_proof(dpop.proof("POST", API), method="POST", url=API, now=NOW)
    assert claims["header"]["alg"] == algorithm


def test_a_jwk_alg_member_chooses_the_algorithm_and_the_keyword_overrides_it() -> None:
    jwk = {**private_jwk_of(crypto_key("RSA")), "alg": "RS256"}
    assert DPoPKey(jwk).algorithm == "RS256"
    assert DPoPKey(jwk, algorithm="PS384").algorithm == "PS384"
    assert DPoPKey({**jwk, "alg": "RSA-OAEP"}).algorithm == "PS256"  # not a signing alg: ignored


def test_rfc7638_example_thumbprint() -> None:
    # RFC 7638 §3.1: the RSA key of RFC 7517 Appendix A.1 and its thumbprint.
    example = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368Q"
        "QMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2Nc"
        "Rwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(example) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    reordered = dict(reversed(list(example.items())))
    assert jwk_thumbprint(reordered) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("kind", list(_KEY_FACTORIES))
def test_thumbprint_of_private_and_public_jwk_agree_with_jwcrypto(kind: str) -> None:
    private = private_jwk_of(crypto_key(kind))
    expected = jwcrypto_jwk.JWK(**private).thumbprint()
    assert jwk_thumbprint(private) == expected
    assert DPoPKey(private).thumbprint == expected


@pytest.mark.parametrize(
    "bad", [{}, {"kty": "oct", "k": "c2VjcmV0"}, {"kty": "EC", "crv": "P-256", "x": "a"}]
)
def test_thumbprint_of_an_unusable_jwk_is_a_value_error(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        jwk_thumbprint(bad)


def test_public_jwk_has_no_private_member_and_is_a_copy() -> None:
    for kind in _KEY_FACTORIES:
        dpop = DPoPKey(crypto_key(kind))
        public = dpop.public_jwk
        assert not PRIVATE_JWK_MEMBERS & set(public)
        assert not PRIVATE_JWK_MEMBERS & set(unverified_header(dpop.proof("GET", API))["jwk"])
        public["d"] = "x"
        assert "d" not in dpop.public_jwk


# --- refusals ---


def _encrypted_pem() -> bytes:
    return crypto_key("EC P-256").private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )


def _public_pem() -> bytes:
    return (
        crypto_key("EC P-256")
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (_public_pem, "public key only"),
        (
            lambda: {k: v for k, v in private_jwk_of(crypto_key("EC P-256")).items() if k != "d"},
            "public key only",
        ),
        (lambda: crypto_key("EC P-256").public_key(), "public key only"),
        (_encrypted_pem, "encrypted"),
        (lambda: {"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0"}, "asymmetric"),
        (lambda: pem_of(_rsa(1024)), "2048"),
        (lambda: pem_of(ec.generate_private_key(ec.SECP256K1())), "P-256, P-384 or P-521"),
        (lambda: "not a key", "PEM"),
        (lambda: b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n", "not a readable PEM"),
        (lambda: {"kty": "EC", "crv": "P-256", "d": "AAAA", "x": "AAAA", "y": "AAAA"}, "not a usable"),
        (lambda: 42, "got int"),
    ],
)
def test_unusable_keys_are_configuration_errors(make: Any, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        DPoPKey(make())


@pytest.mark.parametrize(
    ("kind", "algorithm"),
    [("EC P-256", "ES384"), ("EC P-256", "RS256"), ("RSA", "ES256"), ("Ed25519", "PS256")],
)
def test_an_algorithm_that_does_not_fit_the_key_is_refused(kind: str, algorithm: str) -> None:
    with pytest.raises(ConfigurationError, match=algorithm):
        DPoPKey(crypto_key(kind), algorithm=algorithm)


@pytest.mark.parametrize("algorithm", ["none", "HS256", "ES256K", "es256"])
def test_non_dpop_algorithms_are_refused(algorithm: str) -> None:
    assert algorithm not in DPOP_ALGORITHMS
    with pytest.raises(ConfigurationError, match="algorithm"):
        DPoPKey(algorithm=algorithm)


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for missing in ("jwt", "cryptography"):
        with monkeypatch.context() as patch:
            patch.setitem(sys.modules, missing, None)  # importing it now raises ImportError
            with pytest.raises(ConfigurationError, match=r"reqcc\[dpop\]"):
                DPoPKey()


def test_reqcc_and_its_dpop_key_import_without_the_extra() -> None:
    """``reqcc.DPoPKey`` is exported, yet reqcc imports with neither cryptography nor PyJWT."""
    code = (
        "import sys\n"
        "for name in ('jwt', 'cryptography'): sys.modules[name] = None\n"
        "import reqcc\n"
        "assert reqcc.DPoPKey.__module__ == 'reqcc.dpop'\n"
        "assert not any(m.split('.')[0] in ('cryptography', 'jwt') and sys.modules[m] for m in sys.modules)\n"
        "try:\n"
        "    reqcc.ClientCredentialsManager(token_url='https://as.example/token', client_id='c',\n"
        "                                   client_secret='s', dpop=True)\n"
        "except reqcc.ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr
    assert "reqcc[dpop]" in result.stdout


# --- secrets ---


@pytest.mark.parametrize("kind", ["EC P-256", "RSA", "Ed25519"])
def test_private_key_never_shown(kind: str) -> None:
    key = crypto_key(kind)
    jwk = private_jwk_of(key)
    pem = pem_of(key).decode()
    for source in (jwk, pem):
        dpop = DPoPKey(source)
        shown = repr(dpop) + str(dpop) + f"{dpop}" + repr([dpop])
        assert dpop.thumbprint in repr(dpop) and dpop.algorithm in repr(dpop)
        for member in PRIVATE_JWK_MEMBERS & set(jwk):
            assert jwk[member] not in shown
            assert jwk[member] not in dpop.proof("GET", API)
        assert pem.splitlines()[1] not in shown
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(dpop)
        assert copy.copy(dpop) is dpop and copy.deepcopy(dpop) is dpop


def test_key_errors_do_not_echo_the_key() -> None:
    jwk = private_jwk_of(crypto_key("EC P-256"))
    with pytest.raises(ConfigurationError) as info:
        DPoPKey({**jwk, "x": jwk["y"]})  # a private part that does not match its public part
    assert jwk["d"] not in str(info.value) and jwk["d"] not in repr(info.value)


# --- proofs ---


def test_proof_claims_and_header() -> None:
    dpop = DPoPKey(clock=clock)
    proof = dpop.proof("POST", "https://as.example.com/token?x=1#frag")
    header = unverified_header(proof)
    assert header == {"typ": "dpop+jwt", "alg": "ES256", "jwk": dpop.public_jwk}
    claims = verify_proof(proof, method="POST", url="https://as.example.com/token", now=NOW)
    assert set(claims) == {"jti", "htm", "htu", "iat", "jkt", "header"}  # no nonce, no ath
    assert claims["htu"] == "https://as.example.com/token"
    assert len(b64url_decode(claims["jti"])) >= 16  # 128 bits of randomness


def test_every_proof_is_new() -> None:
    dpop = DPoPKey(clock=clock)
    first, second = dpop.proof("GET", API, access_token="t"), dpop.proof("GET", API, access_token="t")
    assert first != second
    assert first.split(".")[0] == second.split(".")[0]  # the header is the same (cached)
    assert (
        verify_proof(first, method="GET", url=API, now=NOW, access_token="t")["jti"]
        != verify_proof(second, method="GET", url=API, now=NOW, access_token="t")["jti"]
    )


def test_iat_follows_the_injected_clock() -> None:
    now = [1000.0]
    dpop = DPoPKey(clock=lambda: now[0])
    now[0] = NOW + 0.2
    assert verify_proof(dpop.proof("GET", API), method="GET", url=API, now=NOW)["iat"] == NOW


def test_ath_is_remembered_for_the_last_token_and_right_for_each() -> None:
    dpop = DPoPKey(clock=clock)
    for token in ("a", "b", "a"):
        claims = verify_proof(
            dpop.proof("GET", API, access_token=token), method="GET", url=API, now=NOW, access_token=token
        )
        assert claims["ath"] == reference_ath(token) == dpop.ath(token) == access_token_hash(token)


@pytest.mark.parametrize(
    ("htm", "htu", "kwargs"),
    [
        ("", API, {}),
        ("GE T", API, {}),
        (None, API, {}),
        ("GET", "/relative", {}),
        ("GET", "ftp://example.com/x", {}),
        ("GET", "https://[::1/x", {}),
        ("GET", API, {"nonce": "has space"}),
        ("GET", API, {"nonce": 'quo"te'}),
        ("GET", API, {"nonce": ""}),
        ("GET", API, {"access_token": ""}),
        ("GET", API, {"access_token": "tøken"}),
    ],
)
def test_malformed_proof_arguments_are_dpop_errors(htm: Any, htu: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(DPoPError) as info:
        DPoPKey().proof(htm, htu, **kwargs)
    assert isinstance(info.value, ReqccError)


def test_jti_is_unique_across_threads() -> None:
    dpop = DPoPKey(clock=clock)
    per_thread, threads_n = 40, 32
    proofs: list[list[str]] = [[] for _ in range(threads_n)]
    start = threading.Barrier(threads_n)

    def work(out: list[str]) -> None:
        start.wait(timeout=10)
        out.extend(dpop.proof("GET", API, access_token=f"tok{len(out) % 3}") for _ in range(per_thread))

    threads = [threading.Thread(target=work, args=(out,), daemon=True) for out in proofs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    flat = [proof for out in proofs for proof in out]
    assert len(flat) == threads_n * per_thread
    jtis = {unverified_claims(p)["jti"] for p in flat}
    assert len(jtis) == len(flat)
    for proof in flat[:: per_thread * 4]:  # a sample through the reference, ath included
        claims = unverified_claims(proof)
        token = next(t for t in ("tok0", "tok1", "tok2") if reference_ath(t) == claims["ath"])
        verify_proof(proof, method="GET", url=API, now=NOW, access_token=token)


# --- htu ---


@pytest.mark.parametrize(
    ("url", "htu"),
    [
        ("https://api.example.com/books?x=1#top", "https://api.example.com/books"),
        ("HTTPS://API.Example.COM/Books", "https://api.example.com/Books"),
        ("https://api.example.com:443/a", "https://api.example.com/a"),
        ("http://127.0.0.1:80/a", "http://127.0.0.1/a"),
        ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080/a"),
        ("https://api.example.com:80/a", "https://api.example.com:80/a"),
        ("https://api.example.com", "https://api.example.com/"),
        ("https://api.example.com?q", "https://api.example.com/"),
        ("https://user:pass@api.example.com/a", "https://api.example.com/a"),
        ("http://[::1]:8080/a?b", "http://[::1]:8080/a"),
        ("https://api.example.com/a%2Fb/", "https://api.example.com/a%2Fb/"),
    ],
)
def test_htu_normalization(url: str, htu: str) -> None:
    assert normalize_htu(url) == htu == reference_htu(url)


_hosts = st.one_of(
    st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}(\.[A-Za-z0-9-]{1,8}){0,2}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
_path = st.lists(
    st.text(string.ascii_letters + string.digits + "-._~%!$&'()*+,;=:@", max_size=6), max_size=4
).map(lambda segments: "".join("/" + s for s in segments))
_tail = st.text(string.ascii_letters + string.digits + "/?=&#:@%", max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https", "HTTP", "Https"]),
    userinfo=st.sampled_from(["", "user@", "user:pa%20ss@"]),
    host=_hosts,
    port=st.one_of(st.none(), st.integers(1, 65535)),
    path=_path,
    query=st.one_of(st.just(""), _tail.map(lambda t: "?" + t)),
    fragment=st.one_of(st.just(""), _tail.map(lambda t: "#" + t.replace("#", ""))),
)
def test_htu_normalization_properties(
    scheme: str, userinfo: str, host: str, port: int | None, path: str, query: str, fragment: str
) -> None:
    url = f"{scheme}://{userinfo}{host}{'' if port is None else f':{port}'}{path}{query}{fragment}"
    htu = normalize_htu(url)
    assert htu == reference_htu(url)  # agrees with the independent RFC 3986 Appendix B parser
    assert normalize_htu(htu) == htu  # idempotent
    assert "?" not in htu and "#" not in htu and "@" not in htu.split("/")[2]
    assert htu.endswith(path or "/")


_b64token = st.text(string.ascii_letters + string.digits + "-._~+/", min_size=1, max_size=300).map(
    lambda s: s + "=="
)


@settings(max_examples=40, deadline=None)
@given(
    access_token=_b64token, nonce=st.one_of(st.none(), st.from_regex(r"[!#-\[\]-~]{1,40}", fullmatch=True))
)
def test_any_access_token_and_nonce_verify_under_the_reference(access_token: str, nonce: str | None) -> None:
    dpop = _HYPOTHESIS_KEY
    proof = dpop.proof("PATCH", API, access_token=access_token, nonce=nonce)
    claims = verify_proof(proof, method="PATCH", url=API, now=NOW, access_token=access_token, nonce=nonce)
    assert claims["ath"] == reference_ath(access_token)


_HYPOTHESIS_KEY = DPoPKey(clock=clock)


# --- nonce store ---


def test_nonces_are_kept_per_origin() -> None:
    nonces = DPoPNonces()
    assert nonces.get(API) is None
    assert nonces.update("https://api.example.com/x?y", {"DPoP-Nonce": "n1"}) == "n1"
    assert nonces.get("https://API.example.com:443/other") == "n1"  # same origin
    assert nonces.get("http://api.example.com/x") is None  # other scheme
    assert nonces.get("https://api.example.com:8443/x") is None  # other port
    assert nonces.get("https://as.example.com/token") is None  # other host
    assert nonces.update(API, {"dpop-nonce": "n2"}) == "n2"  # a plain dict, any case
    headers = requests.structures.CaseInsensitiveDict({"DPOP-NONCE": "n3"})
    assert nonces.update(API, headers) == "n3" and nonces.get(API) == "n3"
    assert nonces.update(API, {"Content-Type": "application/json"}) is None  # no header: keep the nonce
    assert nonces.get(API) == "n3"
    nonces.discard(API)
    assert nonces.get(API) is None


@pytest.mark.parametrize("bad", ["", "a b", 'a"b', "a\\b", "ü", "x" * 5000, "n1, n2"])
def test_invalid_nonces_are_ignored(bad: str) -> None:
    nonces = DPoPNonces()
    nonces.set(API, "good")
    assert not is_valid_nonce(bad)
    assert nonces.update(API, {"DPoP-Nonce": bad}) is None
    assert nonces.set(API, bad) is False
    assert nonces.get(API) == "good"


def test_nonce_store_is_bounded_lru() -> None:
    nonces = DPoPNonces(maxsize=3)
    for i in range(3):
        nonces.set(f"https://h{i}.example/", f"n{i}")
    nonces.get("https://h0.example/")  # h0 is now the most recently used
    nonces.set("https://h3.example/", "n3")
    assert len(nonces) == 3
    assert nonces.get("https://h1.example/") is None  # the least recently used went
    assert nonces.get("https://h0.example/") == "n0"
    nonces.clear()
    assert len(nonces) == 0
    assert "n0" not in repr(nonces)


@pytest.mark.parametrize("bad", [0, -1, True, "3", None])
def test_nonce_store_size_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(ConfigurationError):
        DPoPNonces(maxsize=bad)


def test_nonce_store_is_thread_safe() -> None:
    nonces = DPoPNonces(maxsize=16)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(200):
                url = f"https://h{(i + j) % 40}.example/"
                nonces.update(url, {"DPoP-Nonce": f"n{i}-{j}"})
                nonces.get(url)
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert not errors and len(nonces) == 16


# --- use_dpop_nonce ---


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": "use_dpop_nonce", "error_description": "x"}, True),
        (401, {"error": "use_dpop_nonce"}, True),
        (400, {"error": "invalid_dpop_proof"}, False),
        (400, {"error": "invalid_request"}, False),
        (200, {"error": "use_dpop_nonce"}, False),
        (500, {"error": "use_dpop_nonce"}, False),
        (400, ["use_dpop_nonce"], False),
        (400, "use_dpop_nonce", False),
        (400, None, False),
    ],
)
def test_token_endpoint_demands_nonce(status: int, body: Any, expected: bool) -> None:
    assert token_endpoint_demands_nonce(status, body) is expected


@pytest.mark.parametrize(
    ("status", "challenge", "expected"),
    [
        (401, 'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce"', True),
        (401, "DPoP error=use_dpop_nonce", True),
        (401, 'dpop algs="ES256", error="use_dpop_nonce"', True),
        (401, 'Bearer realm="api", error="invalid_token", DPoP error="use_dpop_nonce", algs="ES256"', True),
        (401, 'DPoP error="invalid_token", Bearer error="use_dpop_nonce"', False),
        (401, 'Bearer error="use_dpop_nonce"', False),
        (401, 'DPoP error="invalid_dpop_proof"', False),
        (401, 'DPoP algs="ES256"', False),
        (401, None, False),
        (401, "", False),
        (403, 'DPoP error="use_dpop_nonce"', False),
        (400, 'DPoP error="use_dpop_nonce"', False),
    ],
)
def test_resource_demands_nonce(status: int, challenge: str | None, expected: bool) -> None:
    assert resource_demands_nonce(status, challenge) is expected


def test_dpop_challenge_error_reads_only_the_dpop_challenge() -> None:
    assert dpop_challenge_error('Bearer error="invalid_token", DPoP error="invalid_dpop_proof"') == (
        "invalid_dpop_proof"
    )
    assert dpop_challenge_error('Bearer error="invalid_token"') is None
    assert dpop_challenge_error('DPoP realm="x"') is None


def test_parse_www_authenticate_examples() -> None:
    assert parse_www_authenticate(
        'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple", Foo abc=='
    ) == [
        ("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}),
        ("basic", {"realm": "simple"}),
        ("foo", {"": "abc=="}),
    ]
    assert parse_www_authenticate("DPoP") == [("dpop", {})]
    assert parse_www_authenticate("") == []
    assert parse_www_authenticate('=bad, DPoP error="x"') == []  # stops at the first malformed part
    assert parse_www_authenticate('DPoP error="x", "junk"') == [("dpop", {"error": "x"})]


_tokens = st.from_regex(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,8}", fullmatch=True)
_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(_tokens, st.dictionaries(_tokens.map(str.lower), _values, max_size=4)),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from([", ", ",", " , "]),
)
def test_parse_www_authenticate_round_trips(challenges: list[tuple[str, dict[str, str]]], sep: str) -> None:
    def quote(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    text = sep.join(
        scheme + (" " + sep.join(f"{k}={quote(v)}" for k, v in params.items()) if params else "")
        for scheme, params in challenges
    )
    assert parse_www_authenticate(text) == [(scheme.lower(), params) for scheme, params in challenges]


def test_reference_rejects_a_tampered_reqcc_proof() -> None:
    # the reference is not a rubber stamp: it fails on what it must fail on
    dpop = DPoPKey(clock=clock)
    proof = dpop.proof("GET", API, access_token="t")
    head, body, sig = proof.split(".")
    with pytest.raises(Rejected, match="signature"):
        verify_proof(
            ".".join((head, body, sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB"))),
            method="GET",
            url=API,
            now=NOW,
            access_token="t",
        )
    with pytest.raises(Rejected, match="ath"):
        verify_proof(proof, method="GET", url=API, now=NOW, access_token="u")
    with pytest.raises(Rejected, match="htm"):
        verify_proof(proof, method="POST", url=API, now=NOW, access_token="t")
