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


def test_the_async_benchmark_runs_once_quickly() -> None:
    pytest.importorskip("httpx")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "Async load:" in out and "Warm per-request cost" in out
    assert "reqcc (httpx)" in out
    for column in ("token requests", "loop lag max ms", "x static header"):
        assert column in out
