"""``reqcc token --cache FILE``: a second invocation reuses the saved token (real subprocesses)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.token_server import TokenServer

SECRET = "cli-cache s3cret"


@pytest.fixture
def server() -> Iterator[TokenServer]:
    with TokenServer() as srv:
        yield srv


def reqcc_token(server: TokenServer, cache: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REQCC_")}
    env["REQCC_CLIENT_SECRET"] = SECRET
    return subprocess.run(
        [
            sys.executable, "-m", "reqcc", "token", "--token-url", server.token_url,
            "--client-id", "cli-client", "--cache", str(cache), "--format", "access-token", *extra,
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_second_invocation_does_not_hit_the_token_endpoint(server: TokenServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "tokens.json"
    first = reqcc_token(server, cache)
    assert first.returncode == 0, first.stderr
    assert server.token_requests == 1
    second = reqcc_token(server, cache)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout and first.stdout.strip()
    assert server.token_requests == 1  # read from the cache file
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert SECRET not in cache.read_text()
    # Another scope set is another token, kept beside the first one.
    third = reqcc_token(server, cache, "--scope", "BooksRead")
    assert third.returncode == 0 and third.stdout != first.stdout
    assert server.token_requests == 2
    assert len(json.loads(cache.read_text())["entries"]) == 2


def test_token_close_to_expiry_is_not_reused(server: TokenServer, tmp_path: Path) -> None:
    server.expires_in = 200  # the cache keeps a margin of min(5 minutes, half the lifetime)
    cache = tmp_path / "tokens.json"
    first = reqcc_token(server, cache)
    assert first.returncode == 0, first.stderr
    document = json.loads(cache.read_text())
    (entry,) = document["entries"].values()
    entry["token"]["expiry"] -= 120  # now 80 s left: less than half of 200
    cache.write_text(json.dumps(document))
    cache.chmod(0o600)
    second = reqcc_token(server, cache)
    assert second.returncode == 0, second.stderr
    assert second.stdout != first.stdout
    assert server.token_requests == 2


def test_without_cache_every_invocation_fetches(server: TokenServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REQCC_")}
    env["REQCC_CLIENT_SECRET"] = SECRET
    command = [sys.executable, "-m", "reqcc", "token", "--token-url", server.token_url, "--client-id", "c"]
    for _ in range(2):
        done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
    assert server.token_requests == 2
