"""issuer= against Authlib: its RFC 8414 metadata (Authlib's own implementation), over https.

The Authlib server publishes only the RFC 8414 document (its OpenID Connect path is a 404),
so reqcc's fallback from the first well-known URL to the second is exercised too.
"""

from __future__ import annotations

from collections.abc import Callable

import jwt
import pytest
import requests

from reqcc import ClientCredentialsSession, ConfigurationError

from .authlib_server import AuthlibServer
from .conftest import SPECIAL_SECRET, RSAKeys, TLSFiles


@pytest.fixture(autouse=True)
def no_ca_bundle_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests lets these override Session.verify (psf/requests#3829): keep the machine's out."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def discovering_session(server: AuthlibServer, tls: TLSFiles, **kwargs: object) -> ClientCredentialsSession:
    token_session = requests.Session()
    token_session.verify = tls.ca_file
    session = ClientCredentialsSession(
        issuer=server.issuer, base_url=server.api_url, scopes=["books.read"], token_session=token_session,
        **kwargs,  # type: ignore[arg-type]
    )
    session.verify = tls.ca_file
    return session


def test_reqcc_discovers_authlibs_token_endpoint(
    start_authlib: Callable[..., AuthlibServer], tls: TLSFiles
) -> None:
    server = start_authlib(ssl_context=tls.server_context())
    with discovering_session(server, tls, client_id="basic-client", client_secret=SPECIAL_SECRET) as session:
        assert server.token_requests == 0 and server.metadata_requests == 0  # nothing in the constructor
        assert session.get(server.api_url + "books", timeout=10).json()["client_id"] == "basic-client"
        assert session.get(server.api_url + "orders", timeout=10).status_code == 200
        manager = session.manager
        assert manager.token_url == server.token_url
        assert manager.auth_method == "client_secret_basic"  # the first method Authlib lists
        assert manager.metadata is not None
        assert manager.metadata.source_url == server.issuer + "/.well-known/oauth-authorization-server"
    assert (server.metadata_requests, server.token_requests) == (1, 1)


def test_private_key_jwt_is_chosen_for_a_key_and_its_audience_is_the_discovered_endpoint(
    start_authlib: Callable[..., AuthlibServer], tls: TLSFiles, rsa_keys: RSAKeys
) -> None:
    server = start_authlib(ssl_context=tls.server_context())
    with discovering_session(server, tls, client_id="key-jwt-client", private_key=rsa_keys.pem) as session:
        assert session.get(server.api_url + "books", timeout=10).status_code == 200
        assert session.manager.auth_method == "private_key_jwt"
    assertion = server.token_forms[-1]["client_assertion"]
    assert jwt.decode(assertion, options={"verify_signature": False})["aud"] == server.token_url
    assert server.token_statuses == [200]


def test_a_document_naming_another_issuer_is_refused_before_any_token_request(
    start_authlib: Callable[..., AuthlibServer], tls: TLSFiles
) -> None:
    server = start_authlib(ssl_context=tls.server_context())
    server.metadata_overrides["issuer"] = "https://attacker.example"
    with discovering_session(server, tls, client_id="basic-client", client_secret=SPECIAL_SECRET) as session:
        with pytest.raises(ConfigurationError, match=r"attacker\.example") as info:
            session.get(server.api_url + "books", timeout=10)
        assert server.issuer in str(info.value)
        assert session.manager.token_url is None
    assert server.metadata_requests == 1
    assert server.token_requests == 0 and server.api_statuses == []
    assert SPECIAL_SECRET not in str(info.value)
