"""The benchmark script runs end to end (one tiny iteration), so it cannot rot.

Nothing here judges speed: the figures of a quick run mean nothing. Contenders that the
plain test environment lacks are skipped by ``--allow-missing``; reqcc and the floor always run.
``tox -e bench`` installs every contender and runs the real thing. ``--update-docs`` is pointed
at a copy of docs/performance.rst: the blocks it writes must be reST that parses cleanly (the
docs build runs with warnings as errors) and leave the rest of the page alone.
"""

from __future__ import annotations

import importlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import docutils.core
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "run.py"
PAGE = ROOT / "docs" / "performance.rst"
OVERHEAD = (".. overhead-table-start", ".. overhead-table-end")
PERFORMANCE = (".. performance-table-start", ".. performance-table-end")


def block(text: str, markers: tuple[str, str]) -> str:
    """The text between a start marker's line and the end marker."""
    start, end = text.index(markers[0]), text.index(markers[1])
    return text[text.index("\n", start) + 1 : end]


def outside(text: str) -> str:
    """The page without its two generated blocks."""
    for markers in (OVERHEAD, PERFORMANCE):
        text = text.replace(block(text, markers), "")
    return text


def without(text: str, markers: tuple[str, str]) -> str:
    """The text without what is between a start marker's line and the end marker."""
    start, end = text.index(markers[0]), text.index(markers[1])
    return text[: text.index("\n", start) + 1] + text[end:]


def assert_clean_rst(text: str) -> None:
    warnings = io.StringIO()
    docutils.core.publish_doctree(
        text, settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": warnings}
    )
    assert warnings.getvalue() == "", warnings.getvalue()


def test_benchmark_script_runs_once_quickly(tmp_path: Path) -> None:
    raw = tmp_path / "bench.json"
    page = tmp_path / "performance.rst"
    shutil.copy(PAGE, page)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--allow-missing", "--json", str(raw),
         "--update-docs", str(page)],
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
    in_process = data["targets"][0]["text"]
    assert in_process.startswith("in-process overhead at most 1.02x the floor") and "IQR" in in_process
    assert "Skipped" in out or "requests-auth" in out  # a missing contender is said, not hidden

    written = page.read_text()
    assert outside(written) == outside(PAGE.read_text())
    figures, detail = block(written, PERFORMANCE), block(written, OVERHEAD)
    assert "QUICK MODE" in figures and "Targets for reqcc:" in figures and "Run 4b." in figures
    assert "QUICK MODE" in detail and "x floor (median)" in detail and "min-max" in detail
    assert "Run 1 in detail" not in figures  # the detail table lives in its own block
    assert_clean_rst(figures)
    assert_clean_rst(detail)


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
    page = tmp_path / "performance.rst"
    shutil.copy(PAGE, page)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "overhead.py"), "--quick", "--update-docs", str(page)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout
    assert "floor (static header)" in table and "reqcc " in table and "x floor (median)" in table
    # A row that cannot run here (a variant not built yet, a peer not installed) is named.
    assert "Skipped:" in table or "reqcc + DPoP" in table
    written = page.read_text()
    assert block(written, OVERHEAD).strip() == table.strip()  # the block is what it printed
    assert block(written, PERFORMANCE) == block(PAGE.read_text(), PERFORMANCE)  # and only that block
    assert_clean_rst(block(written, OVERHEAD))


OUTAGE_PAGE = ROOT / "docs" / "reliability.rst"
OUTAGE_BLOCK = (".. outage-table-start", ".. outage-table-end")


def test_outage_benchmark_runs_once_quickly(tmp_path: Path) -> None:
    # reqcc alone and one fleet (two processes sharing a FileTokenStore) through a tiny outage.
    raw = tmp_path / "outage.json"
    page = tmp_path / "reliability.rst"
    shutil.copy(OUTAGE_PAGE, page)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "outage.py"), "--quick", "--libraries", "reqcc",
         "--json", str(raw), "--update-docs", str(page)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Targets for reqcc (issue 18):" in proc.stdout
    data = json.loads(raw.read_text())
    rows = {row["name"]: row for row in data["rows"]}
    assert set(rows) == {"reqcc", "reqcc, 2 processes x 2 threads, FileTokenStore"}
    alone, fleet = rows["reqcc"], rows["reqcc, 2 processes x 2 threads, FileTokenStore"]
    # Both really ran through the outage and back: requests before, during and after it.
    assert alone["requests"] >= 20 and fleet["requests"] >= 20
    assert alone["recovery"] is not None and fleet["recovery"] is not None
    assert 0.4 <= alone["outage"] <= 1.0 and alone["hung"] == fleet["hung"] == 0
    # Three targets for the process alone and for the fleet with a store.
    assert len(data["targets"]) == 6
    written = page.read_text()
    figures = block(written, OUTAGE_BLOCK)
    assert "QUICK MODE" in figures and "FileTokenStore" in figures
    assert without(written, OUTAGE_BLOCK) == without(OUTAGE_PAGE.read_text(), OUTAGE_BLOCK)
    assert_clean_rst(figures)


def test_outage_figures_from_outcomes_and_the_server_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    figures = importlib.import_module("outage_figures")
    # The endpoint was down from 10 to 20; a token was usable from 5.0 (+50 ms) to 12.0, and
    # another one issued at 21.0.
    stats = {"token_hits": [[4.9, 5.0, True], [11.0, 11.0, False], [15.0, 15.0, False],
                            [20.0, 21.0, True]],
             "issued": [[5.0, 12.0], [21.0, 25.0]]}
    first = [(8.0, 8.1, "200"), (11.5, 11.6, "TemporarilyUnavailable"),  # usable: counts
             (11.95, 12.05, "TemporarilyUnavailable"),  # ended after the expiry
             (19.9, 20.1, "TemporarilyUnavailable"),  # started before the return
             (20.5, 20.6, "TemporarilyUnavailable"), (21.0, 21.2, "200")]
    second = [(5.01, 5.02, "ConnectionError"),  # within 50 ms of the answer: not yet
              (20.0, 20.5, "200")]
    row = figures.summarize("reqcc", 10.0, 20.0, [first, second], stats, hung=0)
    assert (row.requests, row.failed_total, row.failed_usable, row.failed_after) == (8, 5, 1, 1)
    assert row.hits_per_s == pytest.approx(0.2) and row.recovery == pytest.approx(1.2)
    assert row.errors == {"TemporarilyUnavailable": 4, "ConnectionError": 1}
    assert row.usable_examples == [
        "process 0: TemporarilyUnavailable, started 6.500 s after a token was sent, -8.50 s from the return"]
    assert [met for met, _ in figures.targets([row])] == [True, True, False]

    never = figures.summarize("reqcc, fleet, no store", 10.0, 20.0, [first, [(21.0, 21.1, "503")]],
                              stats, hung=0)
    assert never.recovery is None
    met, text = figures.targets([never])[0]
    assert not met and text.endswith("never")
    # No store: the processes cannot share, so neither the endpoint's load nor another
    # process's token is a target; a hung thread still is.
    assert [text.split(": ")[1] for _, text in figures.targets([never])] == [
        "recovery within 1.5 s of the return", "no thread hung"]
    assert "never" in figures.table([never])


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="the soak needs redis-server on PATH")
def test_soak_runs_once_quickly(tmp_path: Path) -> None:
    # 12 seconds, 2 processes x 2 threads: too short for its verdicts (a restart of Redis
    # may fall on a recovery), long enough for every part to run: the flapping endpoint,
    # the Redis restarts, the samples of every process, the analysis and the report.
    raw = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "soak.py"), "--minutes", "0.2", "--processes", "2",
         "--threads", "2", "--json", str(raw)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]  # 1: a check missed, which is data here
    data = json.loads(raw.read_text())
    ran = [o for o in data["outages"] if o["down"]]
    assert len(ran) == len(data["outages"]) >= 3 and {o["mode"] for o in ran} == {"503", "reset", "slow"}
    assert all(o["up"] - o["down"] >= 0.4 for o in ran)  # the schedule kept time (restarts aside)
    assert data["requests"] >= 100 and sum(o["hits"] for o in ran) >= 1
    assert len(data["first"]) == len(data["last"]) == 2 and data["hung"] == []
    assert all(s["rss_kib"] > 0 and s["threads"] >= 3 and s["fds"] >= 3 for s in data["first"] + data["last"])
    assert "[met] no hang" in proc.stdout and "Redis restarted at" in proc.stdout
    assert len(data["checks"]) == 4 + 2 + 1
