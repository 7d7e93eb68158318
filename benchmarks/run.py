"""reqcc against the libraries its users would pick instead, measured side by side in one run.

    python benchmarks/run.py                  # the full run (about 2.5 minutes on 2 cores)
    python benchmarks/run.py --quick          # one tiny iteration of everything (the smoke test)
    python benchmarks/run.py --update-docs    # also rewrite the blocks of docs/performance.rst
    python benchmarks/run.py --async          # also the async rows (benchmarks/async_load.py)
    tox -e bench                              # the same, contenders installed by tox

What is measured (ISSUE 6):

1. per-request overhead with a warm token and no network: every library's session sends
   through the same stub transport, which builds a fresh 200 per request (overhead.py;
   ``trust_env`` off on every session; CPU time of the measuring thread);
2. the same over real HTTP/1.1 keep-alive to one local server (in its own process);
3. 32 threads x 200 requests spanning 3.5 token lifetimes against a counting token server
   that takes 75 ms per token: token requests, failed/401 requests, latency near token
   renewals and elsewhere;
4. the same with the token endpoint down (503) for 10 s in the middle;
5. memory per session (tracemalloc) and import time (``python -X importtime``).

Token lifetimes are compressed (seconds, not hours); each library's own default early-expiry
margin is scaled by the same factor (lifetime / 3600 s). Every library is configured as its
documentation recommends for the client-credentials grant (see contenders.py).

The pieces: settings.py (how much to run), overhead.py (runs 1 and 2, and the standalone
in-process overhead table), concurrency.py (runs 3 and 4), footprint.py (run 5),
server.py with server_process.py (the local servers in a child process), async_load.py
(the async rows, behind ``--async``), contenders.py
(the libraries and how each is configured) and report.py (tables and the docs page's blocks).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script from anywhere, or imported by the smoke test
    sys.path.insert(0, str(HERE))

# The local runs speak plain http to 127.0.0.1. reqcc and Authlib allow loopback http by
# design; oauthlib (under requests-oauthlib) refuses any http URL unless this variable is set.
# Set for this benchmark process only; reqcc itself never reads or sets it.
os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

import contenders as cs  # noqa: E402
import overhead  # noqa: E402
from concurrency import outage_table, run_threads, summarize_run3, summarize_run4  # noqa: E402
from footprint import IMPORTS, import_time, memory_per_session  # noqa: E402
from report import (  # noqa: E402
    DOCS_PAGE,
    OVERHEAD_BLOCK,
    PERFORMANCE_BLOCK,
    machine,
    ms,
    num,
    percentile,
    rst_table,
    update_docs,
)
from server_process import ServerProcess  # noqa: E402
from settings import Settings  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    """Run everything, print the report; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="one tiny iteration (smoke test)")
    parser.add_argument(
        "--allow-missing", action="store_true",
        help="skip contenders that are not installed instead of failing (the smoke test's plain env)",
    )
    parser.add_argument(
        "--update-docs", nargs="?", const=DOCS_PAGE, type=Path, metavar="PAGE",
        help="also rewrite the two benchmark blocks of PAGE (default: docs/performance.rst)",
    )
    parser.add_argument(  # the old name, from when the tables lived in README.rst
        "--update-readme", dest="update_docs", action="store_const", const=DOCS_PAGE, help=argparse.SUPPRESS
    )
    parser.add_argument("--json", metavar="PATH", help="also write the raw figures as JSON")
    parser.add_argument(
        "--async", dest="async_rows", action="store_true",
        help="also the async rows (benchmarks/async_load.py: httpx AsyncClient, reqcc beside "
        "Authlib and httpx-auth; about a minute more)",
    )
    args = parser.parse_args(argv)
    if "--update-readme" in (sys.argv[1:] if argv is None else argv):
        print("--update-readme is deprecated: it is --update-docs, and writes docs/performance.rst",
              file=sys.stderr)
    logging.getLogger("reqcc").addHandler(logging.NullHandler())  # its expected warnings: not here
    settings = Settings.quick() if args.quick else Settings()

    missing = [c for c in cs.CONTENDERS if not c.available()]
    if missing and not args.allow_missing:
        names = ", ".join(c.name for c in missing)
        print(f"not installed: {names}; use `tox -e bench` (or --allow-missing)", file=sys.stderr)
        return 2
    present = [c for c in cs.CONTENDERS if c.available()]
    token_libs = [c for c in present if c is not cs.FLOOR]

    out: list[str] = []  # the report: docs/performance.rst's performance block
    raw: dict[str, Any] = {}

    def say(text: str = "") -> None:
        print(text, flush=True)
        out.append(text)

    started = time.monotonic()
    header = machine(skipped=[c.name for c in missing], quick=args.quick)
    say(header)
    say()

    # 1 + 2 ---------------------------------------------------------------------------
    print("... run 1: in-process, stub transport", file=sys.stderr, flush=True)
    variants, variant_notes = overhead.buildable(cs.REQCC_VARIANTS, cs.stub_env())
    inproc = overhead.time_requests(
        present + variants, cs.stub_env(), settings.inproc_requests, settings.inproc_repeats,
        overhead.CPU_CLOCK,
    )
    server = ServerProcess()
    try:
        print("... run 2: loopback HTTP keep-alive", file=sys.stderr, flush=True)
        server.control(reset=True, lifetime=3600, delay=0.0, down=False)
        loop_env = cs.Env(server.api_url, server.token_url, cs.pooled_transport(4))
        loop = overhead.time_requests(present, loop_env, settings.loop_requests, settings.loop_repeats)

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
        f"({settings.inproc_repeats} rounds x {settings.inproc_requests} requests, CPU time) and over "
        f"loopback HTTP keep-alive ({settings.loop_repeats} rounds x {settings.loop_requests}, wall "
        "time); µs is the median of the rounds, 'x floor' the median of the per-round ratios to "
        "the floor, with their quartiles (the noise). Memory: tracemalloc, per warmed-up session. Import: "
        "``python -X importtime``, ms for ``import requests`` plus the package, and the part "
        "over requests alone.")
    say()
    rows = []
    for c in present:
        a, b = inproc[c.name], loop[c.name]
        rows.append([
            c.name,
            f"{a.median_us:.0f}", f"{a.ratio:.3f} ({a.ratio_iqr[0]:.2f}-{a.ratio_iqr[1]:.2f})",
            f"{b.median_us:.0f}", f"{b.ratio:.3f} ({b.ratio_iqr[0]:.2f}-{b.ratio_iqr[1]:.2f})",
            f"{memory[c.name]:.1f}", num(imports[c.name][0]), num(imports[c.name][1]),
        ])
    say(rst_table(
        ["library", "in-process µs", "x floor (IQR)", "loopback µs", "x floor (IQR)",
         "KiB/session", "import ms", "over requests"],
        rows,
    ))
    say()
    # Run 1 in detail: its own block of the docs page (the one overhead.py also writes).
    detail = overhead.report(
        inproc, settings.inproc_repeats, settings.inproc_requests, variant_notes, header
    )
    print("Run 1 in detail (benchmarks/overhead.py's table, with reqcc's variant rows):", flush=True)
    print(flush=True)
    print(detail.split("\n\n", 1)[1], flush=True)
    print(flush=True)

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
        t_in = inproc["reqcc"]
        r_in = t_in.ratio
        r_loop = loop["reqcc"].ratio
        r3 = next(r for r in rows3 if r.name == "reqcc")
        r4 = next(r for r in rows4 if r.name == "reqcc")
        r4b = next(r for r in rows4b if r.name == "reqcc")
        p99_near, p99_else = percentile(r3.near, 99), percentile(r3.elsewhere, 99)
        bound = 2 * settings.outage_length
        targets = [
            (r_in <= 1.02,
             f"in-process overhead at most 1.02x the floor (median of {settings.inproc_repeats} "
             f"rounds): x{r_in:.3f}, IQR {t_in.ratio_iqr[0]:.3f}-{t_in.ratio_iqr[1]:.3f}"),
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
    if args.async_rows:
        import async_load

        print("... async rows: benchmarks/async_load.py", file=sys.stderr, flush=True)
        async_settings = async_load.AsyncSettings.quick() if args.quick else async_load.AsyncSettings()
        raw["async"] = async_load.report(async_settings, allow_missing=args.allow_missing, say=say)
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
    if args.update_docs:
        update_docs(args.update_docs, PERFORMANCE_BLOCK, "\n".join(out))
        update_docs(args.update_docs, OVERHEAD_BLOCK, detail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
