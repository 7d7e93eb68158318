"""The soak (contract item 30): a fleet through a flapping token endpoint and Redis restarts, for minutes.

    python benchmarks/soak.py                # 3 minutes
    python benchmarks/soak.py --minutes 10
    tox -e soak -- --minutes 10

Several processes (default 4) x threads (default 4), each process one
``ClientCredentialsSession`` sharing its tokens through a ``RedisTokenStore``, send API
requests to the local authorization server (reqcc.testing, here :class:`FlappingServer`,
8-second tokens) whose token endpoint flaps: outages from 0.5 s to 40 s, each answering
503s, dropping connections or answering 503 slowly, with healthy spells between them.
A real redis-server on a free loopback port, started here, is restarted twice (its data
lost). The soak prints, and checks (exit status 1 when one is missed):

- recovery after each outage: seconds from the endpoint's return (the switch back, or the
  last failing answer it sent if that came later: a slow answer outlives the outage) to
  the first successful request in EVERY process, at most ``--recovery-limit`` (1.5 s);
- token-endpoint hits a second during the outages: all outages together at most 1.5 a
  second, and each outage of 10 s or more too;
- requests failed while a usable token existed anywhere in the fleet: 0. A token is usable
  from 50 ms after the server sent it (time enough to reach the store) until its expiry by
  the server's clock (the server accepts every token it issued until then; none is
  revoked); a request counts when it started and ended inside that span;
- RSS, thread count and open file descriptors of every process after the first minute and
  at the end: flat within a tolerance (RSS +8 MiB and +10 %, threads +2, fds +8);
- no hang: a process whose request takes over 60 s dumps its stacks and exits 3, and one
  not done 90 s after the end is killed; either is a missed check.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _path in (str(HERE), str(HERE.parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from report import DOCS_PAGE, machine, update_docs  # noqa: E402
from soak_server import FlappingServer  # noqa: E402

from tests.redis_server import RedisServer  # noqa: E402

GRACE = 0.05
PAGE = DOCS_PAGE.parent / "reliability.rst"
SOAK_BLOCK = (".. soak-start (written by benchmarks/soak.py --update-docs)", ".. soak-end")
FAILING_MODES = ("503", "reset", "slow")


@dataclass
class Outage:
    """One outage of the schedule, and what was seen of it."""

    at: float  # seconds after the start
    length: float
    mode: str
    down: float = 0.0  # monotonic, when it really began
    up: float = 0.0  # ... and ended (the switch back)
    returned: float = 0.0  # max(up, the last failing answer sent)
    hits: int = 0
    recovery: float | None = None  # the slowest process; None: one had no success before the next
    failed: int = 0  # failed requests started from its beginning to the next outage's
    failed_usable: int = 0  # ... of them, while a usable token existed


@dataclass
class Sample:
    """One process at one moment."""

    pid: int
    rss_kib: int
    threads: int
    fds: int


@dataclass
class Report:
    """Everything the soak measured."""

    seconds: float
    processes: int
    threads: int
    outages: list[Outage]
    redis_restarts: list[float]
    requests: int = 0
    failed: int = 0
    failed_usable: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    first: list[Sample] = field(default_factory=list)
    last: list[Sample] = field(default_factory=list)
    hung: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    usable_examples: list[str] = field(default_factory=list)  # the first failures while usable


def schedule(seconds: float, seed: int) -> tuple[list[Outage], list[float]]:
    """The outages (0.5 s and 40 s first, then random lengths) and the two Redis restarts.

    Healthy spells of 8-20 s separate the outages (the first starts after 15 s, the last
    ends 15 s before the end, so every recovery is seen). Redis restarts fall in the middle
    of the first healthy spell of 12 s or more after a third and after two thirds of the
    run: the endpoint has been back for seconds and every process holds a token, so the
    restart is seen on its own. (A restart during a recovery would leave the processes that
    hold no token blind to the token another one just obtained, until Redis is back: a
    failure "while a usable token existed" that no store-sharing scheme can avoid.)
    """
    rng = random.Random(seed)
    scale = min(1.0, seconds / 180.0)  # a short run gets short outages
    lengths = [0.5, round(40.0 * scale, 1)]
    outages: list[Outage] = []
    t = 15.0 * scale
    modes = list(FAILING_MODES)
    while True:
        length = lengths.pop(0) if lengths else round(0.5 * (80 ** rng.random()) * scale, 1)
        length = max(0.5, length)
        if t + length + 15.0 * scale > seconds:
            break
        outages.append(Outage(at=t, length=length, mode=modes[len(outages) % len(modes)]))
        t += length + rng.uniform(8.0, 20.0) * scale
    starts = [0.0] + [o.at + o.length for o in outages]
    spells = list(zip(starts, [o.at for o in outages] + [seconds], strict=True))
    restarts = []
    for fraction in (1 / 3, 2 / 3):
        floor = max(seconds * fraction, restarts[-1] if restarts else 0.0)
        later = [sp for sp in spells if sp[0] >= floor]
        fit = [sp for sp in later if sp[1] - sp[0] >= 12.0 * scale]
        begin, end = (fit or [max(later or spells, key=lambda sp: sp[1] - sp[0])])[0]
        restarts.append((begin + end) / 2)
    return outages, restarts


def sample(pid: int) -> Sample:
    """RSS, thread count and open file descriptors of process ``pid`` (from /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return Sample(
        pid=pid,
        rss_kib=int(fields["VmRSS"].split()[0]),
        threads=int(fields["Threads"]),
        fds=len(os.listdir(f"/proc/{pid}/fd")),
    )


def flat(first: Sample, last: Sample) -> bool:
    """Whether ``last`` is within the tolerance of ``first``."""
    return (last.rss_kib <= first.rss_kib * 1.10 + 8 * 1024 and last.threads <= first.threads + 2
            and last.fds <= first.fds + 8)


def read_outcomes(path: Path) -> list[tuple[float, float, str]]:
    """A worker's outcome file."""
    rows = []
    for line in path.read_text().splitlines():
        t0, t1, result = line.split(" ", 2)
        rows.append((float(t0), float(t1), result))
    return rows


def analyse(report: Report, server: FlappingServer, per_process: Sequence[Sequence[tuple[float, float, str]]],
            end: float) -> None:
    """Fill in recoveries, hits and failures from the outcomes and the server's log."""
    hits = list(server.hits)
    usable = sorted((i.sent + GRACE, i.expires) for i in server.issued)
    for index, outage in enumerate(report.outages):
        if not outage.down:
            continue
        failing = [h.answered for h in hits if h.status != 200 and outage.down <= h.received < outage.up]
        outage.returned = max([outage.up, *failing])
        outage.hits = sum(1 for h in hits if outage.down <= h.received < outage.up)
        following = report.outages[index + 1].down if index + 1 < len(report.outages) else 0.0
        horizon = following or end
        recoveries = []
        for outcomes in per_process:
            first = next(
                (t1 for _t0, t1, r in outcomes if r == "200" and outage.returned <= t1 < horizon), None
            )
            recoveries.append(None if first is None else first - outage.returned)
        outage.recovery = None if None in recoveries else max(r for r in recoveries if r is not None)
    spans = [(o, o.down, (report.outages[k + 1].down if k + 1 < len(report.outages) else 0.0) or end)
             for k, o in enumerate(report.outages) if o.down]
    for process, outcomes in enumerate(per_process):
        for t0, t1, result in outcomes:
            report.requests += 1
            if result == "200":
                continue
            report.failed += 1
            report.errors[result] = report.errors.get(result, 0) + 1
            sent = [a - GRACE for a, b in usable if a <= t0 and t1 < b]
            was_usable = bool(sent)
            report.failed_usable += was_usable
            if was_usable and len(report.usable_examples) < 10:
                report.usable_examples.append(
                    f"process {process}: {result} at {t0 - report_start(report, end):.2f} s, "
                    f"{t0 - max(sent):.3f} s after a token was sent")
            for outage, since, until in spans:
                if since <= t0 < until:
                    outage.failed += 1
                    outage.failed_usable += was_usable


def report_start(report: Report, end: float) -> float:
    """The run's start, monotonic."""
    return end - report.seconds


def checks(report: Report, recovery_limit: float) -> list[tuple[bool, str]]:
    """The soak's checks, each (met, text)."""
    done = [o for o in report.outages if o.down]
    out: list[tuple[bool, str]] = []
    slow = [o for o in done if o.recovery is None or o.recovery > recovery_limit]
    if not done:
        out.append((False, "no outage ran: the run is too short to prove anything"))
    else:
        out.append((not slow, f"recovery within {recovery_limit:g} s of the return in every process, "
                              f"after each of {len(done)} outages: worst "
                              + ("never" if any(o.recovery is None for o in done)
                                 else f"{max((o.recovery or 0.0) for o in done):.2f} s")
                              + (f"; missed after {len(slow)}" if slow else "")))
    total = sum(o.up - o.down for o in done)
    rate = sum(o.hits for o in done) / total if total else 0.0
    out.append((rate <= 1.5, f"token-endpoint hits during outages, all together: {rate:.2f}/s (at most 1.5)"))
    long = [o for o in done if o.up - o.down >= 10.0]
    worst = max(((o.hits / (o.up - o.down)) for o in long), default=0.0)
    out.append((worst <= 1.5, f"... and in each outage of 10 s or more ({len(long)}): worst {worst:.2f}/s"))
    out.append((report.failed_usable == 0,
                f"requests failed while a usable token existed in the fleet: {report.failed_usable}"))
    for first, last in zip(report.first, report.last, strict=False):
        out.append((flat(first, last), f"process {first.pid}: RSS {first.rss_kib / 1024:.1f} -> "
                                       f"{last.rss_kib / 1024:.1f} MiB, threads {first.threads} -> "
                                       f"{last.threads}, fds {first.fds} -> {last.fds}"))
    if len(report.last) < report.processes:
        out.append((False, f"only {len(report.last)} of {report.processes} processes sampled at the end"))
    out.append((not report.hung, "no hang" + (": " + "; ".join(report.hung) if report.hung else "")))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; print what it saw; return 0 when every check is met, else 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--interval", type=float, default=0.25, help="s between two requests of a thread")
    parser.add_argument("--token-ttl", type=float, default=8.0)
    parser.add_argument("--recovery-limit", type=float, default=1.5)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--update-docs", nargs="?", const=PAGE, type=Path, metavar="PAGE",
                        help="also rewrite the soak block of PAGE (default: docs/reliability.rst)")
    args = parser.parse_args(argv)
    logging.getLogger("reqcc").addHandler(logging.NullHandler())
    executable = shutil.which("redis-server")
    if executable is None:
        print("the soak needs redis-server on PATH (and redis-py)", file=sys.stderr)
        return 2
    seconds = args.minutes * 60.0
    outages, restarts = schedule(seconds, args.seed)
    report = Report(seconds, args.processes, args.threads, outages, restarts, load=[os.getloadavg()[0]])
    print(f"soak: {args.minutes:g} min, {args.processes} processes x {args.threads} threads, "
          f"{len(outages)} outages ({', '.join(f'{o.length:g} s {o.mode}' for o in outages)}), "
          f"Redis restarts at {', '.join(f'{r:.0f} s' for r in restarts)}; load {report.load[0]:.2f}",
          flush=True)
    with tempfile.TemporaryDirectory() as folder, FlappingServer(token_ttl=args.token_ttl) as server:
        redis = RedisServer(executable, Path(folder))
        redis.start()
        workers: list[subprocess.Popen[str]] = []
        try:
            for index in range(args.processes):
                worker = subprocess.Popen(
                    [sys.executable, str(HERE / "soak_worker.py")],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                )
                workers.append(worker)
                assert worker.stdin is not None
                worker.stdin.write(json.dumps({
                    "credentials": server.credentials(), "redis_url": redis.url, "prefix": "reqcc-soak:",
                    "threads": args.threads, "interval": args.interval, "seconds": seconds,
                    "request_timeout": 10.0, "hang_after": 60.0,
                    "outcomes": os.path.join(folder, f"outcomes-{index}.txt"),
                }) + "\n")
                worker.stdin.flush()
            for worker in workers:
                assert worker.stdout is not None
                if worker.stdout.readline().strip() != "ready":
                    raise SystemExit("a soak worker failed to start")
            start = time.monotonic() + 0.5
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(f"{start!r}\n")
                worker.stdin.flush()
            _conduct(report, server, redis, workers, start)
            per_process = [read_outcomes(Path(folder) / f"outcomes-{i}.txt") for i in range(args.processes)]
            analyse(report, server, per_process, start + seconds)
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
            redis.stop()
    report.load.append(os.getloadavg()[0])
    return _print(report, checks(report, args.recovery_limit), args.json, args.update_docs)


def _conduct(report: Report, server: FlappingServer, redis: RedisServer,
             workers: Sequence[subprocess.Popen[str]], start: float) -> None:
    """Run the schedule: outages, Redis restarts, the two samples; then wait for the workers."""
    end = start + report.seconds
    first_at = start + min(60.0, report.seconds / 2)
    events: list[tuple[float, str, Any]] = [
        (first_at, "sample-first", None), (end - 2.0, "sample-last", None),
    ]
    for outage in report.outages:
        events += [(start + outage.at, "down", outage), (start + outage.at + outage.length, "up", outage)]
    events += [(start + at, "redis", None) for at in report.redis_restarts]
    restarts: list[threading.Thread] = []
    for at, kind, outage in sorted(events, key=lambda e: e[0]):
        time.sleep(max(0.0, at - time.monotonic()))
        if kind == "down":
            server.set_mode(outage.mode)
            outage.down = time.monotonic()
        elif kind == "up":
            outage.up = time.monotonic()
            server.set_mode("up")
        elif kind == "redis":  # in a thread: the restart takes a second or more, the schedule goes on
            restarts.append(threading.Thread(target=_restart, args=(redis,), daemon=True))
            restarts[-1].start()
        else:
            samples = [sample(w.pid) for w in workers if w.poll() is None]
            (report.first if kind == "sample-first" else report.last).extend(samples)
            if kind == "sample-first":
                report.load.append(os.getloadavg()[0])
    for thread in restarts:
        thread.join()
    for worker in workers:
        try:
            code = worker.wait(max(0.0, end + 90.0 - time.monotonic()))
        except subprocess.TimeoutExpired:
            report.hung.append(f"process {worker.pid} still running 90 s after the end (killed)")
            worker.kill()
            worker.wait()
            continue
        if code != 0:
            report.hung.append(f"process {worker.pid} exited with {code}")


def _restart(redis: RedisServer) -> None:
    """Stop redis-server (its data is lost: no persistence), wait a second, start it again."""
    redis.stop()
    time.sleep(1.0)
    redis.start()


def _print(report: Report, results: list[tuple[bool, str]], json_path: str | None,
           page: Path | None) -> int:
    lines = [
        f"{report.requests} requests, {report.failed} failed "
        f"({', '.join(f'{k} x{v}' for k, v in sorted(report.errors.items())) or 'none'}); "
        f"load average {', '.join(f'{x:.2f}' for x in report.load)} (start, first minute, end)",
        "failed: requests failed from the outage's start to the next one's; usable: of them, while "
        "a usable token existed",
        f"{'at s':>6} {'outage s':>8} {'mode':>6} {'hits':>5} {'hits/s':>7} {'recovery s':>11} "
        f"{'failed':>7} {'usable':>7}",
    ]
    for o in report.outages:
        if o.down:
            rec = "never" if o.recovery is None else f"{o.recovery:.2f}"
            lines.append(f"{o.at:>6.0f} {o.up - o.down:>8.1f} {o.mode:>6} {o.hits:>5} "
                         f"{o.hits / (o.up - o.down):>7.2f} {rec:>11} {o.failed:>7} {o.failed_usable:>7}")
    lines.append("Redis restarted at " + ", ".join(f"{r:.0f} s" for r in report.redis_restarts))
    lines += [f"failed while usable: {e}" for e in report.usable_examples]
    lines += [f"[{'met' if met else 'MISSED'}] {text}" for met, text in results]
    print("\n".join(lines), flush=True)
    if json_path:
        Path(json_path).write_text(json.dumps(
            {**asdict(report), "checks": [{"met": m, "text": t} for m, t in results]}, indent=2))
    if page is not None:
        head = (f"{machine()}\n\n``benchmarks/soak.py --minutes {report.seconds / 60:g}``, "
                f"{report.processes} processes x {report.threads} threads:\n\n.. code-block:: text\n\n")
        # The page's code blocks are at most 90 characters wide (tests/test_docs.py).
        wrapped = [part for line in lines for part in textwrap.wrap(
            line, 86, subsequent_indent="  ", break_on_hyphens=False) or [""]]
        update_docs(page, SOAK_BLOCK, head + "\n".join("    " + line for line in wrapped))
    return 0 if all(met for met, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
