"""Formatting the benchmark's figures: tables, percentiles, the machine, the README block."""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

README_START = ".. performance-table-start (written by benchmarks/run.py --update-readme)"
README_END = ".. performance-table-end"


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
    """An installed distribution's version, or "not installed"."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def update_readme(path: Path, report: str) -> None:
    """Replace the text between the README's performance markers with ``report``."""
    text = path.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise SystemExit(f"{path}: the performance markers are missing")
    block = "\n\n" + report + "\n"
    path.write_text(text[: start + len(README_START)] + block + text[end:])
