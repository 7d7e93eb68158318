"""``reqcc demo --serve`` says how to call it, and every line it offers works as pasted.

The demo clients' secrets used to appear nowhere; now the server's URLs, every client with
its (throwaway, loopback-only) secret, and ready-to-paste ``reqcc`` and ``curl`` lines are
printed. The lines are run here by bash, as a newcomer would paste them.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import reqcc
from reqcc import demo
from reqcc.testing import DEFAULT_CLIENTS, LocalAuthorizationServer


def _pasted_lines(text: str) -> list[str]:
    """The command lines of the 'try' and 'curl' parts, as a user would paste them."""
    _, _, rest = text.partition("try, in another shell")
    return [line.strip() for line in rest.splitlines()[1:] if line.startswith("  ") and line.strip()]


def test_how_to_call_names_the_urls_and_every_client_with_its_secret() -> None:
    with LocalAuthorizationServer() as server:
        text = demo.how_to_call(server)
    assert server.token_url in text and server.api_url in text
    for client in DEFAULT_CLIENTS.values():
        row = next(line for line in text.splitlines() if line.strip().startswith(client.client_id + " "))
        assert (client.secret or "(public)") in row
        assert ("none" if client.is_public else "client_secret_basic") in row
        assert all(scope in row for scope in client.scopes)
    assert "throwaway" in text
    lines = _pasted_lines(text)
    assert any(line.startswith("reqcc token ") for line in lines)
    assert any(line.startswith("reqcc request ") for line in lines)
    assert any(line.startswith("curl ") for line in lines)


@pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("curl") is None, reason="needs bash and curl"
)
def test_every_pasted_line_works(tmp_path: Path) -> None:
    with LocalAuthorizationServer() as server:
        lines = _pasted_lines(demo.how_to_call(server))
        script = tmp_path / "pasted.sh"
        script.write_text("set -e\n" + "\n".join(lines) + "\n")
        bin_dir = str(Path(sys.executable).parent)  # where the reqcc console script is installed
        env = {k: v for k, v in os.environ.items() if not k.startswith("REQCC_")}
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        env["PYTHONPATH"] = str(Path(reqcc.__file__).parent.parent)  # this checkout's reqcc
        result = subprocess.run(
            [shutil.which("bash") or "/bin/bash", str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, (lines, result.stdout, result.stderr)
        assert result.stderr == ""
        # reqcc token x2, reqcc request x2, the public client's token, and the two curl lines
        assert server.token_requests == server.tokens_issued == 6
        assert server.api_requests == 2 + 1 and server.api_401s == 0
        assert server.orders == [{"book_id": 1, "id": 1}]
        methods = sorted(record.auth_method for record in server.token_request_log)
        assert methods == ["client_secret_basic"] * 5 + ["none"]
    assert '"books"' in result.stdout and '"order"' in result.stdout
    assert result.stdout.count('"access_token"') == 3  # two token commands and curl's own token request


def test_serve_prints_how_to_call_it_in_one_piece() -> None:
    out = io.StringIO()
    stop = threading.Event()
    thread = threading.Thread(target=demo.serve, kwargs={"out": out, "stop": stop}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        text = out.getvalue()  # written with one write(): never seen half-printed
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert text.endswith("\n") and "curl -s -u bookstore-app:bookstore-secret" in text
    token_url = next(line.split()[-1] for line in text.splitlines() if "token endpoint" in line)
    assert f"export REQCC_TOKEN_URL={token_url}" in text
    assert json.dumps({"book_id": 1}) in text
