"""Async rows (issue 20): coroutines on one httpx AsyncClient, reqcc beside Authlib and httpx-auth.

    python benchmarks/async_load.py                  # the full run (about 4 minutes: 3 rounds)
    python benchmarks/async_load.py --shape api-latency   # the API takes 50-250 ms to answer
    python benchmarks/async_load.py --quick          # one tiny iteration (the smoke test)
    python benchmarks/async_load.py --help           # every knob: rounds, coroutines, --only, ...
    python benchmarks/run.py --async                 # the default shape, after run.py's own runs

1. The load run: ``coroutines`` coroutines send GET requests for ``duration`` seconds on one
   ``AsyncClient`` (asyncio), tokens live ``lifetime`` seconds and take ``delay`` seconds to
   mint, and the token endpoint is down (503) for ``outage`` seconds in the middle. Per
   library: requests completed, failed (an exception or a non-200), token requests, p99
   latency, and the event loop's lag (a ticker coroutine that sleeps ``tick`` seconds: how
   much later than asked it woke up), p99 and max. The server is benchmarks/server.py in a
   child process (the same for every library). Two shapes (``--shape``):

   - ``saturated`` (the default): the API answers at once, so the client is CPU-bound and
     its event loop saturated: the loop lag is mostly the HTTP client's own work (its
     connection pool's bookkeeping above all), whatever the token library;
   - ``api-latency``: the API takes ``api_latency`` seconds (uniformly random, 50-250 ms)
     to answer, as real APIs do, so the client is not saturated and the loop lag measures
     what a token library controls: whether it blocks the loop (while it fetches, during
     the outage).
2. The warm per-request cost: ``reqcc.httpx`` against the same client with a static
   ``Authorization`` header (the floor), sync and async, through ``httpx.MockTransport``
   (no network): the median of rounds of CPU time per request, and its ratio to the floor.

Each library is configured as its documentation recommends; its default early-expiry
margin is scaled by ``lifetime / 3600`` as in run.py. Figures on a shared machine are
noisy: read the ratios and the counts, not the microseconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from report import ms, num, percentile, rst_table  # noqa: E402
from server import STATIC_TOKEN  # noqa: E402
from server_process import ServerProcess  # noqa: E402

CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret"


@dataclass
class AsyncSettings:
    """How much to run."""

    coroutines: int = 200
    duration: float = 10.0
    lifetime: float = 4.0
    delay: float = 0.3
    outage_start: float = 4.5
    outage_length: float = 1.5
    tick: float = 0.005
    #: The client's pool: ``max_connections`` (and as many kept alive), for every library.
    connections: int = 100
    #: The API's answer takes this many seconds, uniformly random in ``[low, high]``.
    api_latency: tuple[float, float] = (0.0, 0.0)
    #: Which shape this is (``SHAPES``); only named in the report.
    shape: str = "saturated"
    warm_requests: int = 300
    warm_repeats: int = 15
    #: Rounds of the load run: each runs every library once, in turn; a row is the rounds' medians.
    rounds: int = 3
    #: Whether reqcc and httpx-auth start the load without a token. By default every token
    #: library holds its first token when the load starts, as Authlib's client must
    #: (``fetch_token()`` first: it sends no request without a token), so that all start alike.
    cold: bool = False

    @classmethod
    def quick(cls) -> AsyncSettings:
        """One tiny iteration: for the smoke test, not for numbers."""
        return cls(
            coroutines=5, duration=0.6, lifetime=1.0, delay=0.01, outage_start=0.2, outage_length=0.1,
            warm_requests=10, warm_repeats=1, rounds=1,
        )


#: The load shapes ``--shape`` picks: the settings each one changes.
SHAPES: dict[str, dict[str, Any]] = {
    "saturated": {"api_latency": (0.0, 0.0)},
    "api-latency": {"api_latency": (0.05, 0.25)},
}


@dataclass
class LoadResult:
    """What one library did in the load run."""

    name: str
    requests: int = 0
    failures: int = 0
    token_requests: int = 0
    #: CPU seconds the client process spent in the load (its loop and its threads), from the
    #: first request on (not the imports and set-up of opening the client).
    cpu: float = 0.0
    #: 401 answers the API gave (a token that expired before the request reached it, ...).
    api_401s: int = 0
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    #: When each lag was measured (``time.perf_counter()``: on Linux the server's monotonic clock).
    lag_times: list[float] = field(default_factory=list)
    #: The loop lag of the ticks that overlapped a token request at the server (what a token
    #: library controls: does it block the loop while it fetches?).
    fetch_lags: list[float] = field(default_factory=list)
    note: str = ""


Send = Callable[[str], Awaitable[int]]


@dataclass
class AsyncContender:
    """A library and how to build its client: ``open(server, settings)`` yields ``send(url) -> status``."""

    name: str
    module: str
    open: Callable[[ServerProcess, AsyncSettings], Any]

    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


def _scaled(margin: float, settings: AsyncSettings) -> float:
    return margin * settings.lifetime / 3600.0


def _limits(module: Any, settings: AsyncSettings) -> Any:
    connections = settings.connections
    return module.Limits(max_connections=connections, max_keepalive_connections=connections)


def _sender(client: Any, *, paced: bool = False) -> Send:
    """``send(url) -> status`` through ``client``; ``paced``: each request first passes an
    empty ``anyio.Lock`` (``async with lock: pass``), as Authlib's requests pass its token lock."""
    import anyio

    lock = anyio.Lock()

    async def send(url: str) -> int:
        if paced:
            async with lock:
                pass
        return int((await client.get(url)).status_code)

    return send


def _reqcc_on(module_name: str, *, paced: bool = False) -> Callable[[ServerProcess, AsyncSettings], Any]:
    """reqcc's auth on ``module_name``'s ``AsyncClient``; ``paced``: as the floor's paced row.

    The paced row is not a configuration to recommend: it shows what the admission control
    of a lock every request passes (Authlib's) does to reqcc, so that reqcc and Authlib can
    be compared with it on both sides.
    """

    @asynccontextmanager
    async def open_(server: ServerProcess, settings: AsyncSettings) -> AsyncIterator[Send]:

        module = importlib.import_module(module_name)
        auth_module = importlib.import_module(f"reqcc.{module_name}")
        auth = auth_module.ClientCredentialsAuth(
            token_url=server.token_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
            base_url=server.api_url, clock_skew=_scaled(30.0, settings),  # reqcc's default margin, 30 s
        )
        async with module.AsyncClient(
            auth=auth, limits=_limits(module, settings), timeout=30,
            event_hooks={"request": [auth.keep_home]},
        ) as client:
            if not settings.cold:  # the first token, before the load, as Authlib's client gets it
                await client.get(server.api_url + "books")
            yield _sender(client, paced=paced)
        auth.close()

    return open_


@asynccontextmanager
async def _authlib(server: ServerProcess, settings: AsyncSettings) -> AsyncIterator[Send]:
    """Authlib's ``AsyncOAuth2Client`` with ``grant_type="client_credentials"``: it fetches a
    new token when the held one is within ``leeway`` (default 60 s) of expiring, under an
    anyio lock every request takes (its "Auto Update Token" docs). The same pool limits as the
    others (its default keeps 20 connections alive, not 100)."""
    try:  # Authlib's client runs on httpx2 where it is installed (3.11+), else on httpx
        import httpx2
    except ImportError:
        import httpx as httpx2
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    client = AsyncOAuth2Client(
        CLIENT_ID, CLIENT_SECRET, token_endpoint=server.token_url, grant_type="client_credentials",
        leeway=_scaled(60.0, settings), timeout=30, limits=_limits(httpx2, settings),
    )
    async with client:
        await client.fetch_token()

        async def send(url: str) -> int:
            return int((await client.get(url)).status_code)

        yield send


@asynccontextmanager
async def _httpx_auth(server: ServerProcess, settings: AsyncSettings) -> AsyncIterator[Send]:
    """httpx-auth's ``OAuth2ClientCredentials`` on an ``httpx.AsyncClient``: its token request
    is sent by a sync ``httpx.Client`` inside the auth flow, on the event loop."""
    import httpx
    import httpx_auth

    httpx_auth.OAuth2.token_cache.clear()  # its cache is global: no token from an earlier run
    with httpx.Client(timeout=30) as token_client:
        auth = httpx_auth.OAuth2ClientCredentials(
            server.token_url, CLIENT_ID, CLIENT_SECRET, early_expiry=_scaled(30.0, settings),
            client=token_client,
        )
        async with httpx.AsyncClient(auth=auth, limits=_limits(httpx, settings), timeout=30) as client:
            if not settings.cold:  # the first token, before the load, as Authlib's client gets it
                await client.get(server.api_url + "books")

            async def send(url: str) -> int:
                return int((await client.get(url)).status_code)

            yield send


def _static(module_name: str, *, paced: bool = False) -> Callable[[ServerProcess, AsyncSettings], Any]:
    """No token library: a static ``Authorization`` header (the floor).

    ``paced``: each request first passes an empty ``anyio.Lock`` (``async with lock: pass``),
    as every request of Authlib's ``AsyncOAuth2Client`` passes its token lock. Under load an
    uncontended ``acquire`` yields while holding the lock, so the coroutines pass it one per
    loop iteration: an admission control that bounds each iteration's work (and the pool's).
    This row shows how much of a difference between libraries is that, not their token
    handling.
    """

    @asynccontextmanager
    async def open_(server: ServerProcess, settings: AsyncSettings) -> AsyncIterator[Send]:

        module = importlib.import_module(module_name)
        async with module.AsyncClient(
            headers={"Authorization": f"Bearer {STATIC_TOKEN}"}, limits=_limits(module, settings),
            timeout=30,
        ) as client:
            yield _sender(client, paced=paced)

    return open_


CONTENDERS = [
    AsyncContender("floor: httpx, static header", "httpx", _static("httpx")),
    AsyncContender("reqcc (httpx)", "httpx", _reqcc_on("httpx")),
    AsyncContender("httpx-auth", "httpx_auth", _httpx_auth),
    AsyncContender("floor: httpx2, static header", "httpx2", _static("httpx2")),
    AsyncContender("floor: httpx2, static header, paced", "httpx2", _static("httpx2", paced=True)),
    AsyncContender("reqcc (httpx2)", "httpx2", _reqcc_on("httpx2")),
    AsyncContender("reqcc (httpx2), paced", "httpx2", _reqcc_on("httpx2", paced=True)),
    AsyncContender("Authlib AsyncOAuth2Client (httpx2)", "authlib", _authlib),
]


# -- 1. the load run ------------------------------------------------------------------------


def load_run(contender: AsyncContender, server: ServerProcess, settings: AsyncSettings) -> LoadResult:
    """Run the load against ``server`` with ``contender``'s client; return what happened."""
    import anyio

    server.control(
        reset=True, lifetime=settings.lifetime, delay=settings.delay, down=False,
        api_latency=list(settings.api_latency),
    )
    result = LoadResult(contender.name)
    url = server.api_url + "books"
    # The outage is switched from threads: the control call blocks, and must not block the loop.
    timers = [
        threading.Timer(settings.outage_start, server.control, kwargs={"down": True}),
        threading.Timer(
            settings.outage_start + settings.outage_length, server.control, kwargs={"down": False}
        ),
    ]

    async def main() -> None:
        async with contender.open(server, settings) as send:
            end = time.perf_counter() + settings.duration
            stop = False

            async def worker() -> None:
                while time.perf_counter() < end:
                    started = time.perf_counter()
                    try:
                        ok = await send(url) == 200
                    except Exception:
                        ok = False
                    result.latencies.append(time.perf_counter() - started)
                    result.requests += 1
                    result.failures += not ok

            async def ticker() -> None:
                last = time.perf_counter()
                while not stop:
                    await anyio.sleep(settings.tick)
                    now = time.perf_counter()
                    result.lags.append(max(0.0, now - last - settings.tick))
                    result.lag_times.append(now)
                    last = now

            for timer in timers:
                timer.start()
            # The CPU time of the load alone: not the imports and set-up of opening the client.
            cpu = time.process_time()
            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker)
                async with anyio.create_task_group() as workers:
                    for _ in range(settings.coroutines):
                        workers.start_soon(worker)
                stop = True
            result.cpu = time.process_time() - cpu

    try:
        anyio.run(main, backend="asyncio")
    finally:
        for timer in timers:
            timer.cancel()
            if timer.ident is not None:  # started (not when opening the client failed first)
                timer.join()
        server.control(down=False)
    stats = server.stats()
    result.token_requests = len(stats["token_hits"])
    result.api_401s = int(stats["api_401s"])
    result.fetch_lags = lags_during(result, stats["token_hits"], settings.tick)
    return result


def lags_during(result: LoadResult, hits: Sequence[Sequence[float]], tick: float) -> list[float]:
    """The lags of the ticks whose sleep overlapped a token request (``(received, answered, …)``).

    A tick measured at ``t`` with lag ``lag`` slept from ``t - tick - lag`` to ``t``; the server's
    timestamps are ``time.monotonic()``, the same clock as the driver's ``perf_counter`` on Linux.
    """
    spans = [(hit[0], hit[1]) for hit in hits]
    return [
        lag
        for lag, t in zip(result.lags, result.lag_times, strict=True)
        if any(start <= t and t - tick - lag <= end for start, end in spans)
    ]


def ideal_token_requests(settings: AsyncSettings) -> int:
    """Tokens a client needs at least: one per lifetime the run spans (renewing ahead adds at most one)."""
    import math

    return max(1, math.ceil(settings.duration / settings.lifetime))


def _figures(r: LoadResult) -> dict[str, float]:
    return {
        "requests": r.requests, "failures": r.failures, "token_requests": r.token_requests,
        "api_401s": r.api_401s, "cpu_per_request": r.cpu / r.requests if r.requests else float("nan"),
        "p99": percentile(r.latencies, 99), "lag_p99": percentile(r.lags, 99),
        "lag_max": max(r.lags, default=float("nan")),
        "lag_fetch_max": max(r.fetch_lags, default=float("nan")),
    }


def medians(rounds: Sequence[Sequence[LoadResult]]) -> list[tuple[str, dict[str, float]]]:
    """Each library's figures, the median over the rounds (one list of results per round)."""
    out = []
    for index, first in enumerate(rounds[0]):
        figures = [_figures(results[index]) for results in rounds]
        out.append((first.name, {key: percentile([f[key] for f in figures], 50) for key in figures[0]}))
    return out


def load_table(rows: Sequence[tuple[str, dict[str, float]]]) -> str:
    return rst_table(
        ["library", "requests", "failed", "token requests", "API 401s", "CPU µs/request", "p99 ms",
         "loop lag p99 ms", "loop lag max ms", "lag max during fetch ms"],
        [
            [
                name, num(f["requests"]), num(f["failures"]), num(f["token_requests"]), num(f["api_401s"]),
                f"{f['cpu_per_request'] * 1e6:.0f}",
                ms(f["p99"]), ms(f["lag_p99"]), ms(f["lag_max"]), ms(f["lag_fetch_max"]),
            ]
            for name, f in rows
        ],
    )


# -- 2. the warm per-request cost -----------------------------------------------------------


def _cpu_per_request(send: Callable[[], Any], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        send()
    return (time.process_time() - started) / n


def in_process_token_session() -> Any:
    """A ``requests.Session`` whose https token requests are answered in process (a 1-hour Bearer token)."""
    import requests

    class Stub(requests.adapters.BaseAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
            response = requests.Response()
            response.status_code = 200
            response._content = b'{"access_token": "tok-1", "token_type": "Bearer", "expires_in": 3600}'
            response.headers["Content-Type"] = "application/json"
            response.request = request
            return response

        def close(self) -> None:
            pass

    session = requests.Session()
    session.mount("https://", Stub())
    return session


def warm_cost(settings: AsyncSettings) -> dict[str, tuple[float, float]]:
    """``{"sync"|"async": (reqcc µs, ratio to the floor)}``: medians over the rounds."""
    import anyio
    import httpx

    from reqcc.httpx import ClientCredentialsAuth

    url = "https://api.bench.invalid/books"
    token_url = "https://auth.bench.invalid/token"  # answered by the Stub adapter below

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"id": 1}')

    def auth() -> ClientCredentialsAuth:
        session = in_process_token_session()
        return ClientCredentialsAuth(
            token_url=token_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
            base_url="https://api.bench.invalid/", token_session=session,
        )

    floor_headers = {"Authorization": f"Bearer {STATIC_TOKEN}"}
    out: dict[str, tuple[float, float]] = {}

    sync_floor = httpx.Client(transport=httpx.MockTransport(handler), headers=floor_headers)
    sync_auth = auth()
    sync_reqcc = httpx.Client(transport=httpx.MockTransport(handler), auth=sync_auth)
    sync_reqcc.get(url)  # warm: the token is held from here on
    ratios, times = [], []
    for _ in range(settings.warm_repeats):
        floor = _cpu_per_request(lambda: sync_floor.get(url), settings.warm_requests)
        ours = _cpu_per_request(lambda: sync_reqcc.get(url), settings.warm_requests)
        ratios.append(ours / floor)
        times.append(ours)
    out["sync"] = (percentile(times, 50) * 1e6, percentile(ratios, 50))

    async def async_rounds() -> tuple[list[float], list[float]]:
        a_auth = auth()
        async with (
            httpx.AsyncClient(transport=httpx.MockTransport(handler), headers=floor_headers) as floor_client,
            httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=a_auth) as reqcc_client,
        ):
            await reqcc_client.get(url)
            ratios, times = [], []
            for _ in range(settings.warm_repeats):
                started = time.process_time()
                for _ in range(settings.warm_requests):
                    await floor_client.get(url)
                floor = (time.process_time() - started) / settings.warm_requests
                started = time.process_time()
                for _ in range(settings.warm_requests):
                    await reqcc_client.get(url)
                ours = (time.process_time() - started) / settings.warm_requests
                ratios.append(ours / floor)
                times.append(ours)
            return times, ratios

    times, ratios = anyio.run(async_rounds, backend="asyncio")
    out["async"] = (percentile(times, 50) * 1e6, percentile(ratios, 50))
    return out


def warm_table(costs: dict[str, tuple[float, float]]) -> str:
    return rst_table(
        ["client", "reqcc.httpx µs/request", "x static header"],
        [[name, f"{us:.0f}", f"{ratio:.3f}"] for name, (us, ratio) in costs.items()],
    )


# -- the report -----------------------------------------------------------------------------


def report(
    settings: AsyncSettings,
    *,
    allow_missing: bool = True,
    say: Callable[[str], None] = print,
    only: Sequence[str] = (),
    warm: bool = True,
) -> dict[str, Any]:
    """Run both, print the tables through ``say``; return the raw figures.

    ``only``: run just the libraries whose name contains one of these texts (any case).
    ``warm``: also measure the warm per-request cost.
    """
    logging.getLogger("reqcc").addHandler(logging.NullHandler())
    chosen = [c for c in CONTENDERS if not only or any(o.lower() in c.name.lower() for o in only)]
    present = [c for c in chosen if c.available()]
    missing = [c.name for c in chosen if not c.available()]
    if missing and not allow_missing:
        raise SystemExit(f"not installed: {', '.join(missing)}")
    server = ServerProcess()
    try:
        rounds = []
        for round_ in range(settings.rounds):
            results = []
            for contender in present:
                print(f"... async load, round {round_ + 1}: {contender.name}", file=sys.stderr, flush=True)
                results.append(load_run(contender, server, settings))
            rounds.append(results)
    finally:
        server.close()
    rows = medians(rounds) if present else []
    low, high = settings.api_latency
    answers = f"{low * 1000:g}-{high * 1000:g} ms" if high > 0 else "at once"
    say(
        f"Async load, shape {settings.shape!r}: {settings.coroutines} coroutines on one AsyncClient "
        f"(asyncio, {settings.connections} connections) for {settings.duration:g} s; the API answers "
        f"{answers}; tokens live {settings.lifetime:g} s and take {settings.delay:g} s to mint; the "
        f"token endpoint is down from {settings.outage_start:g} s for {settings.outage_length:g} s. "
        f"At least {ideal_token_requests(settings)} token requests are needed. Loop lag: how much later "
        f"than asked a {settings.tick * 1000:g} ms sleep woke up. Medians of {settings.rounds} "
        "round(s), each running every library in turn. "
        + (
            "The token libraries start without a token (--cold), except a client that must fetch "
            "its first one itself."
            if settings.cold
            else "Every token library holds its first token when the load starts (as a client that "
            "must fetch one before its first request does)."
        )
        + (f" Not installed: {', '.join(missing)}." if missing else "")
    )
    say("")
    say(load_table(rows))
    say("")
    costs = warm_cost(settings) if warm else {}
    if warm:
        say(
            f"Warm per-request cost of reqcc.httpx against a static Authorization header, through "
            f"httpx.MockTransport ({settings.warm_repeats} rounds x {settings.warm_requests} requests, "
            "CPU time, medians):"
        )
        say("")
        say(warm_table(costs))
    return {
        "settings": {"shape": settings.shape, "api_latency": list(settings.api_latency)},
        "load": [{"name": name, **figures} for name, figures in rows],
        "rounds": [[{"name": r.name, **_figures(r)} for r in results] for results in rounds],
        "warm": costs,
    }


def settings_from(args: argparse.Namespace) -> AsyncSettings:
    """The settings the command line asks for: ``--quick`` or the defaults, the shape, then each knob."""
    settings = AsyncSettings.quick() if args.quick else AsyncSettings()
    settings.shape = args.shape
    for name, value in SHAPES[args.shape].items():
        setattr(settings, name, value)
    for name in (
        "coroutines", "connections", "duration", "lifetime", "delay",
        "outage_start", "outage_length", "rounds",
    ):
        value = getattr(args, name)
        if value is not None:
            setattr(settings, name, value)
    if args.api_latency is not None:
        settings.api_latency = (args.api_latency[0], args.api_latency[1])
    settings.cold = bool(getattr(args, "cold", False))
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="one tiny iteration (smoke test)")
    parser.add_argument(
        "--shape", choices=sorted(SHAPES), default="saturated",
        help="saturated: the API answers at once (default); api-latency: it takes 50-250 ms",
    )
    parser.add_argument("--rounds", type=int, help="rounds of the load run (default 3)")
    parser.add_argument("--coroutines", type=int, help="concurrent coroutines (default 200)")
    parser.add_argument("--connections", type=int, help="the client's pool size (default 100)")
    parser.add_argument("--duration", type=float, help="seconds per library and round (default 10)")
    parser.add_argument("--lifetime", type=float, help="token lifetime, seconds (default 4)")
    parser.add_argument("--delay", type=float, help="seconds to mint a token (default 0.3)")
    parser.add_argument("--outage-start", type=float, help="the outage begins, seconds (default 4.5)")
    parser.add_argument("--outage-length", type=float, help="the outage lasts, seconds (default 1.5)")
    parser.add_argument(
        "--api-latency", type=float, nargs=2, metavar=("LOW", "HIGH"),
        help="the API answers after LOW-HIGH seconds (overrides the shape's)",
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="TEXT",
        help="run only the libraries whose name contains TEXT (repeatable)",
    )
    parser.add_argument("--no-warm", action="store_true", help="skip the warm per-request cost")
    parser.add_argument(
        "--cold", action="store_true",
        help="reqcc and httpx-auth start the load without a token (Authlib's client cannot)",
    )
    args = parser.parse_args(argv)
    report(settings_from(args), only=args.only, warm=not args.no_warm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
