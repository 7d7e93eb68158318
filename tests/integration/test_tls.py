"""reqcc over TLS with verification on: certificates from trustme, the CA handed to reqcc.

The CA reaches the token request through ``token_session.verify`` and the API requests
through the session's own ``verify``; nothing needs ``verify=False``. Mutual TLS
(``tls_client_auth``, RFC 8705) runs against a server that requires a client certificate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jwt
import pytest
import requests

from reqcc import ClientCredentialsSession, InvalidClient

from .authlib_server import AuthlibServer
from .conftest import SPECIAL_SECRET, RSAKeys, TLSFiles


@pytest.fixture(autouse=True)
def no_ca_bundle_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests lets these override Session.verify (psf/requests#3829): keep the machine's out."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def token_session(verify: str | bool, cert: str | None = None) -> requests.Session:
    session = requests.Session()
    session.verify = verify
    session.cert = cert
    return session


def https_session(server: AuthlibServer, tls: TLSFiles, **kwargs: Any) -> ClientCredentialsSession:
    kwargs.setdefault("token_session", token_session(tls.ca_file))
    session = ClientCredentialsSession(
        token_url=server.token_url, base_url=server.api_url, scopes=["books.read"], **kwargs
    )
    session.verify = tls.ca_file
    return session


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "private_key_jwt"])
def test_https_with_verification_on(
    start_authlib: Callable[..., AuthlibServer], tls: TLSFiles, rsa_keys: RSAKeys, method: str
) -> None:
    server = start_authlib(ssl_context=tls.server_context())
    assert server.token_url.startswith("https://127.0.0.1:")
    creds: dict[str, Any] = (
        {"client_id": "key-jwt-client", "private_key": rsa_keys.pem}
        if method == "private_key_jwt"
        else {
            "client_id": {"client_secret_basic": "basic-client"}.get(method, "post-client"),
            "client_secret": SPECIAL_SECRET,
        }
    )
    session = https_session(server, tls, auth_method=method, **creds)

    assert session.get(server.api_url + "books").status_code == 200
    assert session.get(server.api_url + "orders").status_code == 200
    assert server.token_requests == 1
    if method == "private_key_jwt":
        claims = jwt.decode(server.token_forms[0]["client_assertion"], options={"verify_signature": False})
        assert claims["aud"] == server.token_url


@pytest.mark.parametrize("verify", ["other-ca", "default-trust-store"])
def test_untrusted_token_endpoint_certificate_fails_clearly_without_retries(
    start_authlib: Callable[..., AuthlibServer], tls: TLSFiles, verify: str
) -> None:
    server = start_authlib(ssl_context=tls.server_context())
    sleeps: list[float] = []
    session = https_session(
        server,
        tls,
        client_id="basic-client",
        client_secret=SPECIAL_SECRET,
        token_session=token_session(tls.other_ca_file if verify == "other-ca" else True),
        sleep=sleeps.append,
    )
    with pytest.raises(requests.exceptions.SSLError) as caught:
        session.get(server.api_url + "books")
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert sleeps == []  # a certificate problem is not transient: not retried
    assert server.token_requests == 0  # nothing was sent over the untrusted connection
    assert SPECIAL_SECRET not in str(caught.value)


def test_untrusted_api_certificate_fails_before_the_token_is_sent(
    start_authlib: Callable[..., AuthlibServer], tls: TLSFiles
) -> None:
    server = start_authlib(ssl_context=tls.server_context())
    session = https_session(server, tls, client_id="basic-client", client_secret=SPECIAL_SECRET)
    session.verify = tls.other_ca_file
    with pytest.raises(requests.exceptions.SSLError):
        session.get(server.api_url + "books")
    assert server.token_requests == 1  # the token endpoint was trusted (token_session)
    assert server.api_statuses == []  # the API was not


def test_tls_client_auth_against_a_server_that_requires_a_client_certificate(
    start_authlib: Callable[..., AuthlibServer], tls: TLSFiles
) -> None:
    server = start_authlib(ssl_context=tls.server_context(require_client_cert=True))
    session = https_session(
        server,
        tls,
        client_id="tls-client",
        auth_method="tls_client_auth",
        token_session=token_session(tls.ca_file, cert=tls.client_cert_file),
    )
    session.cert = tls.client_cert_file  # the API requires a client certificate too

    response = session.get(server.api_url + "books")

    assert response.status_code == 200
    assert response.json()["client_id"] == "tls-client"
    assert server.token_forms == [
        {"grant_type": "client_credentials", "client_id": "tls-client", "scope": "books.read"}
    ]
    assert "Authorization" not in server.token_headers[0]


def test_tls_client_auth_with_a_certificate_of_another_subject_is_invalid_client(
    start_authlib: Callable[..., AuthlibServer], tls: TLSFiles
) -> None:
    server = start_authlib(ssl_context=tls.server_context(require_client_cert=True))
    session = https_session(
        server,
        tls,
        client_id="tls-client",
        auth_method="tls_client_auth",
        token_session=token_session(tls.ca_file, cert=tls.stranger_cert_file),
    )
    with pytest.raises(InvalidClient) as caught:
        session.manager.fetch_token()
    assert caught.value.status_code == server.token_statuses[-1] == 401


def test_tls_client_auth_without_a_certificate_fails_the_handshake(
    start_authlib: Callable[..., AuthlibServer], tls: TLSFiles
) -> None:
    server = start_authlib(ssl_context=tls.server_context(require_client_cert=True))
    session = https_session(server, tls, client_id="tls-client", auth_method="tls_client_auth", max_retries=0)
    with pytest.raises(requests.exceptions.ConnectionError):
        session.manager.fetch_token()
    assert server.token_requests == 0


def test_token_session_verify_wins_over_requests_ca_bundle_in_the_environment(
    start_authlib: Callable[..., AuthlibServer], tls: TLSFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests would take REQUESTS_CA_BUNDLE over token_session.verify; reqcc hands the token
    # session's verify to each token request, so the configured CA is the one used.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls.other_ca_file)
    server = start_authlib(ssl_context=tls.server_context())
    session = https_session(server, tls, client_id="basic-client", client_secret=SPECIAL_SECRET)
    session.trust_env = False  # the same requests behaviour, on the API side: the user's switch

    assert session.get(server.api_url + "books").status_code == 200
    assert server.token_requests == 1
