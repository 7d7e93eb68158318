"""Item 13: no secret or token in any repr, exception message or log record (DEBUG, every logger).

Each scenario runs with the root logger capturing at DEBUG, collects the reprs of every object
involved and the message (and repr, and cause) of every exception raised, then searches all of
it for the client secret (raw and form-encoded), the Base64 Basic credential, the access tokens
and the refresh token.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import requests
import requests_mock

from reqcc import (
    ClientCredentialsManager,
    ClientCredentialsSession,
    ConfigurationError,
    InsecureTransportError,
    OAuthToken,
    ReqccError,
    TokenProviderError,
)

from .conftest import CLIENT_ID, TOKEN_URL, Env, FakeClock, TokenIssuer

BOOKS = "https://api.example.com/books"
SECRET = "Zq9:k%p+w x/é-s3cr3t"  # every character class §2.3.1 encodes
TOKEN_PREFIX = "AT-9f2c41e7d05b-"  # issued access tokens: AT-9f2c41e7d05b-1, -2, …
REFRESH = "RT-51c0ffee77aa"
BASIC = base64.b64encode(f"{quote_plus(CLIENT_ID)}:{quote_plus(SECRET)}".encode()).decode()


class Leaks:
    """Collects everything a user or a log file could see, and finds secrets in it."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.texts: list[str] = []
        self.errors: list[BaseException] = []

    def see(self, *objects: object) -> None:
        for obj in objects:
            self.texts.append(repr(obj))
            self.texts.append(str(obj))

    def raised(
        self, action: Callable[[], object], expected: type[BaseException], match: str | None = None
    ) -> BaseException:
        with pytest.raises(expected, match=match) as info:
            action()
        exc: BaseException | None = info.value
        self.errors.append(info.value)
        while exc is not None:  # the chain a traceback would print
            self.see(exc, *exc.args, getattr(exc, "description", None), getattr(exc, "error", None))
            exc = exc.__cause__ or exc.__context__
        return info.value

    def secrets(self, tokens: Sequence[str]) -> list[str]:
        return [
            SECRET,
            quote_plus(SECRET, safe=""),
            quote(SECRET, safe=""),
            BASIC,
            REFRESH,
            TOKEN_PREFIX,
            *tokens,
        ]

    def check(self, tokens: Sequence[str] = ()) -> None:
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        logged = [formatter.format(record) for record in self.caplog.records]
        assert self.caplog.handler.level <= logging.DEBUG, "capture is not at DEBUG"
        assert logging.getLogger("reqcc").isEnabledFor(logging.DEBUG), "reqcc's DEBUG records are dropped"
        for text in self.texts + logged:
            for secret in self.secrets(list(tokens)):
                assert secret not in text, f"{secret[:4]}… leaked in: {text[:300]}"


@pytest.fixture
def leaks(caplog: pytest.LogCaptureFixture) -> Leaks:
    caplog.set_level(logging.DEBUG)  # the root logger: every library's records
    return Leaks(caplog)


def env_with_secret(make_env: Any, **kwargs: Any) -> Env:
    kwargs.setdefault("issuer", TokenIssuer(prefix=TOKEN_PREFIX, extra={"refresh_token": REFRESH}))
    env: Env = make_env(client_secret=SECRET, **kwargs)
    return env


def echo(
    env: Env, status: int, make_body: Callable[[str, str], str], content_type: str = "text/html"
) -> None:
    """Make the token endpoint answer ``status`` with a body built from the request's header and body."""

    def answer(request: Any, context: Any) -> str:
        context.status_code = status
        context.headers["Content-Type"] = content_type
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        return make_body(request.headers.get("Authorization", ""), body)

    env.auth.register_uri("POST", TOKEN_URL, text=answer)


def test_the_search_would_find_a_leak(leaks: Leaks) -> None:
    """The checker itself can fail."""
    logging.getLogger("reqcc").debug("hello")
    leaks.see(f"header Basic {BASIC}")
    with pytest.raises(AssertionError, match="leaked"):
        leaks.check()


def test_successful_flows(make_env: Any, leaks: Leaks, clock: FakeClock) -> None:
    updates: list[OAuthToken] = []

    def on_update(token: OAuthToken) -> None:
        updates.append(token)
        if len(updates) == 2:
            raise RuntimeError("storage failed")

    env = env_with_secret(make_env, scopes=["books.read", "orders.read"], on_token_update=on_update)
    env.issuer.extra["scope"] = "books.read"  # narrowed: logged at INFO
    env.session.get(BOOKS)
    env.api.register_uri("GET", BOOKS, [{"status_code": 401}, {"status_code": 200, "text": "ok"}])
    env.session.get(BOOKS)  # 401, retire, refetch, replay
    clock.advance(3600)
    env.session.post(BOOKS, data=iter([b"x"]))  # expired: refetch; 401 not replayed
    env.manager.token = {"access_token": f"{TOKEN_PREFIX}by-hand", "refresh_token": REFRESH}
    env.session.get(BOOKS)
    leaks.see(env.session, env.manager, env.session.token_adapter, env.manager._endpoint)
    leaks.see(env.manager._endpoint.client_auth, env.manager.token, *updates)
    leaks.check([t.access_token for t in updates])
    assert env.issuer.count == 3


def test_client_secret_post_flow(make_env: Any, leaks: Leaks) -> None:
    env = env_with_secret(make_env, auth_method="client_secret_post")
    env.session.get(BOOKS)
    leaks.see(env.session, env.manager, env.manager._endpoint.client_auth)
    leaks.check()


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
@pytest.mark.parametrize(
    ("status", "content_type", "make_body"),
    [
        pytest.param(
            401,
            "application/json",
            lambda header, body: json.dumps(
                {"error": "invalid_client", "error_description": f"rejected {header} {body} {SECRET}"}
            ),
            id="oauth-error-echoing-credentials",
        ),
        pytest.param(400, "text/html", lambda header, body: f"<pre>{header}\n{body}</pre>", id="html-echo"),
        pytest.param(
            503, "text/plain", lambda header, body: f"overloaded; got {header} {body}", id="retried-echo"
        ),
        pytest.param(
            200,
            "application/json",
            lambda header, body: json.dumps(
                {"access_token": f"{TOKEN_PREFIX}mac", "token_type": "mac", "refresh_token": REFRESH}
            ),
            id="mac-token",
        ),
        pytest.param(
            200,
            "application/json",
            lambda header, body: json.dumps(
                {"access_token": f"{TOKEN_PREFIX}soon", "expires_in": "soon", "refresh_token": REFRESH}
            ),
            id="expires-in-soon",
        ),
        pytest.param(
            200,
            "application/x-www-form-urlencoded",
            lambda header, body: f"access_token={TOKEN_PREFIX}form&token_type=bearer&refresh_token={REFRESH}",
            id="form-encoded-token",
        ),
        pytest.param(
            200,
            "application/json",
            lambda header, body: json.dumps([{"access_token": f"{TOKEN_PREFIX}array"}]),
            id="json-array",
        ),
    ],
)
def test_token_endpoint_failures(
    make_env: Any, leaks: Leaks, auth_method: str, status: int, content_type: str, make_body: Any
) -> None:
    env = env_with_secret(make_env, auth_method=auth_method, max_retries=2)
    echo(env, status, make_body, content_type)
    first = leaks.raised(lambda: env.session.get(BOOKS), ReqccError)
    leaks.raised(lambda: env.session.get(BOOKS), type(first))  # the repeat during the backoff
    leaks.raised(lambda: env.manager.fetch_token(), type(first))
    leaks.see(env.session, env.manager)
    leaks.check()
    assert env.api.call_count == 0


def test_provider_failures(make_env: Any, leaks: Leaks, clock: FakeClock) -> None:
    results: list[Any] = [
        {"access_token": f"{TOKEN_PREFIX}p", "token_type": "mac"},
        OAuthToken(access_token=f"{TOKEN_PREFIX}old", expiry=clock() - 100, refresh_token=REFRESH),
        f"{TOKEN_PREFIX}bare-string",
        {"access_token": f"{TOKEN_PREFIX}p", "expires_in": "soon"},
    ]

    def provider(last: OAuthToken | None, manager: ClientCredentialsManager) -> Any:
        return results.pop(0)

    env = env_with_secret(make_env, token_provider=provider, failure_backoff=0, probe_interval=0)
    for problem in ("not Bearer", "expired", "must be an OAuthToken or a dict", "expires_in"):
        leaks.raised(lambda: env.session.get(BOOKS), TokenProviderError, problem)
    leaks.check()


def test_configuration_errors(leaks: Leaks) -> None:
    base = {"client_id": CLIENT_ID, "client_secret": SECRET}
    # The raw secret's "/" ends the URL's authority: refused as plain http to "id".
    leaks.raised(
        lambda: ClientCredentialsManager(token_url=f"http://id:{SECRET}@auth.example.com/t", **base),
        InsecureTransportError,
        "token_url must use https",
    )
    leaks.raised(
        lambda: ClientCredentialsManager(
            token_url=f"https://id:{quote(SECRET, safe='')}@auth.example.com/t", **base
        ),
        ConfigurationError,
        "token_url must not carry credentials",
    )
    leaks.raised(
        lambda: ClientCredentialsSession(
            token_url=TOKEN_URL, base_url=f"http://u:{SECRET}@api.example.com/", **base
        ),
        InsecureTransportError,
        "base_url must use https",
    )
    leaks.raised(
        lambda: ClientCredentialsManager(token_url=TOKEN_URL, client_id=CLIENT_ID, client_secret=b"x"),
        ConfigurationError,
        "client_secret must be a string",
    )
    leaks.raised(
        lambda: ClientCredentialsManager(token_url=TOKEN_URL, clock_skew=-1, **base),
        ConfigurationError,
        "clock_skew must be >= 0",
    )
    leaks.raised(
        lambda: ClientCredentialsManager(
            token_url=TOKEN_URL, token={"access_token": f"{TOKEN_PREFIX}x", "token_type": "mac"}, **base
        ),
        ConfigurationError,
        "token is not a usable token",
    )
    logging.getLogger("reqcc").debug("configuration checks done")
    leaks.check()


def test_insecure_request_error(leaks: Leaks, clock: FakeClock) -> None:
    auth = requests_mock.Adapter()
    auth.register_uri("POST", TOKEN_URL, text=TokenIssuer(prefix=TOKEN_PREFIX))
    token_session = requests.Session()
    token_session.mount("https://", auth)
    api = requests_mock.Adapter()
    api.register_uri("GET", requests_mock.ANY, text="ok")
    session = ClientCredentialsSession(
        token_url=TOKEN_URL,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        clock=clock,
        monotonic=clock,
        token_session=token_session,
        adapter=api,
    )
    session.mount("http://", session.token_adapter)
    session.get("https://api.example.com/")  # a token is current
    # The raw secret (with its space) is an invalid URL to requests itself (an encoded one
    # would make requests send Basic credentials, which reqcc leaves alone).
    leaks.raised(
        lambda: session.get(f"http://x:{SECRET}@api.example.com/?access_token=abc"),
        requests.exceptions.InvalidURL,
    )
    leaks.raised(
        lambda: session.get("http://api.example.com/books?access_token=abc"), InsecureTransportError
    )
    leaks.see(session)
    leaks.check([session.manager.token.access_token])  # type: ignore[union-attr]


def test_real_http_stack_logs(leaks: Leaks) -> None:
    """urllib3 and requests log at DEBUG on a real connection (127.0.0.1 only)."""
    from .token_server import TokenServer

    with TokenServer() as server:
        session = ClientCredentialsSession(
            token_url=server.token_url, client_id=CLIENT_ID, client_secret=SECRET, base_url=server.base_url
        )
        with session:
            assert session.get(server.api_url + "books").status_code == 200
            server.revoke_all()
            assert session.get(server.api_url + "books").status_code == 200  # 401, refetch, replay
            tokens = sorted(server.valid_tokens)
            leaks.see(session, session.manager)
    assert len(tokens) == 1 and server.token_requests == 2
    assert any(r.name.startswith("urllib3") for r in leaks.caplog.records)
    leaks.check(["tok-1", "tok-2"])


def test_oauth2session_as_token_session_logs_nothing_secret(make_env: Any, leaks: Leaks) -> None:
    """requests-oauthlib's fetch_token logs headers, body and token at DEBUG; reqcc never calls it."""
    from requests_oauthlib import OAuth2Session

    token_session = OAuth2Session(CLIENT_ID)
    env = env_with_secret(make_env, token_session=token_session)
    token_session.mount("https://", env.auth)
    env.session.get(BOOKS)
    env.manager.fetch_token()
    leaks.see(token_session.token, env.manager)
    leaks.check()
    assert env.issuer.count == 2
