"""The ``reqcc`` command line: exit codes, stderr and output, run as a real subprocess.

The server is the pytest plugin's ``reqcc_server`` (a LocalAuthorizationServer on 127.0.0.1).
A few cases call ``reqcc.cli.main`` in-process where a subprocess adds nothing.
"""

from __future__ import annotations

import io
import json
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from reqcc import cli
from reqcc.testing import DEFAULT_CLIENTS, LocalAuthorizationServer

SECRET = DEFAULT_CLIENTS["bookstore-app"].secret
assert SECRET is not None


def run(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    command: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m reqcc ARGS`` with a clean REQCC_* environment plus ``env``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REQCC_")}
    environment.update(env or {})
    return subprocess.run(
        [*(command or [sys.executable, "-m", "reqcc"]), *args],
        env=environment,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
    )


def call(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``reqcc.cli.main(ARGS)`` in this process (for checks of output, not of the process)."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(args), environ=env or {}, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def server_env(server: LocalAuthorizationServer, client_id: str = "bookstore-app") -> dict[str, str]:
    secret = DEFAULT_CLIENTS[client_id].secret
    env = {"REQCC_TOKEN_URL": server.token_url, "REQCC_CLIENT_ID": client_id}
    if secret is not None:
        env["REQCC_CLIENT_SECRET"] = secret
    return env


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reqcc: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]
    assert SECRET not in result.stderr + result.stdout


# -- help and parsing ----------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["token"], ["request"], ["demo"]])
def test_help_on_every_command_documents_exit_codes(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0
    assert "exit codes:" in result.stdout
    for code in (cli.EXIT_CONFIG, cli.EXIT_OAUTH, cli.EXIT_NETWORK):
        assert f"  {code}  " in result.stdout


def test_top_level_help_points_at_the_local_server() -> None:
    text = run("--help").stdout
    assert "reqcc demo --serve" in text and "127.0.0.1" in text


def test_token_help_offers_no_secret_flag() -> None:
    text = run("token", "--help").stdout
    assert "--client-secret-file" in text and "REQCC_CLIENT_SECRET" in text
    assert "--client-secret " not in text and "--client-secret\n" not in text


@pytest.mark.parametrize(
    "args",
    [
        ["token", "--form", "json"],  # a prefix of --format
        ["token", "--token-u", "http://127.0.0.1:1/token"],  # a prefix of --token-url
        ["tok"],
        ["request"],  # URL missing
        ["request", "http://127.0.0.1:1/", "-d", "a", "--json", "{}"],  # exclusive
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == cli.EXIT_USAGE
    assert "Traceback" not in result.stderr


def test_client_secret_flag_is_refused_without_echoing_it() -> None:
    for args in (["--client-secret", "hunter2-value"], ["--client-secret=hunter2-value"]):
        result = run("token", "--token-url", "http://127.0.0.1:1/token", "--client-id", "x", *args)
        assert result.returncode == cli.EXIT_USAGE
        assert "REQCC_CLIENT_SECRET" in result.stderr and "--client-secret-file" in result.stderr
        assert "hunter2-value" not in result.stderr


# -- reqcc token ---------------------------------------------------------------------------


def test_token_json_and_scopes_from_enum_names_and_raw(reqcc_server: LocalAuthorizationServer) -> None:
    result = run(
        "token",
        "--scope",
        "BooksRead",
        "--scope",
        "orders.read",
        "--token-param",
        "audience=urn:bookstore",
        env=server_env(reqcc_server),
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["token_type"] == "Bearer" and document["expires_in"] == 3600
    assert document["scope"] == "books.read orders.read"
    assert reqcc_server.is_active(document["access_token"])
    record = reqcc_server.last_token_request
    assert record is not None
    assert record.field("scope") == "books.read orders.read"
    assert record.field("audience") == "urn:bookstore"
    assert record.auth_method == "client_secret_basic"
    assert result.stderr == ""


def test_token_formats(reqcc_server: LocalAuthorizationServer) -> None:
    header = call("token", "--format", "header", env=server_env(reqcc_server))
    assert header.returncode == 0
    name, _, value = header.stdout.strip().partition(": ")
    assert name == "Authorization" and value.startswith("Bearer ")
    assert reqcc_server.is_active(value.removeprefix("Bearer "))
    bare = call("token", "--format", "access-token", env=server_env(reqcc_server))
    assert bare.returncode == 0 and reqcc_server.is_active(bare.stdout.strip())


def test_scopes_from_the_environment(reqcc_server: LocalAuthorizationServer) -> None:
    env = {**server_env(reqcc_server), "REQCC_SCOPES": "BooksRead,orders.write"}
    result = call("token", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["scope"] == "books.read orders.write"


def test_flags_override_the_environment(reqcc_server: LocalAuthorizationServer, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("reader-secret\n")
    env = {**server_env(reqcc_server), "REQCC_CLIENT_ID": "nobody", "REQCC_TOKEN_URL": "http://127.0.0.1:1/x"}
    result = call(
        "token",
        "--token-url",
        reqcc_server.token_url,
        "--client-id",
        "bookstore-reader",
        "--client-secret-file",
        str(secret_file),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["scope"] == "books.read orders.read"


def test_secret_from_stdin_and_post_and_public_methods(reqcc_server: LocalAuthorizationServer) -> None:
    env = {"REQCC_TOKEN_URL": reqcc_server.token_url, "REQCC_CLIENT_ID": "bookstore-app"}
    post = call(
        "token", "--client-secret-file", "-", "--auth-method", "client_secret_post", env=env, stdin=SECRET
    )
    assert post.returncode == 0, post.stderr
    public_env = {"REQCC_TOKEN_URL": reqcc_server.token_url, "REQCC_CLIENT_ID": "bookstore-public"}
    public = call("token", "--auth-method", "none", env=public_env)
    assert public.returncode == 0, public.stderr
    methods = [r.auth_method for r in reqcc_server.token_request_log]
    assert methods == ["client_secret_post", "none"]


def test_missing_configuration_names_the_flag(tmp_path: Path) -> None:
    assert_one_line_error(run("token"), cli.EXIT_CONFIG, "--token-url", "REQCC_TOKEN_URL")
    assert_one_line_error(
        run("token", "--token-url", "http://127.0.0.1:1/token"), cli.EXIT_CONFIG, "--client-id"
    )
    # No secret anywhere and no terminal to prompt on.
    assert_one_line_error(
        run("token", "--token-url", "http://127.0.0.1:1/token", "--client-id", "x"),
        cli.EXIT_CONFIG,
        "REQCC_CLIENT_SECRET",
        "--client-secret-file",
    )
    assert_one_line_error(
        run(
            "token",
            "--token-url",
            "http://127.0.0.1:1/token",
            "--client-id",
            "x",
            "--client-secret-file",
            str(tmp_path / "absent"),
        ),
        cli.EXIT_CONFIG,
        "--client-secret-file",
    )
    insecure = run(
        "token",
        "--token-url",
        "http://example.com/token",
        "--client-id",
        "x",
        env={"REQCC_CLIENT_SECRET": SECRET},
    )
    assert_one_line_error(insecure, cli.EXIT_CONFIG, "https", "--token-url")
    bad_param = run(
        "token",
        "--token-param",
        "novalue",
        env={
            "REQCC_TOKEN_URL": "http://127.0.0.1:1/t",
            "REQCC_CLIENT_ID": "x",
            "REQCC_CLIENT_SECRET": SECRET,
        },
    )
    assert_one_line_error(bad_param, cli.EXIT_CONFIG, "--token-param")


def test_oauth_error_exit_code_and_one_line(reqcc_server: LocalAuthorizationServer) -> None:
    wrong = run("token", env={**server_env(reqcc_server), "REQCC_CLIENT_SECRET": "not-the-secret"})
    assert_one_line_error(wrong, cli.EXIT_OAUTH, "InvalidClient", "invalid_client", "401")
    assert "not-the-secret" not in wrong.stderr
    scope = run("token", "--scope", "OrdersWrite", env=server_env(reqcc_server, "bookstore-reader"))
    assert_one_line_error(scope, cli.EXIT_OAUTH, "invalid_scope")


def test_unusable_token_response_exit_code(reqcc_server: LocalAuthorizationServer) -> None:
    reqcc_server.fail_token_requests(status=400)  # a 400 without an OAuth error body (not retried)
    result = run("token", env=server_env(reqcc_server))
    assert_one_line_error(result, cli.EXIT_TOKEN_RESPONSE, "TokenResponseError", "400")


def test_network_error_exit_code() -> None:
    with socket.socket() as refusing:  # bound, not listening (and held: no other test takes it)
        refusing.bind(("127.0.0.1", 0))
        token_url = f"http://127.0.0.1:{refusing.getsockname()[1]}/token"
        result = run(
            "token",
            env={"REQCC_TOKEN_URL": token_url, "REQCC_CLIENT_ID": "x", "REQCC_CLIENT_SECRET": SECRET},
        )
    assert_one_line_error(result, cli.EXIT_NETWORK, "network error", token_url.rsplit("/", 1)[0])


def test_untrusted_certificate_is_a_one_line_tls_error() -> None:
    trustme = pytest.importorskip("trustme")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("localhost").configure_cert(context)  # a CA nobody trusts
    with LocalAuthorizationServer(ssl_context=context, host="localhost") as server:
        result = call("token", env=server_env(server))
        assert server.token_requests == 0  # refused before a byte of the request was sent
    host = f"https://localhost:{server.port}"
    assert_one_line_error(result, cli.EXIT_NETWORK, f"network error talking to {host}: TLS error")
    assert "certificate verify failed" in result.stderr and SECRET not in result.stderr


def test_token_endpoint_that_never_answers_is_a_one_line_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=8) as silent:  # connects, never answers
        port = silent.getsockname()[1]
        result = call(
            "token", "--timeout", "0.05",
            env={"REQCC_TOKEN_URL": f"http://127.0.0.1:{port}/token", "REQCC_CLIENT_ID": "x",
                 "REQCC_CLIENT_SECRET": SECRET},
        )
    assert_one_line_error(
        result, cli.EXIT_NETWORK, f"network error talking to http://127.0.0.1:{port}: timed out"
    )
    assert SECRET not in result.stderr


def test_debug_shows_the_traceback_but_no_secret(reqcc_server: LocalAuthorizationServer) -> None:
    result = run(
        "--debug", "token", env={**server_env(reqcc_server), "REQCC_CLIENT_SECRET": "wrong-secret-x"}
    )
    assert result.returncode == cli.EXIT_OAUTH
    assert "Traceback" in result.stderr and "reqcc: DEBUG" in result.stderr
    assert "wrong-secret-x" not in result.stderr
    sub = run("token", "--debug", env={**server_env(reqcc_server), "REQCC_CLIENT_SECRET": "wrong-secret-x"})
    assert sub.returncode == cli.EXIT_OAUTH and "Traceback" in sub.stderr


# -- reqcc request -------------------------------------------------------------------------


def test_request_prints_the_body(reqcc_server: LocalAuthorizationServer) -> None:
    result = run(
        "request", reqcc_server.api_url + "books", "--scope", "BooksRead", env=server_env(reqcc_server)
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["books"][0]["id"] == 1
    assert reqcc_server.token_requests == 1 and reqcc_server.api_requests == 1


def test_request_include_and_http_error_exit_code(reqcc_server: LocalAuthorizationServer) -> None:
    result = run(
        "request", "-i", reqcc_server.api_url + "orders", "--scope", "BooksRead", env=server_env(reqcc_server)
    )
    assert_one_line_error(result, cli.EXIT_HTTP, "HTTP 403")
    head, _, body = result.stdout.partition("\n\n")
    assert head.splitlines()[0] == "HTTP/1.1 403 Forbidden"
    assert 'error="insufficient_scope"' in head
    assert json.loads(body)["error"] == "insufficient_scope"  # the body is still printed


def test_request_json_data_headers_and_method(reqcc_server: LocalAuthorizationServer) -> None:
    env = server_env(reqcc_server)
    created = call(
        "request",
        "--json",
        '{"book_id": 3}',
        reqcc_server.api_url + "orders",
        "--scope",
        "OrdersWrite",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["order"] == {"book_id": 3, "id": 1}
    form = call(
        "request",
        "-X",
        "post",
        "-d",
        '{"book_id": 1}',
        "-H",
        "Content-Type: application/json",
        reqcc_server.api_url + "orders",
        "--scope",
        "OrdersWrite",
        env=env,
    )
    assert form.returncode == 0, form.stderr
    assert reqcc_server.orders == [{"book_id": 3, "id": 1}, {"book_id": 1, "id": 2}]
    wrong_method = run("request", "-X", "DELETE", reqcc_server.api_url + "books", env=env)
    assert_one_line_error(wrong_method, cli.EXIT_HTTP, "405")
    bad_json = run("request", "--json", "{nope", reqcc_server.api_url + "orders", env=env)
    assert_one_line_error(bad_json, cli.EXIT_CONFIG, "--json")
    bad_header = run("request", "-H", "NoColon", reqcc_server.api_url + "books", env=env)
    assert_one_line_error(bad_header, cli.EXIT_CONFIG, "-H")


def test_request_refuses_plain_http_to_another_host(reqcc_server: LocalAuthorizationServer) -> None:
    result = run("request", "http://example.com/books", env=server_env(reqcc_server))
    assert_one_line_error(result, cli.EXIT_CONFIG, "https")
    assert reqcc_server.token_requests == 0  # refused before any token was fetched


def test_request_data_from_a_file(reqcc_server: LocalAuthorizationServer, tmp_path: Path) -> None:
    body = tmp_path / "order.json"
    body.write_text('{"book_id": 2}')
    result = call(
        "request",
        "-d",
        f"@{body}",
        "-H",
        "Content-Type: application/json",
        reqcc_server.api_url + "orders",
        "--scope",
        "orders.write",
        env=server_env(reqcc_server),
    )
    assert result.returncode == 0, result.stderr
    assert reqcc_server.orders == [{"book_id": 2, "id": 1}]


# -- entry points --------------------------------------------------------------------------


def test_console_script_is_installed(reqcc_server: LocalAuthorizationServer) -> None:
    script = Path(sys.executable).parent / ("reqcc.exe" if os.name == "nt" else "reqcc")
    assert script.exists(), "pip install the package: setup.cfg declares the 'reqcc' console script"
    result = run("token", "--format", "access-token", env=server_env(reqcc_server), command=[str(script)])
    assert result.returncode == 0, result.stderr
    assert reqcc_server.is_active(result.stdout.strip())


def test_main_in_process_returns_codes(reqcc_server: LocalAuthorizationServer) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(
        ["token", "--format", "access-token"],
        environ=server_env(reqcc_server),
        stdin=io.StringIO(),
        stdout=out,
        stderr=err,
    )
    assert code == 0 and reqcc_server.is_active(out.getvalue().strip())
    err = io.StringIO()
    code = cli.main(["token"], environ={}, stdin=io.StringIO(), stdout=io.StringIO(), stderr=err)
    assert code == cli.EXIT_CONFIG and "--token-url" in err.getvalue()
    assert cli.main(["--version"], stdout=io.StringIO(), stderr=io.StringIO()) == 0


def test_exit_codes_are_distinct() -> None:
    codes = [getattr(cli, name) for name in cli.__all__ if name.startswith("EXIT_")]
    assert len(codes) == len(set(codes)) == 10


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_secret_from_the_prompt_on_a_terminal(
    reqcc_server: LocalAuthorizationServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts: list[str] = []

    def fake_getpass(prompt: str) -> str:
        prompts.append(prompt)
        return SECRET

    monkeypatch.setattr(cli.getpass, "getpass", fake_getpass)
    out, err = io.StringIO(), io.StringIO()
    env = {"REQCC_TOKEN_URL": reqcc_server.token_url, "REQCC_CLIENT_ID": "bookstore-app"}
    code = cli.main(
        ["token", "--format", "access-token"], environ=env, stdin=_Terminal(), stdout=out, stderr=err
    )
    assert code == 0, err.getvalue()
    assert prompts == ["client secret for bookstore-app: "]
    assert reqcc_server.is_active(out.getvalue().strip())


def test_private_key_jwt_needs_a_key_file(tmp_path: Path) -> None:
    env = {"REQCC_TOKEN_URL": "http://127.0.0.1:1/token", "REQCC_CLIENT_ID": "x"}
    missing = call("token", "--auth-method", "private_key_jwt", env=env)
    assert missing.returncode == cli.EXIT_CONFIG and "--private-key-file" in missing.stderr
    unreadable = call(
        "token", "--auth-method", "private_key_jwt", "--private-key-file", str(tmp_path / "no"), env=env
    )
    assert unreadable.returncode == cli.EXIT_CONFIG and "--private-key-file" in unreadable.stderr
    stray = call("token", "--private-key-file", str(tmp_path / "no"), env={**env, "REQCC_CLIENT_SECRET": "s"})
    assert stray.returncode == cli.EXIT_CONFIG and "private_key_jwt" in stray.stderr


def test_messages_do_not_echo_header_values_or_url_queries(reqcc_server: LocalAuthorizationServer) -> None:
    env = server_env(reqcc_server)
    header = call(
        "request", "-H", "Authorization Bearer sekrit-token-value", reqcc_server.api_url + "books", env=env
    )
    assert header.returncode == cli.EXIT_CONFIG and "sekrit" not in header.stderr
    query = call("request", reqcc_server.api_url + "nothing?api_key=sekrit-key", env=env)
    assert query.returncode == cli.EXIT_HTTP
    assert "404" in query.stderr and "/nothing?…" in query.stderr and "sekrit" not in query.stderr
    both = call("request", "-d", "@-", "--client-secret-file", "-", reqcc_server.api_url + "orders", env=env)
    assert both.returncode == cli.EXIT_CONFIG and "stdin" in both.stderr


# -- --issuer (discovery) ------------------------------------------------------------------


def test_issuer_instead_of_token_url(reqcc_server: LocalAuthorizationServer) -> None:
    env = {"REQCC_CLIENT_ID": "bookstore-app", "REQCC_CLIENT_SECRET": SECRET}
    by_flag = call("token", "--issuer", reqcc_server.issuer, "--format", "access-token", env=env)
    assert by_flag.returncode == 0, by_flag.stderr
    by_env = call("token", "--format", "access-token", env={**env, "REQCC_ISSUER": reqcc_server.issuer})
    assert by_env.returncode == 0, by_env.stderr
    assert reqcc_server.metadata_requests == 2 and reqcc_server.token_requests == 2
    record = reqcc_server.last_token_request
    assert record is not None and record.auth_method == "client_secret_basic"  # the first one listed
    # a flag wins over the environment, as for every other setting
    flag_wins = call(
        "token", "--issuer", reqcc_server.issuer, env={**env, "REQCC_TOKEN_URL": "http://127.0.0.1:1/t"}
    )
    assert flag_wins.returncode == 0, flag_wins.stderr


def test_metadata_url_instead_of_token_url(reqcc_server: LocalAuthorizationServer) -> None:
    env = {"REQCC_CLIENT_ID": "bookstore-app", "REQCC_CLIENT_SECRET": SECRET}
    url = reqcc_server.metadata_urls["oauth-authorization-server"]
    by_flag = call("token", "--metadata-url", url, "--format", "access-token", env=env)
    assert by_flag.returncode == 0, by_flag.stderr
    by_env = call("token", "--format", "access-token", env={**env, "REQCC_METADATA_URL": url})
    assert by_env.returncode == 0, by_env.stderr
    with_issuer = call("token", "--issuer", reqcc_server.issuer, "--metadata-url", url, env=env)
    assert with_issuer.returncode == 0, with_issuer.stderr
    assert reqcc_server.metadata_requests == 3 and reqcc_server.token_requests == 3
    both = call("token", "--metadata-url", url, "--token-url", reqcc_server.token_url, env=env)
    assert_one_line_error(both, cli.EXIT_CONFIG, "--token-url or --metadata-url, not both")
    both_env = call(
        "token", env={**env, "REQCC_METADATA_URL": url, "REQCC_TOKEN_URL": reqcc_server.token_url}
    )
    assert_one_line_error(both_env, cli.EXIT_CONFIG, "REQCC_TOKEN_URL and REQCC_METADATA_URL")
    insecure = call("token", "--metadata-url", "http://example.com/meta", env=env)
    assert_one_line_error(insecure, cli.EXIT_CONFIG, "https", "--metadata-url")
    assert reqcc_server.token_requests == 3
    help_text = run("token", "--help").stdout
    assert "--metadata-url" in help_text and "REQCC_METADATA_URL" in help_text


def test_issuer_mistakes_are_configuration_errors(reqcc_server: LocalAuthorizationServer) -> None:
    env = {"REQCC_CLIENT_ID": "bookstore-app", "REQCC_CLIENT_SECRET": SECRET}
    both = call("token", "--issuer", reqcc_server.issuer, "--token-url", reqcc_server.token_url, env=env)
    assert_one_line_error(both, cli.EXIT_CONFIG, "--token-url or --issuer, not both")
    both_env = call(
        "token", env={**env, "REQCC_ISSUER": reqcc_server.issuer, "REQCC_TOKEN_URL": reqcc_server.token_url}
    )
    assert_one_line_error(both_env, cli.EXIT_CONFIG, "REQCC_TOKEN_URL and REQCC_ISSUER")
    insecure = call("token", "--issuer", "http://example.com", env=env)
    assert_one_line_error(insecure, cli.EXIT_CONFIG, "https", "--issuer")
    reqcc_server.set_metadata(issuer="https://other.example")
    mixed_up = call("token", "--issuer", reqcc_server.issuer, env=env)
    assert_one_line_error(mixed_up, cli.EXIT_CONFIG, "https://other.example")
    assert reqcc_server.token_requests == 0
