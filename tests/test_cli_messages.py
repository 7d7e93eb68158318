"""The ``reqcc`` command's messages for a wrong secret, scope or token URL (reqcc.cli.messages).

The command shows the library's own message for a token-endpoint failure (it is the one
that names the client, the endpoint and the fix), then the flags to check. Real servers on
127.0.0.1: the pytest plugin's ``reqcc_server`` and, for what it cannot answer, a static one.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import os
import threading
from collections.abc import Iterator

import pytest

from reqcc import ClientCredentialsManager, TokenRequestError, cli
from reqcc.cli.config import manager_config
from reqcc.testing import DEFAULT_CLIENTS, LocalAuthorizationServer

SECRET = DEFAULT_CLIENTS["bookstore-app"].secret
assert SECRET is not None
TOKEN_URL_HINT = "check --token-url / REQCC_TOKEN_URL"


def env_for(server: LocalAuthorizationServer, **overrides: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REQCC_")}
    environment.update(
        REQCC_TOKEN_URL=server.token_url, REQCC_CLIENT_ID="bookstore-app", REQCC_CLIENT_SECRET=SECRET
    )
    environment.update(overrides)
    return environment


@contextlib.contextmanager
def static_server(status: int, content_type: str, body: bytes) -> Iterator[str]:
    """A loopback HTTP server answering every GET and POST with ``status`` and ``body``; yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
        assert not thread.is_alive()


# -- messages for the common mistakes ------------------------------------------------------


def library_message(environ: dict[str, str], *args: str) -> str:
    """What the library says when the manager the CLI builds for ``reqcc token ARGS`` fetches."""
    parsed = cli.build_parser().parse_args(["token", *args])
    parsed.secrets_seen = []
    manager = ClientCredentialsManager(**manager_config(parsed, environ, io.StringIO()))
    try:
        with pytest.raises(TokenRequestError) as raised:
            manager.fetch_token()
    finally:
        manager.close()
    return f"{type(raised.value).__name__}: {raised.value}"


def cli_error(environ: dict[str, str], *args: str) -> tuple[int, str]:
    err = io.StringIO()
    code = cli.main(["token", *args], environ=environ, stdin=io.StringIO(), stdout=io.StringIO(), stderr=err)
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reqcc: "), err.getvalue()
    return code, lines[0].removeprefix("reqcc: ")


def test_a_wrong_secret_shows_the_library_message_and_the_flags(
    reqcc_server: LocalAuthorizationServer,
) -> None:
    env = env_for(reqcc_server, REQCC_CLIENT_SECRET="not-the-secret")
    code, line = cli_error(env)
    assert code == cli.EXIT_OAUTH
    assert line.startswith(library_message(env))  # the library's words, not a generic line
    assert "invalid_client" in line and "401" in line
    assert (
        "--client-id / REQCC_CLIENT_ID" in line and "REQCC_CLIENT_SECRET" in line and "--auth-method" in line
    )
    assert "not-the-secret" not in line and TOKEN_URL_HINT not in line


def test_a_wrong_scope_points_at_the_scope_flag(reqcc_server: LocalAuthorizationServer) -> None:
    env = env_for(reqcc_server, REQCC_CLIENT_ID="bookstore-reader", REQCC_CLIENT_SECRET="reader-secret")
    code, line = cli_error(env, "--scope", "OrdersWrite")
    assert code == cli.EXIT_OAUTH
    assert line.startswith(library_message(env, "--scope", "OrdersWrite"))
    assert "invalid_scope" in line and "check --scope / REQCC_SCOPES" in line


@pytest.mark.parametrize(
    ("path", "status"),
    [("nope/token", 404), ("books", 405), ("", 405), ("orders", 401)],
    ids=["404", "405-api", "405-root", "401-api"],
)
def test_a_wrong_token_path_says_check_the_token_url(
    reqcc_server: LocalAuthorizationServer, path: str, status: int
) -> None:
    env = env_for(reqcc_server, REQCC_TOKEN_URL=reqcc_server.base_url + path)
    code, line = cli_error(env)
    assert code == cli.EXIT_TOKEN_RESPONSE  # NotATokenEndpoint, whatever the body (item 35)
    assert line.startswith(library_message(env))
    assert line.startswith("NotATokenEndpoint: ") and f"HTTP {status}" in line
    assert TOKEN_URL_HINT in line and "--client-id" not in line
    assert reqcc_server.tokens_issued == 0


@pytest.mark.parametrize("status", [200, 404])
def test_an_html_answer_says_check_the_token_url(reqcc_server: LocalAuthorizationServer, status: int) -> None:
    page = b"<!doctype html>\n<html><body>\n<h1>Sign in</h1>\n</body></html>\n"
    with static_server(status, "text/html; charset=utf-8", page) as site:
        env = env_for(reqcc_server, REQCC_TOKEN_URL=site + "login")
        code, line = cli_error(env)
        expected = library_message(env)
    assert code == cli.EXIT_TOKEN_RESPONSE
    assert line.startswith(" ".join(expected.splitlines()))  # on one line, still the library's words
    assert TOKEN_URL_HINT in line and str(status) in line


def test_a_server_error_adds_no_hint(reqcc_server: LocalAuthorizationServer) -> None:
    reqcc_server.fail_token_requests(status=400)  # a 400 without an OAuth error: nothing to point at
    code, line = cli_error(env_for(reqcc_server))
    assert code == cli.EXIT_TOKEN_RESPONSE and "400" in line
    assert "check --" not in line


def test_a_refused_basic_secret_that_form_encoding_changed_points_at_the_raw_encoding_flag(
    reqcc_server: LocalAuthorizationServer,
) -> None:
    # A server that does not form-decode Basic credentials refuses reqcc's RFC-correct default.
    with static_server(401, "application/json", b'{"error":"invalid_client"}') as site:
        secret = "s3cret+with/odd=chars"
        env = env_for(reqcc_server, REQCC_TOKEN_URL=site + "token", REQCC_CLIENT_SECRET=secret)
        code, line = cli_error(env)
        expected = library_message(env)
    assert code == cli.EXIT_OAUTH
    assert line.startswith(expected) and 'basic_auth_encoding="raw"' in expected
    assert line.endswith("if they are right, try --basic-auth-encoding raw")
    assert "s3cret" not in line


def test_the_basic_auth_encoding_flag_reaches_the_manager(reqcc_server: LocalAuthorizationServer) -> None:
    env = env_for(reqcc_server)
    parsed = cli.build_parser().parse_args(["token", "--basic-auth-encoding", "raw"])
    parsed.secrets_seen = []
    assert manager_config(parsed, env, io.StringIO())["basic_auth_encoding"] == "raw"
    parsed = cli.build_parser().parse_args(["token"])
    parsed.secrets_seen = []
    assert "basic_auth_encoding" not in manager_config(parsed, env, io.StringIO())
    code, line = cli_error(env, "--basic-auth-encoding", "raw", "--auth-method", "client_secret_post")
    assert code == cli.EXIT_CONFIG and "--basic-auth-encoding" in line


def test_each_configuration_hint_is_for_a_keyword_that_exists() -> None:
    # A ConfigurationError starts with the keyword it is about; the flag to check is found
    # by that name, so a name that is no keyword would never show its hint.
    from reqcc.cli.messages import _FLAG_OF_KEYWORD
    from reqcc.config import ManagerKeywords

    others = {"base_url", "encryption_key"}  # the session's, and FileTokenStore's (--cache-key-file)
    assert set(_FLAG_OF_KEYWORD) - others <= set(ManagerKeywords.__annotations__)
