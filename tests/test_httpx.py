"""The httpx front end's behaviour, sync and async, on httpx and httpx2 (contract items 9-24, 36).

One suite: every test runs against each *front* — ``httpx.Client``, ``httpx.AsyncClient``
on asyncio and on trio, the same three on httpx2, and the requests front end
(:class:`~reqcc.ClientCredentialsSession`), which the httpx fronts must match — through
:class:`Front`, which sends
one request the way that front does (an async front runs its client in a fresh event loop
per call: the auth and its manager outlive loops, as they do in real programs). The
servers are real, on 127.0.0.1: :class:`~reqcc.testing.LocalAuthorizationServer` (token
endpoint and bookstore API with RFC 6750 401s and DPoP) and the raw-socket
:class:`~tests.hostile_server.HostileServer` where a test needs to see the headers sent.
The concurrency of async waiters is tests/test_httpx_async.py's.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import anyio
import pytest
import requests

from reqcc import (
    ClientCredentialsManager,
    ClientCredentialsSession,
    InsecureTransportError,
    InvalidClient,
    ReqccError,
)
from reqcc.testing import LocalAuthorizationServer
from tests.dpop_reference import unverified_claims
from tests.hostile_server import HostileServer, Reply

SCOPES = ["books.read", "orders.read", "orders.write"]


def _available(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


MODULES = [
    pytest.param("httpx", marks=pytest.mark.skipif(not _available("httpx"), reason="httpx not installed")),
    pytest.param("httpx2", marks=pytest.mark.skipif(not _available("httpx2"), reason="httpx2 not installed")),
]


@dataclass
class Front:
    """One way of sending: a module (httpx, httpx2 or requests) and a flavour (sync, asyncio,
    trio; ``requests`` for the requests front end)."""

    module: ModuleType
    flavour: str

    @property
    def is_requests(self) -> bool:
        return self.flavour == "requests"

    @property
    def transport_error(self) -> type[Exception]:
        """What this front raises when the connection fails."""
        return requests.ConnectionError if self.is_requests else self.module.TransportError

    def auth(self, **kwargs: Any) -> Any:
        """A ``ClientCredentialsAuth`` of this module (for requests: a ``ClientCredentialsSession``)."""
        if self.is_requests:
            return ClientCredentialsSession(**kwargs)
        reqcc_module = importlib.import_module(f"reqcc.{self.module.__name__}")
        return reqcc_module.ClientCredentialsAuth(**kwargs)

    def next_request(self, response: Any) -> Any:
        """The request a redirect answer would be followed by, when not followed."""
        return response.next if self.is_requests else response.next_request

    def only_httpx(self, why: str) -> None:
        """Skip on the requests front: ``why`` is httpx's own."""
        if self.is_requests:
            pytest.skip(why)

    def request(
        self, auth: Any, method: str, url: str, *, guard: bool = True, follow_redirects: bool = False,
        client_options: dict[str, Any] | None = None, **kwargs: Any,
    ) -> Any:
        """Send one request with ``auth`` (``guard``: with its ``keep_home`` hook); return it, read.

        ``client_options``: more of the client's options (``verify``, ``transport``).
        """
        if self.is_requests:  # the session is the auth; it guards redirects itself (item 12)
            extra = dict(client_options or {})
            if "transport" in extra:
                pytest.skip("an httpx transport")
            return auth.request(method, url, allow_redirects=follow_redirects, timeout=30, **extra, **kwargs)
        hooks = {"request": [auth.keep_home]} if guard else {}
        # A generous timeout: a loaded machine is slow, never a reason for these tests to fail.
        options = {
            "auth": auth, "event_hooks": hooks, "follow_redirects": follow_redirects, "timeout": 30,
            **(client_options or {}),
        }
        if self.flavour == "sync":
            with self.module.Client(**options) as client:
                response = client.request(method, url, **kwargs)
                response.read()
                return response

        async def send() -> Any:
            async with self.module.AsyncClient(**options) as client:
                response = await client.request(method, url, **kwargs)
                await response.aread()
                return response

        return anyio.run(send, backend=self.flavour)


FRONTS = [pytest.param(("requests", "requests"), id="requests")] + [
    pytest.param((module.values[0], flavour), id=f"{module.values[0]}-{flavour}", marks=module.marks)
    for module in MODULES
    for flavour in ("sync", "asyncio", "trio")
]


@pytest.fixture(params=FRONTS)
def front(request: pytest.FixtureRequest) -> Front:
    module, flavour = request.param
    return Front(importlib.import_module(module), flavour)


@pytest.fixture
def server() -> Iterator[LocalAuthorizationServer]:
    with LocalAuthorizationServer() as s:
        yield s


@pytest.fixture
def serve() -> Iterator[Callable[..., HostileServer]]:
    servers: list[HostileServer] = []

    def start(*replies: Reply) -> HostileServer:
        servers.append(HostileServer(*replies))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def redirecting(
    serve: Callable[..., HostileServer], answer: Reply | None = None
) -> tuple[HostileServer, HostileServer]:
    """``(home, elsewhere)``: ``home`` redirects (307) to ``elsewhere``, another origin (another
    port), which gives ``answer`` (default: 200 ``{}``)."""
    elsewhere = serve(answer if answer is not None else Reply(body=b"{}"))
    return serve(Reply(307, {"Location": elsewhere.url + "/landing"})), elsewhere


def auth_for(front: Front, server: LocalAuthorizationServer, **kwargs: Any) -> Any:
    options: dict[str, Any] = {**server.credentials(), "scopes": SCOPES}
    options.update(kwargs)
    return front.auth(**options)


# -- the token, where it goes ------------------------------------------------------------


def test_one_token_is_fetched_and_reused(front: Front, server: LocalAuthorizationServer) -> None:
    auth = auth_for(front, server)
    for _ in range(3):
        response = front.request(auth, "GET", server.api_url + "books")
        assert response.status_code == 200 and response.json()
    assert server.token_requests == 1 and server.api_requests == 3


def test_no_token_outside_base_url_and_an_explicit_authorization_wins(
    front: Front, server: LocalAuthorizationServer, serve: Callable[..., HostileServer]
) -> None:
    other = serve(Reply(body=b"{}"))
    auth = auth_for(front, server)
    front.request(auth, "GET", other.url + "/x")
    front.request(auth, "GET", server.api_url + "books", headers={"Authorization": "Basic abc"})
    assert "authorization" not in other.requests[0][2]
    assert server.token_requests == 0  # no token was even needed


def test_plain_http_to_a_remote_host_is_refused_before_anything_is_sent(front: Front) -> None:
    # Without base_url a ClientCredentialsSession serves https and loopback only: a plain-http
    # request elsewhere is not its to refuse, it goes without a token (tests/test_untokened.py).
    front.only_httpx("the session does not serve plain-http URLs to remote hosts")
    auth = front.auth(token_url="https://auth.example.com/token", client_id="c", client_secret="s")
    with pytest.raises(InsecureTransportError):
        front.request(auth, "GET", "http://api.example.com/books")  # no DNS, no connection: refused first


def test_loopback_http_through_an_environment_proxy_is_refused(
    front: Front, server: LocalAuthorizationServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = auth_for(front, server)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(InsecureTransportError, match="proxy"):
        front.request(auth, "GET", server.api_url + "books")
    assert server.token_requests == 0
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # exempt: it never leaves the machine
    assert front.request(auth, "GET", server.api_url + "books").status_code == 200


def test_base_url_must_be_secure(front: Front, server: LocalAuthorizationServer) -> None:
    with pytest.raises(InsecureTransportError):
        auth_for(front, server, base_url="http://api.example.com/")


# -- 401, replays, the cool-down -----------------------------------------------------------


def test_a_revoked_token_is_retired_and_the_post_replayed_with_its_body(
    front: Front, server: LocalAuthorizationServer
) -> None:
    auth = auth_for(front, server)
    assert front.request(auth, "GET", server.api_url + "books").status_code == 200
    server.revoke_all()
    response = front.request(auth, "POST", server.api_url + "orders", json={"book": 2, "quantity": 1})
    assert response.status_code in (200, 201), response.text
    assert response.json()["order"]["book"] == 2  # the body went out again with the replay
    assert server.token_requests == 2 and server.api_401s == 1
    # httpx keeps an auth flow's intermediate answers in the history; the requests adapter
    # replays inside one send, as a transport does.
    assert [r.status_code for r in response.history] == ([] if front.is_requests else [401])


def test_an_api_that_refuses_every_token_costs_two_token_requests(
    front: Front, server: LocalAuthorizationServer, serve: Callable[..., HostileServer]
) -> None:
    api = serve(Reply(401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}))
    auth = auth_for(front, server, base_url=api.url + "/")
    for _ in range(4):
        assert front.request(auth, "GET", api.url + "/admin").status_code == 401
    assert server.token_requests == 2  # the first token, one fresh one; then the cool-down
    assert len(api.requests) == 5


def test_a_shared_manager_gives_httpx_and_a_requests_session_one_token(
    front: Front, server: LocalAuthorizationServer
) -> None:
    manager = ClientCredentialsManager(**{k: v for k, v in server.credentials().items() if k != "base_url"},
                                       scopes=SCOPES)
    with ClientCredentialsSession(base_url=server.api_url, manager=manager) as session:
        assert session.get(server.api_url + "books").status_code == 200
        auth = front.auth(base_url=server.api_url, manager=manager)
        assert auth.manager is manager
        assert front.request(auth, "GET", server.api_url + "books").status_code == 200
        server.revoke_all()
        assert front.request(auth, "GET", server.api_url + "books").status_code == 200
        assert session.get(server.api_url + "books").status_code == 200  # the token httpx renewed
    assert server.token_requests == 2


def test_manager_and_manager_keywords_together_are_a_type_error(
    front: Front, server: LocalAuthorizationServer
) -> None:
    manager = ClientCredentialsManager(token_url=server.token_url, client_id="c", client_secret="s")
    with pytest.raises(TypeError, match="either manager="):
        front.auth(manager=manager, client_id="c")
    with pytest.raises(TypeError, match="token_urll"):
        front.auth(token_urll=server.token_url)


# -- errors ----------------------------------------------------------------------------


def test_a_token_endpoint_error_is_reqccs_typed_error(front: Front, server: LocalAuthorizationServer) -> None:
    server.fail_token_requests(error="invalid_client")
    auth = auth_for(front, server)
    with pytest.raises(InvalidClient) as caught:
        front.request(auth, "GET", server.api_url + "books")
    assert isinstance(caught.value, ReqccError) and isinstance(caught.value, requests.RequestException)
    assert server.credentials()["client_secret"] not in str(caught.value)
    assert server.api_requests == 0


# -- DPoP --------------------------------------------------------------------------------


def test_dpop_with_nonces_at_both_ends(front: Front) -> None:
    with LocalAuthorizationServer(token_dpop_nonce=True, api_dpop_nonce=True) as server:
        auth = auth_for(front, server, dpop=True)
        for _ in range(2):
            assert front.request(auth, "GET", server.api_url + "books").status_code == 200
        # one token (after one use_dpop_nonce round trip), one nonce replay at the API
        assert server.tokens_issued == 1 and server.api_401s == 1
        server.revoke_all()
        assert front.request(auth, "GET", server.api_url + "books").status_code == 200
        assert server.tokens_issued == 2


def test_a_cross_origin_redirect_carries_neither_token_nor_proof(
    front: Front, server: LocalAuthorizationServer, serve: Callable[..., HostileServer]
) -> None:
    home, elsewhere = redirecting(serve)
    with LocalAuthorizationServer(require_dpop=True) as dpop_server:
        auth = auth_for(front, dpop_server, base_url=home.url + "/", dpop=True)
        response = front.request(auth, "GET", home.url + "/start", follow_redirects=True)
        assert response.status_code == 200
        sent_home = home.requests[0][2]
        assert sent_home["authorization"].startswith("DPoP ") and unverified_claims(sent_home["dpop"])
        hop = elsewhere.requests[0][2]
        assert "authorization" not in hop and "dpop" not in hop


def test_without_following_the_next_request_to_another_origin_carries_nothing(
    front: Front, server: LocalAuthorizationServer, serve: Callable[..., HostileServer]
) -> None:
    home, _elsewhere = redirecting(serve)
    with LocalAuthorizationServer(require_dpop=True) as dpop_server:
        auth = auth_for(front, dpop_server, base_url=home.url + "/", dpop=True)
        response = front.request(auth, "GET", home.url + "/start", guard=False)
        following = front.next_request(response)
        assert following is not None
        assert "Authorization" not in following.headers and "DPoP" not in following.headers


def test_an_unguarded_client_that_follows_a_redirect_is_warned_about(
    front: Front, server: LocalAuthorizationServer, serve: Callable[..., HostileServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    front.only_httpx("the warning is about httpx's event hook")
    home, elsewhere = redirecting(serve)
    auth = auth_for(front, server, base_url=home.url + "/")
    with caplog.at_level("WARNING", logger="reqcc"):
        front.request(auth, "GET", home.url + "/start", guard=False, follow_redirects=True)
    assert "keep_home" in caplog.text
    assert "authorization" not in elsewhere.requests[0][2]  # httpx itself strips Bearer across origins


def test_a_401_from_another_origin_after_a_redirect_retires_nothing(
    front: Front, server: LocalAuthorizationServer, serve: Callable[..., HostileServer]
) -> None:
    home, _elsewhere = redirecting(serve, Reply(401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}))
    auth = auth_for(front, server, base_url=home.url + "/")
    response = front.request(auth, "GET", home.url + "/start", follow_redirects=True)
    assert response.status_code == 401
    assert server.token_requests == 1 and auth.manager.token is not None  # not retired, not replayed
    assert len(home.requests) == 1


# -- packaging --------------------------------------------------------------------------


def test_importing_reqcc_imports_neither_httpx_nor_anyio() -> None:
    code = (
        "import sys, reqcc, reqcc.policy, reqcc.async_token\n"
        "print(json.dumps(sorted(m for m in ('httpx', 'httpx2', 'anyio', 'trio') if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json\n" + code],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    assert json.loads(out) == []


@pytest.mark.parametrize("name", ["httpx", "httpx2"])
def test_each_module_is_an_auth_of_its_own_httpx(name: str) -> None:
    if not _available(name):
        pytest.skip(f"{name} not installed")
    module = importlib.import_module(name)
    reqcc_module = importlib.import_module(f"reqcc.{name}")
    assert issubclass(reqcc_module.ClientCredentialsAuth, module.Auth)
    assert reqcc_module.ClientCredentialsAuth.requires_request_body is True


@pytest.mark.parametrize("name", ["httpx", "httpx2"])
def test_the_signature_lists_base_url_manager_then_every_manager_keyword(name: str) -> None:
    if not _available(name):
        pytest.skip(f"{name} not installed")
    import inspect

    auth_class = importlib.import_module(f"reqcc.{name}").ClientCredentialsAuth
    manager = inspect.signature(ClientCredentialsManager).parameters
    parameters = inspect.signature(auth_class).parameters
    assert list(parameters) == ["base_url", "manager", *manager]
    assert all(parameters[n] == p for n, p in manager.items())


def test_a_followed_redirect_of_a_request_without_a_reqcc_credential_is_not_warned_about(
    front: Front, server: LocalAuthorizationServer, serve: Callable[..., HostileServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    front.only_httpx("the warning is about httpx's event hook")
    home, _elsewhere = redirecting(serve)
    auth = auth_for(front, server)  # base_url: the local server's API, not home
    with caplog.at_level("WARNING", logger="reqcc"):
        front.request(auth, "GET", home.url + "/start", guard=False, follow_redirects=True)
    assert "keep_home" not in caplog.text


@pytest.mark.parametrize("name", ["httpx", "httpx2"])
def test_keep_home_strips_reqccs_credentials_from_a_hop_to_another_origin_only(name: str) -> None:
    # An http -> https upgrade of one host keeps Authorization in httpx; keep_home does not.
    if not _available(name):
        pytest.skip(f"{name} not installed")
    from reqcc._httpx_auth import STAMP

    module = importlib.import_module(name)
    auth = importlib.import_module(f"reqcc.{name}").ClientCredentialsAuth(
        token_url="https://auth.example.com/token", client_id="c", client_secret="s"
    )
    stamp = ("http://127.0.0.1/start", "DPoP tok", "proof")

    def hop(url: str, authorization: str = "DPoP tok") -> Any:
        request = module.Request(
            "GET", url, headers={"Authorization": authorization, "DPoP": "proof"}, extensions={STAMP: stamp}
        )
        anyio.run(_await, auth.keep_home(request))  # the async client awaits what it returns
        return request.headers

    assert "Authorization" not in hop("https://127.0.0.1/start") and "DPoP" not in hop("https://127.0.0.1/")
    assert hop("http://127.0.0.1/elsewhere")["DPoP"] == "proof"  # same origin: kept
    assert hop("https://127.0.0.1/", authorization="Basic mine")["Authorization"] == "Basic mine"  # not ours


async def _await(awaitable: Any) -> None:
    await awaitable


def test_an_exception_while_sending_carries_the_request_without_token_or_proof(front: Front) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    with LocalAuthorizationServer() as server:
        for dpop in (False, True):
            auth = auth_for(front, server, base_url=dead, dpop=dpop)
            with pytest.raises(front.transport_error) as caught:
                front.request(auth, "GET", dead + "books")
            headers = caught.value.request.headers
            assert "Authorization" not in headers and "DPoP" not in headers
        assert server.token_requests == 2  # the tokens were obtained and set, then taken off


def test_the_401_body_before_a_replay_is_not_read(
    front: Front, server: LocalAuthorizationServer, serve: Callable[..., HostileServer]
) -> None:
    huge = Reply(
        401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, body=b"x" * 65536, repeat=2048,  # 128 MiB
    )
    api = serve(huge, Reply(body=b"{}"))
    auth = auth_for(front, server, base_url=api.url + "/")
    response = front.request(auth, "GET", api.url + "/books")
    assert response.status_code == 200 and len(api.requests) == 2
    assert api.bytes_sent < 32 * 1024 * 1024  # the connection was closed, not drained
    assert server.token_requests == 2


def test_no_secret_or_token_in_the_auths_repr(front: Front, server: LocalAuthorizationServer) -> None:
    auth = auth_for(front, server)
    token = front.request(auth, "GET", server.api_url + "books") and auth.manager.token
    shown = repr(auth)
    assert server.credentials()["client_secret"] not in shown and token.access_token not in shown
    assert token.fingerprint in shown


# -- the warm path (issue 20) ------------------------------------------------------------
#
# With a usable Bearer token held, the flow sets the header and sends without the request
# policy's generator (as the requests adapter does), and enters the policy only on a 401 or
# a redirect answer. Each test below holds a token first, so that the request it looks at
# is a warm one, and checks that the warm path decides as the policy does.


@dataclass
class Served:
    """A :class:`LocalAuthorizationServer` and the client options it needs (https: ``verify``)."""

    server: LocalAuthorizationServer
    client_options: dict[str, Any]
    token_session: requests.Session | None

    def send(self, front: Front, auth: Any, method: str, path: str, **kwargs: Any) -> Any:
        """``front.request`` to the server's API (``api_url + path``) with these client options."""
        return front.request(
            auth, method, self.server.api_url + path, client_options=self.client_options, **kwargs
        )


@pytest.fixture(params=["http", "https"])
def served(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Served]:
    """The local server over loopback http, then over https (the prefix the warm path remembers)."""
    if request.param == "http":
        with LocalAuthorizationServer() as s:
            yield Served(s, {}, None)
        return
    import ssl

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    token_session = requests.Session()
    token_session.trust_env = False  # a REQUESTS_CA_BUNDLE in the environment would win over verify
    token_session.verify = str(bundle)
    with LocalAuthorizationServer(ssl_context=context) as s, token_session:
        assert s.api_url.startswith("https://")
        yield Served(s, {"verify": ssl.create_default_context(cafile=str(bundle))}, token_session)


def served_auth(front: Front, served: Served, **kwargs: Any) -> Any:
    if served.token_session is not None:
        kwargs.setdefault("token_session", served.token_session)
    return auth_for(front, served.server, **kwargs)


@pytest.fixture
def policy_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the request policy's ``flow`` and ``answered`` generators created (they still run)."""
    from reqcc.policy import RequestPolicy

    calls = {"flow": 0, "answered": 0}
    for name in calls:
        original = getattr(RequestPolicy, name)

        def counting(self: Any, *args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            calls[_name] += 1
            return _original(self, *args, **kw)

        monkeypatch.setattr(RequestPolicy, name, counting)
    return calls


def test_a_held_bearer_token_is_sent_without_the_policy_until_a_401_replays_it_once(
    front: Front, served: Served, policy_calls: dict[str, int]
) -> None:
    front.only_httpx("the httpx flow's own warm path")
    server = served.server
    auth = served_auth(front, served)
    for _ in range(3):
        assert served.send(front, auth, "GET", "books").status_code == 200
    assert policy_calls == {"flow": 1, "answered": 1}  # the first request only: no token was held
    server.revoke_all()
    response = served.send(front, auth, "POST", "orders", json={"book": 3})
    assert response.status_code in (200, 201) and response.json()["order"]["book"] == 3
    assert [r.status_code for r in response.history] == [401]  # retired and replayed once, body kept
    assert server.token_requests == 2 and server.api_401s == 1
    assert policy_calls == {"flow": 1, "answered": 2}  # the warm path entered answered() for the 401


def test_a_dpop_token_held_still_goes_through_the_policy(front: Front, policy_calls: dict[str, int]) -> None:
    front.only_httpx("the httpx flow's own warm path")
    with LocalAuthorizationServer(require_dpop=True) as server:
        auth = auth_for(front, server, dpop=True)
        for _ in range(2):
            assert front.request(auth, "GET", server.api_url + "books").status_code == 200
        api_proofs = {p.jti for p in server.dpop_proofs if p.htm == "GET"}
        assert policy_calls["flow"] == 2 and len(api_proofs) == 2  # a fresh proof each time


def test_outside_base_url_a_warm_auth_sends_nothing(
    front: Front, served: Served, serve: Callable[..., HostileServer]
) -> None:
    front.only_httpx("the httpx flow's own warm path")
    # base_url is one path of the origin: the origin is admitted, yet the other paths get nothing.
    server = served.server
    auth = served_auth(front, served, base_url=server.api_url + "books")
    assert served.send(front, auth, "GET", "books").status_code == 200
    assert served.send(front, auth, "GET", "orders").status_code == 401
    assert served.send(front, auth, "GET", "books").status_code == 200
    other = serve(Reply(body=b"{}"))
    front.request(auth, "GET", other.url + "/books")
    assert "authorization" not in other.requests[0][2]
    assert server.token_requests == 1 and server.api_401s == 1  # the 401 had no token to retire


def test_without_base_url_a_warm_auth_refuses_plain_http_to_a_remote_host(
    front: Front, served: Served
) -> None:
    front.only_httpx("the httpx flow's own warm path")
    server = served.server
    auth = served_auth(front, served, base_url=None)
    assert served.send(front, auth, "GET", "books").status_code == 200
    with pytest.raises(InsecureTransportError):
        front.request(auth, "GET", "http://api.example.com/books")  # no DNS, no connection: refused first
    assert server.api_requests == 1 and server.token_requests == 1


def test_an_environment_proxy_refuses_a_warm_loopback_request(
    front: Front, server: LocalAuthorizationServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    front.only_httpx("the httpx flow's own warm path")
    auth = auth_for(front, server)
    assert front.request(auth, "GET", server.api_url + "books").status_code == 200
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(InsecureTransportError, match="proxy"):
        front.request(auth, "GET", server.api_url + "books")
    assert server.api_requests == 1


def test_an_explicit_authorization_wins_over_a_held_token(
    front: Front, server: LocalAuthorizationServer, serve: Callable[..., HostileServer]
) -> None:
    front.only_httpx("the httpx flow's own warm path")
    api = serve(Reply(body=b"{}"))
    auth = auth_for(front, server, base_url=api.url + "/")
    front.request(auth, "GET", api.url + "/warm")
    response = front.request(auth, "GET", api.url + "/mine", headers={"Authorization": "Basic abc"})
    assert api.requests[0][2]["authorization"].startswith("Bearer ")
    assert api.requests[1][2]["authorization"] == "Basic abc"
    assert response.request.headers.get_list("Authorization") == ["Basic abc"]
    assert server.token_requests == 1


def test_a_warm_redirect_answer_to_another_origin_carries_no_token(
    front: Front, server: LocalAuthorizationServer, serve: Callable[..., HostileServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    front.only_httpx("the httpx flow's own warm path")
    elsewhere = serve(Reply(body=b"{}"))
    home = serve(Reply(body=b"{}"), Reply(307, {"Location": elsewhere.url + "/landing"}))
    auth = auth_for(front, server, base_url=home.url + "/")
    front.request(auth, "GET", home.url + "/warm")
    following = front.request(auth, "GET", home.url + "/start", guard=False).next_request
    assert following is not None and "Authorization" not in following.headers
    with caplog.at_level("WARNING", logger="reqcc"):
        response = front.request(auth, "GET", home.url + "/start", guard=False, follow_redirects=True)
    assert response.status_code == 200 and "keep_home" in caplog.text  # followed, unguarded: warned
    assert home.requests[1][2]["authorization"].startswith("Bearer ")
    assert "authorization" not in elsewhere.requests[0][2]
    assert server.token_requests == 1


def test_a_warm_redirect_answer_upgrading_to_https_carries_no_token(
    front: Front, server: LocalAuthorizationServer
) -> None:
    front.only_httpx("the httpx flow's own warm path")
    # httpx keeps Authorization on an http -> https upgrade of one host (80 to 443); reqcc does not.
    # Port 80 on loopback: the API is a MockTransport (the token endpoint is the local server).
    seen: list[Any] = []

    def handler(request: Any) -> Any:
        seen.append(request)
        if request.url.path == "/start":
            return front.module.Response(307, headers={"Location": "https://127.0.0.1/landing"})
        return front.module.Response(200)

    mock = {"transport": front.module.MockTransport(handler)}
    auth = auth_for(front, server, base_url="http://127.0.0.1/")
    front.request(auth, "GET", "http://127.0.0.1/warm", client_options=mock)
    response = front.request(auth, "GET", "http://127.0.0.1/start", guard=False, client_options=mock)
    following = response.next_request
    assert following is not None and following.url.scheme == "https"
    assert "Authorization" not in following.headers
    front.request(auth, "GET", "http://127.0.0.1/start", follow_redirects=True, client_options=mock)  # guard
    assert [str(r.url) for r in seen[-2:]] == ["http://127.0.0.1/start", "https://127.0.0.1/landing"]
    assert seen[-2].headers["Authorization"].startswith("Bearer ") and "Authorization" not in seen[-1].headers
    assert server.token_requests == 1


def test_a_warm_request_that_fails_to_send_carries_no_token(
    front: Front, server: LocalAuthorizationServer
) -> None:
    front.only_httpx("the httpx flow's own warm path")
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    auth = auth_for(front, server, base_url=dead)
    auth.manager.get_token()  # held: the request below takes the warm path
    with pytest.raises(front.module.TransportError) as caught:
        front.request(auth, "GET", dead + "books")
    assert "Authorization" not in caught.value.request.headers  # contract item 31
    assert server.token_requests == 1


@pytest.mark.parametrize("name", ["httpx", "httpx2"])
@pytest.mark.parametrize("encoding", [None, "latin-1"])
def test_the_warm_header_is_the_one_httpx_would_set(name: str, encoding: str | None) -> None:
    # The warm path appends to the header list itself: the item must be Headers.__setitem__'s.
    if not _available(name):
        pytest.skip(f"{name} not installed")
    import requests_mock

    from .conftest import TokenIssuer

    module = importlib.import_module(name)
    token_endpoint = requests_mock.Adapter()
    token_endpoint.register_uri("POST", requests_mock.ANY, text=TokenIssuer())
    token_session = requests.Session()
    token_session.mount("https://", token_endpoint)
    auth = importlib.import_module(f"reqcc.{name}").ClientCredentialsAuth(
        token_url="https://auth.example.com/token", client_id="c", client_secret="s",
        base_url="https://api.example.com/", token_session=token_session,
    )
    sent: list[Any] = []

    def handler(request: Any) -> Any:
        sent.append(list(request.headers.raw))
        return module.Response(200)

    with module.Client(transport=module.MockTransport(handler), auth=auth) as client:
        for _ in range(2):  # cold, then warm
            request = client.build_request("GET", "https://api.example.com/books")
            request.headers.encoding = encoding
            client.send(request)
    reference = module.Headers(encoding=encoding)
    reference["Authorization"] = f"Bearer {auth.manager.token.access_token}"
    assert sent[0][-1] == sent[1][-1] == reference.raw[0]


def test_keep_home_lets_the_request_it_guards_go_without_parsing_its_url(
    front: Front, server: LocalAuthorizationServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reqcc import _httpx_auth

    auth = auth_for(front, server)
    front.request(auth, "GET", server.api_url + "books")
    parsed: list[str] = []
    parse = _httpx_auth.origin  # type: ignore[attr-defined]

    def counting(url: str) -> Any:
        parsed.append(url)
        return parse(url)

    monkeypatch.setattr(_httpx_auth, "origin", counting)
    assert front.request(auth, "GET", server.api_url + "books").status_code == 200
    assert parsed == []
