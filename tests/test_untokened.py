"""Never silent: a session without ``base_url`` attaches tokens to loopback http, and says
(a WARNING, once per origin) when any other plain-http request goes out without one."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import requests
import requests_mock

from reqcc import ClientCredentialsSession, _untokened
from reqcc.testing import LocalAuthorizationServer

from .conftest import CLIENT_SECRET, Env

LOOPBACK_URLS = [
    "http://127.0.0.1:8080/books",
    "http://localhost/books",
    "http://LOCALHOST:5000/books?x=1",
    "http://[::1]:9000/books",
]


def _env(make_env: Any) -> tuple[Env, requests_mock.Adapter]:
    env: Env = make_env(base_url=None)
    plain_http = requests_mock.Adapter()
    plain_http.register_uri(requests_mock.ANY, requests_mock.ANY, text="ok")
    notice = env.session.get_adapter("http://example.com/")
    assert isinstance(notice, _untokened.UntokenedNotice)
    notice.inner = plain_http  # what the session's default http adapter would have sent
    return env, plain_http


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "reqcc" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("url", LOOPBACK_URLS)
def test_loopback_http_gets_the_token_without_base_url(
    make_env: Any, caplog: pytest.LogCaptureFixture, url: str
) -> None:
    env, plain_http = _env(make_env)
    assert env.session.get(url).status_code == 200
    assert env.bearers() == ["Bearer tok-1"]
    assert plain_http.call_count == 0
    assert _warnings(caplog) == []


@pytest.mark.parametrize("url", ["http://localhost.example/books", "http://127.0.0.1.nip.io/books"])
def test_a_host_that_only_starts_like_loopback_gets_no_token(
    make_env: Any, caplog: pytest.LogCaptureFixture, url: str
) -> None:
    env, plain_http = _env(make_env)
    env.session.get(url)
    assert env.api.call_count == 0 and env.auth.call_count == 0
    assert "Authorization" not in plain_http.request_history[0].headers
    assert len(_warnings(caplog)) == 1


def test_plain_http_elsewhere_warns_once_per_origin_and_says_what_to_do(
    make_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    env, plain_http = _env(make_env)
    caplog.set_level(logging.DEBUG, logger="reqcc")
    for url in [
        "http://example.com/a?api_key=query-value",
        "http://example.com/b",
        "http://EXAMPLE.com:80/c",
        "http://example.com:8080/d",
        "http://127.0.0.2:8080/e",
        "http://127.0.0.2:8080/f",
    ]:
        env.session.get(url)
    assert [r.headers.get("Authorization") for r in plain_http.request_history] == [None] * 6
    assert env.auth.call_count == 0  # no token was fetched for them either
    warnings = _warnings(caplog)
    assert len(warnings) == 3
    assert warnings[0].startswith("requests to http://example.com:80 go out without a bearer token: "
                                  "with no base_url, a ClientCredentialsSession attaches tokens to https")
    assert "use https:// for this API" in warnings[0]
    assert warnings[1].startswith("requests to http://example.com:8080 go out")
    assert warnings[2].startswith("requests to http://127.0.0.2:8080 go out")
    assert warnings[2].endswith("pass base_url='http://127.0.0.2:8080/' to attach tokens to its requests")
    assert "query-value" not in caplog.text and "/a" not in caplog.text
    assert CLIENT_SECRET not in caplog.text


def test_no_warning_when_the_caller_chose_the_authorization_header(
    make_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    env, plain_http = _env(make_env)
    env.session.get("http://example.com/", headers={"Authorization": "Basic abc"})
    assert plain_http.request_history[0].headers["Authorization"] == "Basic abc"
    assert _warnings(caplog) == []


def test_a_redirect_hop_stripped_on_purpose_does_not_warn(
    make_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    env, plain_http = _env(make_env)
    env.api.register_uri("GET", "https://api.example.com/go", status_code=302,
                         headers={"Location": "http://example.com/landing"})
    env.session.get("https://api.example.com/go")
    assert plain_http.request_history[0].headers.get("Authorization") is None
    assert _warnings(caplog) == []


def test_the_remembered_origins_are_bounded(
    make_env: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_untokened, "MAX_ORIGINS", 2)
    env, _ = _env(make_env)
    for port in range(8000, 8005):
        env.session.get(f"http://example.com:{port}/")
    assert len(_warnings(caplog)) == 2
    assert len(env.session.get_adapter("http://example.com/")._warned) == 2  # type: ignore[attr-defined]


def test_with_base_url_the_choice_is_the_users(make_env: Any, caplog: pytest.LogCaptureFixture) -> None:
    env: Env = make_env()  # base_url=API
    assert type(env.session.get_adapter("http://example.com/")) is requests.adapters.HTTPAdapter
    assert env.session.get_adapter("http://127.0.0.1/") is not env.session.token_adapter


def test_netrc_does_not_displace_the_token_on_loopback(make_env: Any, netrc_login: None) -> None:
    env, _ = _env(make_env)
    env.session.get("http://127.0.0.1:8080/books")
    assert env.bearers() == ["Bearer tok-1"]


def test_the_local_server_works_without_base_url(reqcc_server: LocalAuthorizationServer) -> None:
    # The newcomer's first program: no base_url, the API on http://127.0.0.1.
    credentials = reqcc_server.credentials()
    del credentials["base_url"]
    with ClientCredentialsSession(**credentials) as session:
        assert session.get(reqcc_server.api_url + "books", timeout=10).status_code == 200
    assert reqcc_server.token_requests == 1
