"""Formatting the benchmark's figures: tables, percentiles, the machine, the docs page's blocks."""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DOCS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "performance.rst"
# The blocks of docs/performance.rst that the scripts rewrite: each between a start comment
# and an end comment (reST comments, invisible in the built page).
OVERHEAD_BLOCK = (
    ".. overhead-table-start (written by benchmarks/overhead.py or run.py --update-docs)",
    ".. overhead-table-end",
)
PERFORMANCE_BLOCK = (
    ".. performance-table-start (written by benchmarks/run.py --update-docs)",
    ".. performance-table-end",
)
LIBRARIES = ("reqcc", "requests-oauthlib", "Authlib", "requests-auth", "requests-oauth2client")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def rst_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An reStructuredText simple table (also readable as plain text)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    rule = "  ".join("=" * w for w in widths)

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join([rule, line(cells[0]), rule, *(line(r) for r in cells[1:]), rule])


def num(value: float) -> str:
    return "-" if value != value else f"{value:.0f}"


def ms(seconds: float) -> str:
    """Milliseconds with one decimal."""
    return "n/a" if seconds != seconds else f"{seconds * 1000:.1f}"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what platform knows)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def version(distribution: str) -> str:
    """An installed distribution's version, or "not installed".

    reqcc's is the imported code's own ``__version__``: an editable install's metadata keeps
    the version it was installed at.
    """
    if distribution == "reqcc":
        import reqcc

        return reqcc.__version__
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine(*, load: bool = False, skipped: Sequence[str] = (), quick: bool = False) -> str:
    """When and where: the first lines of every report (a reST paragraph).

    ``load``: with the load average when the run started; ``skipped``: the contenders not
    installed; ``quick``: the run is a smoke test, its figures mean nothing.
    """
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"Measured {when} on {cpu_model()} ({os.cpu_count()} cores, Linux {platform.release()}), "
        f"Python {platform.python_version()}, requests {version('requests')}.\n"
        "Versions: " + ", ".join(f"{d} {version(d)}" for d in LIBRARIES) + "."
    )
    if load:
        header += f"\nLoad average when it started: {os.getloadavg()[0]:.2f} (1 min)."
    if skipped:
        header += "\nSkipped (not installed): " + ", ".join(skipped) + "."
    if quick:
        header += "\nQUICK MODE: one tiny iteration; the figures mean nothing."
    return header


def update_docs(path: Path, markers: tuple[str, str], report: str) -> None:
    """Replace the text between ``markers`` (start, end comment lines) in ``path`` with ``report``.

    ``report`` must be reST that stands on its own (paragraphs, simple tables, bullet
    lists): the docs build runs with warnings as errors.
    """
    text = path.read_text()
    start_marker, end_marker = markers
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        raise SystemExit(f"{path}: the markers {start_marker!r} ... {end_marker!r} are missing")
    block = "\n\n" + report.strip("\n") + "\n\n"
    path.write_text(text[: start + len(start_marker)] + block + text[end:])
