"""The local server's federated credentials, checked directly (tokens signed by jwcrypto)."""

from __future__ import annotations

import pytest

from reqcc.testing import FederatedCredential, RegisteredClient
from reqcc.testing.clients import JWT_BEARER, client_credentials
from reqcc.testing.federation import check_federated_assertion

from .conftest import FakeClock
from .platform_tokens import ENTRA_AUDIENCE, K8S_ISSUER, K8S_SUBJECT, Platform, unsigned_jwt

PLATFORM = Platform()
TRUST = (FederatedCredential(K8S_ISSUER, K8S_SUBJECT, ENTRA_AUDIENCE, PLATFORM.public_pem()),)


def test_a_good_assertion_passes_on_the_servers_clock() -> None:
    clock = FakeClock()  # 2023: far from the real time, both ways
    assert check_federated_assertion(TRUST, PLATFORM.mint(now=clock()), clock) is None


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda now: PLATFORM.mint(now=now - 7200), "expired"),
        (lambda now: PLATFORM.mint(now=now, nbf=int(now) + 60), "not yet valid"),
        (lambda now: PLATFORM.mint(now=now, sub="someone-else"), "another subject"),
        (
            lambda now: unsigned_jwt(
                {"iss": K8S_ISSUER, "sub": K8S_SUBJECT, "aud": ENTRA_AUDIENCE, "exp": now + 60}
            ),
            "InvalidSignatureError",
        ),
        (lambda now: "not-a-jwt", "DecodeError"),
    ],
    ids=["expired", "nbf", "subject", "forged", "garbage"],
)
def test_a_bad_assertion_is_refused_with_a_reason(make: object, reason: str) -> None:
    clock = FakeClock()
    problem = check_federated_assertion(TRUST, make(clock()), clock)  # type: ignore[operator]
    assert problem is not None and reason in problem


def test_a_client_with_only_federated_credentials_is_not_public() -> None:
    client = RegisteredClient("c", None, federated=list(TRUST))  # type: ignore[arg-type]
    assert not client.is_public and client.federated == TRUST
    assert "federated=[FederatedCredential(issuer=" in repr(client) and "BEGIN" not in repr(client)


def test_how_a_token_request_presents_an_assertion() -> None:
    form = {"client_id": ["c"], "client_assertion_type": [JWT_BEARER], "client_assertion": ["x.y.z"]}
    assert client_credentials({}, form) == ("c", "x.y.z", "private_key_jwt")
    with pytest.raises(ValueError, match="more than one"):
        client_credentials({}, {**form, "client_secret": ["s"]})
    with pytest.raises(ValueError, match="client_assertion_type"):
        client_credentials({}, {**form, "client_assertion_type": ["other"]})


def test_the_metadata_lists_private_key_jwt_only_with_a_federated_client() -> None:
    from reqcc.testing import LocalAuthorizationServer

    with LocalAuthorizationServer() as plain:
        assert "private_key_jwt" not in plain._metadata_document()["token_endpoint_auth_methods_supported"]
    with LocalAuthorizationServer(clients=[RegisteredClient("c", None, federated=TRUST)]) as federated:
        methods = federated._metadata_document()["token_endpoint_auth_methods_supported"]
        assert methods == ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
