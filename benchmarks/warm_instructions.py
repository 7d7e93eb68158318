"""The warm per-request cost of ``reqcc.httpx`` in instructions: not noisy, unlike wall time (issue 20).

    python benchmarks/warm_instructions.py            # the table (about a minute; needs valgrind)
    python benchmarks/warm_instructions.py --quick    # one run of each workload, no valgrind

Each row runs a workload under ``valgrind --tool=cachegrind`` twice, with ``LOW`` and ``HIGH``
warm requests through ``MockTransport`` (no network), and reports the difference of the
instructions counted divided by ``HIGH - LOW``: the instructions of one warm request, start-up
and warm-up cancelled out (repeatable to about 0.1 %). The floor is the same client with a
static ``Authorization`` header (``floor``), or with a request hook that does nothing
(``floor-hook``, for ``reqcc-hook``: reqcc with ``keep_home`` installed).

A workload alone: ``python benchmarks/warm_instructions.py --workload httpx reqcc sync 100``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
URL = "https://api.bench.invalid/books"
LOW, HIGH = 200, 1200
#: (module, floor mode, reqcc mode, flavour) of each row.
ROWS = [
    ("httpx", "floor", "reqcc", "sync"),
    ("httpx", "floor", "reqcc", "async"),
    ("httpx2", "floor", "reqcc", "sync"),
    ("httpx2", "floor", "reqcc", "async"),
    ("httpx", "floor-hook", "reqcc-hook", "sync"),
]


def _auth(module_name: str) -> Any:
    """A ``ClientCredentialsAuth`` whose token endpoint is answered in process."""
    from async_load import in_process_token_session  # benchmarks/ is the script's folder

    session = in_process_token_session()
    return importlib.import_module(f"reqcc.{module_name}").ClientCredentialsAuth(
        token_url="https://auth.bench.invalid/token", client_id="bench", client_secret="bench-secret",
        base_url="https://api.bench.invalid/", token_session=session,
    )


def workload(module_name: str, mode: str, flavour: str, requests_: int) -> None:
    """Send 3 warm-up requests, then ``requests_`` warm ones (the part cachegrind counts)."""
    module = importlib.import_module(module_name)

    def handler(request: Any) -> Any:
        return module.Response(200, content=b'{"id": 1}')

    options: dict[str, Any] = {"transport": module.MockTransport(handler)}
    if mode.startswith("floor"):
        options["headers"] = {"Authorization": "Bearer static-token-0123456789"}
        if mode == "floor-hook":
            options["event_hooks"] = {"request": [_nothing if flavour == "sync" else _anothing]}
    else:
        auth = options["auth"] = _auth(module_name)
        if mode == "reqcc-hook":
            options["event_hooks"] = {"request": [auth.keep_home]}
    if flavour == "sync":
        with module.Client(**options) as client:
            for _ in range(3 + requests_):
                client.get(URL)
        return

    async def run() -> None:
        async with module.AsyncClient(**options) as client:
            for _ in range(3 + requests_):
                await client.get(URL)

    asyncio.run(run())


def _nothing(request: Any) -> None:
    return None


async def _anothing(request: Any) -> None:
    return None


_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def instructions(output: str) -> int:
    """The ``I refs`` count of cachegrind's summary in ``output``."""
    match = _REFS.search(output)
    if match is None:
        raise ValueError("no 'I refs' line in cachegrind's output")
    return int(match.group(1).replace(",", ""))


def counted(module_name: str, mode: str, flavour: str, requests_: int) -> int:
    """Instructions of a whole run of :func:`workload` under cachegrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (try --quick, which needs none)")
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
            sys.executable, __file__, "--workload", module_name, mode, flavour, str(requests_),
        ],
        capture_output=True, text=True, env=env, check=True, timeout=600,
    )
    return instructions(proc.stderr)


def per_request(module_name: str, mode: str, flavour: str) -> int:
    """Instructions of one warm request: ``(count(HIGH) - count(LOW)) / (HIGH - LOW)``."""
    low, high = (counted(module_name, mode, flavour, n) for n in (LOW, HIGH))
    return (high - low) // (HIGH - LOW)


def table(measure: Callable[[str, str, str], int]) -> str:
    """The rows as text: client, floor, reqcc, ratio."""
    lines = [f"{'client':32} {'floor':>10} {'reqcc':>10} {'ratio':>7}"]
    for module_name, floor_mode, mode, flavour in ROWS:
        floor, ours = measure(module_name, floor_mode, flavour), measure(module_name, mode, flavour)
        name = f"{module_name}, {flavour}" + (", keep_home" if mode == "reqcc-hook" else "")
        lines.append(f"{name:32} {floor:>10,} {ours:>10,} {ours / floor:>7.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="run each workload once, without valgrind")
    parser.add_argument("--workload", nargs=4, metavar=("MODULE", "MODE", "FLAVOUR", "N"))
    args = parser.parse_args(argv)
    if args.workload:
        module_name, mode, flavour, n = args.workload
        workload(module_name, mode, flavour, int(n))
        return 0
    if args.quick:
        for module_name, floor_mode, mode, flavour in ROWS:
            for m in (floor_mode, mode):
                workload(module_name, m, flavour, 2)
        print("Warm instructions: every workload ran (no counts with --quick)")
        return 0
    print("Warm per-request cost in instructions (cachegrind), per request:")
    print(table(per_request))
    return 0


if __name__ == "__main__":
    sys.exit(main())
