"""The benchmark script runs end to end (one tiny iteration), so it cannot rot.

Nothing here judges speed: the figures of a quick run mean nothing. Contenders that the
plain test environment lacks are skipped by ``--allow-missing``; reqcc and the floor always run.
``tox -e bench`` installs every contender and runs the real thing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "run.py"


def test_benchmark_script_runs_once_quickly(tmp_path: Path) -> None:
    raw = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--allow-missing", "--json", str(raw)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,  # a subprocess: the script sets
    )                                                               # an oauthlib variable for itself
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for heading in ("Runs 1, 2 and 5.", "Run 3.", "Run 4.", "Targets for reqcc:"):
        assert heading in out
    data = json.loads(raw.read_text())
    for name in ("floor (static header)", "reqcc"):
        assert name in data["inproc_us"] and name in data["loopback_us"] and name in data["memory_kib"]
    assert {row["name"] for row in data["run3"]} >= {"reqcc"}
    reqcc3 = next(row for row in data["run3"] if row["name"] == "reqcc")
    assert reqcc3["token_requests"] >= 1  # it really talked to the token server
    assert len(data["targets"]) == 7
    assert "Skipped" in out or "requests-auth" in out  # a missing contender is said, not hidden


def test_benchmark_script_refuses_to_skip_contenders_silently(tmp_path: Path) -> None:
    # Without --allow-missing, a missing contender is an error, not a shorter table.
    code = (
        f"import sys, importlib.util; sys.path.insert(0, {str(SCRIPT.parent)!r});"
        "real = importlib.util.find_spec;"
        "importlib.util.find_spec = lambda n, *a: None if n == 'requests_auth' else real(n, *a);"
        "import run; sys.exit(run.main([]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "requests-auth" in proc.stderr and "tox -e bench" in proc.stderr


def test_overhead_script_runs_alone_and_says_what_it_skipped(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "overhead.py"), "--quick"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout
    assert "floor (static header)" in table and "reqcc " in table and "x floor (median)" in table
    # A row that cannot run here (a variant not built yet, a peer not installed) is named.
    assert "Skipped:" in table or "reqcc + DPoP" in table
