"""Unit tests of the JWT client-assertion and mutual-TLS client authentication methods.

The token endpoint is a ``requests_mock.Adapter`` mounted on the manager's token session.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any
from urllib.parse import parse_qs, unquote

import jwt
import pytest
import requests
import requests_mock
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from reqcc import (
    ClientCredentialsManager,
    ClientCredentialsSession,
    ConfigurationError,
    InvalidClient,
    jwt_auth,
)
from reqcc.client_auth import (
    AUTH_METHODS,
    ClientSecretBasic,
    TLSClientAuth,
    make_client_auth,
)
from reqcc.jwt_auth import ASSERTION_TYPE, ClientSecretJWT, PrivateKeyJWT

TOKEN_URL = "https://auth.example.test/oauth/token"
SECRET = "a shared secret of 64 bytes and more, with %41 + / & = : signs in it"
TOKEN_BODY = {"access_token": "at-0123456789", "token_type": "Bearer", "expires_in": 3600}


def _pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def rsa_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> Any:
    return ec.generate_private_key(ec.SECP256R1())


class Wire:
    """A mocked token endpoint on a token session; records what reqcc sent."""

    def __init__(self, status: int = 200, body: Any = None) -> None:
        self.adapter = requests_mock.Adapter()
        self.adapter.register_uri("POST", TOKEN_URL, status_code=status, json=body or TOKEN_BODY)
        self.session = requests.Session()
        self.session.mount("https://", self.adapter)

    def forms(self) -> list[dict[str, str]]:
        return [{k: v[0] for k, v in parse_qs(r.text).items()} for r in self.adapter.request_history]

    def headers(self) -> list[Any]:
        return [r.headers for r in self.adapter.request_history]


def manager(wire: Wire, **kwargs: Any) -> ClientCredentialsManager:
    kwargs.setdefault("client_id", "client-1")
    return ClientCredentialsManager(token_url=TOKEN_URL, token_session=wire.session, **kwargs)


# -- private_key_jwt -------------------------------------------------------------------


@pytest.mark.parametrize("form", ["pem-str", "pem-bytes", "jwk"])
def test_private_key_jwt_sends_a_verifiable_assertion(rsa_key: Any, form: str) -> None:
    pem = _pem(rsa_key)
    private_key: Any = {
        "pem-str": pem,
        "pem-bytes": pem.encode(),
        "jwk": {**json.loads(RSAAlgorithm.to_jwk(rsa_key)), "kid": "k1"},
    }[form]
    wire = Wire()
    m = manager(wire, auth_method="private_key_jwt", private_key=private_key, clock=lambda: 1_800_000_000.0)

    m.fetch_token()

    (sent,) = wire.forms()
    assert sent["grant_type"] == "client_credentials"
    assert sent["client_assertion_type"] == ASSERTION_TYPE
    assert sent["client_id"] == "client-1"
    assert "client_secret" not in sent and "Authorization" not in wire.headers()[0]
    assertion = sent["client_assertion"]
    claims = jwt.decode(
        assertion,
        rsa_key.public_key(),
        algorithms=["RS256"],
        audience=TOKEN_URL,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["iss"] == claims["sub"] == "client-1"
    assert claims["iat"] == 1_800_000_000
    assert "nbf" not in claims  # item 35: refused as "not yet valid" by servers whose clock trails
    assert claims["exp"] == 1_800_000_060
    assert len(claims["jti"]) >= 16
    header = jwt.get_unverified_header(assertion)
    assert header["alg"] == "RS256"
    assert header.get("kid") == ("k1" if form == "jwk" else None)


def test_every_token_request_signs_a_new_assertion(rsa_key: Any) -> None:
    wire = Wire()
    m = manager(wire, auth_method="private_key_jwt", private_key=_pem(rsa_key))
    m.fetch_token()
    m.fetch_token()
    m.fetch_token()
    assertions = [f["client_assertion"] for f in wire.forms()]
    jtis = {jwt.decode(a, options={"verify_signature": False})["jti"] for a in assertions}
    assert len(set(assertions)) == 3 and len(jtis) == 3


@pytest.mark.parametrize("audience", ["https://auth.example.test/", ["https://a.test/", "https://b.test/"]])
def test_assertion_audience_replaces_the_token_url(rsa_key: Any, audience: Any) -> None:
    wire = Wire()
    m = manager(wire, auth_method="private_key_jwt", private_key=_pem(rsa_key), assertion_audience=audience)
    m.fetch_token()
    claims = jwt.decode(wire.forms()[0]["client_assertion"], options={"verify_signature": False})
    assert claims["aud"] == audience


def test_assertion_algorithm_is_configurable(rsa_key: Any, ec_key: Any) -> None:
    wire = Wire()
    manager(
        wire, auth_method="private_key_jwt", private_key=_pem(rsa_key), assertion_algorithm="PS256"
    ).fetch_token()
    manager(
        wire, auth_method="private_key_jwt", private_key=_pem(ec_key), assertion_algorithm="ES256"
    ).fetch_token()
    ec_jwk = json.loads(ECAlgorithm.to_jwk(ec_key))
    manager(wire, auth_method="private_key_jwt", private_key=ec_jwk).fetch_token()  # alg from the JWK's curve
    algs = [jwt.get_unverified_header(f["client_assertion"])["alg"] for f in wire.forms()]
    assert algs == ["PS256", "ES256", "ES256"]
    jwt.decode(
        wire.forms()[1]["client_assertion"], ec_key.public_key(), algorithms=["ES256"], audience=TOKEN_URL
    )


def test_a_key_that_does_not_fit_the_algorithm_fails_at_construction_without_the_key(ec_key: Any) -> None:
    pem = _pem(ec_key)
    with pytest.raises(ConfigurationError) as caught:
        manager(Wire(), auth_method="private_key_jwt", private_key=pem)  # RS256 by default
    message = str(caught.value)
    assert "RS256" in message and "private_key" in message
    assert all(line not in message for line in pem.splitlines()[1:-1])


@pytest.mark.parametrize(
    ("private_key", "words"),
    [
        ("not a key", "PEM"),
        (
            "-----BEGIN PRIVATE KEY-----\nTUlJQ2V3SUJBREFOQmdrcWhraUc5dzBCQVFF\n-----END PRIVATE KEY-----\n",
            "readable",
        ),
        ({"kty": "RSA"}, "JWK"),
        (12345, "PEM str"),
    ],
)
def test_unusable_private_keys_are_configuration_errors(private_key: Any, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words) as caught:
        manager(Wire(), auth_method="private_key_jwt", private_key=private_key)
    assert "TUlJQ2V3SUJBREFOQmdrcWhraUc5dzBCQVFF" not in str(caught.value)
    err = caught.value
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


def test_a_public_jwk_is_refused(rsa_key: Any) -> None:
    public = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
    with pytest.raises(ConfigurationError, match="public key"):
        manager(Wire(), auth_method="private_key_jwt", private_key=public)


def test_an_encrypted_pem_asks_for_the_decrypted_key(rsa_key: Any) -> None:
    encrypted = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(ConfigurationError, match="encrypted"):
        manager(Wire(), auth_method="private_key_jwt", private_key=encrypted)


def test_private_key_jwt_needs_a_private_key_and_an_asymmetric_algorithm(rsa_key: Any) -> None:
    with pytest.raises(ConfigurationError, match="private_key is required"):
        manager(Wire(), auth_method="private_key_jwt")
    with pytest.raises(ConfigurationError, match="client_secret_jwt"):
        manager(Wire(), auth_method="private_key_jwt", private_key=_pem(rsa_key), assertion_algorithm="HS256")


# -- client_secret_jwt -----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [None, "HS384", "HS512"])
def test_client_secret_jwt_signs_with_the_secret(algorithm: str | None) -> None:
    wire = Wire()
    m = manager(wire, auth_method="client_secret_jwt", client_secret=SECRET, assertion_algorithm=algorithm)
    m.fetch_token()
    (sent,) = wire.forms()
    assert "client_secret" not in sent and "Authorization" not in wire.headers()[0]
    alg = algorithm or "HS256"
    claims = jwt.decode(sent["client_assertion"], SECRET.encode(), algorithms=[alg], audience=TOKEN_URL)
    assert claims["iss"] == claims["sub"] == "client-1"
    assert "nbf" not in claims  # item 35
    assert jwt.get_unverified_header(sent["client_assertion"])["alg"] == alg


def test_client_secret_jwt_needs_a_secret_and_an_hmac_algorithm() -> None:
    with pytest.raises(ConfigurationError, match="client_secret is required"):
        manager(Wire(), auth_method="client_secret_jwt")
    with pytest.raises(ConfigurationError, match="private_key_jwt"):
        manager(Wire(), auth_method="client_secret_jwt", client_secret=SECRET, assertion_algorithm="RS256")
    with pytest.raises(ConfigurationError):
        manager(Wire(), auth_method="client_secret_jwt", client_secret=SECRET, assertion_algorithm="none")


# -- keywords that belong to other methods ---------------------------------------------


def test_jwt_keywords_with_another_method_are_configuration_errors(rsa_key: Any) -> None:
    with pytest.raises(ConfigurationError, match="private_key is used only"):
        manager(Wire(), client_secret=SECRET, private_key=_pem(rsa_key))
    with pytest.raises(ConfigurationError, match="assertion_audience is used only"):
        manager(Wire(), client_secret=SECRET, assertion_audience="https://x.test/")
    with pytest.raises(ConfigurationError, match="assertion_algorithm is used only"):
        manager(Wire(), auth_method="client_secret_post", client_secret=SECRET, assertion_algorithm="RS256")


def test_all_method_names_are_listed() -> None:
    assert set(AUTH_METHODS) == {
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
        "none",
    }


# -- the optional dependency -----------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_jwt", "private_key_jwt"])
def test_missing_pyjwt_names_the_extra(monkeypatch: pytest.MonkeyPatch, rsa_key: Any, method: str) -> None:
    monkeypatch.setattr(jwt_auth, "_jwt", None)
    kwargs = {"private_key": _pem(rsa_key)} if method == "private_key_jwt" else {"client_secret": SECRET}
    with pytest.raises(ConfigurationError, match=r"pip install 'reqcc\[jwt\]'"):
        manager(Wire(), auth_method=method, **kwargs)


def test_missing_cryptography_names_the_extra(monkeypatch: pytest.MonkeyPatch, rsa_key: Any) -> None:
    monkeypatch.setattr(jwt_auth, "_has_crypto", False)
    with pytest.raises(ConfigurationError, match=r"cryptography.*pip install 'reqcc\[jwt\]'"):
        manager(Wire(), auth_method="private_key_jwt", private_key=_pem(rsa_key))
    manager(Wire(), auth_method="client_secret_jwt", client_secret=SECRET)  # HMAC needs no cryptography


# -- nothing secret escapes ------------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_jwt", "private_key_jwt"])
def test_key_secret_and_assertion_appear_in_no_repr_log_or_error(
    rsa_key: Any, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    pem = _pem(rsa_key)
    wire = Wire()
    # A server that echoes the whole request back, in the description and as plain text.
    echoed: list[str] = []

    def echo(request: Any, context: Any) -> str:
        echoed.append(request.text)
        context.status_code = 400
        return json.dumps(
            {"error": "invalid_client", "error_description": f"bad request {unquote(request.text)}"}
        )

    wire.adapter.register_uri("POST", TOKEN_URL, text=echo)
    kwargs = {"private_key": pem} if method == "private_key_jwt" else {"client_secret": SECRET}
    session = ClientCredentialsSession(
        token_url=TOKEN_URL,
        client_id="client-1",
        auth_method=method,
        token_session=wire.session,
        adapter=requests_mock.Adapter(),
        **kwargs,
    )
    with caplog.at_level(logging.DEBUG, logger="reqcc"), pytest.raises(InvalidClient) as caught:
        session.get("https://api.example.test/books")

    assertion = parse_qs(echoed[0])["client_assertion"][0]
    texts = [str(caught.value), repr(caught.value), str(caught.value.description)]
    texts += [repr(session.manager), repr(session.token_adapter), repr(session.manager._endpoint.client_auth)]
    texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        assert assertion not in text
        assert assertion.split(".")[1] not in text  # not even the claims segment
        assert SECRET not in text
        assert all(line not in text for line in pem.splitlines()[1:-1])
    assert "bad request" in caught.value.description  # the rest of the description is kept


def test_the_parsed_key_is_kept_not_the_pem(rsa_key: Any) -> None:
    pem = _pem(rsa_key)
    auth = PrivateKeyJWT("client-1", pem)
    assert all(pem not in repr(v) and pem.encode() not in repr(v).encode() for v in vars(auth).values())
    assert repr(auth) == "PrivateKeyJWT(client_id='client-1', algorithm='RS256')"
    assert (
        repr(ClientSecretJWT("client-1", SECRET))
        == "ClientSecretJWT(client_id='client-1', algorithm='HS256')"
    )


# -- tls_client_auth and client_secret_basic --------------------------------------------


@pytest.mark.parametrize("method", ["tls_client_auth", "self_signed_tls_client_auth"])
def test_tls_client_auth_sends_only_the_client_id(method: str) -> None:
    wire = Wire()
    m = manager(wire, auth_method=method)
    m.fetch_token()
    assert wire.forms() == [{"grant_type": "client_credentials", "client_id": "client-1"}]
    assert "Authorization" not in wire.headers()[0]
    assert m.auth_method == method
    assert isinstance(make_client_auth(method, "c", None), TLSClientAuth)


def test_tls_client_auth_without_a_token_session_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="token_session"):
        ClientCredentialsManager(token_url=TOKEN_URL, client_id="c", auth_method="tls_client_auth")


def test_token_session_verify_and_cert_reach_the_token_request(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests would let REQUESTS_CA_BUNDLE replace token_session.verify (psf/requests#3829).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/environment-bundle.pem")
    wire = Wire()
    wire.session.verify = "/etc/token-ca.pem"
    wire.session.cert = ("/etc/client.crt", "/etc/client.key")
    manager(wire, auth_method="tls_client_auth").fetch_token()
    (sent,) = wire.adapter.request_history
    assert sent.verify == "/etc/token-ca.pem"
    assert sent.cert == ("/etc/client.crt", "/etc/client.key")


def test_basic_encodes_space_as_percent_20_so_percent_decoders_and_form_decoders_agree() -> None:
    parts = ClientSecretBasic("id with space", "a b+c:d%41/&=").prepare(TOKEN_URL)
    user, _, password = base64.b64decode(parts.headers["Authorization"][6:]).decode().partition(":")
    assert (user, password) == ("id%20with%20space", "a%20b%2Bc%3Ad%2541%2F%26%3D")
    assert unquote(password) == "a b+c:d%41/&="  # what a percent-decoder (Authlib) reads
    from urllib.parse import unquote_plus

    assert unquote_plus(password) == "a b+c:d%41/&="  # what a form decoder reads


def test_an_assertion_echoed_in_a_non_json_error_body_is_redacted(rsa_key: Any) -> None:
    wire = Wire()
    wire.adapter.register_uri("POST", TOKEN_URL, status_code=502, text=lambda request, context: request.text)
    m = manager(wire, auth_method="private_key_jwt", private_key=_pem(rsa_key), max_retries=0)
    from reqcc import TokenResponseError

    with pytest.raises(TokenResponseError) as caught:
        m.fetch_token()
    assertion = wire.forms()[0]["client_assertion"]
    assert "502" in str(caught.value)
    assert "client_assertion=***" in str(caught.value)
    for part in assertion.split("."):
        assert part not in str(caught.value)
