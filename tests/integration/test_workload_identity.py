"""Workload identity end to end: the local server trusts a platform issuer (a federated
credential, as Entra does), the platform's JWTs are signed by jwcrypto, and the kubelet's
symlink swap rotates them on disk.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from reqcc import ClientAssertionError, ClientCredentialsSession, InvalidClient
from reqcc.stores import FileTokenStore
from reqcc.testing import FederatedCredential, LocalAuthorizationServer, RegisteredClient
from tests.conftest import FakeClock
from tests.platform_tokens import ENTRA_AUDIENCE, K8S_ISSUER, K8S_SUBJECT, KubeletVolume, Platform

CLIENT = "orders-service"
PLATFORM = Platform()


def federated_client(
    platform: Platform = PLATFORM, *, pem: bool = True, **overrides: Any
) -> RegisteredClient:
    credential = FederatedCredential(
        issuer=overrides.get("issuer", K8S_ISSUER),
        subject=overrides.get("subject", K8S_SUBJECT),
        audience=overrides.get("audience", ENTRA_AUDIENCE),
        key=platform.public_pem() if pem else platform.public_jwk(),
    )
    return RegisteredClient(CLIENT, None, frozenset({"books.read"}), federated=(credential,))


@pytest.fixture
def clock() -> FakeClock:
    import time

    return FakeClock(time.time())


def session_for(
    server: LocalAuthorizationServer, clock: FakeClock, **kwargs: Any
) -> ClientCredentialsSession:
    kwargs.setdefault("token_url", server.token_url)
    return ClientCredentialsSession(
        client_id=CLIENT,
        scopes=["books.read"],
        base_url=server.api_url,
        clock=clock,
        refresh_ahead=0,
        **kwargs,
    )


@pytest.mark.parametrize("pem", [True, False], ids=["pem", "jwk"])
def test_a_projected_token_gets_a_token_and_the_api_answers(
    tmp_path: Path, clock: FakeClock, pem: bool
) -> None:
    volume = KubeletVolume(tmp_path / "tokens")
    volume.publish(PLATFORM.mint(now=clock(), lifetime=3600))
    with LocalAuthorizationServer(clients=[federated_client(pem=pem)], clock=clock) as server:
        session = session_for(server, clock, client_assertion_file=volume.path)
        assert session.get(server.api_url + "books").status_code == 200
        [record] = server.token_request_log
        assert record.auth_method == "private_key_jwt" and record.client_id == CLIENT
        assert record.form["client_assertion"] == [volume.path.read_text()]


def test_the_kubelets_rotation_is_followed_and_an_expired_token_sends_nothing(
    tmp_path: Path, clock: FakeClock
) -> None:
    volume = KubeletVolume(tmp_path / "tokens")
    volume.publish(PLATFORM.mint(now=clock(), lifetime=600))
    with LocalAuthorizationServer(clients=[federated_client()], clock=clock, token_ttl=300) as server:
        session = session_for(server, clock, client_assertion_file=volume.path)
        session.get(server.api_url + "books")
        first = server.token_request_log[-1].form["client_assertion"][0]
        clock.advance(480)  # the kubelet rotates at 80 % of the lifetime
        volume.publish(PLATFORM.mint(now=clock(), lifetime=600))
        assert session.get(server.api_url + "books").status_code == 200
        second = server.token_request_log[-1].form["client_assertion"][0]
        assert server.token_requests == 2 and second != first and second == volume.path.read_text()
        # The kubelet stops rotating: the access token and then the assertion expire.
        clock.advance(700)
        with pytest.raises(ClientAssertionError, match=str(volume.path)):
            session.get(server.api_url + "books")
        assert server.token_requests == 2


@pytest.mark.parametrize(
    ("client", "reason"),
    [
        (federated_client(subject="system:serviceaccount:shop:payments"), "another subject"),
        (federated_client(audience="api://other"), "InvalidAudienceError"),
        (federated_client(issuer="https://other.issuer"), "InvalidIssuerError"),
        (federated_client(Platform()), "InvalidSignatureError"),  # another platform's key
        (RegisteredClient(CLIENT, "a-secret", frozenset({"books.read"})), "no federated credential"),
    ],
    ids=["subject", "audience", "issuer", "key", "not-federated"],
)
def test_the_server_refuses_a_token_it_does_not_trust(
    tmp_path: Path, clock: FakeClock, client: RegisteredClient, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    token_file = tmp_path / "token"
    assertion = PLATFORM.mint(now=clock())
    token_file.write_text(assertion)
    caplog.set_level(logging.DEBUG)
    with LocalAuthorizationServer(clients=[client], clock=clock) as server:
        session = session_for(server, clock, client_assertion_file=token_file)
        with pytest.raises(InvalidClient, match=reason) as caught:
            session.get(server.api_url + "books")
    for text in (str(caught.value), repr(caught.value), caplog.text):
        assert assertion not in text


def test_a_callable_and_discovery(clock: FakeClock) -> None:
    audiences: list[str] = []

    def spiffe_jwt_svid(audience: str) -> str:
        audiences.append(audience)
        return PLATFORM.mint(now=clock())

    with LocalAuthorizationServer(clients=[federated_client()], clock=clock) as server:
        session = session_for(
            server, clock, token_url=None, issuer=server.issuer, client_assertion=spiffe_jwt_svid
        )
        assert session.get(server.api_url + "books").status_code == 200
        assert session.manager.auth_method == "private_key_jwt"
        assert audiences == [server.token_url]  # the discovered token endpoint


def test_sealed_store_shared_by_two_workloads_of_one_identity(tmp_path: Path, clock: FakeClock) -> None:
    key = bytes(range(32))
    token_file = tmp_path / "token"
    token_file.write_text(PLATFORM.mint(now=clock()))
    with LocalAuthorizationServer(clients=[federated_client()], clock=clock) as server:
        sessions = [
            session_for(
                server,
                clock,
                client_assertion_file=token_file,
                token_store=FileTokenStore(tmp_path / "store.json", encryption_key=key, clock=clock),
            )
            for _ in range(2)
        ]
        for session in sessions:
            assert session.get(server.api_url + "books").status_code == 200
        assert server.token_requests == 1
    raw = (tmp_path / "store.json").read_bytes()
    assert sessions[0].manager.token is not None
    assert sessions[0].manager.token.access_token.encode() not in raw
    assert token_file.read_bytes() not in raw


def test_credentials_of_a_federated_client_leave_the_assertion_to_the_caller(
    tmp_path: Path, clock: FakeClock
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(PLATFORM.mint(now=clock()))
    with LocalAuthorizationServer(clients=[federated_client()], clock=clock) as server:
        credentials = server.credentials()
        assert "auth_method" not in credentials and "client_secret" not in credentials
        session = ClientCredentialsSession(**credentials, client_assertion_file=token_file, clock=clock)
        assert session.get(server.api_url + "books").status_code == 200


def test_many_threads_one_token_request(tmp_path: Path, clock: FakeClock) -> None:
    from tests.threads import join_all, run_threads, start_daemon, wait_until

    token_file = tmp_path / "token"
    token_file.write_text(PLATFORM.mint(now=clock()))
    with LocalAuthorizationServer(clients=[federated_client()], clock=clock) as server:
        session = session_for(server, clock, client_assertion_file=token_file)
        gate = server.hold_token_requests(1)
        statuses: list[int] = []

        def work(_: int) -> int:
            return session.get(server.api_url + "books").status_code

        runner = start_daemon(lambda: statuses.extend(run_threads(work, 16)))
        try:
            assert wait_until(lambda: server.token_requests == 1)
        finally:
            gate.set()
        join_all([runner])
        assert statuses == [200] * 16
        assert server.token_requests == 1
