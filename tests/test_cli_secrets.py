"""The command line and secrets: a secret flag, misspelt or misplaced, is refused without
echoing its value (contract item 20); ``reqcc token --format header`` never prints a token
that is not header-safe (item 16)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from reqcc import cli

from .hostile_server import HostileServer, Reply

SECRET = "hunter2-S3KRET"


@pytest.mark.parametrize(
    "argv",
    [
        ["token", "--client_secret", SECRET],
        ["token", f"--client_secret={SECRET}"],
        ["token", "--secret", SECRET],
        ["token", "--clientsecret", SECRET],
        ["--client-secret", SECRET, "token"],
        ["--client_secret", SECRET, "token"],
        ["request", "--password", SECRET, "https://api.example.com/"],
        ["request", "https://api.example.com/", "--client-secret", SECRET],
        ["token", "--token-url", "https://auth.example.com/t", "--Client-Secret", SECRET],
    ],
)
def test_a_secret_flag_anywhere_is_refused_without_echoing_its_value(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, environ={}, stdin=io.StringIO(), stdout=out, stderr=err)
    captured = capsys.readouterr()  # argparse writes its usage and error to sys.stderr
    shown = out.getvalue() + err.getvalue() + captured.out + captured.err
    assert code == 2
    assert SECRET not in shown
    assert "is not accepted" in shown and "REQCC_CLIENT_SECRET" in shown


def test_the_secret_file_flag_is_not_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        ["token", "--client-secret-file", "/nonexistent/reqcc-secret", "--token-url",
         "https://auth.example.com/t", "--client-id", "c"],
        environ={}, stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO(),
    )
    assert code != 2  # got past the parser: the file is what is missing
    assert "is not accepted" not in capsys.readouterr().err


def _parse_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = cli.main(argv, environ={}, stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO())
    assert code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "advice"),
    [
        (
            ["token", "--scope", "-x"],
            "(-x starts with '-' and was taken for a flag: write --scope=-x if it is the value)",
        ),
        (["token", "--scope", "books.read", "--scope", "-x", "--format", "json"], "write --scope=-x"),
        (["request", "-X", "-zz", "https://api.example.com/"], "write --request=-zz if it is the value"),
        (["token", "--token-param", "-a:b=1"], "(it starts with '-' and was taken for a flag: write "
         "--token-param=VALUE if it is the value)"),
    ],
)
def test_a_value_starting_with_a_dash_gets_the_way_to_write_it(
    argv: list[str], advice: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # argparse takes "-x" for a flag: "expected one argument" alone leaves the user stuck.
    message = _parse_error(argv, capsys)
    assert "expected one argument" in message and advice in message
    assert "a:b" not in message  # only a value shaped like a flag is shown


@pytest.mark.parametrize(
    "argv", [["token", "--scope"], ["token", "--scope", "--cache", "f"], ["token", "--scope", "-h"]]
)
def test_a_forgotten_value_gets_no_such_advice(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # Followed by nothing, or by one of the command's own flags: the value was forgotten.
    message = _parse_error(argv, capsys)
    assert message.endswith("argument --scope: expected one argument")


def test_the_advised_spelling_works() -> None:
    from reqcc.cli.parser import build_parser

    args = build_parser().parse_args(["token", "--scope=-x", "--scope", "books.read"])
    assert args.scope == ["-x", "books.read"]


# -- item 16: the header format prints header-safe tokens only ------------------------------


@pytest.fixture
def endpoint_issuing() -> Iterator[list[HostileServer]]:
    servers: list[HostileServer] = []
    yield servers
    for server in servers:
        server.close()


@pytest.mark.parametrize(
    "access_token",
    ["abc\r\nX-Injected: 1", "abc\nX-Injected: 1", "abc def", "abc\x00def", "abcé", "abc\tdef"],
)
def test_token_format_header_never_prints_a_token_that_is_not_header_safe(
    endpoint_issuing: list[HostileServer], access_token: str
) -> None:
    body = json.dumps({"access_token": access_token, "token_type": "Bearer", "expires_in": 3600}).encode()
    server = HostileServer(Reply(body=body))
    endpoint_issuing.append(server)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(
        ["token", "--format", "header", "--token-url", server.url + "/oauth/token", "--client-id", "c"],
        environ={"REQCC_CLIENT_SECRET": "s3cret"}, stdin=io.StringIO(), stdout=out, stderr=err,
    )
    assert code != 0
    assert out.getvalue() == ""
    assert "X-Injected" not in err.getvalue() and access_token not in err.getvalue()
    assert server.token_requests == 1  # refused as it arrived, not retried


def test_token_format_header_prints_one_header_line_for_a_good_token(
    endpoint_issuing: list[HostileServer],
) -> None:
    body = b'{"access_token":"good.token-1_~+/=","token_type":"Bearer","expires_in":3600}'
    server = HostileServer(Reply(body=body))
    endpoint_issuing.append(server)
    out = io.StringIO()
    code = cli.main(
        ["token", "--format", "header", "--token-url", server.url + "/oauth/token", "--client-id", "c"],
        environ={"REQCC_CLIENT_SECRET": "s3cret"}, stdin=io.StringIO(), stdout=out, stderr=io.StringIO(),
    )
    assert code == 0
    assert out.getvalue() == "Authorization: Bearer good.token-1_~+/=\n"
