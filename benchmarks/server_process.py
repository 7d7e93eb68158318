"""The driver's side of benchmarks/server.py: the server in a child process, and its control API."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


class ServerProcess:
    """benchmarks/server.py in a child process, and the driver's side of its control API."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "server.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        port = int(self.process.stdout.readline())
        self.base = f"http://127.0.0.1:{port}/"
        self.token_url = self.base + "token"
        self.api_url = self.base + "api/"

    def control(self, **command: Any) -> None:
        """Reset counters, set the token lifetime/delay, take the token endpoint down or up."""
        data = json.dumps(command).encode()
        with urllib.request.urlopen(urllib.request.Request(self.base + "_control", data=data)) as r:
            r.read()

    def stats(self) -> dict[str, Any]:
        """The counters and timestamps since the last reset."""
        with urllib.request.urlopen(self.base + "_stats") as r:
            result: dict[str, Any] = json.loads(r.read())
            return result

    def close(self) -> None:
        """Stop the child (closing its stdin is its signal) and wait for it."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
