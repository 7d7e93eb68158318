"""Per-request overhead with a warm token, every library side by side in one process.

    python benchmarks/overhead.py                 # about 40 s: the in-process table
    python benchmarks/overhead.py --quick         # one tiny iteration (figures mean nothing)
    python benchmarks/overhead.py --update-docs   # also rewrite its block in docs/performance.rst

The method (issue 14): every library's session sends through the same stub inner transport
(:class:`contenders.StubAdapter`, a fresh ``requests.Response`` per request, no I/O), with
``trust_env = False`` on every session, after one warm-up request that obtained the token.
Each round times ``requests`` sequential GETs per library, the libraries in a rotating order,
so drift of a shared machine's speed hits all alike. In process the time is the measuring
thread's CPU time (:func:`time.thread_time`): no I/O is involved, and on a loaded machine
the time the thread spends waiting for a core would otherwise land on whichever library
happened to be running; over loopback HTTP (run.py's run 2) it is wall time, waiting for the
server being part of the cost. The ratio to the floor (a plain
``requests.Session`` with a static ``Authorization`` header) is taken within each round; the
table shows the median of the per-round ratios with their spread (quartiles and min–max),
and the median µs per request.

``run.py`` uses :func:`time_requests` for its runs 1 (in-process) and 2 (loopback HTTP).
Rows for reqcc configured otherwise (DPoP, telemetry on) come from
``contenders.REQCC_VARIANTS``; a row that cannot be built yet is skipped with a note.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script from anywhere, or imported
    sys.path.insert(0, str(HERE))

import contenders as cs  # noqa: E402
from report import DOCS_PAGE, OVERHEAD_BLOCK, machine, rst_table, update_docs  # noqa: E402


@dataclass
class Timing:
    """One library's time per request, and its ratio to the floor."""

    median_us: float  # median over the rounds of the mean µs per request in that round
    ratio: float  # median over the rounds of (this library's time / the floor's, same round)
    ratio_iqr: tuple[float, float]  # the quartiles of those per-round ratios: the noise
    ratio_range: tuple[float, float]  # the smallest and largest per-round ratio


#: The clock of the in-process run: this thread's CPU time (no I/O to wait for there).
CPU_CLOCK: Callable[[], float] = time.thread_time
#: The clock of the loopback run: wall time (waiting for the server is part of the cost).
WALL_CLOCK: Callable[[], float] = time.perf_counter


def time_requests(
    contenders: Sequence[cs.Contender], env: cs.Env, n: int, rounds: int,
    clock: Callable[[], float] = WALL_CLOCK,
) -> dict[str, Timing]:
    """Time ``n`` sequential GETs per library, in ``rounds`` interleaved rounds, on ``clock``.

    Every round times every library once (in a rotating order), so slow drift of a shared
    machine's speed hits all of them alike; ratios are taken within a round, against the
    floor's block of the same round. ``contenders`` must include :data:`contenders.FLOOR`.
    """
    url = env.api_url + "books/1"
    samples: dict[str, list[float]] = {c.name: [] for c in contenders}
    with contextlib.ExitStack() as stack:
        sessions = {c.name: stack.enter_context(cs.built(c, env)) for c in contenders}
        for session in sessions.values():  # warm caches and the connection pool
            for _ in range(max(1, n // 5)):
                session.get(url)
        names = list(sessions)
        for round_ in range(rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                get = sessions[name].get
                gc.collect()
                start = clock()
                for _ in range(n):
                    get(url)
                samples[name].append((clock() - start) / n * 1e6)
    floor = samples[cs.FLOOR.name]
    result = {}
    for name, values in samples.items():
        ratios = [v / f for v, f in zip(values, floor, strict=True)]
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        result[name] = Timing(
            statistics.median(values), statistics.median(ratios),
            (quartiles[0], quartiles[2]), (min(ratios), max(ratios)),
        )
    return result


def buildable(candidates: Sequence[cs.Contender], env: cs.Env) -> tuple[list[cs.Contender], list[str]]:
    """The candidates that are installed and can be built here, and a note for each that cannot."""
    present, notes = [], []
    for contender in candidates:
        if not contender.available():
            notes.append(f"{contender.name}: not installed (tox -e bench installs it)")
            continue
        try:
            contender.build(env).close()
        except cs.Unavailable as exc:
            notes.append(f"{contender.name}: {exc}")
            continue
        present.append(contender)
    return present, notes


def table(timings: dict[str, Timing]) -> str:
    """The overhead table: µs per request and the ratio to the floor with its spread."""
    return rst_table(
        ["library", "µs/request", "x floor (median)", "IQR", "min-max"],
        [[name, f"{t.median_us:.1f}", f"{t.ratio:.3f}",
          f"{t.ratio_iqr[0]:.3f}-{t.ratio_iqr[1]:.3f}", f"{t.ratio_range[0]:.3f}-{t.ratio_range[1]:.3f}"]
         for name, t in timings.items()],
    )


def report(timings: dict[str, Timing], rounds: int, n: int, notes: Sequence[str], header: str) -> str:
    """The in-process overhead section as reST: ``header`` (when and where), the method, the table."""
    lines = [
        header,
        "",
        f"In-process overhead per request, warm token, stub transport: {rounds} alternating rounds "
        f"x {n} requests per library, timed in CPU time of the measuring thread; 'x floor' is the "
        "median of the per-round ratios to the floor, 'IQR' their quartiles and 'min-max' their range.",
        "",
        table(timings),
    ]
    if notes:
        lines += ["", "Skipped: " + "; ".join(notes) + "."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the in-process overhead table; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=31, help="interleaved rounds (default: %(default)s)")
    parser.add_argument(
        "--requests", type=int, default=400, help="GETs per library per round (default: %(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="one tiny iteration (smoke test)")
    parser.add_argument(
        "--update-docs", nargs="?", const=DOCS_PAGE, type=Path, metavar="PAGE",
        help="also rewrite the in-process overhead block of PAGE (default: docs/performance.rst)",
    )
    args = parser.parse_args(argv)
    rounds, n = (1, 20) if args.quick else (args.rounds, args.requests)
    env = cs.stub_env()
    present, notes = buildable((*cs.CONTENDERS, *cs.REQCC_VARIANTS), env)
    if cs.FLOOR not in present:
        print("the floor (requests) cannot be built", file=sys.stderr)
        return 2
    header = machine(quick=args.quick)
    timings = time_requests(present, env, n, rounds, CPU_CLOCK)
    text = report(timings, rounds, n, notes, header)
    print(text)
    if args.update_docs:
        update_docs(args.update_docs, OVERHEAD_BLOCK, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
