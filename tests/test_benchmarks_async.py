"""benchmarks/async_load.py runs end to end (one tiny iteration), so it cannot rot.

Nothing here judges speed or counts: the figures of a quick run mean nothing. Contenders
that are not installed are skipped (and named).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "async_load.py"


def run(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_the_async_benchmark_runs_once_quickly() -> None:
    pytest.importorskip("httpx")
    out = run()
    assert "Async load, shape 'saturated'" in out and "the API answers at once" in out
    assert "Warm per-request cost" in out
    assert "reqcc (httpx)" in out
    columns = ("token requests", "API 401s", "loop lag max ms", "lag max during fetch ms", "x static header")
    for column in columns:
        assert column in out


def test_the_api_latency_shape_and_the_knobs_reach_the_run() -> None:
    pytest.importorskip("httpx")
    out = run("--shape", "api-latency", "--only", "reqcc (httpx)", "--coroutines", "3", "--no-warm")
    assert "Async load, shape 'api-latency': 3 coroutines" in out and "the API answers 50-250 ms" in out
    assert "reqcc (httpx)" in out and "floor" not in out and "Authlib" not in out
    assert "Warm per-request cost" not in out
