"""DPoP nonces are kept per role as well as per origin (RFC 9449 §9).

"The nonces provided by an authorization server and a resource server are different and
should not be confused with one another since nonces will be only accepted by the server
that issued them." Found against oidc-provider with a resource server on the same origin
(tests/interop): with one nonce per origin, each token fetch overwrote the API's nonce and
each API nonce overwrote the token endpoint's, so every renewal cost the token endpoint and
the next API request one ``use_dpop_nonce`` round trip each, for ever. Here the token
endpoint and the API share ``https://example.test`` and each issues nonces of its own.
"""

from __future__ import annotations

import json
from typing import Any

import requests
import requests_mock

from reqcc import ClientCredentialsSession
from tests.dpop_reference import b64url_decode

ORIGIN = "https://example.test"
TOKEN_URL = ORIGIN + "/oauth/token"
API = ORIGIN + "/api/books"


def nonce_of(request: Any) -> str | None:
    claims = json.loads(b64url_decode(request.headers["DPoP"].split(".")[1]))
    nonce = claims.get("nonce")
    assert nonce is None or isinstance(nonce, str)
    return nonce


class Servers:
    """A token endpoint and an API on one origin, each demanding its own nonce (rotated by hand)."""

    def __init__(self) -> None:
        self.as_nonce = "as-nonce-1"
        self.rs_nonce = "rs-nonce-1"
        self.issued = 0
        self.token_nonces: list[str | None] = []
        self.api_nonces: list[str | None] = []

    def token(self, request: Any, context: Any) -> dict[str, Any]:
        nonce = nonce_of(request)
        self.token_nonces.append(nonce)
        context.headers["DPoP-Nonce"] = self.as_nonce
        if nonce != self.as_nonce:
            context.status_code = 400
            return {"error": "use_dpop_nonce"}
        self.issued += 1
        return {"access_token": f"tok-{self.issued}", "token_type": "DPoP", "expires_in": 3600}

    def api(self, request: Any, context: Any) -> dict[str, Any]:
        nonce = nonce_of(request)
        self.api_nonces.append(nonce)
        context.headers["DPoP-Nonce"] = self.rs_nonce
        if nonce != self.rs_nonce:
            context.status_code = 401
            context.headers["WWW-Authenticate"] = 'DPoP error="use_dpop_nonce"'
            return {}
        return {"ok": True}


def make_session(servers: Servers) -> ClientCredentialsSession:
    auth = requests_mock.Adapter()
    auth.register_uri("POST", TOKEN_URL, json=servers.token)
    token_session = requests.Session()
    token_session.mount("https://", auth)
    api = requests_mock.Adapter()
    api.register_uri("GET", API, json=servers.api)
    return ClientCredentialsSession(
        token_url=TOKEN_URL, client_id="c", client_secret="s", token_session=token_session,
        adapter=api, base_url=ORIGIN + "/api/", dpop=True,
    )


def test_token_and_api_nonces_of_one_origin_do_not_overwrite_each_other() -> None:
    servers = Servers()
    with make_session(servers) as session:
        assert session.get(API).status_code == 200
        # token endpoint: no nonce -> use_dpop_nonce -> its nonce; API: the token endpoint's
        # nonce as a first guess -> use_dpop_nonce -> its own.
        assert servers.token_nonces == [None, "as-nonce-1"]
        assert servers.api_nonces == ["as-nonce-1", "rs-nonce-1"]

        session.manager.fetch_token()  # a renewal: one request, with the token endpoint's nonce
        assert servers.token_nonces[2:] == ["as-nonce-1"]
        assert session.get(API).status_code == 200  # one request, with the API's nonce
        assert servers.api_nonces[2:] == ["rs-nonce-1"]

        for _ in range(3):
            session.manager.fetch_token()
            assert session.get(API).status_code == 200
        assert servers.token_nonces[3:] == ["as-nonce-1"] * 3
        assert servers.api_nonces[3:] == ["rs-nonce-1"] * 3


def test_each_role_follows_its_own_servers_rotation() -> None:
    servers = Servers()
    with make_session(servers) as session:
        assert session.get(API).status_code == 200
        servers.rs_nonce = "rs-nonce-2"
        assert session.get(API).status_code == 200  # 401 with the new nonce, then replayed
        assert servers.api_nonces[-2:] == ["rs-nonce-1", "rs-nonce-2"]
        session.manager.fetch_token()  # the token endpoint's nonce is untouched by that
        assert servers.token_nonces[-1] == "as-nonce-1"
        servers.as_nonce = "as-nonce-2"
        session.manager.fetch_token()
        assert servers.token_nonces[-2:] == ["as-nonce-1", "as-nonce-2"]
        assert session.get(API).status_code == 200
        assert servers.api_nonces[-1] == "rs-nonce-2"
