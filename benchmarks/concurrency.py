"""Runs 3 and 4: 32 threads across token lifetimes against the counting token server, with outages.

:func:`run_threads` drives one library; :func:`summarize_run3` and :func:`summarize_run4`
reduce what it saw to one row of the report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import contenders as cs
from report import rst_table
from server_process import ServerProcess
from settings import Settings


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
    with cs.built(contender, env) as session:
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
