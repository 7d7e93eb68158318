"""reqcc against oidc-provider (panva), an independent and widely used authorization server.

``server.mjs`` (next to this file) runs oidc-provider on a free 127.0.0.1 port with
client_credentials, discovery, introspection, revocation, resource indicators and DPoP
with server nonces required; plus a small protected resource that checks tokens and DPoP
proofs with panva's ``jose``. Nothing here shares code with reqcc's own test server.

These tests need Node.js and the server's packages: ``tox -e interop`` installs them
(``npm ci`` in tests/interop). Without them every test here is skipped, saying so, except
under ``tox -e interop`` (``REQCC_INTEROP=required``, as in CI), where that is a failure.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import RSAAlgorithm

from reqcc import (
    ClientCredentialsManager,
    ClientCredentialsSession,
    DPoPKey,
    OAuthScope,
)
from reqcc.errors import InvalidClient, InvalidGrant, InvalidScope, OAuthProviderError
from tests.dpop_reference import unverified_claims
from tests.platform_tokens import Platform, write_replace
from tests.threads import run_threads

HERE = Path(__file__).resolve().parent
RESOURCE = "https://api.example.test/"
#: Characters that break a naive Basic encoding (RFC 6749 §2.3.1 form-encodes id and secret).
BASIC_SECRET = "s3cr:et %41+/&=x y&z=1+2/3:4% and more"
POST_SECRET = "post-secret-" + "p" * 40
JWT_SECRET = "hs256-secret-" + "h" * 40
DPOP_SECRET = "dpop-secret-" + "d" * 40
#: A workload's platform (signing with jwcrypto): its public key is the client's JWKS.
PLATFORM = Platform(issuer="workload-client", subject="workload-client", kid="platform-key-1")

_NODE = shutil.which("node")
_MISSING = (
    "Node.js is not installed"
    if _NODE is None
    else "oidc-provider is not installed: run `npm ci` in tests/interop (or `tox -e interop`)"
    if not (HERE / "node_modules" / "oidc-provider" / "package.json").is_file()
    else None
)
#: Set by ``tox -e interop`` (which CI runs): there the suite must run, so a missing server fails it.
REQUIRED = os.environ.get("REQCC_INTEROP") == "required"
if _MISSING is not None and REQUIRED:
    pytest.fail(f"interop with oidc-provider was required (REQCC_INTEROP=required) but {_MISSING}",
                pytrace=False)
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=f"interop with oidc-provider: {_MISSING}")


def _rsa_private_pem() -> tuple[str, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    public.update(alg="RS256", use="sig", kid="client-key-1")
    return pem, public


def _basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1 Basic credentials (form-encoded first; requests' auth= does not encode)."""
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _client(client_id: str, method: str, **extra: Any) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "grant_types": ["client_credentials"],
        "redirect_uris": [],
        "response_types": [],
        "token_endpoint_auth_method": method,
        "scope": "books.read orders.read",
        **extra,
    }


@dataclass
class OidcProvider:
    """The running server: its issuers, the client credentials and its request record."""

    issuer: str
    tenant_issuer: str
    private_key_pem: str

    @property
    def token_url(self) -> str:
        return self.issuer + "/token"

    @property
    def api(self) -> str:
        return self.issuer + "/api/"

    def events(self) -> list[dict[str, Any]]:
        response = requests.get(self.issuer + "/_events", timeout=5)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def introspect(self, token: str, client_id: str, secret: str) -> dict[str, Any]:
        response = requests.post(
            self.issuer + "/token/introspection",
            data={"token": token},
            headers={"Authorization": _basic(client_id, secret)},
            timeout=5,
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def revoke(self, token: str, client_id: str, secret: str) -> None:
        response = requests.post(
            self.issuer + "/token/revocation",
            data={"token": token},
            headers={"Authorization": _basic(client_id, secret)},
            timeout=5,
        )
        assert response.status_code == 200, response.text


class Recorder:
    """The server's requests after a mark: ``rec.token_requests`` etc. count only the new ones."""

    def __init__(self, server: OidcProvider) -> None:
        self.server = server
        self.start = len(server.events())

    def new(self) -> list[dict[str, Any]]:
        return self.server.events()[self.start :]

    def posts(self, path: str) -> list[dict[str, Any]]:
        return [e for e in self.new() if e["method"] == "POST" and e["path"] == path]

    def api_calls(self) -> list[dict[str, Any]]:
        return [e for e in self.new() if e["path"].startswith("/api/")]


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    workdir = tmp_path_factory.mktemp("oidc-provider")
    pem, public_jwk = _rsa_private_pem()
    clients = [
        _client("basic-client", "client_secret_basic", client_secret=BASIC_SECRET),
        _client("post-client", "client_secret_post", client_secret=POST_SECRET),
        _client("hs-client", "client_secret_jwt", client_secret=JWT_SECRET),
        _client("key-client", "private_key_jwt", jwks={"keys": [public_jwk]}),
        _client(
            "workload-client", "private_key_jwt",
            jwks={"keys": [{**PLATFORM.public_jwk(), "alg": "ES256", "use": "sig"}]},
        ),
        _client(
            "dpop-client", "client_secret_basic", client_secret=DPOP_SECRET, dpop_bound_access_tokens=True
        ),
    ]
    config = workdir / "config.json"
    config.write_text(json.dumps({"clients": clients}))
    stderr = (workdir / "stderr.txt").open("wb")
    assert _NODE is not None
    process = subprocess.Popen(
        [_NODE, str(HERE / "server.mjs"), str(config)],
        cwd=HERE,
        stdin=subprocess.PIPE,  # closing it (or this process dying) ends the server
        stdout=subprocess.PIPE,
        stderr=stderr,
        env={**os.environ, "NODE_ENV": "test"},
    )
    line: list[bytes] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(30)
    try:
        if not line or not line[0]:
            process.kill()
            process.wait(10)
            stderr.close()
            pytest.fail(
                "oidc-provider did not start:\n"
                + (workdir / "stderr.txt").read_text(errors="replace")[-3000:]
            )
        info = json.loads(line[0])
        yield OidcProvider(info["issuer"], info["tenant_issuer"], pem)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        stderr.close()
        assert not reader.is_alive()


# -- discovery --------------------------------------------------------------------------


@pytest.mark.parametrize("tenant", [False, True], ids=["root-issuer", "issuer-with-path"])
def test_issuer_discovery_finds_the_token_endpoint_and_a_listed_method(
    oidc: OidcProvider, tenant: bool
) -> None:
    issuer = oidc.tenant_issuer if tenant else oidc.issuer
    rec = Recorder(oidc)
    session = ClientCredentialsSession(
        issuer=issuer, client_id="basic-client", client_secret=BASIC_SECRET, base_url=oidc.api
    )
    assert rec.new() == []  # nothing fetched in the constructor
    response = session.get(oidc.api + "books")
    assert response.status_code == 200, response.text
    assert response.json()["clientId"] == "basic-client"
    assert session.manager.token_url == issuer + "/token"
    prefix = "/tenant" if tenant else ""
    paths = [(e["method"], e["path"], e["status"]) for e in rec.new()]
    assert paths == [
        ("GET", prefix + "/.well-known/openid-configuration", 200),
        ("POST", prefix + "/token", 200),
        ("GET", "/api/books", 200),
    ]
    assert [e["authorization_scheme"] for e in rec.posts(prefix + "/token")] == ["Basic"]


def test_discovery_with_a_private_key_picks_private_key_jwt(oidc: OidcProvider) -> None:
    session = ClientCredentialsSession(
        issuer=oidc.issuer, client_id="key-client", private_key=oidc.private_key_pem, base_url=oidc.api
    )
    response = session.get(oidc.api + "books")
    assert response.status_code == 200, response.text
    assert response.json()["clientId"] == "key-client"


def test_an_issuer_that_is_not_the_documents_is_refused(oidc: OidcProvider) -> None:
    # oidc-provider's documents name their own issuer; asked as "issuer/" the comparison fails.
    from reqcc import ConfigurationError

    rec = Recorder(oidc)
    manager = ClientCredentialsManager(
        issuer=oidc.issuer + "/", client_id="basic-client", client_secret=BASIC_SECRET
    )
    with pytest.raises(ConfigurationError, match="not the configured issuer"):
        manager.fetch_token()
    assert rec.posts("/token") == []


# -- client authentication ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_id", "kwargs"),
    [
        ("basic-client", {"client_secret": BASIC_SECRET}),
        ("post-client", {"client_secret": POST_SECRET, "auth_method": "client_secret_post"}),
        ("hs-client", {"client_secret": JWT_SECRET, "auth_method": "client_secret_jwt"}),
        ("key-client", {"private_key": None, "auth_method": "private_key_jwt"}),
    ],
    ids=["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"],
)
def test_each_client_auth_method_gets_a_token_the_resource_accepts(
    oidc: OidcProvider, client_id: str, kwargs: dict[str, Any]
) -> None:
    if "private_key" in kwargs:
        kwargs = {**kwargs, "private_key": oidc.private_key_pem}
    rec = Recorder(oidc)
    session = ClientCredentialsSession(
        token_url=oidc.token_url,
        client_id=client_id,
        scopes=[OAuthScope.BooksRead],
        base_url=oidc.api,
        **kwargs,
    )
    for _ in range(3):
        response = session.get(oidc.api + "books")
        assert response.status_code == 200, response.text
    body = response.json()
    assert body["clientId"] == client_id
    assert body["scheme"] == "Bearer"
    assert body["scope"] == "books.read"
    assert len(rec.posts("/token")) == 1  # reused
    token = session.manager.token
    assert token is not None and token.token_type == "Bearer" and token.expires_in == 600


# -- workload identity: an assertion the platform signed (contract item 38) -----------------


def _platform_token(audience: str) -> str:
    # oidc-provider wants iss = sub = client_id, aud = its issuer or token endpoint, and a
    # jti it has not seen (single use, RFC 7523 §3 allows a server to require it).
    import time

    return PLATFORM.mint(audience=audience, now=time.time(), lifetime=300)


def test_a_platform_assertion_file_authenticates_as_private_key_jwt(
    oidc: OidcProvider, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(_platform_token(oidc.token_url))
    rec = Recorder(oidc)
    session = ClientCredentialsSession(
        token_url=oidc.token_url, client_id="workload-client", client_assertion_file=token_file,
        scopes=["books.read"], base_url=oidc.api,
    )
    response = session.get(oidc.api + "books")
    assert response.status_code == 200, response.text
    assert response.json()["clientId"] == "workload-client"
    # oidc-provider refuses an assertion's jti a second time: the same file is refused ...
    with pytest.raises(InvalidClient) as caught:
        session.manager.fetch_token()
    assert token_file.read_text() not in str(caught.value)
    # ... and the platform's rotated file (os.replace) is read again and accepted.
    write_replace(token_file, _platform_token(oidc.token_url))
    assert session.manager.fetch_token().token_type == "Bearer"
    assert [e["status"] for e in rec.posts("/token")] == [200, 401, 200]


def test_a_platform_assertion_callable_with_discovery_and_dpop(oidc: OidcProvider) -> None:
    # A callable mints one per request: the use_dpop_nonce retry gets a fresh one too.
    audiences: list[str] = []

    def platform(audience: str) -> str:
        audiences.append(audience)
        return _platform_token(audience)

    rec = Recorder(oidc)
    session = ClientCredentialsSession(
        issuer=oidc.tenant_issuer, client_id="workload-client", client_assertion=platform,
        dpop=True, base_url=oidc.api,
    )
    response = session.get(oidc.api + "books")
    assert response.status_code == 200, response.text
    assert response.json()["scheme"] == "DPoP" and response.json()["clientId"] == "workload-client"
    assert [e["status"] for e in rec.posts("/tenant/token")] == [400, 200]
    assert audiences == [oidc.tenant_issuer + "/token"] * 2


def test_a_wrong_secret_is_invalid_client(oidc: OidcProvider) -> None:
    manager = ClientCredentialsManager(
        token_url=oidc.token_url, client_id="basic-client", client_secret="nope"
    )
    with pytest.raises(InvalidClient) as caught:
        manager.fetch_token()
    assert caught.value.status_code in (400, 401)
    assert "nope" not in str(caught.value)


# -- scopes -----------------------------------------------------------------------------


def test_scopes_are_sent_space_joined_and_the_granted_scope_recorded(oidc: OidcProvider) -> None:
    manager = ClientCredentialsManager(
        token_url=oidc.token_url,
        client_id="basic-client",
        client_secret=BASIC_SECRET,
        scopes=[OAuthScope.BooksRead, OAuthScope.OrdersRead],
    )
    token = manager.fetch_token()
    assert set(token.scopes) == {"books.read", "orders.read"}
    introspected = oidc.introspect(token.access_token, "basic-client", BASIC_SECRET)
    assert introspected["active"] is True
    assert set(introspected["scope"].split()) == {"books.read", "orders.read"}
    assert introspected["client_id"] == "basic-client"


def test_a_scope_the_client_may_not_have_is_invalid_scope(oidc: OidcProvider) -> None:
    manager = ClientCredentialsManager(
        token_url=oidc.token_url,
        client_id="basic-client",
        client_secret=BASIC_SECRET,
        scopes=[OAuthScope.OrdersWrite],
    )
    with pytest.raises(InvalidScope) as caught:
        manager.fetch_token()
    assert caught.value.error == "invalid_scope"


def test_a_resource_indicator_gets_a_jwt_access_token(oidc: OidcProvider) -> None:
    session = ClientCredentialsSession(
        token_url=oidc.token_url,
        client_id="basic-client",
        client_secret=BASIC_SECRET,
        scopes=["books.read"],
        token_params={"resource": RESOURCE},
        base_url=oidc.api,
    )
    response = session.get(oidc.api + "books")
    assert response.status_code == 200, response.text
    assert response.json()["format"] == "jwt"
    token = session.manager.token
    assert token is not None and token.access_token.count(".") == 2


# -- revocation: a 401 invalid_token retires the token (item 11) ---------------------------


def test_a_revoked_token_is_retired_and_the_request_replayed(oidc: OidcProvider) -> None:
    session = ClientCredentialsSession(
        token_url=oidc.token_url, client_id="basic-client", client_secret=BASIC_SECRET, base_url=oidc.api
    )
    assert session.get(oidc.api + "books").status_code == 200
    first = session.manager.token
    assert first is not None
    oidc.revoke(first.access_token, "basic-client", BASIC_SECRET)
    rec = Recorder(oidc)
    response = session.get(oidc.api + "books")
    assert response.status_code == 200, response.text
    assert [e["status"] for e in rec.api_calls()] == [401, 200]
    assert len(rec.posts("/token")) == 1
    second = session.manager.token
    assert second is not None and second.access_token != first.access_token


# -- DPoP (RFC 9449) ----------------------------------------------------------------------


def _dpop_session(oidc: OidcProvider, **extra: Any) -> ClientCredentialsSession:
    """A session for ``dpop-client`` with a generated DPoP key, its API at ``oidc.api``."""
    return ClientCredentialsSession(
        token_url=oidc.token_url,
        client_id="dpop-client",
        client_secret=DPOP_SECRET,
        dpop=True,
        base_url=oidc.api,
        **extra,
    )


def test_dpop_token_request_does_the_nonce_dance_once(oidc: OidcProvider) -> None:
    rec = Recorder(oidc)
    manager = ClientCredentialsManager(
        token_url=oidc.token_url, client_id="dpop-client", client_secret=DPOP_SECRET, dpop=True
    )
    token = manager.fetch_token()
    posts = rec.posts("/token")
    assert [(e["status"], e["dpop"]) for e in posts] == [(400, True), (200, True)]
    assert posts[0]["dpop_nonce"]  # the server's DPoP-Nonce on its use_dpop_nonce answer
    assert token.token_type == "DPoP"
    # The nonce is remembered: the next fetch is one request.
    manager.fetch_token()
    assert len(rec.posts("/token")) == 3
    introspected = oidc.introspect(token.access_token, "dpop-client", DPOP_SECRET)
    assert introspected["active"] is True
    assert introspected["token_type"] == "DPoP"
    assert introspected["cnf"] == {"jkt": manager.dpop_thumbprint}


@pytest.mark.parametrize(
    "key",
    [
        "generated",
        "ec-p256-pem",
        "rsa-jwk",
    ],
)
def test_a_dpop_bound_token_is_accepted_at_the_resource(oidc: OidcProvider, key: str) -> None:
    kwargs: dict[str, Any]
    if key == "generated":
        kwargs = {"dpop": True}
    elif key == "ec-p256-pem":
        ec_key = ec.generate_private_key(ec.SECP256R1())
        kwargs = {
            "dpop_key": ec_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        }
    else:
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key))
        kwargs = {"dpop_key": DPoPKey(jwk)}
    rec = Recorder(oidc)
    session = ClientCredentialsSession(
        token_url=oidc.token_url,
        client_id="dpop-client",
        client_secret=DPOP_SECRET,
        scopes=["books.read"],
        base_url=oidc.api,
        **kwargs,
    )
    for _ in range(3):
        response = session.get(oidc.api + "books", params={"q": "x"})
        assert response.status_code == 200, response.text
    body = response.json()
    assert body["scheme"] == "DPoP"
    assert body["thumbprint"] == session.manager.dpop_thumbprint == body["jkt"]
    assert [e["authorization_scheme"] for e in rec.api_calls()] == ["DPoP"] * 3
    assert len(rec.posts("/token")) == 2  # the nonce dance, once


def test_a_resource_server_nonce_is_answered_without_a_new_token(oidc: OidcProvider) -> None:
    session = _dpop_session(oidc)
    rec = Recorder(oidc)
    response = session.get(oidc.api + "nonce/books")
    assert response.status_code == 200, response.text
    assert response.json()["nonce"]
    assert [e["status"] for e in rec.api_calls()] == [401, 200]
    assert len(rec.posts("/token")) == 2  # the token endpoint's nonce dance only; no retirement


def test_a_dpop_jwt_access_token_carries_our_thumbprint(oidc: OidcProvider) -> None:
    session = _dpop_session(oidc, token_params={"resource": RESOURCE})
    response = session.get(oidc.api + "books")
    assert response.status_code == 200, response.text
    token = session.manager.token
    assert token is not None
    claims = unverified_claims(token.access_token)
    assert claims["cnf"] == {"jkt": session.manager.dpop_thumbprint}
    assert claims["aud"] == RESOURCE
    assert response.json()["format"] == "jwt"


def test_dpop_with_private_key_jwt_and_discovery(oidc: OidcProvider) -> None:
    # A use_dpop_nonce retry must carry a fresh client assertion (oidc-provider refuses a
    # replayed jti), and discovery must not need a proof.
    rec = Recorder(oidc)
    session = ClientCredentialsSession(
        issuer=oidc.tenant_issuer,
        client_id="key-client",
        private_key=oidc.private_key_pem,
        dpop=True,
        base_url=oidc.api,
    )
    response = session.get(oidc.api + "books")
    assert response.status_code == 200, response.text
    assert response.json()["scheme"] == "DPoP"
    assert [e["status"] for e in rec.posts("/tenant/token")] == [400, 200]


def test_a_dpop_bound_client_without_dpop_is_refused_by_the_server(oidc: OidcProvider) -> None:
    manager = ClientCredentialsManager(
        token_url=oidc.token_url, client_id="dpop-client", client_secret=DPOP_SECRET
    )
    with pytest.raises(OAuthProviderError) as caught:
        manager.fetch_token()
    assert isinstance(
        caught.value, InvalidGrant
    )  # oidc-provider hides the detail ("DPoP proof JWT not provided")


def test_a_revoked_dpop_token_is_retired_and_replayed_with_fresh_proofs(oidc: OidcProvider) -> None:
    session = _dpop_session(oidc)
    assert session.get(oidc.api + "books").status_code == 200
    first = session.manager.token
    assert first is not None
    oidc.revoke(first.access_token, "dpop-client", DPOP_SECRET)
    rec = Recorder(oidc)
    response = session.get(oidc.api + "books")
    assert response.status_code == 200, response.text  # the resource refuses replayed jti values
    assert [e["status"] for e in rec.api_calls()] == [401, 200]
    assert len(rec.posts("/token")) == 1


def test_a_resource_server_nonce_replays_a_post_body(oidc: OidcProvider) -> None:
    session = _dpop_session(oidc)
    rec = Recorder(oidc)
    response = session.post(oidc.api + "nonce/orders", json={"book": 1})
    assert response.status_code == 200, response.text
    assert [(e["method"], e["status"]) for e in rec.api_calls()] == [("POST", 401), ("POST", 200)]


def test_concurrent_dpop_requests_share_one_token_and_never_repeat_a_jti(oidc: OidcProvider) -> None:
    # The resource refuses a replayed jti; 16 threads x 4 requests all succeed, after one
    # nonce dance at the token endpoint.
    session = _dpop_session(oidc)
    rec = Recorder(oidc)

    def work(_: int) -> list[int]:
        return [session.get(oidc.api + "books").status_code for _ in range(4)]

    assert run_threads(work, 16, timeout=60) == [[200] * 4] * 16
    assert [e["status"] for e in rec.posts("/token")] == [400, 200]


def test_two_managers_with_one_key_share_a_dpop_token_through_a_store(
    oidc: OidcProvider, tmp_path: Path
) -> None:
    from reqcc.stores import FileTokenStore

    key = DPoPKey.generate()
    rec = Recorder(oidc)
    sessions = [
        ClientCredentialsSession(
            token_url=oidc.token_url,
            client_id="dpop-client",
            client_secret=DPOP_SECRET,
            dpop_key=key,
            token_store=FileTokenStore(tmp_path / "tokens"),
            base_url=oidc.api,
        )
        for _ in range(2)
    ]
    for session in sessions:
        response = session.get(oidc.api + "books")
        assert response.status_code == 200, response.text
    assert len(rec.posts("/token")) == 2  # one nonce dance, then the second manager reads the store


# -- the command line ---------------------------------------------------------------------


def _cli(*args: str, secret: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REQCC_")}
    env["REQCC_CLIENT_SECRET"] = secret
    return subprocess.run(
        [sys.executable, "-m", "reqcc", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE.parent.parent,
        timeout=60,
    )


def test_cli_token_with_issuer_and_dpop(oidc: OidcProvider) -> None:
    done = _cli("token", "--issuer", oidc.issuer, "--client-id", "dpop-client", "--dpop", secret=DPOP_SECRET)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["token_type"] == "DPoP"
    assert DPOP_SECRET not in done.stdout + done.stderr


def test_cli_request_with_dpop_end_to_end(oidc: OidcProvider) -> None:
    done = _cli(
        "request",
        "--token-url",
        oidc.token_url,
        "--client-id",
        "dpop-client",
        "--dpop",
        oidc.api + "nonce/books",
        secret=DPOP_SECRET,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["scheme"] == "DPoP"


def test_token_endpoint_and_resource_nonces_on_one_origin_do_not_take_turns(oidc: OidcProvider) -> None:
    # RFC 9449 §9: an AS nonce and an RS nonce are different things, even on one origin.
    # With one nonce per origin, every renewal cost a use_dpop_nonce round trip at the token
    # endpoint and another at the API.
    session = _dpop_session(oidc)
    assert session.get(oidc.api + "nonce/books").status_code == 200
    rec = Recorder(oidc)
    for _ in range(3):
        session.manager.fetch_token()
        response = session.get(oidc.api + "nonce/books")
        assert response.status_code == 200, response.text
    assert [e["status"] for e in rec.posts("/token")] == [200] * 3
    assert [e["status"] for e in rec.api_calls()] == [200] * 3


def test_a_resource_without_nonces_on_the_token_endpoints_origin_gets_no_nonce(oidc: OidcProvider) -> None:
    # oidc-provider demands nonces at its token endpoint; /api/strict/ on the same origin uses
    # none and refuses a proof carrying a nonce it never issued (RFC 9449 §9: a nonce is
    # accepted only by the server that issued it). Offering it the token endpoint's nonce
    # failed every request with invalid_dpop_proof.
    session = _dpop_session(oidc)
    rec = Recorder(oidc)
    for _ in range(2):
        response = session.get(oidc.api + "strict/books")
        assert response.status_code == 200, response.text
        assert response.json()["nonce"] is None
        session.manager.fetch_token()  # a renewal with the token endpoint's nonce in between
    assert session.get(oidc.api + "strict/books").status_code == 200
    assert [e["status"] for e in rec.api_calls()] == [200] * 3  # each at once, no retry
    assert [e["status"] for e in rec.posts("/token")] == [400, 200, 200, 200]
