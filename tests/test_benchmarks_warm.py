"""benchmarks/warm_instructions.py runs (its workloads once, without valgrind), so it cannot rot.

Nothing here counts instructions: that takes valgrind and about a minute.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "warm_instructions.py"


def test_every_workload_runs_once_quickly() -> None:
    pytest.importorskip("httpx")
    pytest.importorskip("httpx2")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "every workload ran" in proc.stdout


def test_the_count_is_read_from_cachegrinds_summary() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import warm_instructions
    finally:
        sys.path.remove(str(SCRIPT.parent))
    summary = "==1== \n==1== I   refs:      1,234,567\n"
    assert warm_instructions.instructions(summary) == 1_234_567
    with pytest.raises(ValueError, match="I refs"):
        warm_instructions.instructions("==1== nothing counted\n")
