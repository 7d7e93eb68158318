"""8 processes, cold start: token requests with and without a shared token store.

Starts N worker processes (default 8) that each build a session and send one API request
at the same moment, against a counting token server on 127.0.0.1, once per store:
none, FileTokenStore, and RedisTokenStore (when ``redis-server`` is on PATH and redis-py
is installed), each also with sealed entries (``encryption_key=``, when ``cryptography``
is installed). Prints one row per store.

    python benchmarks/fleet_cold_start.py [--processes 8] [--method fork|spawn]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tests.redis_server import RedisServer
from tests.store_workers import run_fleet
from tests.token_server import TokenServer


def _redis(folder: str) -> RedisServer | None:
    executable = shutil.which("redis-server")
    try:
        import redis  # noqa: F401
    except ImportError:
        return None
    if executable is None:
        return None
    server = RedisServer(executable, Path(folder))
    try:
        server.start()
    except RuntimeError:
        server.stop()
        return None
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--method", choices=["fork", "spawn"], default="fork")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        redis_server = _redis(folder)
        key = os.urandom(32)
        specs: list[tuple[str, tuple[Any, ...]]] = [
            ("none", ("none",)),
            ("FileTokenStore", ("file", os.path.join(folder, "tokens.json"), 10.0)),
            ("File, sealed", ("file", os.path.join(folder, "sealed.json"), 10.0, key)),
        ]
        if redis_server is not None:
            specs.append(("RedisTokenStore", ("redis", redis_server.url, "reqcc-bench:", 10.0)))
            specs.append(("Redis, sealed", ("redis", redis_server.url, "reqcc-bench-sealed:", 10.0, key)))
        print(f"{args.processes} processes, cold start ({args.method}); token endpoint answers in 100 ms")
        print(f"{'store':<16} {'token requests':>14} {'API 200s':>9} {'seconds':>8}")
        try:
            for name, spec in specs:
                with TokenServer(delay=0.1) as server:
                    started = time.perf_counter()
                    results = run_fleet(args.method, spec, server, processes=args.processes)
                    elapsed = time.perf_counter() - started
                    ok = sum(1 for r in results if r[1] == 200)
                    print(f"{name:<16} {server.token_requests:>14} {ok:>9} {elapsed:>8.2f}")
            if redis_server is None:
                print("(RedisTokenStore skipped: needs redis-server on PATH and redis-py)")
        finally:
            if redis_server is not None:
                redis_server.stop()


if __name__ == "__main__":
    main()
