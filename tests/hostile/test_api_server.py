"""The adapter against hostile API servers: the token stays home without the session's help (contract
item 17), no cleartext through a proxy (18), the 401 cool-down (19), a 401 body before a
replay read capped (15).

Redirects are checked on a plain ``requests.Session`` with the adapter mounted widely (as
the README offers), over ``requests_mock`` and over real loopback servers; proxies and 401
bodies with raw-socket servers that count what they received and sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import requests
import requests_mock

from reqcc import (
    ClientCredentialsAdapter,
    ClientCredentialsManager,
    ClientCredentialsSession,
    InsecureTransportError,
    OAuthToken,
    mount,
)
from reqcc.adapter import REJECTION_COOLDOWN, RejectionCooldown
from reqcc.testing import FakeClock

from ..conftest import API, TOKEN_URL, Env, TokenIssuer, manager_kwargs
from ..hostile_server import HostileServer, Reply

MiB = 1 << 20
BOOKS = API + "books"
TOKEN_JSON = b'{"access_token":"tok-proxy","token_type":"Bearer","expires_in":3600}'


def wide_session(
    clock: FakeClock, inner: requests.adapters.BaseAdapter
) -> tuple[requests.Session, TokenIssuer]:
    """A plain ``requests.Session`` with the adapter mounted at https:// and http://."""
    auth, issuer = requests_mock.Adapter(), TokenIssuer()
    auth.register_uri("POST", TOKEN_URL, text=issuer)
    adapter = ClientCredentialsAdapter(inner, **manager_kwargs(clock, auth))
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session, issuer


# -- item 17: the adapter keeps the token home by itself -----------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize(
    "target",
    [
        pytest.param("https://other.example.com/books", id="host"),
        pytest.param("https://api.example.com:8443/books", id="port"),
        pytest.param("http://api.example.com/books", id="scheme"),
    ],
)
def test_a_widely_mounted_adapter_sends_no_token_to_another_origin(
    clock: FakeClock, status: int, target: str
) -> None:
    inner = requests_mock.Adapter()
    inner.register_uri(requests_mock.ANY, BOOKS, status_code=status, headers={"Location": target})
    inner.register_uri(requests_mock.ANY, target, json={"moved": True})
    session, issuer = wide_session(clock, inner)
    response = session.post(BOOKS, data=b"x") if status in (307, 308) else session.get(BOOKS)
    assert response.json() == {"moved": True}
    assert [r.url for r in inner.request_history] == [BOOKS, target]
    assert [r.headers.get("Authorization") for r in inner.request_history] == ["Bearer tok-1", None]
    assert issuer.count == 1


@pytest.mark.parametrize("status", [302, 303, 307, 308])
def test_a_same_origin_hop_keeps_the_token(clock: FakeClock, status: int) -> None:
    inner = requests_mock.Adapter()
    inner.register_uri(requests_mock.ANY, BOOKS, status_code=status, headers={"Location": "/v2/books"})
    inner.register_uri(requests_mock.ANY, API + "v2/books", json={"ok": True})
    session, issuer = wide_session(clock, inner)
    assert session.get(BOOKS).json() == {"ok": True}
    assert [r.headers.get("Authorization") for r in inner.request_history] == ["Bearer tok-1"] * 2
    assert issuer.count == 1


def test_a_chain_that_comes_back_home_gets_the_token_there_only(clock: FakeClock) -> None:
    inner = requests_mock.Adapter()
    inner.register_uri("GET", BOOKS, status_code=302, headers={"Location": "https://cdn.example.net/b"})
    inner.register_uri("GET", "https://cdn.example.net/b", status_code=302, headers={"Location": API + "v2"})
    inner.register_uri("GET", API + "v2", json={"ok": True})
    session, _ = wide_session(clock, inner)
    assert session.get(BOOKS).json() == {"ok": True}
    assert [r.headers.get("Authorization") for r in inner.request_history] == [
        "Bearer tok-1", None, "Bearer tok-1",
    ]


def test_requests_sent_one_after_another_each_get_the_token(clock: FakeClock) -> None:
    # The chain is per prepared request: a new request to another origin is not a hop.
    inner = requests_mock.Adapter()
    inner.register_uri("GET", requests_mock.ANY, json={"ok": True})
    session, _ = wide_session(clock, inner)
    session.get(BOOKS)
    session.get("https://other.example.com/books")
    assert [r.headers.get("Authorization") for r in inner.request_history] == ["Bearer tok-1"] * 2


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_over_real_sockets_a_redirect_to_another_port_or_host_carries_no_token(
    serve: Callable[..., HostileServer], host: str
) -> None:
    elsewhere = serve(Reply(body=b"{}"))
    target = f"http://{host}:{elsewhere.port}/landing"
    home = serve(Reply(status=307, headers={"Location": target}))
    manager = ClientCredentialsManager(
        token_url="https://auth.example.com/t", client_id="c", client_secret="s",
        token={"access_token": "tok-home", "token_type": "Bearer", "expires_in": 3600},
    )
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", ClientCredentialsAdapter(manager=manager))
    assert session.get(home.url + "/books").status_code == 200
    assert [r[2].get("authorization") for r in home.requests] == ["Bearer tok-home"]
    assert [r[2].get("authorization") for r in elsewhere.requests] == [None]


# -- item 18: no cleartext through a proxy --------------------------------------------------


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch, serve: Callable[..., HostileServer]) -> HostileServer:
    """A loopback "proxy" in this test's HTTP_PROXY (no NO_PROXY): it answers like a token endpoint."""
    proxy = serve(Reply(body=TOKEN_JSON))
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://proxyuser:proxy-pw@127.0.0.1:{proxy.port}")
    return proxy


def test_the_token_request_never_goes_through_a_proxy_in_cleartext(
    proxy_env: HostileServer, serve: Callable[..., HostileServer]
) -> None:
    endpoint = serve(Reply(body=TOKEN_JSON))
    manager = ClientCredentialsManager(
        token_url=endpoint.url + "/oauth/token", client_id="c", client_secret="proxied-s3cret", max_retries=0
    )
    with pytest.raises(InsecureTransportError, match="proxy") as raised:
        manager.get_token()
    assert "proxy-pw" not in str(raised.value) and "proxied-s3cret" not in str(raised.value)
    assert "NO_PROXY" in str(raised.value)
    assert proxy_env.requests == [] and endpoint.requests == []  # nothing sent at all


def test_an_api_request_never_goes_through_a_proxy_in_cleartext(
    proxy_env: HostileServer, serve: Callable[..., HostileServer]
) -> None:
    api = serve(Reply(body=b"{}"))
    manager = ClientCredentialsManager(
        token_url="https://auth.example.com/t", client_id="c", client_secret="s",
        token={"access_token": "tok-api", "token_type": "Bearer", "expires_in": 3600},
    )
    session = ClientCredentialsSession(manager=manager, base_url=api.url + "/")
    with pytest.raises(InsecureTransportError, match="proxy"):
        session.get(api.url + "/books")
    assert proxy_env.requests == [] and api.requests == []


def test_with_no_proxy_for_loopback_the_requests_go_direct(
    proxy_env: HostileServer, serve: Callable[..., HostileServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    endpoint, api = serve(Reply(body=TOKEN_JSON)), serve(Reply(body=b"{}"))
    session = ClientCredentialsSession(
        token_url=endpoint.url + "/oauth/token", client_id="c", client_secret="s", base_url=api.url + "/"
    )
    assert session.get(api.url + "/books").status_code == 200
    assert endpoint.token_requests == 1 and api.token_requests == 1
    assert proxy_env.requests == []


def test_https_through_a_proxy_is_a_tunnel_and_allowed() -> None:
    from reqcc._urls import require_no_cleartext_proxy

    proxies = {"http": "http://127.0.0.1:3128", "https": "http://127.0.0.1:3128"}
    require_no_cleartext_proxy("https://api.example.com/books", proxies, "a request")
    require_no_cleartext_proxy("http://127.0.0.1/books", {"https": "http://127.0.0.1:3128"}, "a request")
    with pytest.raises(InsecureTransportError):
        require_no_cleartext_proxy("http://127.0.0.1/books", {"all": "socks5://127.0.0.1:1080"}, "a request")


# -- item 19: the 401 cool-down -------------------------------------------------------------


def test_an_endpoint_that_rejects_every_token_costs_two_token_requests_not_one_per_call(
    make_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    env: Env = make_env()
    env.api.register_uri("GET", API + "forbidden", status_code=401)
    with caplog.at_level(logging.INFO, logger="reqcc"):
        statuses = [env.session.get(API + "forbidden", params={"page": i}).status_code for i in range(10)]
    assert statuses == [401] * 10
    assert env.issuer.count == 2  # the first token, and the fresh one its replay was refused with
    assert env.api.call_count == 11  # one replay, then each 401 returned as it is
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "GET https://api.example.com/forbidden" in warnings[0].getMessage()
    assert "page" not in warnings[0].getMessage()

    # A revocation seen elsewhere is still recovered from at once.
    env.api.register_uri("GET", BOOKS, [{"status_code": 401}, {"json": {"ok": True}}])
    assert env.session.get(BOOKS).json() == {"ok": True}
    assert env.issuer.count == 3
    # Another method on the same URL is another endpoint.
    env.api.register_uri("POST", API + "forbidden", [{"status_code": 401}, {"json": {"ok": True}}])
    assert env.session.post(API + "forbidden", data=b"x").status_code == 200
    assert env.issuer.count == 4


def test_the_cool_down_ends(make_env: Any, clock: FakeClock) -> None:
    env: Env = make_env()
    env.api.register_uri("GET", API + "forbidden", status_code=401)
    for _ in range(3):
        env.session.get(API + "forbidden")
    assert env.issuer.count == 2
    clock.advance(REJECTION_COOLDOWN - 1)
    env.session.get(API + "forbidden")
    assert env.issuer.count == 2
    clock.advance(2)  # forgotten: its next 401 retires the token (one fetch), then it cools down again
    env.session.get(API + "forbidden")
    env.session.get(API + "forbidden")
    assert env.issuer.count == 3


def test_the_cool_down_is_bounded() -> None:
    now = [0.0]
    cooldown = RejectionCooldown(lambda: now[0], seconds=60, size=2)
    for key in ("GET a", "GET b", "GET c"):
        cooldown.start(key)
    assert [cooldown.active(k) for k in ("GET a", "GET b", "GET c")] == [False, True, True]
    now[0] = 60.0
    assert not cooldown.active("GET b")


def test_the_cool_down_names_still_import_from_the_adapter_module() -> None:
    import reqcc.adapter
    import reqcc.cooldown

    for name in ("RejectionCooldown", "REJECTION_COOLDOWN", "REJECTION_COOLDOWN_SIZE"):
        assert getattr(reqcc.adapter, name) is getattr(reqcc.cooldown, name)


def test_sessions_sharing_a_manager_share_its_cool_down(clock: FakeClock) -> None:
    # The cool-down is the manager's: a second session (and an adapter mount()ed on a plain
    # session) with the same manager does not pay its own two token requests to learn it.
    auth, issuer, api = requests_mock.Adapter(), TokenIssuer(), requests_mock.Adapter()
    auth.register_uri("POST", TOKEN_URL, text=issuer)
    api.register_uri("GET", API + "forbidden", status_code=401)
    manager = ClientCredentialsManager(**manager_kwargs(clock, auth))
    first = ClientCredentialsSession(base_url=API, adapter=api, manager=manager)
    second = ClientCredentialsSession(base_url=API, adapter=api, manager=manager)
    plain = requests.Session()
    mounted = mount(plain, API, inner=api, manager=manager)
    try:
        for session in (first, second, plain, first, second, plain):
            assert session.get(API + "forbidden").status_code == 401
        assert issuer.count == 2  # not 2 per session
        assert api.call_count == 7  # one replay, then each 401 returned as it is
        assert mounted.manager.rejection_cooldown is manager.rejection_cooldown
        assert manager.rejection_cooldown.active("GET " + API + "forbidden")
    finally:
        for session in (first, second, plain):
            session.close()
        manager.close()


def test_managers_not_shared_each_learn_the_cool_down_for_themselves(make_env: Any) -> None:
    first: Env = make_env()
    second: Env = make_env()
    for env in (first, second):
        env.api.register_uri("GET", API + "forbidden", status_code=401)
    for env in (first, second, first, second):
        assert env.session.get(API + "forbidden").status_code == 401
    assert (first.issuer.count, second.issuer.count) == (2, 2)
    assert first.manager.rejection_cooldown is not second.manager.rejection_cooldown


# -- item 15: a 401 body before a replay is read capped -------------------------------------

BIG_401 = 16 * MiB


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_a_huge_401_body_is_not_read_before_the_replay(
    serve: Callable[..., HostileServer], stream: bool, framing: str
) -> None:
    api = serve(
        Reply(status=401, body=b"x" * 65536, repeat=BIG_401 // 65536, framing=framing),
        Reply(body=b'{"ok": true}'),
    )
    issued: list[str] = []

    def provider(last: OAuthToken | None, mgr: ClientCredentialsManager) -> dict[str, Any]:
        issued.append(f"tok-{len(issued) + 1}")
        return {"access_token": issued[-1], "token_type": "Bearer", "expires_in": 3600}

    session = ClientCredentialsSession(
        token_url="https://auth.example.com/t", client_id="c", client_secret="s",
        token_provider=provider, base_url=api.url + "/",
    )
    session.trust_env = False
    response = session.get(api.url + "/books", stream=stream)
    assert response.status_code == 200 and response.content == b'{"ok": true}'
    assert issued == ["tok-1", "tok-2"]
    assert [r[2].get("authorization") for r in api.requests] == ["Bearer tok-1", "Bearer tok-2"]
    assert api.bytes_sent < 4 * MiB  # 16 MiB on offer; 0.1 read it all
    session.close()
