"""DPoP end to end (RFC 9449, contract items 22-24): reqcc against the local server with DPoP on.

The proofs reqcc sends are checked three times: by the local server (reqcc.testing.dpop), by
the independent jwcrypto verifier of tests/dpop_reference.py, and by the assertions here.
Redirects, fresh client assertions and odd token answers use requests_mock transports.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import requests_mock
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk
from requests.adapters import HTTPAdapter

from reqcc import (
    ClientCredentialsManager,
    ClientCredentialsSession,
    ConfigurationError,
    OAuthToken,
    TokenProviderError,
    TokenResponseError,
    mount,
)
from reqcc.dpop import DPoPKey
from reqcc.stores import FileTokenStore
from reqcc.testing import LocalAuthorizationServer, RegisteredClient
from tests.dpop_reference import reference_thumbprint, unverified_claims, verify_proof
from tests.threads import run_threads

SCOPES = ["books.read"]


class Recorder(HTTPAdapter):
    """The inner transport: sends for real and records each request's method, URL and headers."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        with self._lock:
            self.sent.append((request.method or "", request.url or "", dict(request.headers)))
        return super().send(request, *args, **kwargs)


def session_for(server: LocalAuthorizationServer, **kwargs: Any) -> tuple[ClientCredentialsSession, Recorder]:
    recorder = Recorder()
    kwargs.setdefault("dpop", True)
    session = ClientCredentialsSession(**server.credentials(), scopes=SCOPES, adapter=recorder, **kwargs)
    return session, recorder


def check_api_proofs(recorder: Recorder, token: OAuthToken, nonce: str | None = None) -> list[dict[str, Any]]:
    """Every recorded API request passes the reference verifier with the token's ath."""
    verified = []
    for method, url, headers in recorder.sent:
        assert headers["Authorization"] == f"DPoP {token.access_token}"
        verified.append(
            verify_proof(headers["DPoP"], method=method, url=url, now=time.time(),
                         access_token=token.access_token, nonce=nonce)
        )
    return verified


# -- proofs, binding, token type ---------------------------------------------------------


def test_token_and_api_proofs_are_valid_and_the_token_is_bound_to_the_key(
    reqcc_server: LocalAuthorizationServer,
) -> None:
    session, recorder = session_for(reqcc_server)
    with session:
        assert session.get(reqcc_server.api_url + "books?page=2").status_code == 200
        assert session.post(reqcc_server.api_url + "orders", json={"book": 1}).status_code == 403
    token = session.manager.token
    assert token is not None and token.token_type == "DPoP"
    thumbprint = session.manager.dpop_thumbprint
    assert reqcc_server.token_binding(token) == thumbprint
    # The token request: a proof for POST token_url, no ath, the public key only.
    record = reqcc_server.last_token_request
    assert record is not None
    proof = record.header("DPoP")
    assert proof is not None
    claims = verify_proof(proof, method="POST", url=reqcc_server.token_url, now=time.time())
    assert claims["jkt"] == thumbprint and "ath" not in claims
    # The API requests: htu without the query, htm as sent, ath of the token, same key.
    api = check_api_proofs(recorder, token)
    assert [(c["htm"], c["htu"]) for c in api] == [
        ("GET", reqcc_server.api_url + "books"), ("POST", reqcc_server.api_url + "orders"),
    ]
    assert {c["jkt"] for c in api} == {thumbprint}
    assert len(reqcc_server.dpop_proofs) == 3  # the server accepted all three


def test_a_bearer_answer_to_a_dpop_request_is_refused_and_nothing_is_sent(
    reqcc_server: LocalAuthorizationServer,
) -> None:
    reqcc_server.ignore_dpop = True  # a server without DPoP support issues Bearer tokens
    session, recorder = session_for(reqcc_server)
    with session, pytest.raises(TokenResponseError, match="downgrade"):
        session.get(reqcc_server.api_url + "books")
    assert recorder.sent == [] and reqcc_server.api_requests == 0
    assert session.manager.token is None


def test_a_dpop_client_without_a_proof_is_refused_by_the_server() -> None:
    clients = [RegisteredClient("strict", "strict-secret", {"books.read"}, dpop=True)]
    with LocalAuthorizationServer(clients) as server:
        with ClientCredentialsSession(**server.credentials("strict"), scopes=SCOPES) as session:
            with pytest.raises(Exception, match="invalid_dpop_proof"):
                session.get(server.api_url + "books")
            assert server.api_requests == 0


def test_a_bound_token_presented_as_bearer_or_without_a_proof_is_refused(
    reqcc_server: LocalAuthorizationServer,
) -> None:
    manager = ClientCredentialsManager(
        token_url=reqcc_server.token_url, client_id="bookstore-app", client_secret="bookstore-secret",
        dpop=True,
    )
    token = manager.fetch_token()
    manager.close()
    books = reqcc_server.api_url + "books"
    as_bearer = requests.get(books, headers={"Authorization": f"Bearer {token.access_token}"}, timeout=10)
    assert as_bearer.status_code == 401
    no_proof = requests.get(books, headers={"Authorization": f"DPoP {token.access_token}"}, timeout=10)
    assert no_proof.status_code == 401
    assert no_proof.headers["WWW-Authenticate"].startswith('DPoP error="invalid_dpop_proof"')


# -- nonces ------------------------------------------------------------------------------


def test_token_endpoint_nonce_costs_one_more_request_the_first_time_only() -> None:
    with LocalAuthorizationServer(token_dpop_nonce=True) as server:
        session, _ = session_for(server)
        with session:
            assert session.get(server.api_url + "books").status_code == 200
            assert server.token_requests == 2 and server.tokens_issued == 1
            first, second = server.token_request_log
            assert first.status == 400 and second.status == 200
            assert "nonce" not in unverified_claims(first.header("DPoP") or "")
            nonce = server.dpop_nonce
            claims = verify_proof(second.header("DPoP") or "", method="POST", url=server.token_url,
                                  now=time.time(), nonce=nonce)
            assert claims["jti"] != unverified_claims(first.header("DPoP") or "")["jti"]
            # The nonce is remembered: the next token request is accepted at once.
            session.manager.fetch_token()
            assert server.token_requests == 3 and server.tokens_issued == 2
            # A rotated nonce: one use_dpop_nonce answer, one retry with the new nonce.
            server.rotate_dpop_nonce()
            server.rotate_dpop_nonce()  # the previous nonce is accepted for one round; two rounds
            session.manager.fetch_token()
            assert server.token_requests == 5 and server.tokens_issued == 3


def test_a_second_use_dpop_nonce_answer_is_an_error_not_a_loop() -> None:
    with LocalAuthorizationServer(token_dpop_nonce=True) as server:
        manager = ClientCredentialsManager(**_manager_credentials(server), dpop=True, max_retries=0)
        server.fail_token_requests(2, error="use_dpop_nonce")  # no DPoP-Nonce header in these
        with pytest.raises(Exception, match="use_dpop_nonce"):
            manager.fetch_token()
        assert server.token_requests == 1  # no nonce given: nothing to retry with
        manager.close()


def test_resource_server_nonce_replays_once_without_a_new_token() -> None:
    with LocalAuthorizationServer(api_dpop_nonce=True) as server:
        session, recorder = session_for(server)
        with session:
            assert session.get(server.api_url + "books").status_code == 200
            token = session.manager.token
            assert server.token_requests == 1 and server.api_requests == 2 and server.api_401s == 1
            assert session.post(server.api_url + "orders", json={"a": 1}).status_code == 403
            assert server.api_requests == 3  # the nonce is known now
            server.rotate_dpop_nonce()
            server.rotate_dpop_nonce()
            assert session.get(server.api_url + "books").status_code == 200
            assert server.api_requests == 5 and server.api_401s == 2
            assert session.manager.token is token and server.token_requests == 1
        assert token is not None
        nonces = [unverified_claims(h["DPoP"]).get("nonce") for _, _, h in recorder.sent]
        assert nonces[0] is None and nonces[1] is not None and nonces[3] == nonces[1] != nonces[4]
        assert len({unverified_claims(h["DPoP"])["jti"] for _, _, h in recorder.sent}) == len(recorder.sent)


def test_revoked_dpop_token_is_retired_and_the_request_replayed_with_a_new_one(
    reqcc_server: LocalAuthorizationServer,
) -> None:
    session, recorder = session_for(reqcc_server)
    with session:
        assert session.get(reqcc_server.api_url + "books").status_code == 200
        first = session.manager.token
        reqcc_server.revoke(first)
        assert session.get(reqcc_server.api_url + "books").status_code == 200
        second = session.manager.token
    assert first is not None and second is not None and first.access_token != second.access_token
    assert reqcc_server.token_requests == 2 and reqcc_server.api_401s == 1
    athed = [(h["Authorization"], unverified_claims(h["DPoP"])) for _, _, h in recorder.sent]
    assert [a for a, _ in athed] == [f"DPoP {first.access_token}"] * 2 + [f"DPoP {second.access_token}"]
    check_api_proofs(Recorder_of(recorder.sent[2:]), second)


def Recorder_of(sent: list[tuple[str, str, dict[str, str]]]) -> Recorder:
    recorder = Recorder()
    recorder.sent = list(sent)
    return recorder


def _manager_credentials(server: LocalAuthorizationServer) -> dict[str, Any]:
    return {k: v for k, v in server.credentials().items() if k != "base_url"}


# -- threads -----------------------------------------------------------------------------


def test_every_proof_is_unique_over_32_threads(reqcc_server: LocalAuthorizationServer) -> None:
    session, recorder = session_for(reqcc_server, dpop_key=None)
    per_thread = 4

    def worker(_: int) -> list[int]:
        url = reqcc_server.api_url + "books"
        return [session.get(url, timeout=10).status_code for _ in range(per_thread)]

    results = run_threads(worker, 32, timeout=30)
    session.close()
    assert results == [[200] * per_thread] * 32
    assert reqcc_server.token_requests == 1
    jtis = [unverified_claims(h["DPoP"])["jti"] for _, _, h in recorder.sent]
    assert len(jtis) == len(set(jtis)) == 32 * per_thread
    token = session.manager.token
    assert token is not None
    check_api_proofs(recorder, token)


# -- redirects ---------------------------------------------------------------------------


def _mock_session(
    **kwargs: Any,
) -> tuple[ClientCredentialsSession, requests_mock.Adapter, requests_mock.Adapter]:
    auth = requests_mock.Adapter()
    auth.register_uri("POST", "https://auth.example/token",
                      json={"access_token": "dpop-tok-1", "token_type": "DPoP", "expires_in": 3600})
    token_session = requests.Session()
    token_session.mount("https://", auth)
    api = requests_mock.Adapter()
    session = ClientCredentialsSession(
        token_url="https://auth.example/token", client_id="c", client_secret="s",
        token_session=token_session, adapter=api, **kwargs,
    )
    return session, api, auth


def test_same_origin_redirect_gets_a_fresh_proof_and_cross_origin_neither_token_nor_proof() -> None:
    session, api, _ = _mock_session(dpop=True)
    api.register_uri("GET", "https://api.example/books?x=1", status_code=302,
                     headers={"Location": "https://api.example/v2/books?x=1"})
    api.register_uri("GET", "https://api.example/v2/books?x=1", status_code=307,
                     headers={"Location": "https://elsewhere.example/books"})
    api.register_uri("GET", "https://elsewhere.example/books", json={"ok": True})
    with session:
        assert session.get("https://api.example/books?x=1").json() == {"ok": True}
    first, second, third = api.request_history
    now = time.time()
    a = verify_proof(first.headers["DPoP"], method="GET", url=first.url, now=now, access_token="dpop-tok-1")
    b = verify_proof(second.headers["DPoP"], method="GET", url=second.url, now=now, access_token="dpop-tok-1")
    assert (a["htu"], b["htu"]) == ("https://api.example/books", "https://api.example/v2/books")
    assert a["jti"] != b["jti"] and second.headers["Authorization"] == "DPoP dpop-tok-1"
    assert "Authorization" not in third.headers and "DPoP" not in third.headers


def test_a_resource_nonce_challenge_without_a_replayable_body_is_returned() -> None:
    session, api, _ = _mock_session(dpop=True)
    challenge = {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "n-1"}
    api.register_uri("POST", "https://api.example/up", status_code=401, headers=challenge)
    with session:
        response = session.post("https://api.example/up", data=iter([b"a", b"b"]))
    assert response.status_code == 401 and len(api.request_history) == 1
    assert session.manager.token is not None  # not retired: the token is not at fault


def test_invalid_dpop_proof_at_the_api_neither_retires_nor_replays() -> None:
    session, api, auth = _mock_session(dpop=True)
    api.register_uri("GET", "https://api.example/x", status_code=401,
                     headers={"WWW-Authenticate": 'DPoP error="invalid_dpop_proof"'})
    with session:
        assert session.get("https://api.example/x").status_code == 401
    assert len(api.request_history) == 1 and auth.call_count == 1
    assert session.manager.token is not None


# -- token endpoint details --------------------------------------------------------------


def test_nonce_retry_sends_a_fresh_client_assertion_and_a_fresh_proof() -> None:
    auth = requests_mock.Adapter()
    auth.register_uri("POST", "https://auth.example/token", [
        {"status_code": 400, "json": {"error": "use_dpop_nonce"}, "headers": {"DPoP-Nonce": "nonce-A"}},
        {"json": {"access_token": "t", "token_type": "dpop"}, "headers": {"DPoP-Nonce": "nonce-B"}},
    ])
    token_session = requests.Session()
    token_session.mount("https://", auth)
    manager = ClientCredentialsManager(
        token_url="https://auth.example/token", client_id="c", client_secret="s" * 32,
        auth_method="client_secret_jwt", token_session=token_session, dpop=True,
    )
    token = manager.fetch_token()
    assert token.token_type == "DPoP"
    first, second = auth.request_history
    assertions = [parse_qs(r.text)["client_assertion"][0] for r in (first, second)]
    assert assertions[0] != assertions[1]
    jti = [unverified_claims(a)["jti"] for a in assertions]
    assert jti[0] != jti[1]
    assert "nonce" not in unverified_claims(first.headers["DPoP"])
    assert unverified_claims(second.headers["DPoP"])["nonce"] == "nonce-A"
    # The nonce of the successful answer is remembered for the next request.
    assert manager.dpop is not None and manager.dpop.token_nonces.get("https://auth.example/") == "nonce-B"


def test_a_dpop_token_to_a_client_that_did_not_ask_is_refused() -> None:
    session, api, auth = _mock_session()
    with session, pytest.raises(TokenResponseError, match="did not ask"):
        session.get("https://api.example/x")
    assert api.call_count == 0 and "DPoP" not in auth.request_history[0].headers


def test_a_provider_must_return_a_dpop_token_to_a_dpop_manager() -> None:
    manager = ClientCredentialsManager(
        token_url="https://auth.example/token", client_id="c", client_secret="s", dpop=True,
        token_provider=lambda last, m: OAuthToken("bearer-one", expires_in=60, expiry=time.time() + 60),
    )
    with pytest.raises(TokenProviderError, match="DPoP"):
        manager.get_token()


# -- keys --------------------------------------------------------------------------------


def _pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.mark.parametrize("kind", ["pem-bytes", "pem-str", "jwk-ec", "jwk-rsa", "dpopkey"])
def test_a_users_key_is_used_and_never_shown(
    kind: str, reqcc_server: LocalAuthorizationServer, caplog: pytest.LogCaptureFixture
) -> None:
    secrets: list[str]
    if kind.startswith("pem"):
        pem = _pem()
        key: Any = pem if kind == "pem-bytes" else pem.decode()
        public = jwk.JWK.from_pem(pem)
        secrets = [pem.decode().splitlines()[1], json.loads(public.export_private())["d"]]
    elif kind.startswith("jwk"):
        generated = jwk.JWK.generate(kty="EC", crv="P-256") if kind == "jwk-ec" else jwk.JWK.generate(
            kty="RSA", size=2048)
        key = json.loads(generated.export_private())
        public = generated
        secrets = [key["d"]]
    else:
        pem = _pem()
        key = DPoPKey(pem)
        public = jwk.JWK.from_pem(pem)
        secrets = [json.loads(public.export_private())["d"]]
    expected = reference_thumbprint(json.loads(public.export_public()))
    caplog.set_level(logging.DEBUG, logger="reqcc")
    session, recorder = session_for(reqcc_server, dpop_key=key, dpop=None)
    with session:
        assert session.get(reqcc_server.api_url + "books").status_code == 200
        token = session.manager.token
        assert token is not None
        assert session.manager.dpop_thumbprint == expected == reqcc_server.token_binding(token)
        shown = " ".join([repr(session), repr(session.manager), repr(session.token_adapter),
                          str(session.manager.dpop), caplog.text])
        reqcc_server.ignore_dpop = True
        session.manager.token = None
        with pytest.raises(TokenResponseError) as excinfo:
            session.get(reqcc_server.api_url + "books")
        shown += str(excinfo.value) + repr(excinfo.value)
    assert expected in repr(session.manager)
    for secret in secrets:
        assert secret not in shown
    check_api_proofs(recorder, token)


def test_the_store_key_includes_the_key_thumbprint(
    reqcc_server: LocalAuthorizationServer, tmp_path: Any
) -> None:
    pem_a, pem_b = _pem(), _pem()
    store = FileTokenStore(str(tmp_path / "tokens.json"))

    def manager(key: bytes) -> ClientCredentialsManager:
        return ClientCredentialsManager(**_manager_credentials(reqcc_server), dpop_key=key, token_store=store)

    first = manager(pem_a).get_token()
    other_key = manager(pem_b).get_token()
    assert reqcc_server.token_requests == 2 and other_key.access_token != first.access_token
    same_key = manager(pem_a)
    assert same_key.get_token().access_token == first.access_token
    assert reqcc_server.token_requests == 2
    # ... and the shared token works with the shared key.
    session = ClientCredentialsSession(manager=same_key, base_url=reqcc_server.api_url)
    assert session.get(reqcc_server.api_url + "books").status_code == 200
    stored = (tmp_path / "tokens.json").read_text() if (tmp_path / "tokens.json").is_file() else ""
    assert "PRIVATE KEY" not in stored and pem_a.decode().splitlines()[1] not in stored


def test_mount_takes_the_dpop_keywords(reqcc_server: LocalAuthorizationServer) -> None:
    with requests.Session() as plain:
        adapter = mount(plain, reqcc_server.api_url, **_manager_credentials(reqcc_server), dpop=True)
        assert plain.get(reqcc_server.api_url + "books", timeout=10).status_code == 200
        assert adapter.manager.token is not None and adapter.manager.token.token_type == "DPoP"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dpop": False, "dpop_key": "-----BEGIN PRIVATE KEY-----"}, "dpop=False"),
        ({"dpop": "yes"}, "dpop must be True or False"),
        ({"dpop_key": 42}, "dpop_key must be PEM"),
        ({"dpop_key": "not a key"}, "PEM"),
        ({"dpop_key": {"kty": "oct", "k": "c2VjcmV0"}}, "kty"),
    ],
)
def test_bad_dpop_configuration(kwargs: Mapping[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ClientCredentialsManager(token_url="https://auth.example/token", client_id="c", client_secret="s",
                                 **kwargs)


def test_dpop_false_is_plain_bearer() -> None:
    manager = ClientCredentialsManager(
        token_url="https://auth.example/token", client_id="c", client_secret="s", dpop=False
    )
    assert manager.dpop is None and manager.dpop_thumbprint is None and "dpop" not in repr(manager)


# -- the command line --------------------------------------------------------------------


def _cli(*args: str, server: LocalAuthorizationServer) -> tuple[int, str, str]:
    from reqcc import cli

    env = {"REQCC_TOKEN_URL": server.token_url, "REQCC_CLIENT_ID": "bookstore-app",
           "REQCC_CLIENT_SECRET": "bookstore-secret"}
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(args), environ=env, stdin=io.StringIO(""), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_token_and_request_with_dpop(
    reqcc_server: LocalAuthorizationServer, tmp_path: Any
) -> None:
    code, out, err = _cli("token", "--dpop", server=reqcc_server)
    assert code == 0, err
    document = json.loads(out)
    assert document["token_type"] == "DPoP" and reqcc_server.token_binding(document["access_token"])
    code, out, err = _cli("request", "--dpop", reqcc_server.api_url + "books", server=reqcc_server)
    assert code == 0, err
    assert json.loads(out)["books"] and reqcc_server.api_401s == 0
    # A kept key: the printed token is bound to the file's key.
    pem = _pem()
    key_file = tmp_path / "dpop.pem"
    key_file.write_bytes(pem)
    code, out, err = _cli(
        "token", "--dpop-key-file", str(key_file), "--format", "header", server=reqcc_server
    )
    assert code == 0, err
    scheme, _, token = out.strip().removeprefix("Authorization: ").partition(" ")
    assert scheme == "DPoP" and reqcc_server.token_binding(token) == DPoPKey(pem).thumbprint
    assert pem.decode().splitlines()[1] not in out + err


def test_cli_refuses_a_cache_for_a_throwaway_key(
    reqcc_server: LocalAuthorizationServer, tmp_path: Any
) -> None:
    code, _, err = _cli("token", "--dpop", "--cache", str(tmp_path / "c.json"), server=reqcc_server)
    assert code != 0 and "--dpop-key-file" in err and reqcc_server.token_requests == 0
