"""reqcc against the libraries its users would pick instead, measured side by side in one run.

    python benchmarks/run.py                  # the full run (about 2.5 minutes on 2 cores)
    python benchmarks/run.py --quick          # one tiny iteration of everything (the smoke test)
    python benchmarks/run.py --update-readme  # also rewrite README.rst's Performance block
    tox -e bench                              # the same, contenders installed by tox

What is measured (ISSUE 6):

1. per-request overhead with a warm token and no network: every library's session sends
   through the same stub transport that returns a prebuilt 200;
2. the same over real HTTP/1.1 keep-alive to one local server (in its own process);
3. 32 threads x 200 requests spanning 3.5 token lifetimes against a counting token server
   that takes 75 ms per token: token requests, failed/401 requests, latency near token
   renewals and elsewhere;
4. the same with the token endpoint down (503) for 10 s in the middle;
5. memory per session (tracemalloc) and import time (``python -X importtime``).

Token lifetimes are compressed (seconds, not hours); each library's own default early-expiry
margin is scaled by the same factor (lifetime / 3600 s). Every library is configured as its
documentation recommends for the client-credentials grant (see contenders.py).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib.metadata
import json
import logging
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:  # run as a script from anywhere, or imported by the smoke test
    sys.path.insert(0, str(HERE))

# The local runs speak plain http to 127.0.0.1. reqcc and Authlib allow loopback http by
# design; oauthlib (under requests-oauthlib) refuses any http URL unless this variable is set.
# Set for this benchmark process only; reqcc itself never reads or sets it.
os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

import contenders as cs  # noqa: E402

README_START = ".. performance-table-start (written by benchmarks/run.py --update-readme)"
README_END = ".. performance-table-end"


@dataclass
class Settings:
    """How much of everything to run."""

    inproc_requests: int = 200
    inproc_repeats: int = 20
    loop_requests: int = 50
    loop_repeats: int = 30
    threads: int = 32
    per_thread: int = 200
    lifetime: float = 3.0  # run 3's token lifetime, seconds (an integer: several libraries int() it)
    lifetimes_spanned: float = 3.5
    token_delay: float = 0.075
    outage_lifetime: float = 3.0
    outage_duration: float = 15.0
    outage_start: float = 2.0
    outage_length: float = 10.0
    # Run 4b: a short outage inside reqcc's renewal window, over before the token runs out
    # (the situation a real 10 s outage is in against a 1-hour token), as fractions of a lifetime.
    short_lifetime: float = 4.0
    short_outage: tuple[float, float] = (0.75, 0.92)
    short_duration: float = 1.25
    memory_sessions: int = 20
    import_repeats: int = 3

    @classmethod
    def quick(cls) -> Settings:
        """One tiny iteration of everything: for the smoke test, not for numbers."""
        return cls(
            inproc_requests=20, inproc_repeats=1, loop_requests=10, loop_repeats=1,
            threads=3, per_thread=4, lifetime=1.0, lifetimes_spanned=0.15, token_delay=0.01,
            outage_lifetime=1.0, outage_duration=0.25, outage_start=0.05, outage_length=0.1,
            short_lifetime=1.0, short_outage=(0.05, 0.1), short_duration=0.15,
            memory_sessions=2, import_repeats=1,
        )


# -- the server process ------------------------------------------------------------------


class ServerProcess:
    """benchmarks/server.py in a child process, and the driver's side of its control API."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "server.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        port = int(self.process.stdout.readline())
        self.base = f"http://127.0.0.1:{port}/"
        self.token_url = self.base + "token"
        self.api_url = self.base + "api/"

    def control(self, **command: Any) -> None:
        """Reset counters, set the token lifetime/delay, take the token endpoint down or up."""
        data = json.dumps(command).encode()
        with urllib.request.urlopen(urllib.request.Request(self.base + "_control", data=data)) as r:
            r.read()

    def stats(self) -> dict[str, Any]:
        """The counters and timestamps since the last reset."""
        with urllib.request.urlopen(self.base + "_stats") as r:
            result: dict[str, Any] = json.loads(r.read())
            return result

    def close(self) -> None:
        """Stop the child (closing its stdin is its signal) and wait for it."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- small helpers -----------------------------------------------------------------------


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


def _num(value: float) -> str:
    return "-" if value != value else f"{value:.0f}"


def ms(seconds: float) -> str:
    """Milliseconds with one decimal."""
    return "n/a" if seconds != seconds else f"{seconds * 1000:.1f}"


@contextlib.contextmanager
def built(contender: cs.Contender, env: cs.Env) -> Iterator[Any]:
    """A contender's session, warmed up (first token obtained), closed afterwards."""
    session = contender.build(env)
    try:
        contender.warm(session, env)
        yield session
    finally:
        session.close()


# -- runs 1 and 2: overhead per request --------------------------------------------------


@dataclass
class Timing:
    """One library's time per request, and its ratio to the floor."""

    median_us: float  # median over the rounds of the mean µs per request in that round
    ratio: float  # median over the rounds of (this library's time / the floor's, same round)
    ratio_iqr: tuple[float, float]  # the quartiles of those per-round ratios: the noise


def time_requests(contenders: Sequence[cs.Contender], env: cs.Env, n: int, rounds: int) -> dict[str, Timing]:
    """Time ``n`` sequential GETs per library, in ``rounds`` interleaved rounds.

    Every round times every library once (in a rotating order), so slow drift of a shared
    machine's speed hits all of them alike; ratios are taken within a round, against the
    floor's block of the same round.
    """
    url = env.api_url + "books/1"
    samples: dict[str, list[float]] = {c.name: [] for c in contenders}
    with contextlib.ExitStack() as stack:
        sessions = {c.name: stack.enter_context(built(c, env)) for c in contenders}
        for session in sessions.values():  # warm caches and the connection pool
            for _ in range(max(1, n // 5)):
                session.get(url)
        names = list(sessions)
        for round_ in range(rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                get = sessions[name].get
                gc.collect()
                start = time.perf_counter()
                for _ in range(n):
                    get(url)
                samples[name].append((time.perf_counter() - start) / n * 1e6)
    floor = samples[cs.FLOOR.name]
    result = {}
    for name, values in samples.items():
        ratios = [v / f for v, f in zip(values, floor, strict=True)]
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        result[name] = Timing(statistics.median(values), statistics.median(ratios),
                              (quartiles[0], quartiles[2]))
    return result


# -- runs 3 and 4: 32 threads against the counting token server --------------------------


@dataclass
class Outcome:
    """One API request: when it started, how long it took, what came back."""

    start: float
    latency: float
    result: str  # "200", another status code, or the exception's type name


@dataclass
class ConcurrentRun:
    """What one library did in run 3 or 4."""

    name: str
    lifetime: float
    start: float
    end: float
    outcomes: list[Outcome]
    stats: dict[str, Any]
    outage: tuple[float, float] | None = None
    errors: dict[str, int] = field(default_factory=dict)
    margin: float = 0.0  # the library's early-expiry margin in this run, seconds


def run_threads(
    contender: cs.Contender, server: ServerProcess, settings: Settings, *,
    lifetime: float, duration: float, outage: tuple[float, float] | None = None,
) -> ConcurrentRun:
    """``threads`` threads, each sending ``per_thread`` GETs spread evenly over ``duration``."""
    server.control(reset=True, lifetime=lifetime, delay=settings.token_delay, down=False)
    env = cs.Env(
        api_url=server.api_url, token_url=server.token_url,
        transport=cs.pooled_transport(settings.threads + 4),
        margin_scale=lifetime / 3600.0, client_id=f"bench-{contender.module}",
    )
    url = env.api_url + "books/1"
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    interval = duration / settings.per_thread
    with built(contender, env) as session:
        start = time.monotonic() + 0.05
        outage_at: tuple[float, float] | None = None
        if outage is not None:
            outage_at = (start + outage[0], start + outage[0] + outage[1])

        def worker(index: int) -> None:
            phase = interval * index / settings.threads
            for i in range(settings.per_thread):
                delay = start + phase + i * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                t0 = time.monotonic()
                try:
                    response = session.get(url)
                    result = str(response.status_code)
                except Exception as exc:  # a library's failure is data here
                    result = type(exc).__name__
                with lock:
                    outcomes.append(Outcome(t0, time.monotonic() - t0, result))

        def take_down() -> None:
            assert outage_at is not None
            time.sleep(max(0.0, outage_at[0] - time.monotonic()))
            server.control(down=True)
            time.sleep(max(0.0, outage_at[1] - time.monotonic()))
            server.control(down=False)

        # Daemon threads and a deadline: a library that deadlocks is reported, not waited for.
        threads = [
            threading.Thread(target=worker, args=(i,), daemon=True) for i in range(settings.threads)
        ]
        if outage_at is not None:
            threads.append(threading.Thread(target=take_down, daemon=True))
        for thread in threads:
            thread.start()
        deadline = start + duration + 60.0
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        hung = sum(thread.is_alive() for thread in threads)
        end = time.monotonic()
        server.control(down=False)
    stats = server.stats()
    errors: dict[str, int] = {}
    with lock:
        outcomes = list(outcomes)
    for outcome in outcomes:
        if outcome.result != "200":
            errors[outcome.result] = errors.get(outcome.result, 0) + 1
    if hung:
        errors["still blocked 60 s after the run (threads)"] = hung
    return ConcurrentRun(
        contender.name, lifetime, start, end, outcomes, stats, outage_at, errors,
        margin=contender.margin * lifetime / 3600.0,
    )


def renewal_bursts(hits: Sequence[Sequence[Any]], gap: float) -> int:
    """Token requests grouped into renewals: a hit within ``gap`` s of the previous one joins it."""
    bursts, last = 0, -float("inf")
    for received, _answered, _issued in sorted(hits):
        if received - last > gap:
            bursts += 1
        last = received
    return bursts


def near_boundary(run: ConcurrentRun, window: float) -> list[tuple[float, float]]:
    """Time windows around every token request (from arrival to answer) and every token's expiry."""
    spans = [(r - window, a + window) for r, a, _ in run.stats["token_hits"]]
    spans += [(e - window, e + window) for _i, e in run.stats["issued"]]
    return sorted(spans)


def inside(t: float, spans: Sequence[tuple[float, float]]) -> bool:
    """Whether ``t`` falls in any of ``spans``."""
    return any(a <= t <= b for a, b in spans)


@dataclass
class Run3Row:
    """Run 3's summary for one library."""

    name: str
    token_requests: int
    renewals: int
    lifetimes: float
    failed: int
    got_401: int
    near: list[float]
    elsewhere: list[float]
    errors: dict[str, int]


def summarize_run3(run: ConcurrentRun, window: float) -> Run3Row:
    """Counts and latency split of one library's run 3."""
    hits = [h for h in run.stats["token_hits"] if h[0] >= run.start - 1.0]
    spans = near_boundary(run, window)
    near, elsewhere = [], []
    for outcome in run.outcomes:
        if outcome.result == "200":
            (near if inside(outcome.start, spans) else elsewhere).append(outcome.latency)
    first_issue = min((i for i, _ in run.stats["issued"]), default=run.start)
    return Run3Row(
        name=run.name,
        token_requests=len(hits),
        renewals=renewal_bursts(hits, gap=run.lifetime / 4),
        lifetimes=(run.end - first_issue) / run.lifetime,
        failed=sum(1 for o in run.outcomes if o.result != "200"),
        got_401=sum(1 for o in run.outcomes if o.result == "401"),
        near=near,
        elsewhere=elsewhere,
        errors=run.errors,
    )


@dataclass
class Run4Row:
    """Run 4's summary for one library."""

    name: str
    requests: int
    failed_valid: int  # failed while a token issued by the server was still unexpired
    failed_valid_early: int  # ... and further from its expiry than the library's own margin
    failed_none: int  # failed during the outage with no unexpired token in existence
    failed_after: int  # failed after the token endpoint came back
    hits_outage: int
    hits_total: int
    got_401: int
    errors: dict[str, int]
    recovered_after: float  # s from the endpoint's return to the start of the last failed request


def outage_table(rows: Sequence[Run4Row]) -> str:
    """Runs 4 and 4b as a table."""
    return rst_table(
        ["library", "requests", "failed, token valid", "failed, none valid", "failed after",
         "last failure s", "401s", "token hits in outage", "token hits total"],
        [[r.name, r.requests, f"{r.failed_valid} ({r.failed_valid_early})", r.failed_none,
          r.failed_after, f"{r.recovered_after:.1f}" if r.failed_after else "-", r.got_401,
          r.hits_outage, r.hits_total] for r in rows],
    )


def summarize_run4(run: ConcurrentRun) -> Run4Row:
    """Failures by circumstance, and token-endpoint hits, of one library's run 4."""
    assert run.outage is not None
    down, up = run.outage
    issued = run.stats["issued"]
    failed_valid = failed_valid_early = failed_none = failed_after = 0
    for outcome in run.outcomes:
        if outcome.result == "200":
            continue
        left = max((e - outcome.start for i, e in issued if i <= outcome.start < e), default=None)
        if outcome.start >= up:
            failed_after += 1
        elif left is not None:
            failed_valid += 1
            failed_valid_early += left > run.margin
        else:
            failed_none += 1
    hits = run.stats["token_hits"]
    return Run4Row(
        name=run.name,
        requests=len(run.outcomes),
        failed_valid=failed_valid,
        failed_valid_early=failed_valid_early,
        failed_none=failed_none,
        failed_after=failed_after,
        hits_outage=sum(1 for r, _a, _i in hits if down <= r < up),
        hits_total=len(hits),
        got_401=sum(1 for o in run.outcomes if o.result == "401"),
        errors=run.errors,
        recovered_after=max((o.start - up for o in run.outcomes if o.result != "200" and o.start >= up),
                            default=0.0),
    )


# -- run 5: memory and import time -------------------------------------------------------


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


# -- the report --------------------------------------------------------------------------


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run everything, print the report; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="one tiny iteration (smoke test)")
    parser.add_argument(
        "--allow-missing", action="store_true",
        help="skip contenders that are not installed instead of failing (the smoke test's plain env)",
    )
    parser.add_argument("--update-readme", action="store_true", help="rewrite README.rst's Performance table")
    parser.add_argument("--json", metavar="PATH", help="also write the raw figures as JSON")
    args = parser.parse_args(argv)
    logging.getLogger("reqcc").addHandler(logging.NullHandler())  # its expected warnings: not here
    settings = Settings.quick() if args.quick else Settings()

    missing = [c for c in cs.CONTENDERS if not c.available()]
    if missing and not args.allow_missing:
        names = ", ".join(c.name for c in missing)
        print(f"not installed: {names}; use `tox -e bench` (or --allow-missing)", file=sys.stderr)
        return 2
    present = [c for c in cs.CONTENDERS if c.available()]
    token_libs = [c for c in present if c is not cs.FLOOR]

    out: list[str] = []
    raw: dict[str, Any] = {}

    def say(text: str = "") -> None:
        print(text, flush=True)
        out.append(text)

    started = time.monotonic()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    say(f"Measured {when} on {cpu_model()} ({os.cpu_count()} cores, Linux {platform.release()}), "
        f"Python {platform.python_version()}, requests {version('requests')}.")
    say("Versions: " + ", ".join(
        f"{d} {version(d)}" for d in
        ("reqcc", "requests-oauthlib", "Authlib", "requests-auth", "requests-oauth2client")
    ) + ".")
    if missing:
        say("Skipped (not installed): " + ", ".join(c.name for c in missing) + ".")
    if args.quick:
        say("QUICK MODE: one tiny iteration; the figures mean nothing.")
    say()

    # 1 + 2 ---------------------------------------------------------------------------
    print("... run 1: in-process, stub transport", file=sys.stderr, flush=True)
    inproc = time_requests(present, cs.stub_env(), settings.inproc_requests, settings.inproc_repeats)
    server = ServerProcess()
    try:
        print("... run 2: loopback HTTP keep-alive", file=sys.stderr, flush=True)
        server.control(reset=True, lifetime=3600, delay=0.0, down=False)
        loop_env = cs.Env(server.api_url, server.token_url, cs.pooled_transport(4))
        loop = time_requests(present, loop_env, settings.loop_requests, settings.loop_repeats)

        print("... run 3: 32 threads across token lifetimes", file=sys.stderr, flush=True)
        duration3 = settings.lifetime * settings.lifetimes_spanned
        runs3 = [
            run_threads(c, server, settings, lifetime=settings.lifetime, duration=duration3)
            for c in token_libs
        ]
        print("... run 4: token endpoint down in the middle", file=sys.stderr, flush=True)
        runs4 = [
            run_threads(
                c, server, settings, lifetime=settings.outage_lifetime,
                duration=settings.outage_duration,
                outage=(settings.outage_start, settings.outage_length),
            )
            for c in token_libs
        ]
        print("... run 4b: short outage inside reqcc's renewal window", file=sys.stderr, flush=True)
        short = settings.short_lifetime
        runs4b = [
            run_threads(
                c, server, settings, lifetime=short, duration=settings.short_duration * short,
                outage=(settings.short_outage[0] * short,
                        (settings.short_outage[1] - settings.short_outage[0]) * short),
            )
            for c in token_libs
        ]
    finally:
        server.close()

    print("... run 5: memory and import time", file=sys.stderr, flush=True)
    memory = {c.name: memory_per_session(c, settings.memory_sessions) for c in present}
    imports = {  # the quick run times only requests and reqcc: fresh interpreters are slow
        c.name: import_time(IMPORTS.get(c.module, c.module), settings.import_repeats)
        if not args.quick or c in (cs.FLOOR, cs.REQCC) else (float("nan"), float("nan"))
        for c in present
    }

    say("Runs 1, 2 and 5. Time per request with a warm token: in-process through a stub transport "
        f"({settings.inproc_repeats} rounds x {settings.inproc_requests} requests) and over loopback "
        f"HTTP keep-alive ({settings.loop_repeats} rounds x {settings.loop_requests}); µs is the "
        "median of the rounds, 'x floor' the median of the per-round ratios to the floor, with "
        "their quartiles (the noise). Memory: tracemalloc, per warmed-up session. Import: "
        "``python -X importtime``, ms for ``import requests`` plus the package, and the part "
        "over requests alone.")
    say()
    rows = []
    for c in present:
        a, b = inproc[c.name], loop[c.name]
        rows.append([
            c.name,
            f"{a.median_us:.0f}", f"{a.ratio:.2f} ({a.ratio_iqr[0]:.2f}-{a.ratio_iqr[1]:.2f})",
            f"{b.median_us:.0f}", f"{b.ratio:.3f} ({b.ratio_iqr[0]:.2f}-{b.ratio_iqr[1]:.2f})",
            f"{memory[c.name]:.1f}", _num(imports[c.name][0]), _num(imports[c.name][1]),
        ])
    say(rst_table(
        ["library", "in-process µs", "x floor (IQR)", "loopback µs", "x floor (IQR)",
         "KiB/session", "import ms", "over requests"],
        rows,
    ))
    say()

    window = max(settings.token_delay, 0.05)
    rows3 = [summarize_run3(r, window) for r in runs3]
    say(f"Run 3. {settings.threads} threads x {settings.per_thread} requests over "
        f"{duration3:.1f} s; token lifetime {settings.lifetime:g} s, token endpoint takes "
        f"{settings.token_delay * 1000:.0f} ms. Latency in ms of the successful requests, "
        f"'near' = started within {window * 1000:.0f} ms of a token request or a token expiry.")
    say()
    say(rst_table(
        ["library", "token reqs", "renewals", "lifetimes", "failed", "401s",
         "near p50", "near p99", "near max", "else p50", "else p99", "else max"],
        [[r.name, r.token_requests, r.renewals, f"{r.lifetimes:.1f}", r.failed, r.got_401,
          ms(percentile(r.near, 50)), ms(percentile(r.near, 99)), ms(max(r.near, default=float("nan"))),
          ms(percentile(r.elsewhere, 50)), ms(percentile(r.elsewhere, 99)),
          ms(max(r.elsewhere, default=float("nan")))] for r in rows3],
    ))
    say()
    rows4 = [summarize_run4(r) for r in runs4]
    rows4b = [summarize_run4(r) for r in runs4b]
    say(f"Run 4. As run 3 for {settings.outage_duration:g} s "
        f"(token lifetime {settings.outage_lifetime:g} s), "
        f"token endpoint answering 503 from {settings.outage_start:g} s to "
        f"{settings.outage_start + settings.outage_length:g} s.")
    say()
    say(outage_table(rows4))
    say()
    lo, hi = settings.short_outage
    say(f"Run 4b. As run 3 for {settings.short_duration * short:g} s (token lifetime {short:g} s), "
        f"token endpoint answering 503 from {lo * short:g} s to {hi * short:g} s: inside reqcc's "
        "renewal window (the last 20% of the lifetime) and over before the first token expires.")
    say()
    say(outage_table(rows4b))
    say()
    say("Failed API requests in runs 4 and 4b: while an unexpired token existed (in brackets: "
        "of those, how many started before the library's own early-expiry margin) / with no "
        "unexpired token in existence / after the endpoint came back, and the seconds after its "
        "return at which the last failed request started.")
    say()
    errors = [
        f"run {run_name}, {r.name}: " + ", ".join(f"{k} x{v}" for k, v in sorted(r.errors.items()))
        for run_name, rows_ in (("3", rows3), ("4", rows4), ("4b", rows4b))
        for r in rows_ if r.errors
    ]
    if errors:
        say("Failures seen, by status or exception:")
        say()
        for line in errors:
            say(f"- {line}")
        say()

    # Targets ---------------------------------------------------------------------------
    say("Targets for reqcc:")
    say()
    if cs.REQCC in present:
        r_in = inproc["reqcc"].ratio
        r_loop = loop["reqcc"].ratio
        r3 = next(r for r in rows3 if r.name == "reqcc")
        r4 = next(r for r in rows4 if r.name == "reqcc")
        r4b = next(r for r in rows4b if r.name == "reqcc")
        p99_near, p99_else = percentile(r3.near, 99), percentile(r3.elsewhere, 99)
        bound = 2 * settings.outage_length
        targets = [
            (r_in <= 1.10, f"in-process overhead within 10% of the floor: x{r_in:.2f}"),
            (r_loop <= 1.03, f"loopback overhead within 3% of the floor: x{r_loop:.3f}"),
            (r3.token_requests == r3.renewals and r3.failed == 0,
             f"one token request per renewal under {settings.threads} threads: {r3.token_requests} "
             f"requests for {r3.renewals} renewals over {r3.lifetimes:.1f} lifetimes "
             "(renewal starts at 80% of the lifetime)"),
            (r3.got_401 == 0, f"zero 401s: {r3.got_401}"),
            (p99_near <= p99_else * 1.10,
             f"p99 near renewals no worse than elsewhere (10% noise allowed): "
             f"{ms(p99_near)} vs {ms(p99_else)} ms"),
            (r4b.failed_valid == 0 and r4.failed_valid_early == 0,
             "outage: zero failed requests while a valid token existed: "
             f"{r4b.failed_valid} in run 4b; in run 4, {r4.failed_valid}, of which "
             f"{r4.failed_valid_early} before reqcc's own clock-skew margin"),
            (r4.hits_outage <= bound,
             f"outage: bounded token-endpoint hits (<= {bound:g} in {settings.outage_length:g} s): "
             f"{r4.hits_outage}"),
        ]
        for met, text in targets:
            verdict = "n/a: no data" if "n/a" in text else ("met" if met else "MISSED")
            say(f"- [{verdict}] {text}")
        raw["targets"] = [{"met": met, "text": text} for met, text in targets]
    else:
        say("- reqcc not importable: nothing to judge")
    say()
    elapsed = time.monotonic() - started
    print(f"(whole run: {elapsed:.0f} s)", file=sys.stderr)

    raw.update(
        inproc_us=inproc, loopback_us=loop, memory_kib=memory, import_ms=imports,
        run3=[{k: v for k, v in vars(r).items() if k not in ("near", "elsewhere")} for r in rows3],
        run4=[vars(r) for r in rows4], run4b=[vars(r) for r in rows4b],
        settings=vars(settings), elapsed_s=elapsed,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=2, default=str))
    if args.update_readme:
        update_readme(ROOT / "README.rst", "\n".join(out).rstrip() + "\n")
    return 0


def update_readme(path: Path, report: str) -> None:
    """Replace the text between the README's performance markers with ``report``."""
    text = path.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise SystemExit(f"{path}: the performance markers are missing")
    block = "\n\n" + report + "\n"
    path.write_text(text[: start + len(README_START)] + block + text[end:])


if __name__ == "__main__":
    sys.exit(main())
