"""DPoP nonces are kept per role as well as per origin (RFC 9449 §9).

"The nonces provided by an authorization server and a resource server are different and
should not be confused with one another since nonces will be only accepted by the server
that issued them." Found against oidc-provider with a resource server on the same origin
(tests/interop): with one nonce per origin, each token fetch overwrote the API's nonce and
each API nonce overwrote the token endpoint's, so every renewal cost the token endpoint and
the next API request one ``use_dpop_nonce`` round trip each, for ever. Here the token
endpoint and the API share ``https://example.test`` and each issues nonces of its own.

A proof carries only its own side's nonce: a resource server without nonces on the token
endpoint's origin gets none (it may well refuse one it never issued). And a replay after
``use_dpop_nonce`` signs with the nonce of that very answer, whatever other answers put in
the shared store meanwhile.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

import requests
import requests_mock

from reqcc import ClientCredentialsSession
from tests.dpop_reference import unverified_claims
from tests.threads import JOIN, run_threads

ORIGIN = "https://example.test"
TOKEN_URL = ORIGIN + "/oauth/token"
API = ORIGIN + "/api/books"


def nonce_of(request: Any) -> str | None:
    nonce = unverified_claims(request.headers["DPoP"]).get("nonce")
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
        # token endpoint: no nonce -> use_dpop_nonce -> its nonce; API: no nonce (the token
        # endpoint's is not the API's to accept) -> use_dpop_nonce -> its own.
        assert servers.token_nonces == [None, "as-nonce-1"]
        assert servers.api_nonces == [None, "rs-nonce-1"]

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


def test_a_resource_without_nonces_never_gets_the_token_endpoints_nonce() -> None:
    # RFC 9449 §9: nonces "will be only accepted by the server that issued them". An API on
    # the token endpoint's origin that uses no nonces refuses a proof carrying one it never
    # issued (as a strict resource server may); reqcc must not offer it the AS's nonce.
    servers = Servers()
    api_nonces: list[str | None] = []

    def strict_api(request: Any, context: Any) -> dict[str, Any]:
        nonce = nonce_of(request)
        api_nonces.append(nonce)
        if nonce is not None:
            context.status_code = 401
            context.headers["WWW-Authenticate"] = 'DPoP error="invalid_dpop_proof"'
            return {}
        return {"ok": True}

    servers.api = strict_api  # type: ignore[method-assign]
    with make_session(servers) as session:
        for _ in range(2):
            assert session.get(API).status_code == 200
            session.manager.fetch_token()
        assert session.get(API).status_code == 200
    assert servers.token_nonces == [None, "as-nonce-1", "as-nonce-1", "as-nonce-1"]
    assert api_nonces == [None, None, None]  # each at once, without a retry


def test_the_prover_never_lends_one_sides_nonce_to_the_other() -> None:
    from reqcc.dpop import DPoPKey, DPoPProver

    prover = DPoPProver(DPoPKey())
    prover.update_token_nonce(TOKEN_URL, {"DPoP-Nonce": "as-only"})
    assert "nonce" not in unverified_claims(prover.proof("GET", API, "tok"))
    assert unverified_claims(prover.token_proof(TOKEN_URL))["nonce"] == "as-only"
    prover.token_nonces.clear()
    prover.update(API, {"DPoP-Nonce": "rs-only"})
    assert "nonce" not in unverified_claims(prover.token_proof(TOKEN_URL))
    assert unverified_claims(prover.proof("GET", API, "tok"))["nonce"] == "rs-only"
    # An explicit nonce (the one of the answer being replayed) wins over the store's.
    assert unverified_claims(prover.proof("GET", API, "tok", nonce="given"))["nonce"] == "given"
    assert unverified_claims(prover.token_proof(TOKEN_URL, "given"))["nonce"] == "given"
    headers: dict[str, str] = {}
    prover.authorize(headers, "GET", API, "tok", nonce="given")
    assert unverified_claims(headers["DPoP"])["nonce"] == "given" and headers["Authorization"] == "DPoP tok"


class _Body(io.BytesIO):
    """A response body that runs ``on_read`` when first read (after reqcc has seen the headers)."""

    def __init__(self, data: bytes, on_read: Callable[[], None]) -> None:
        super().__init__(data)
        self._on_read: Callable[[], None] | None = on_read

    def _first_read(self) -> None:
        on_read, self._on_read = self._on_read, None
        if on_read is not None:
            on_read()

    def read(self, size: int | None = -1) -> bytes:
        self._first_read()
        return super().read(size)

    def read1(self, size: int | None = -1) -> bytes:
        self._first_read()
        return super().read1(size)


def test_the_token_endpoint_retry_signs_with_the_nonce_of_that_answer() -> None:
    # Between the use_dpop_nonce answer and the retry another answer (a concurrent fetch with
    # another manager sharing the store, say) leaves another nonce in the store: the retry must
    # still carry the nonce the refusing answer gave, and the store follows the latest answer.
    holder: list[ClientCredentialsSession] = []
    seen: list[str | None] = []

    def token(request: Any, context: Any) -> _Body:
        seen.append(nonce_of(request))
        if len(seen) == 1:
            context.status_code = 400
            context.headers["DPoP-Nonce"] = "as-fresh"
            dpop = holder[0].manager.dpop
            assert dpop is not None
            return _Body(b'{"error": "use_dpop_nonce"}', lambda: dpop.token_nonces.set(TOKEN_URL, "as-other"))
        context.headers["DPoP-Nonce"] = "as-next"
        return _Body(b'{"access_token": "t", "token_type": "DPoP", "expires_in": 60}', lambda: None)

    auth = requests_mock.Adapter()
    auth.register_uri("POST", TOKEN_URL, body=token, headers={"Content-Type": "application/json"})
    token_session = requests.Session()
    token_session.mount("https://", auth)
    session = ClientCredentialsSession(
        token_url=TOKEN_URL, client_id="c", client_secret="s", token_session=token_session, dpop=True,
    )
    holder.append(session)
    with session:
        assert session.manager.fetch_token().access_token == "t"
        assert seen == [None, "as-fresh"]
        dpop = session.manager.dpop
        assert dpop is not None and dpop.token_nonces.get(TOKEN_URL) == "as-next"


def test_concurrent_nonce_401s_are_each_replayed_with_their_own_nonce() -> None:
    # N threads' first API requests are all refused with use_dpop_nonce, each 401 carrying a
    # nonce of its own that the server accepts once. Each 401 lands in the shared store before
    # any replay is built (its body is read only when every thread has stored its nonce), so
    # the store holds one nonce: a replay signed with the store's latest would reuse it.
    n = 4
    stored = threading.Barrier(n, timeout=JOIN)
    arrived = threading.Barrier(n, timeout=JOIN)
    lock = threading.Lock()
    issued: dict[str, str] = {}  # thread name -> the nonce of its 401
    unused: set[str] = set()
    replays: dict[str, str | None] = {}

    def api(request: Any, context: Any) -> _Body:
        me = threading.current_thread().name
        nonce = nonce_of(request)
        if nonce is None:
            arrived.wait()  # every first request is in before any 401 leaves
            with lock:
                issued[me] = fresh = f"rs-{len(issued) + 1}"
                unused.add(fresh)
            context.status_code = 401
            context.headers["WWW-Authenticate"] = 'DPoP error="use_dpop_nonce"'
            context.headers["DPoP-Nonce"] = fresh
            return _Body(b"{}", stored.wait)
        with lock:
            replays[me] = nonce
            fresh_ok = nonce in unused
            unused.discard(nonce)
        if not fresh_ok:
            context.status_code = 401
            context.headers["WWW-Authenticate"] = 'DPoP error="use_dpop_nonce"'
            return _Body(b"{}", lambda: None)
        return _Body(b'{"ok": true}', lambda: None)

    servers = Servers()
    auth = requests_mock.Adapter()
    auth.register_uri("POST", TOKEN_URL, json=servers.token)
    token_session = requests.Session()
    token_session.mount("https://", auth)
    inner = requests_mock.Adapter()
    inner.register_uri("GET", API, body=api, headers={"Content-Type": "application/json"})
    with ClientCredentialsSession(
        token_url=TOKEN_URL, client_id="c", client_secret="s", token_session=token_session,
        adapter=inner, base_url=ORIGIN + "/api/", dpop=True,
    ) as session:
        session.manager.fetch_token()
        results = run_threads(lambda i: session.get(API).status_code, n)
        assert results == [200] * n, (results, issued, replays)
        assert replays == issued and len(set(issued.values())) == n
        dpop = session.manager.dpop
        assert dpop is not None and dpop.nonces.get(API) in issued.values()
