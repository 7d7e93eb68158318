"""The adapter and the session: fetch, reuse and expiry end to end (items 1-3), sending (9-11), mount()."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import requests_mock
from requests.adapters import HTTPAdapter

import reqcc
from reqcc import (
    ClientCredentialsAdapter,
    ClientCredentialsManager,
    ClientCredentialsSession,
    InsecureTransportError,
    OAuthToken,
)
from reqcc.testing import FakeClock

from .conftest import API, TOKEN_URL, Env, TokenIssuer, manager_kwargs
from .reachable import reachable_text

BOOKS = "https://api.example.com/books"
OTHER = "https://other.example.com/"
INVALID_TOKEN = {"WWW-Authenticate": 'Bearer realm="api", error="invalid_token", error_description="expired"'}


# -- fetch once, attach, reuse, renew on expiry ---------------------------------------------


def test_first_request_fetches_and_attaches(make_env: Any) -> None:
    env: Env = make_env()
    response = env.session.get(BOOKS)
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert env.issuer.count == 1
    assert env.api.call_count == 1
    assert env.bearers() == ["Bearer tok-1"]
    # the token is fetched before the API call, through the token session only
    assert env.auth.request_history[0].url == "https://auth.example.com/oauth/token"


def test_hundred_requests_reuse_one_token(make_env: Any, clock: FakeClock) -> None:
    env: Env = make_env()
    for i in range(100):
        env.session.get(f"{API}books/{i}")
        clock.advance(10)  # 1000 s in all, well inside the 3600 s lifetime
    assert env.issuer.count == 1
    assert env.bearers() == ["Bearer tok-1"] * 100


def test_expired_token_is_replaced_default_skew(make_env: Any, clock: FakeClock) -> None:
    env: Env = make_env()
    env.session.get(BOOKS)
    clock.advance(3600 - 31)
    env.session.get(BOOKS)
    assert env.issuer.count == 1
    clock.advance(1)  # expiry - 30 s
    env.session.get(BOOKS)
    assert env.issuer.count == 2
    assert env.bearers() == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_expired_token_is_replaced_without_skew(make_env: Any, clock: FakeClock) -> None:
    env: Env = make_env(clock_skew=0)
    env.session.get(BOOKS)
    clock.advance(3599)
    env.session.get(BOOKS)
    assert env.issuer.count == 1
    clock.advance(1)
    env.session.get(BOOKS)
    assert env.bearers() == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_skew_is_capped_at_half_the_lifetime_end_to_end(make_env: Any, clock: FakeClock) -> None:
    env: Env = make_env(clock_skew=3600, issuer=TokenIssuer(expires_in=40))
    for _ in range(100):  # a skew longer than the lifetime does not refetch on every request
        env.session.get(BOOKS)
    assert env.issuer.count == 1
    clock.advance(19)
    env.session.get(BOOKS)
    assert env.issuer.count == 1
    clock.advance(1)  # 40 - 40/2
    env.session.get(BOOKS)
    assert env.issuer.count == 2


def test_fetched_expiry_is_absolute_unix_seconds_from_the_real_clock(clock: FakeClock) -> None:
    auth, api = requests_mock.Adapter(), requests_mock.Adapter()
    auth.register_uri("POST", requests_mock.ANY, text=TokenIssuer(expires_in=3600))
    api.register_uri("GET", requests_mock.ANY, text="ok")
    kwargs = manager_kwargs(clock, auth)
    del kwargs["clock"], kwargs["monotonic"]  # the library's defaults: time.time, time.monotonic
    session = ClientCredentialsSession(base_url=API, adapter=api, **kwargs)
    before = time.time()
    session.get(BOOKS)
    after = time.time()
    token = session.manager.token
    assert token is not None and token.expiry is not None
    assert before + 3600 <= token.expiry <= after + 3600


def test_validity_follows_the_monotonic_clock_not_wall_clock_jumps(make_env: Any) -> None:
    clock = FakeClock(monotonic_start=1000.0)
    env: Env = make_env(**clock.keywords())
    env.session.get(BOOKS)
    assert env.manager.token is not None and env.manager.token.expiry == clock.time() + 3600
    clock.jump(30 * 86400)  # the wall clock jumps a month ahead (NTP, suspend, a manual fix)
    env.session.get(BOOKS)
    clock.jump(-60 * 86400)  # ... and back
    env.session.get(BOOKS)
    assert env.issuer.count == 1
    clock.advance(3600 - 31)
    env.session.get(BOOKS)
    assert env.issuer.count == 1
    clock.advance(1)  # the real time passed: expiry - 30 s
    env.session.get(BOOKS)
    assert env.issuer.count == 2
    assert env.bearers() == ["Bearer tok-1"] * 4 + ["Bearer tok-2"]


def test_requests_outside_base_url_get_no_token(make_env: Any) -> None:
    env: Env = make_env()
    elsewhere = requests_mock.Adapter()
    elsewhere.register_uri("GET", requests_mock.ANY, text="hi")
    env.session.mount("https://", elsewhere)
    env.session.get("https://api.example.com.evil.example/")  # the prefix has a path: no match
    env.session.get(OTHER)
    assert [r.headers.get("Authorization") for r in elsewhere.request_history] == [None, None]
    assert env.issuer.count == 0


def test_sessions_sharing_a_manager_fetch_once(make_env: Any) -> None:
    first: Env = make_env()
    second: Env = make_env(manager=first.manager)
    assert second.manager is first.manager
    first.session.get(BOOKS)
    second.session.get(BOOKS)
    assert first.issuer.count == 1
    assert second.issuer.count == 0
    assert second.bearers() == ["Bearer tok-1"]


# -- item 9: the caller's Authorization wins; the caller's request is never mutated ----------


@pytest.mark.parametrize("name", ["Authorization", "authorization"])
def test_explicit_authorization_header_is_untouched(make_env: Any, name: str) -> None:
    env: Env = make_env()
    env.session.get(BOOKS, headers={name: "Basic dXNlcjpwYXNz"})
    assert env.bearers() == ["Basic dXNlcjpwYXNz"]
    assert env.issuer.count == 0


def test_explicit_authorization_401_is_returned_and_nothing_retired(make_env: Any) -> None:
    env: Env = make_env()
    env.session.get(BOOKS)
    env.api.register_uri("GET", BOOKS, status_code=401)
    response = env.session.get(BOOKS, headers={"Authorization": "Bearer mine"})
    assert response.status_code == 401
    assert env.manager.token is not None and env.manager.token.access_token == "tok-1"
    assert env.api.call_count == 2
    assert env.issuer.count == 1


def test_callers_prepared_request_is_not_mutated(make_env: Any) -> None:
    env: Env = make_env()
    prepared = env.session.prepare_request(
        requests.Request("POST", BOOKS, data=b"body", headers={"X-A": "1"})
    )
    before = dict(prepared.headers)
    response = env.session.send(prepared)
    assert dict(prepared.headers) == before
    assert "Authorization" not in prepared.headers
    assert prepared.body == b"body"
    assert response.request is prepared
    assert env.bearers() == ["Bearer tok-1"]
    assert env.api.request_history[0].headers["X-A"] == "1"


def test_adapter_send_directly_does_not_mutate(clock: FakeClock) -> None:
    api, auth = requests_mock.Adapter(), requests_mock.Adapter()
    auth.register_uri("POST", requests_mock.ANY, text=TokenIssuer())
    api.register_uri("GET", requests_mock.ANY, text="ok")
    adapter = ClientCredentialsAdapter(api, **manager_kwargs(clock, auth))
    prepared = requests.Request("GET", BOOKS).prepare()
    response = adapter.send(prepared)
    assert "Authorization" not in prepared.headers
    assert response.request is prepared
    assert api.request_history[0].headers["Authorization"] == "Bearer tok-1"


class _Recording(requests.adapters.BaseAdapter):
    """An inner transport that keeps the requests it is given and answers 200."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        response = requests.Response()
        response.status_code = 200
        response.request = request
        return response

    def close(self) -> None:
        pass


class _TaggedRequest(requests.PreparedRequest):
    pass


@pytest.mark.parametrize("kind", [requests.PreparedRequest, _TaggedRequest])
def test_the_request_sent_is_a_copy_with_the_token_and_the_callers_state_unchanged(
    clock: FakeClock, kind: type[requests.PreparedRequest]
) -> None:
    # What the inner transport gets is what PreparedRequest.copy() would give (for a
    # subclass: every attribute), plus the token; the caller's request keeps its attribute
    # storage, headers and hooks' "response" list as they were.
    auth, inner = requests_mock.Adapter(), _Recording()
    auth.register_uri("POST", requests_mock.ANY, text=TokenIssuer())
    adapter = ClientCredentialsAdapter(inner, **manager_kwargs(clock, auth))
    prepared = kind()
    prepared.prepare(method="PUT", url=BOOKS, headers={"X-A": "1"}, data=b"body", cookies={"c": "v"})
    if kind is _TaggedRequest:
        prepared.tag = "kept"  # type: ignore[attr-defined]
    names = ("method", "url", "body", "_cookies", "_body_position")
    before = {name: getattr(prepared, name) for name in names}
    headers_before = list(prepared.headers.items())
    response = adapter.send(prepared)
    (sent,) = inner.sent
    assert sent is not prepared and response.request is prepared
    assert list(sent.headers.items()) == [*headers_before, ("Authorization", "Bearer tok-1")]
    for name, value in before.items():
        assert getattr(sent, name) is value
    assert sent.hooks is prepared.hooks
    assert list(prepared.headers.items()) == headers_before
    assert {name: getattr(prepared, name) for name in names} == before
    assert prepared.hooks["response"] == []
    if kind is _TaggedRequest:
        assert sent.tag == "kept"  # type: ignore[attr-defined]


# -- item 10: the token stays at its origin, over https or loopback http -------------------


def redirecting(env: Env, target: str) -> requests_mock.Adapter:
    """Make BOOKS redirect to ``target``, and serve ``target``'s origin from a new mock."""
    env.api.register_uri("GET", BOOKS, status_code=302, headers={"Location": target})
    elsewhere = requests_mock.Adapter()
    elsewhere.register_uri("GET", requests_mock.ANY, json={"moved": True})
    return elsewhere


@pytest.mark.parametrize(
    "target",
    [
        "https://other.example.com/books",
        "https://api.example.com:8443/books",
        "https://evil.example/api.example.com/books",
    ],
)
def test_cross_origin_redirect_carries_no_token_without_base_url(make_env: Any, target: str) -> None:
    env: Env = make_env(base_url=None)  # mounted on https://: every https request is ours
    env.api.register_uri("GET", BOOKS, status_code=302, headers={"Location": target})
    response = env.session.get(BOOKS)
    assert response.status_code == 200
    assert [r.url for r in env.api.request_history] == [BOOKS, target]
    assert env.bearers() == ["Bearer tok-1", None]
    assert response.history[0].request.headers.get("Authorization") is None


def test_cross_origin_redirect_carries_no_token_with_base_url(make_env: Any) -> None:
    env: Env = make_env()
    elsewhere = redirecting(env, "https://other.example.com/books")
    env.session.mount("https://other.example.com/", elsewhere)
    response = env.session.get(BOOKS)
    assert response.json() == {"moved": True}
    assert env.bearers() == ["Bearer tok-1"]
    assert [r.headers.get("Authorization") for r in elsewhere.request_history] == [None]


@pytest.mark.parametrize("base_url", [API, None])
def test_same_origin_redirect_keeps_the_token(make_env: Any, base_url: str | None) -> None:
    env: Env = make_env(base_url=base_url)
    env.api.register_uri("GET", BOOKS, status_code=301, headers={"Location": "/v2/books"})
    assert env.session.get(BOOKS).status_code == 200
    assert [r.url for r in env.api.request_history] == [BOOKS, "https://api.example.com/v2/books"]
    assert env.bearers() == ["Bearer tok-1", "Bearer tok-1"]
    assert env.issuer.count == 1


@pytest.mark.parametrize(
    "url", ["http://api.example.com/books", "http://10.1.2.3/books", "http://127.0.0.1.nip.io/x"]
)
def test_plain_http_to_a_remote_host_is_refused_before_sending(clock: FakeClock, url: str) -> None:
    api, auth = requests_mock.Adapter(), requests_mock.Adapter()
    auth.register_uri("POST", requests_mock.ANY, text=TokenIssuer())
    api.register_uri(requests_mock.ANY, requests_mock.ANY, text="ok")
    session = requests.Session()
    session.mount("http://", ClientCredentialsAdapter(api, **manager_kwargs(clock, auth)))
    with pytest.raises(InsecureTransportError, match="http"):
        session.post(url, data=b"secret payload")
    assert api.call_count == 0
    assert auth.call_count == 0  # not even a token was fetched


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/books", "http://localhost/books", "http://[::1]/x"])
def test_plain_http_to_loopback_carries_the_token(clock: FakeClock, url: str) -> None:
    api, auth = requests_mock.Adapter(), requests_mock.Adapter()
    auth.register_uri("POST", requests_mock.ANY, text=TokenIssuer())
    api.register_uri(requests_mock.ANY, requests_mock.ANY, text="ok")
    session = requests.Session()
    session.mount("http://", ClientCredentialsAdapter(api, **manager_kwargs(clock, auth)))
    assert session.get(url).status_code == 200
    assert api.request_history[0].headers["Authorization"] == "Bearer tok-1"


def _by_hand(url: str) -> requests.PreparedRequest:
    """A GET to ``url`` exactly as written (requests' own preparation would normalize it)."""
    prepared = requests.Request("GET", "http://127.0.0.1/").prepare()
    prepared.url = url
    return prepared


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1@evil.example/books",  # userinfo: the host is evil.example
        "http://127.0.0.1:8080@evil.example/books",
        "http://evil.example?@127.0.0.1/books",  # the host ends at '?'
        "http://evil.example#@127.0.0.1/books",
        "http://127.0.0.1.evil.example/books",
        "http:/127.0.0.1/books",  # no authority at all
        "http://api.example.com/books",  # the https origin's host, over http
    ],
)
def test_an_origin_found_secure_does_not_vouch_for_look_alikes(clock: FakeClock, url: str) -> None:
    # The https-or-loopback rule is decided once per origin and remembered: URLs that
    # share a prefix with a remembered origin but go elsewhere are still refused.
    api, auth = requests_mock.Adapter(), requests_mock.Adapter()
    auth.register_uri("POST", requests_mock.ANY, text=TokenIssuer())
    api.register_uri(requests_mock.ANY, requests_mock.ANY, text="ok")
    adapter = ClientCredentialsAdapter(api, **manager_kwargs(clock, auth))
    for secure in ("http://127.0.0.1/books", "http://127.0.0.1:8080/books", BOOKS):
        assert adapter.send(_by_hand(secure)).status_code == 200
        assert adapter.send(_by_hand(secure)).status_code == 200  # remembered this time
    with pytest.raises(InsecureTransportError):
        adapter.send(_by_hand(url))
    with pytest.raises(InsecureTransportError):  # and not remembered as secure either
        adapter.send(_by_hand(url))
    assert api.call_count == 6


@pytest.mark.parametrize(
    ("secure", "insecure"),
    [
        ("http:\t\t//127.0.0.1/books", "http:\t\t//evil.example/books"),  # urlsplit drops tabs
        ("    http://127.0.0.1/books", "    http://evil.example/books"),  # and leading spaces
        ("\x01\x01\x01\x01http://127.0.0.1/books", "\x01\x01\x01\x01http://evil.example/books"),
        ("HTTP://127.0.0.1/books", "HTTP://evil.example/books"),
    ],
)
def test_a_url_not_written_as_requests_writes_it_is_never_remembered_by_a_short_key(
    clock: FakeClock, secure: str, insecure: str
) -> None:
    # The remembered key is the text before the first '/' from index 8 on; that fixes the
    # host only when the URL starts with 'http://' or 'https://'. Anything else must not
    # leave a key behind that a URL to another host shares.
    api, auth = requests_mock.Adapter(), requests_mock.Adapter()
    auth.register_uri("POST", requests_mock.ANY, text=TokenIssuer())
    api.register_uri(requests_mock.ANY, requests_mock.ANY, text="ok")
    adapter = ClientCredentialsAdapter(api, **manager_kwargs(clock, auth))
    try:
        adapter.send(_by_hand(secure))
    except (requests.RequestException, ValueError):
        pass  # the inner transport may refuse it; the rule has been decided by then
    with pytest.raises(InsecureTransportError):
        adapter.send(_by_hand(insecure))


def test_the_remembered_origins_are_bounded(clock: FakeClock) -> None:
    api, auth = requests_mock.Adapter(), requests_mock.Adapter()
    auth.register_uri("POST", requests_mock.ANY, text=TokenIssuer())
    api.register_uri(requests_mock.ANY, requests_mock.ANY, text="ok")
    adapter = ClientCredentialsAdapter(api, **manager_kwargs(clock, auth))
    for port in range(1000, 1300):
        assert adapter.send(_by_hand(f"http://127.0.0.1:{port}/")).status_code == 200
    assert 0 < len(adapter._policy._secure) <= 64
    with pytest.raises(InsecureTransportError):
        adapter.send(_by_hand("http://evil.example/"))


def test_a_cleartext_proxy_is_refused_also_on_an_origin_already_admitted(clock: FakeClock) -> None:
    # The adapter skips the policy's origin check for the origin it admitted last, but
    # never the proxy check: a proxy given with a later request is looked at each time.
    api, auth = requests_mock.Adapter(), requests_mock.Adapter()
    auth.register_uri("POST", requests_mock.ANY, text=TokenIssuer())
    api.register_uri(requests_mock.ANY, requests_mock.ANY, text="ok")
    adapter = ClientCredentialsAdapter(api, **manager_kwargs(clock, auth))
    assert adapter.send(_by_hand("http://127.0.0.1:8080/a")).status_code == 200
    with pytest.raises(InsecureTransportError, match="proxy"):
        adapter.send(_by_hand("http://127.0.0.1:8080/b"), proxies={"http": "http://proxy.example:3128"})
    assert api.call_count == 1


def test_the_copy_sent_shares_nothing_the_inner_transport_could_change_in_the_original(
    clock: FakeClock,
) -> None:
    # The inner transport gets its own headers; the caller's request, headers and cookie
    # jar are as they were, also when the inner transport changes what it was given.
    seen: list[requests.PreparedRequest] = []

    class Meddling(requests.adapters.BaseAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            seen.append(request)
            request.headers["X-Added-Below"] = "1"
            request.url = "https://rewritten.example/"
            response = requests.Response()
            response.status_code = 200
            return response

        def close(self) -> None:
            pass

    auth = requests_mock.Adapter()
    auth.register_uri("POST", requests_mock.ANY, text=TokenIssuer())
    adapter = ClientCredentialsAdapter(Meddling(), **manager_kwargs(clock, auth))
    session = requests.Session()
    session.cookies.set("c", "1", domain="api.example.com")
    prepared = session.prepare_request(requests.Request("POST", BOOKS, data=b"x", headers={"X-A": "1"}))
    before = (prepared.url, dict(prepared.headers), prepared.body, dict(prepared._cookies))  # type: ignore[attr-defined]
    adapter.send(prepared)
    assert seen[0] is not prepared and seen[0].headers is not prepared.headers
    assert seen[0].headers["Authorization"] == "Bearer tok-1"
    assert seen[0].headers["Cookie"] == "c=1" and seen[0].body == b"x"
    after = (prepared.url, dict(prepared.headers), prepared.body, dict(prepared._cookies))  # type: ignore[attr-defined]
    assert after == before


# -- item 11: 401 retires the token and replays once when the body allows -------------------


@pytest.mark.parametrize("headers", [INVALID_TOKEN, {}, {"WWW-Authenticate": "Bearer error=invalid_token"}])
def test_401_invalid_token_refetches_once_and_replays_once(make_env: Any, headers: dict[str, str]) -> None:
    env: Env = make_env()
    env.session.get(BOOKS)
    env.api.register_uri(
        "GET", BOOKS, [{"status_code": 401, "headers": headers}, {"status_code": 200, "json": {"n": 2}}]
    )
    response = env.session.get(BOOKS)
    assert response.status_code == 200
    assert response.json() == {"n": 2}
    assert env.issuer.count == 2
    assert env.bearers() == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    assert response.request.headers.get("Authorization") is None  # the caller's request


def test_401_on_the_replay_is_returned_without_a_loop(make_env: Any) -> None:
    env: Env = make_env()
    env.api.register_uri("GET", BOOKS, status_code=401, headers=INVALID_TOKEN)
    response = env.session.get(BOOKS)
    assert response.status_code == 401
    assert env.api.call_count == 2
    assert env.issuer.count == 2


def test_401_insufficient_scope_does_not_retire(make_env: Any) -> None:
    env: Env = make_env()
    env.api.register_uri(
        "GET", BOOKS, status_code=401, headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'}
    )
    response = env.session.get(BOOKS)
    assert response.status_code == 401
    assert env.api.call_count == 1
    assert env.manager.token is not None and env.manager.token.access_token == "tok-1"
    env.session.get(BOOKS)
    assert env.issuer.count == 1
    assert env.bearers() == ["Bearer tok-1", "Bearer tok-1"]


def test_403_is_not_a_token_problem(make_env: Any) -> None:
    env: Env = make_env()
    env.api.register_uri("GET", BOOKS, status_code=403, headers=INVALID_TOKEN)
    assert env.session.get(BOOKS).status_code == 403
    assert env.api.call_count == 1
    assert env.manager.token is not None


def test_401_with_generator_body_is_returned_and_the_token_retired(make_env: Any) -> None:
    env: Env = make_env()
    env.api.register_uri("POST", BOOKS, status_code=401, headers=INVALID_TOKEN, text="no")
    consumed: list[bytes] = []

    def body() -> Iterator[bytes]:
        for chunk in (b"a", b"b"):
            consumed.append(chunk)
            yield chunk

    response = env.session.post(BOOKS, data=body())
    assert response.status_code == 401
    assert response.text == "no"
    assert env.api.call_count == 1  # not replayed
    assert env.issuer.count == 1
    assert env.manager.token is None  # but retired
    env.session.get(BOOKS)
    assert env.issuer.count == 2
    assert env.bearers() == ["Bearer tok-1", "Bearer tok-2"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"data": b"raw-bytes"}, b"raw-bytes"),
        ({"data": "text body"}, b"text body"),
        ({"data": {"a": "1", "b": "2"}}, b"a=1&b=2"),
        ({"json": {"k": [1, 2]}}, b'{"k": [1, 2]}'),
        ({}, None),
    ],
)
def test_401_replays_bytes_str_and_empty_bodies(make_env: Any, kwargs: dict[str, Any], expected: Any) -> None:
    env: Env = make_env()
    bodies: list[Any] = []

    def answer(request: Any, context: Any) -> str:
        body = request.body
        bodies.append(body.encode() if isinstance(body, str) else body)
        context.status_code = 401 if len(bodies) == 1 else 200
        return ""

    env.api.register_uri("POST", BOOKS, text=answer)
    assert env.session.post(BOOKS, **kwargs).status_code == 200
    assert bodies == [expected, expected]
    assert env.bearers() == ["Bearer tok-1", "Bearer tok-2"]


def test_a_401_is_let_go_of_before_its_replay(make_env: Any) -> None:
    # Its body is read (capped) and the response closed before the replay goes: its
    # connection goes back to the pool instead of staying checked out.
    env: Env = make_env()
    env.api.register_uri("GET", BOOKS, [
        {"status_code": 401, "headers": INVALID_TOKEN, "text": "expired"},
        {"json": {"ok": True}},
    ])
    answers: list[requests.Response] = []
    original = env.api.send

    def recording(request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        answers.append(original(request, **kwargs))
        return answers[-1]

    env.api.send = recording  # type: ignore[method-assign]
    assert env.session.get(BOOKS, stream=True).status_code == 200
    assert [a.status_code for a in answers] == [401, 200]
    assert answers[0].raw.closed and not answers[1].raw.closed


@pytest.mark.parametrize(("skip", "expected"), [(0, b"file payload"), (5, b"payload")])
def test_401_with_a_seekable_file_body_rewinds_and_replays(make_env: Any, skip: int, expected: bytes) -> None:
    env: Env = make_env()
    reads: list[bytes] = []

    def answer(request: Any, context: Any) -> str:
        reads.append(request.body.read())
        context.status_code = 401 if len(reads) == 1 else 201
        return ""

    env.api.register_uri("PUT", BOOKS, text=answer)
    body = io.BytesIO(b"file payload")
    body.seek(skip)  # requests sends from the current position; the replay must too
    response = env.session.put(BOOKS, data=body)
    assert response.status_code == 201
    assert reads == [expected, expected]
    assert env.bearers() == ["Bearer tok-1", "Bearer tok-2"]


def test_401_with_an_unseekable_file_body_is_returned(make_env: Any) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.data = b"once"

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            n = len(self.data[: len(buffer)])
            buffer[:n] = self.data[:n]
            self.data = self.data[n:]
            return n

        def tell(self) -> int:
            raise OSError("not seekable")

    env: Env = make_env()
    env.api.register_uri("POST", BOOKS, status_code=401)
    response = env.session.post(BOOKS, data=Pipe())
    assert response.status_code == 401
    assert env.api.call_count == 1
    assert env.manager.token is None


def test_401_for_a_token_already_replaced_does_not_retire_the_new_one(make_env: Any) -> None:
    env: Env = make_env()
    calls: list[str] = []

    def answer(request: Any, context: Any) -> str:
        calls.append(request.headers["Authorization"])
        if len(calls) == 1:
            env.manager.token = OAuthToken(access_token="newer", expiry=env.clock.time() + 3600)
            context.status_code = 401
        return ""

    env.api.register_uri("GET", BOOKS, text=answer)
    assert env.session.get(BOOKS).status_code == 200
    assert calls == ["Bearer tok-1", "Bearer newer"]
    assert env.issuer.count == 1  # "newer" was current: not retired, no fetch
    assert env.manager.token is not None and env.manager.token.access_token == "newer"


# -- mount() on an existing session ----------------------------------------------------------


def test_mount_keeps_the_previous_adapter_as_inner_transport(clock: FakeClock) -> None:
    api, auth = requests_mock.Adapter(), requests_mock.Adapter()
    auth.register_uri("POST", requests_mock.ANY, text=TokenIssuer())
    api.register_uri("GET", requests_mock.ANY, text="ok")
    session = requests.Session()
    session.mount("https://api.example.com/", api)
    adapter = reqcc.mount(session, "https://api.example.com/", **manager_kwargs(clock, auth))
    assert isinstance(adapter, ClientCredentialsAdapter)
    assert adapter.inner is api
    assert session.get_adapter(BOOKS) is adapter
    session.get(BOOKS)
    assert [r.headers["Authorization"] for r in api.request_history] == ["Bearer tok-1"]


def test_mount_keeps_an_http_adapters_settings(clock: FakeClock) -> None:
    session = requests.Session()
    tuned = HTTPAdapter(max_retries=5, pool_connections=3, pool_maxsize=7)
    session.mount("https://", tuned)
    adapter = reqcc.mount(
        session, "https://api.example.com", **manager_kwargs(clock, requests_mock.Adapter())
    )
    assert adapter.inner is tuned
    assert isinstance(adapter.inner, HTTPAdapter) and adapter.inner.max_retries.total == 5
    assert session.get_adapter("https://api.example.com/x") is adapter
    assert session.get_adapter("https://api.example.com.evil.example/") is tuned  # a path was added


def test_mount_with_a_shared_manager(clock: FakeClock) -> None:
    auth = requests_mock.Adapter()
    issuer = TokenIssuer()
    auth.register_uri("POST", TOKEN_URL, text=issuer)
    manager = ClientCredentialsManager(**manager_kwargs(clock, auth))
    apis, sessions = [], []
    for _ in range(2):  # two plain sessions, each with its own transport, one manager
        api = requests_mock.Adapter()
        api.register_uri("GET", requests_mock.ANY, text="ok")
        session = requests.Session()
        session.mount("https://", api)
        adapter = reqcc.mount(session, API, manager=manager)
        assert adapter.manager is manager and adapter.inner is api
        assert session.get_adapter(BOOKS) is adapter
        apis.append(api)
        sessions.append(session)
    for session in sessions:
        assert session.get(BOOKS).text == "ok"
    assert issuer.count == 1  # the manager's one token serves both sessions
    assert [r.headers["Authorization"] for api in apis for r in api.request_history] == ["Bearer tok-1"] * 2


def test_session_properties(make_env: Any) -> None:
    env: Env = make_env()
    assert isinstance(env.session, requests.Session)
    assert isinstance(env.session, ClientCredentialsSession)
    assert env.session.manager is env.session.token_adapter.manager
    assert env.session.get_adapter(BOOKS) is env.session.token_adapter
    assert env.session.token_adapter.inner is env.api


@pytest.mark.parametrize("auth_method", ["client_secret_post", "client_secret_basic"])
def test_one_session_for_api_and_token_calls_does_not_recurse(clock: FakeClock, auth_method: str) -> None:
    """token_session= the very session reqcc is mounted on, with token_url under the prefix."""
    transport = requests_mock.Adapter()
    transport.register_uri("POST", f"{API}oauth/token", text=TokenIssuer())
    transport.register_uri("GET", requests_mock.ANY, text="ok")
    session = requests.Session()
    session.mount("https://", transport)
    kwargs = manager_kwargs(clock, transport, token_url=f"{API}oauth/token", token_session=session)
    reqcc.mount(session, API, auth_method=auth_method, **kwargs)
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(session.get(BOOKS).status_code), daemon=True)
    worker.start()
    worker.join(10)  # a hang guard, not a timing assertion: the bug was a self-deadlock
    assert not worker.is_alive()
    assert outcome == [200]
    token_request, api_request = transport.request_history
    assert token_request.method == "POST"
    assert not token_request.headers.get("Authorization", "").startswith("Bearer")
    assert api_request.headers["Authorization"] == "Bearer tok-1"


def test_send_options_reach_the_inner_transport(make_env: Any) -> None:
    env: Env = make_env()
    env.session.get(BOOKS, timeout=(1, 2), verify=False, cert="/c.pem", stream=True, proxies={"https": "p:1"})
    sent = env.api.request_history[0]
    assert sent.timeout == (1, 2)
    assert sent.verify is False
    assert sent.cert == "/c.pem"
    assert sent.stream is True
    assert sent.proxies == {"https": "p:1"}


def test_netrc_credentials_do_not_displace_the_bearer_token(make_env: Any, netrc_login: None) -> None:
    # requests adds Basic auth from ~/.netrc to requests without auth; the adapter would take
    # that for the caller's explicit header and send no token.
    env: Env = make_env()
    env.session.get(BOOKS)
    assert env.bearers() == ["Bearer tok-1"]
    # outside the token prefix, requests' .netrc behaviour is untouched
    env.api.register_uri("GET", "https://other.example.com/x", text="ok")
    env.session.mount("https://other.example.com/", env.api)
    env.session.get("https://other.example.com/x")
    assert env.api.request_history[-1].headers["Authorization"].startswith("Basic ")


# -- black box: nothing an exception or a response reaches holds the token (item 31) ----------


def _hostile_session(token_type: str, live: str, url: str) -> requests.Session:
    from reqcc import ClientCredentialsManager, OAuthToken

    manager = ClientCredentialsManager(
        token_url="https://auth.example.com/t", client_id="c", client_secret="s",
        token=OAuthToken(live, token_type=token_type, expires_in=3600), dpop=token_type == "DPoP",
    )
    session = requests.Session()
    session.trust_env = False
    reqcc.mount(session, url + "/", manager=manager)
    return session


@pytest.mark.parametrize("token_type", ["Bearer", "DPoP"])
@pytest.mark.parametrize(
    "case", ["stream-reset-mid-body", "reset-mid-body", "redirect-then-stall", "redirect-then-reset",
             "hook-raises", "nonce-replay-reset"],
)
def test_no_exception_or_response_of_a_failing_exchange_reaches_the_token(
    serve: Any, token_type: str, case: str
) -> None:
    from .hostile_server import Reply

    live = f"live-{token_type}-token-QWERTY123"
    half_body = Reply(status=200, body=b"x" * 1000, framing="declared", declared_length=100_000, reset=True)
    replies = {
        "stream-reset-mid-body": [half_body],
        "reset-mid-body": [half_body],
        "redirect-then-stall": [Reply(status=302, headers={"Location": "/next"}), Reply(stall=True)],
        "redirect-then-reset": [Reply(status=302, headers={"Location": "/next"}), Reply(reset_at_once=True)],
        "hook-raises": [Reply(status=500, body=b"{}")],
        "nonce-replay-reset": [
            Reply(
                status=401,
                headers={"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "n-1"},
            ),
            Reply(reset_at_once=True),
        ],
    }[case]
    if case == "nonce-replay-reset" and token_type == "Bearer":
        pytest.skip("a DPoP nonce is asked of DPoP clients only")
    server = serve(*replies, lifetime=10)
    session = _hostile_session(token_type, live, server.url)
    hooks = {"response": [lambda r, *a, **k: r.raise_for_status()]} if case == "hook-raises" else None
    caught: BaseException | None = None
    response = None
    try:
        response = session.get(server.url + "/orders", timeout=(2, 0.5), stream=case.startswith("stream"),
                               hooks=hooks)
        for _ in response.iter_content(4096):
            pass
    except (requests.RequestException, OSError) as exc:
        caught = exc
    assert caught is not None, "the exchange was meant to fail"
    sent = [headers.get("authorization", "") for _, _, headers, _ in server.requests]
    assert any(live in header for header in sent)  # it did go out
    shown = reachable_text(caught, response)
    assert live not in shown
    if token_type == "DPoP":
        proofs = [headers["dpop"] for _, _, headers, _ in server.requests if "dpop" in headers]
        assert proofs and not any(proof in shown for proof in proofs)
