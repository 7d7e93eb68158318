"""A long token-endpoint outage: how each library loads the endpoint, and how soon it recovers (issue 18).

    python benchmarks/outage.py                     # 30 s outage: every library, and reqcc fleets
    python benchmarks/outage.py --outages 10,30,60  # the issue's table: reqcc alone and as fleets
    python benchmarks/outage.py --quick             # one tiny iteration (the smoke test)
    tox -e bench                                    # runs the default after run.py

The token endpoint (benchmarks/server.py, in its own process) issues 4-second tokens, then
answers 503 for the outage (30 s by default: several token lifetimes), then works again.
One row per library: one session shared by 8 threads, each sending a GET every 0.1 s; and
for reqcc, fleet rows: 4 processes x 4 threads sharing a FileTokenStore, a RedisTokenStore
(a redis-server on loopback, started here), or no store. Each run goes on after the return
until every process has had a success (and 1 s more), at most ``--post-max`` seconds.

The columns:

- token requests a second during the outage (hits at the endpoint while it answered 503,
  divided by the outage's length);
- recovery: seconds from the return (the moment the endpoint was switched back) to the end
  of the first successful API request after it, in the slowest process of the row;
- failed after the return: failed API requests started after the return;
- failed while usable: failed API requests that started and ended while a token the
  server had issued was unexpired (the server accepts any token it issued until its
  expiry; none is revoked here), from 50 ms after the server sent it (the time a fleet
  needs to pass it through the store).

A library that is not installed is skipped with ``--allow-missing``, else an error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _path in (str(HERE), str(HERE.parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")  # as run.py: this process only

import contenders as cs  # noqa: E402
from outage_figures import OutageRow, summarize, table, targets  # noqa: E402
from outage_load import Plan, drive  # noqa: E402
from report import DOCS_PAGE, machine, update_docs  # noqa: E402
from server_process import ServerProcess  # noqa: E402

OUTAGE_BLOCK = (
    ".. outage-table-start (written by benchmarks/outage.py --update-docs)",
    ".. outage-table-end",
)
LENGTHS_BLOCK = (  # the table of --outages
    ".. outage-lengths-start (written by benchmarks/outage.py --outages ... --update-docs)",
    ".. outage-lengths-end",
)
PAGE = DOCS_PAGE.parent / "reliability.rst"


@dataclass
class OutageSettings:
    """How long and how much: the full run's and the smoke test's."""

    lifetime: float = 4.0
    pre: float = 5.0  # healthy seconds before the outage (a renewal happens in them)
    threads: int = 8
    interval: float = 0.1
    post_min: float = 5.0
    post_max: float = 70.0  # enough for 0.2's backoff (up to 60 s) to come round
    token_delay: float = 0.01
    fleet_processes: int = 4
    fleet_threads: int = 4

    @classmethod
    def quick(cls) -> OutageSettings:
        """One tiny iteration: for the smoke test, not for numbers."""
        return cls(lifetime=1.0, pre=0.3, threads=2, interval=0.05, post_min=0.2, post_max=2.0,
                   fleet_processes=2, fleet_threads=2)


def _toggle(server: ServerProcess, plan: Plan) -> tuple[float, float]:
    """Take the endpoint down and up at the plan's times; return when it really happened."""
    time.sleep(max(0.0, plan.down - time.monotonic()))
    server.control(down=True)
    down = time.monotonic()
    time.sleep(max(0.0, plan.up - time.monotonic()))
    up = time.monotonic()  # before the switch: a recovery measured from here is not flattered
    server.control(down=False)
    return down, up


def _plan(settings: OutageSettings, length: float, threads: int, start: float,
          post_max: float) -> Plan:
    down = start + settings.pre
    return Plan(start=start, down=down, up=down + length, threads=threads,
                interval=settings.interval, post_min=settings.post_min, post_max=post_max)


def run_library(contender: cs.Contender, server: ServerProcess, settings: OutageSettings,
                length: float) -> OutageRow:
    """One session of ``contender`` shared by ``settings.threads`` threads through one outage."""
    server.control(reset=True, lifetime=settings.lifetime, delay=settings.token_delay, down=False)
    env = cs.Env(
        api_url=server.api_url, token_url=server.token_url,
        transport=cs.pooled_transport(settings.threads + 4),
        margin_scale=settings.lifetime / 3600.0, client_id=f"outage-{contender.module}",
    )
    url = env.api_url + "books/1"
    # A library that never renews by itself cannot recover: do not wait post_max for it.
    post_max = settings.post_max if contender.renews else settings.post_min
    with cs.built(contender, env) as session:
        plan = _plan(settings, length, settings.threads, time.monotonic() + 0.1, post_max)
        moments: list[tuple[float, float]] = []
        toggler = threading.Thread(target=lambda: moments.append(_toggle(server, plan)), daemon=True)
        toggler.start()
        outcomes, hung = drive(lambda: str(session.get(url, timeout=plan.request_timeout).status_code), plan)
        toggler.join()
    down, up = moments[0]
    return summarize(contender.name, down, up, [outcomes], server.stats(), hung)


def run_fleet(store: str, server: ServerProcess, settings: OutageSettings, length: float,
              folder: str, redis_url: str | None) -> OutageRow:
    """``fleet_processes`` reqcc processes x ``fleet_threads`` threads sharing ``store``."""
    server.control(reset=True, lifetime=settings.lifetime, delay=settings.token_delay, down=False)
    tag = f"{store}-{length:g}-{time.monotonic_ns()}"
    spec: list[Any] = {
        "none": ["none"],
        "file": ["file", os.path.join(folder, f"tokens-{tag}.json"), 10.0],
        "redis": ["redis", redis_url, f"reqcc-outage-{tag}:", 10.0],
    }[store]
    offsets = _plan(settings, length, settings.fleet_threads, 0.0, settings.post_max).offsets()
    config = json.dumps({
        "api_url": server.api_url, "token_url": server.token_url, "store": spec,
        "lifetime": settings.lifetime, "offsets": offsets, "client_id": "outage-fleet",
    })
    workers = [
        subprocess.Popen([sys.executable, str(HERE / "outage_worker.py")], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
        for _ in range(settings.fleet_processes)
    ]
    try:
        for worker in workers:
            assert worker.stdin is not None and worker.stdout is not None
            worker.stdin.write(config + "\n")
            worker.stdin.flush()
        for worker in workers:
            assert worker.stdout is not None
            line = worker.stdout.readline()
            if line.strip() != "ready":
                raise SystemExit(f"a fleet worker failed to start ({store} store): {line!r}")
        plan = Plan.at(time.monotonic() + 0.2, offsets)
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(f"{plan.start!r}\n")
            worker.stdin.flush()
        down, up = _toggle(server, plan)
        reports = [json.loads(worker.communicate(timeout=plan.post_max + 120)[0]) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    name = {"none": "no store", "file": "FileTokenStore", "redis": "RedisTokenStore"}[store]
    return summarize(
        f"reqcc, {settings.fleet_processes} processes x {settings.fleet_threads} threads, {name}",
        down, up, [[tuple(o) for o in r["outcomes"]] for r in reports], server.stats(),
        sum(r["hung"] for r in reports),
    )


def _start_redis(folder: str) -> Any:
    """A redis-server on a free loopback port (tests/redis_server.py), or None without one."""
    if shutil.which("redis-server") is None:
        return None
    try:
        import redis  # noqa: F401
    except ImportError:
        return None
    from tests.redis_server import RedisServer

    server = RedisServer(shutil.which("redis-server") or "redis-server", Path(folder))
    server.start()
    return server


def main(argv: Sequence[str] | None = None) -> int:
    """Run the outages, print the tables and the targets; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="one tiny iteration (smoke test)")
    parser.add_argument("--outages", default=None, metavar="S,S,...",
                        help="outage lengths in seconds (default 30 for every library; with this "
                             "option: reqcc alone and its fleets only, one row per length)")
    parser.add_argument("--stores", default="file,redis,none",
                        help="the fleet rows: file, redis, none (comma-separated; '' for none)")
    parser.add_argument("--libraries", default=None, metavar="NAME,...",
                        help="only these libraries (names as in the table; default: all of them)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="skip libraries that are not installed instead of failing")
    parser.add_argument("--post-max", type=float, default=None,
                        help="seconds to wait after the return for a recovery (default 70)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--update-docs", nargs="?", const=PAGE, type=Path, metavar="PAGE",
                        help="also rewrite the outage block of PAGE (default: docs/reliability.rst)")
    args = parser.parse_args(argv)
    logging.getLogger("reqcc").addHandler(logging.NullHandler())
    settings = OutageSettings.quick() if args.quick else OutageSettings()
    if args.post_max is not None:
        settings.post_max = args.post_max
    lengths = [float(x) for x in args.outages.split(",")] if args.outages else [0.5 if args.quick else 30.0]
    stores = [s for s in args.stores.split(",") if s]
    if args.quick:
        stores = [s for s in stores if s == "file"]  # the smoke test: one fleet, no redis-server
    libraries = [cs.REQCC] if args.outages else [c for c in cs.CONTENDERS if c is not cs.FLOOR]
    if args.libraries is not None:
        wanted = {n.strip() for n in args.libraries.split(",") if n.strip()}
        unknown = wanted - {c.name for c in cs.CONTENDERS}
        if unknown:
            parser.error(f"unknown libraries: {', '.join(sorted(unknown))}")
        libraries = [c for c in cs.CONTENDERS if c.name in wanted]
    missing = [c for c in libraries if not c.available()]
    if missing and not args.allow_missing:
        print("not installed: " + ", ".join(c.name for c in missing)
              + "; use `tox -e bench` (or --allow-missing)", file=sys.stderr)
        return 2
    libraries = [c for c in libraries if c.available()]

    out: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        out.append(text)

    header = machine(load=True, skipped=[c.name for c in missing], quick=args.quick)
    say(header)
    say()
    rows: list[OutageRow] = []
    with tempfile.TemporaryDirectory() as folder:
        redis = _start_redis(folder) if "redis" in stores else None
        if "redis" in stores and redis is None:
            say("RedisTokenStore rows skipped: needs redis-server on PATH and redis-py.")
            say()
            stores.remove("redis")
        server = ServerProcess()
        try:
            for length in lengths:
                for contender in libraries:
                    print(f"... {contender.name}, {length:g} s outage", file=sys.stderr, flush=True)
                    rows.append(run_library(contender, server, settings, length))
                for store in stores:
                    print(f"... reqcc fleet, {store}, {length:g} s outage", file=sys.stderr, flush=True)
                    rows.append(run_fleet(store, server, settings, length, folder,
                                          None if redis is None else redis.url))
        finally:
            server.close()
            if redis is not None:
                redis.stop()
    say(f"Token lifetime {settings.lifetime:g} s; the endpoint answers 503 for the outage, "
        f"{settings.pre:g} s after the start. One process: {settings.threads} threads on one "
        f"session, a GET every {settings.interval:g} s each. Fleets: {settings.fleet_processes} "
        f"processes x {settings.fleet_threads} threads. Load average at the end: "
        f"{os.getloadavg()[0]:.2f}.")
    say()
    say(table(rows))
    say()
    errors = [f"{r.name} ({r.outage:.1f} s): " + ", ".join(f"{k} x{v}" for k, v in sorted(r.errors.items()))
              for r in rows if r.errors]
    if errors:
        say("Failures seen, by status or exception:")
        say()
        for line in errors:
            say(f"- {line}")
        say()
    examples = [f"{r.name} ({r.outage:.1f} s): {e}" for r in rows for e in r.usable_examples]
    if examples:
        say("Failed while a usable token existed (the first five of each row):")
        say()
        for line in examples:
            say(f"- {line}")
        say()
    say("Targets for reqcc (issue 18):")
    say()
    checks = targets(rows)
    for met, text in checks:
        say(f"- [{'met' if met else 'MISSED'}] {text}")
    say()
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"rows": [asdict(r) for r in rows], "targets": [{"met": m, "text": t} for m, t in checks],
             "settings": asdict(settings)}, indent=2))
    if args.update_docs:
        update_docs(args.update_docs, LENGTHS_BLOCK if args.outages else OUTAGE_BLOCK, "\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
