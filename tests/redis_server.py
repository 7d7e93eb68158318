"""A real redis-server on a free 127.0.0.1 port, for the token-store tests and the fleet benchmark."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process on 127.0.0.1 (no persistence); can be stopped and restarted."""

    def __init__(self, executable: str, folder: Path) -> None:
        self.executable = executable
        self.folder = folder
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable, "--bind", "127.0.0.1", "--port", str(self.port),
                "--save", "", "--appendonly", "no", "--dir", str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis  # only the Redis tests and benchmark need redis-py

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        try:
            for _ in range(500):
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    time.sleep(0.01)
            raise RuntimeError("redis-server did not answer PING")
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@contextmanager
def running_redis(folder: Path) -> Iterator[RedisServer]:
    """A started redis-server for one test, stopped after it (the tests' fixtures use this).

    The test is skipped when redis-py or redis-server is missing; a free port another test's
    server took meanwhile is tried again with another (twice). pytest is imported here only:
    the fleet benchmark uses :class:`RedisServer` without it.
    """
    import pytest

    pytest.importorskip("redis", reason="redis-py is not installed: pip install 'reqcc[redis]'")
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed: apt-get install redis-server (Debian/Ubuntu)")
    for attempt in range(3):
        server = RedisServer(executable, folder)
        try:
            server.start()
            break
        except RuntimeError:
            server.stop()
            if attempt == 2:
                raise
    try:
        yield server
    finally:
        server.stop()
