"""What ``reqcc request`` writes to stdout: the trailing newline rule.

A body that does not end with a newline gets one only when stdout is a terminal (for the
eyes: the prompt starts on its own line); piped or redirected, the body is written byte for
byte, text or binary. The command runs as a real subprocess against the pytest plugin's
``reqcc_server`` (a LocalAuthorizationServer on 127.0.0.1).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from reqcc import cli
from reqcc.testing import LocalAuthorizationServer

from .test_cli_messages import env_for, static_server


def reqcc_command(
    *args: str, env: dict[str, str], stdout: int | None = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "reqcc", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
    )


# -- the trailing newline ------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_final_newline_a_pipe_gets_the_exact_body(
    reqcc_server: LocalAuthorizationServer,
) -> None:
    env = env_for(reqcc_server)
    url = reqcc_server.api_url + "books"
    piped = reqcc_command("request", url, "--scope", "BooksRead", env=env)
    body, err = piped.communicate(timeout=60)
    assert piped.returncode == 0, err
    assert body.startswith(b'{"books"') and body.endswith(b"}")  # the API's body has no final newline
    terminal = _Terminal()
    code = cli.main(
        ["request", url, "--scope", "BooksRead"],
        environ=env,
        stdin=io.StringIO(),
        stdout=terminal,
        stderr=io.StringIO(),
    )
    assert code == 0
    assert terminal.getvalue() == body.decode() + "\n"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminal semantics of Linux")
def test_a_real_pseudo_terminal_gets_the_final_newline(reqcc_server: LocalAuthorizationServer) -> None:
    import pty
    import termios

    leader, follower = pty.openpty()
    attributes = termios.tcgetattr(follower)
    attributes[1] &= ~termios.OPOST  # no "\n" -> "\r\n": see the bytes the command wrote
    termios.tcsetattr(follower, termios.TCSANOW, attributes)
    try:
        process = reqcc_command(
            "request",
            reqcc_server.api_url + "books",
            "--scope",
            "BooksRead",
            env=env_for(reqcc_server),
            stdout=follower,
        )
        os.close(follower)
        follower = -1
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        received = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the command exited and closed the terminal
                break
            if not chunk:
                break
            received += chunk
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    assert received.startswith(b'{"books"') and received.endswith(b"}\n")


def test_a_binary_body_is_written_byte_for_byte(reqcc_server: LocalAuthorizationServer) -> None:
    payload = b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary, no final newline"
    with static_server(200, "image/png", payload) as api:
        piped = reqcc_command("request", api + "logo.png", env=env_for(reqcc_server))
        body, err = piped.communicate(timeout=60)
    assert piped.returncode == 0, err
    assert body == payload
    assert reqcc_server.token_requests == 1
