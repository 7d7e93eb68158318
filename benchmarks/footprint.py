"""Run 5: memory per warmed-up session (tracemalloc) and import time (``python -X importtime``)."""

from __future__ import annotations

import gc
import re
import statistics
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import contenders as cs

ROOT = Path(__file__).resolve().parent.parent


def memory_per_session(contender: cs.Contender, count: int) -> float:
    """KiB allocated per warmed-up session (``count`` sessions kept alive, tracemalloc)."""
    env = cs.stub_env()
    keep: list[Any] = []
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            session = contender.build(env)
            contender.warm(session, env)
            keep.append(session)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    for session in keep:
        session.close()
    return (after - before) / count / 1024


IMPORTS = {
    "requests": "requests",
    "reqcc": "reqcc",
    "requests_oauthlib": "requests_oauthlib",
    "authlib": "authlib.integrations.requests_client",
    "requests_auth": "requests_auth",
    "requests_oauth2client": "requests_oauth2client",
}


def import_time(module: str, repeats: int) -> tuple[float, float]:
    """``(total, on top of requests)`` import time in ms, median of ``repeats`` fresh interpreters.

    From ``python -X importtime -c "import requests; import <module>"``: the cumulative time of
    the top-level ``requests`` entry, and the sum of the top-level entries after it.
    """
    totals, extras = [], []
    for _ in range(repeats):
        code = "import requests" if module == "requests" else f"import requests; import {module}"
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )
        base = extra = 0
        seen_requests = False
        for line in proc.stderr.splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\S.*)$", line)
            if not match:
                continue  # header, or an indented (nested) entry
            cumulative, name = int(match.group(2)), match.group(3)
            if name == "requests":
                base, seen_requests = cumulative, True
            elif seen_requests:
                extra += cumulative
        totals.append((base + extra) / 1000)
        extras.append(extra / 1000)
    return statistics.median(totals), statistics.median(extras)
