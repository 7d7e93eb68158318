"""Fixtures of the interoperability tests: real servers on free 127.0.0.1 ports, TLS material.

Each server fixture is a factory: ``start(...)`` starts one server in a thread and the
fixture stops it after the test. The servers and tools come with the ``test`` extra
(``pip install -e '.[test]'``); without them these tests fail to import rather than
being skipped unseen.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from reqcc.testing import FakeClock  # importable from here as before it shipped

from .authlib_server import AuthlibServer, Client

#: A secret with every character that breaks a naive Basic or form encoding, 32+ bytes long
#: (so HS256 needs no short-key warning). ``%41`` catches a server that decodes twice.
SPECIAL_SECRET = "s3cr:et %41+/&=x y&z=1+2/3:4% and more"
assert len(SPECIAL_SECRET.encode()) >= 32


@pytest.fixture
def fake_clock() -> FakeClock:
    """A hand-moved clock shared by the server and reqcc; starts at the real time so JWT checks pass."""
    return FakeClock(time.time())


@dataclass(frozen=True)
class TLSFiles:
    """Certificates from trustme, written to files the way requests wants them."""

    ca: Any  # trustme.CA that signed the server and client certificates
    ca_file: str  # its certificate, for verify=
    server_cert: Any  # trustme.LeafCert for 127.0.0.1
    client_cert_file: str  # client certificate + key (CN=client-tls), for cert=
    stranger_cert_file: str  # signed by the same CA, but for CN=stranger (registered nowhere)
    other_ca_file: str  # a CA that signed nothing here (verification against it fails)

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        """A server-side context with the 127.0.0.1 certificate (and client-cert checking)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(ctx)
        if require_client_cert:
            self.ca.configure_trust(ctx)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """One CA, a server certificate for 127.0.0.1 and a client certificate (CN=client-tls)."""
    folder: Path = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("client-tls.reqcc.test", common_name="client-tls")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    client_cert.private_key_and_cert_chain_pem.write_to_path(str(folder / "client.pem"))
    stranger = ca.issue_cert("stranger.reqcc.test", common_name="stranger")
    stranger.private_key_and_cert_chain_pem.write_to_path(str(folder / "stranger.pem"))
    trustme.CA().cert_pem.write_to_path(str(folder / "other-ca.pem"))
    return TLSFiles(
        ca=ca,
        ca_file=str(folder / "ca.pem"),
        server_cert=server_cert,
        client_cert_file=str(folder / "client.pem"),
        stranger_cert_file=str(folder / "stranger.pem"),
        other_ca_file=str(folder / "other-ca.pem"),
    )


@dataclass(frozen=True)
class RSAKeys:
    """One RSA key pair in the forms private_key= takes, and the public JWK the server knows."""

    pem: str
    public_jwk: dict[str, Any]
    private_jwk: dict[str, Any]


@pytest.fixture(scope="session")
def rsa_keys() -> RSAKeys:
    """A 2048-bit RSA key pair for private_key_jwt."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    private_jwk = {**json.loads(RSAAlgorithm.to_jwk(key)), "kid": "reqcc-test-key"}
    return RSAKeys(pem=pem, public_jwk={**public_jwk, "kid": "reqcc-test-key"}, private_jwk=private_jwk)


@pytest.fixture
def authlib_clients(rsa_keys: RSAKeys) -> dict[str, Client]:
    """The clients registered at the Authlib server, one per authentication method."""
    clients = [
        Client("basic-client", SPECIAL_SECRET, ("client_secret_basic",)),
        Client("post-client", SPECIAL_SECRET, ("client_secret_post",)),
        Client("secret-jwt-client", SPECIAL_SECRET, ("client_secret_jwt",)),
        Client("key-jwt-client", None, ("private_key_jwt",), public_jwk=rsa_keys.public_jwk),
        Client("tls-client", None, ("tls_client_auth",), tls_subject_cn="client-tls"),
        Client("books-only", SPECIAL_SECRET, ("client_secret_basic",), allowed_scopes=("books.read",)),
    ]
    return {c.client_id: c for c in clients}


@pytest.fixture
def start_authlib(authlib_clients: dict[str, Client]) -> Iterator[Callable[..., AuthlibServer]]:
    """Factory: ``start_authlib(expires_in=…, clock=…, ssl_context=…)`` → a running server."""
    servers: list[AuthlibServer] = []

    def start(**kwargs: Any) -> AuthlibServer:
        server = AuthlibServer(clients=authlib_clients, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def start_oauthlib(reqcc_server_factory: Callable[..., Any]) -> Callable[..., Any]:
    """Factory: ``start_oauthlib(clients=…, token_ttl=…, ssl_context=…, …)`` → a running
    :class:`reqcc.testing.LocalAuthorizationServer` (oauthlib's server side), through reqcc's
    own pytest plugin, with the special-secret clients of these tests by default."""

    def start(**kwargs: Any) -> Any:
        kwargs.setdefault(
            "clients",
            {
                "secret-client": (SPECIAL_SECRET, ("books.read", "orders.read", "orders.write")),
                "books-only": (SPECIAL_SECRET, ("books.read",)),
                "public-client": (None, ("books.read",)),
            },
        )
        return reqcc_server_factory(**kwargs)

    return start
