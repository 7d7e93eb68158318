"""Token stores that misbehave: a file store that stays readable, private folders, a silent Redis."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reqcc import OAuthToken
from reqcc.stores import FileTokenStore

from ..hostile_server import HostileServer, Reply

MiB = 1 << 20


def big_token(name: str, size: int) -> OAuthToken:
    return OAuthToken(name, expires_in=3600, expiry=time.time() + 3600, extra={"pad": "x" * size})


def test_an_oversized_token_is_not_stored_and_wipes_nobody(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.write("other-client", OAuthToken("theirs"))
    with caplog.at_level(logging.WARNING, "reqcc"):
        store.write("mine", big_token("mine", 2 * MiB))
    # 0.1 wrote the 2 MiB file; every reader then took it for corrupt, and the next write
    # replaced it with one entry: the other client's token was gone.
    assert os.path.getsize(store.path) < MiB
    assert store.read("other-client") == OAuthToken("theirs")
    assert store.read("mine") is None
    assert any("not stored" in r.getMessage() for r in caplog.records)
    assert not any("corrupt" in r.getMessage() for r in caplog.records)


def test_a_change_that_would_outgrow_the_read_limit_keeps_the_file(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    written = []
    with pytest.raises(OSError) as caught:
        for i in range(40):  # 40 x ~60 KiB: over 1 MiB together, each under the per-token limit
            store.write(f"client-{i}", big_token(f"t{i}", 60_000))
            written.append(i)
    assert caught.value.errno == errno.EFBIG
    assert 10 < len(written) < 40
    assert os.path.getsize(store.path) <= MiB
    # Every entry written before is still there and readable.
    assert all(store.read(f"client-{i}") is not None for i in written)
    document = json.loads(Path(store.path).read_text())
    assert len(document["entries"]) == len(written)


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_every_missing_folder_is_created_0700_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "a" / "b" / "c" / "tokens.json"
    before = stat.S_IMODE(os.stat(tmp_path).st_mode)
    old = os.umask(umask)
    try:
        FileTokenStore(path).write("k", OAuthToken("abc"))
    finally:
        os.umask(old)
    # 0.1: makedirs(mode=0o700) gave a and b the umask's mode (0755, or 0777 under umask 0).
    for folder in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder
    assert stat.S_IMODE(os.stat(tmp_path).st_mode) == before  # an existing folder is not touched
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


# -- a Redis that accepts the connection and never answers ----------------------------------

redis = pytest.importorskip("redis", reason="redis-py is not installed: pip install 'reqcc[redis]'")


@pytest.fixture
def silent_redis() -> Iterator[HostileServer]:
    with HostileServer(Reply(stall=True), lifetime=15) as server:
        yield server


def test_a_client_without_socket_timeouts_does_not_hang(
    silent_redis: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    from reqcc.stores import RedisTokenStore

    client = redis.Redis(host="127.0.0.1", port=silent_redis.port, socket_timeout=None,
                         socket_connect_timeout=None)
    with caplog.at_level(logging.WARNING, "reqcc"):
        store = RedisTokenStore(client, socket_timeout=0.3)
    assert any("no socket_timeout" in r.getMessage() for r in caplog.records)
    started = time.monotonic()
    with pytest.raises(redis.RedisError):
        store.read("k")
    elapsed = time.monotonic() - started
    # 0.1 waited forever here (the user's client has no timeout at all).
    print(f"\n[observed] silent Redis: store.read gave up after {elapsed:.2f}s")
    assert elapsed < 5.0
    assert silent_redis.connections >= 1


def test_a_client_with_timeouts_is_used_as_given(silent_redis: HostileServer) -> None:
    from reqcc.stores import RedisTokenStore

    client = redis.Redis(host="127.0.0.1", port=silent_redis.port, socket_timeout=0.3,
                         socket_connect_timeout=0.3)
    assert RedisTokenStore(client).client is client
