"""``reqcc demo``: a guided tour of reqcc against a real local authorization server.

It starts a :class:`~reqcc.testing.LocalAuthorizationServer` on 127.0.0.1 and checks, step
by step, what reqcc promises: the first request fetches a token; many threads reuse it; a
token near its expiry is renewed in the background while requests go on; ``on_token_update``
fires; a write without ``orders.write`` is refused and succeeds with a client that has it;
a revoked token is recovered from through 401 → retire → replay; an outage of the token
endpoint does not stop requests while the token is still valid; a DPoP session (RFC 9449)
gets a token bound to its key and signs a fresh proof for every request; with httpx
installed, coroutines on an ``httpx.AsyncClient`` share one token request while the event
loop keeps running.

Nothing waits for real expiry: the session's clocks (``clock=``, ``monotonic=``) are real
time plus an offset the tour moves forward. Tokens are shown by fingerprint only.
"""

from __future__ import annotations

import logging
import shlex
import threading
import time
from collections.abc import Callable
from typing import TextIO

from ._log import log
from .errors import ConfigurationError
from .oauth_token import OAuthToken
from .scopes import OAuthScope
from .session import ClientCredentialsSession
from .testing import LocalAuthorizationServer

__all__ = ["run_demo", "serve", "how_to_call", "DemoClock"]

_TOKEN_TTL = 3600
_THREADS = 8
_REQUESTS_PER_THREAD = 5


class DemoClock:
    """Real time plus an offset, so the tour can jump ahead in a token's lifetime.

    Pass :meth:`wall` as ``clock=`` and :meth:`monotonic` as ``monotonic=`` to a session.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def wall(self) -> float:
        """Unix seconds, moved forward by the offset."""
        return time.time() + self._offset

    def monotonic(self) -> float:
        """Monotonic seconds, moved forward by the offset."""
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        """Move both clocks ``seconds`` forward."""
        with self._lock:
            self._offset += seconds


class _Recorder(logging.Handler):
    """Counts the token-request retries reqcc logs during the tour; echoes the log if verbose."""

    def __init__(self, out: TextIO | None) -> None:
        super().__init__(logging.DEBUG)
        self.out = out
        self.retries = 0
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        with self._lock2:
            if record.levelno >= logging.WARNING and "retry" in message:
                self.retries += 1
        if self.out is not None:
            self.out.write(f"      log {record.levelname.lower()}: {message}\n")


class _Tour:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.results: list[bool] = []
        self.skipped: list[str] = []

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def step(self, title: str, run: Callable[[], tuple[bool | None, str]]) -> None:
        """Run one step; ``run`` returns (ok, detail), ok ``None`` for a step skipped here."""
        number = len(self.results) + len(self.skipped) + 1
        try:
            ok, detail = run()
        except Exception as exc:  # a step that raises did not behave; say what, not a traceback
            ok, detail = False, f"raised {type(exc).__name__}: {exc}"
        if ok is None:
            self.skipped.append(title)
            self.say(f"  skip {number}. {title}")
        else:
            self.results.append(ok)
            self.say(f"  {'ok  ' if ok else 'FAIL'} {number}. {title}")
        for line in detail.split("\n"):
            self.say(f"          {line}")


def _wait(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _renewal_running() -> bool:
    return any(t.name == "reqcc-token-refresh" and t.is_alive() for t in threading.enumerate())


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _fp(token: OAuthToken | None) -> str:
    return token.fingerprint if token is not None else "-"


def run_demo(out: TextIO, *, verbose: bool = False) -> bool:
    """Run the tour, printing one line per step to ``out``; return whether every step behaved."""
    started = time.monotonic()
    recorder = _Recorder(out if verbose else None)
    previous_level = log.level
    log.addHandler(recorder)
    if verbose:
        log.setLevel(logging.DEBUG)
    try:
        with LocalAuthorizationServer(token_ttl=_TOKEN_TTL) as server:
            return _tour(server, out, recorder, started)
    finally:
        log.removeHandler(recorder)
        log.setLevel(previous_level)


def _tour(server: LocalAuthorizationServer, out: TextIO, recorder: _Recorder, started: float) -> bool:
    tour = _Tour(out)
    clock = DemoClock()
    updates: list[str] = []
    updates_lock = threading.Lock()
    caller_errors: list[str] = []

    def on_token_update(token: OAuthToken) -> None:
        with updates_lock:
            updates.append(token.fingerprint)

    def update_count() -> int:
        with updates_lock:
            return len(updates)

    session = ClientCredentialsSession(
        **server.credentials("bookstore-reader"),
        scopes=[OAuthScope.BooksRead, OAuthScope.OrdersRead],
        on_token_update=on_token_update,
        clock=clock.wall,
        monotonic=clock.monotonic,
        max_retries=1,
        retry_backoff=0.05,
        failure_backoff=30.0,  # after a failed renewal, the next attempt waits (demo time)
    )
    books = server.api_url + "books"
    orders = server.api_url + "orders"

    def get_books() -> int:
        try:
            return session.get(books, timeout=10).status_code
        except Exception as exc:
            caller_errors.append(type(exc).__name__)
            return 0

    tour.say(f"reqcc demo: a real OAuth 2.0 token endpoint (oauthlib) and bookstore API at {server.base_url}")
    tour.say(
        f"client 'bookstore-reader' (books.read orders.read); tokens live {_TOKEN_TTL} s, renewed in their "
        "last 20%."
    )
    tour.say("The session's clock jumps ahead instead of waiting; tokens are shown by fingerprint only.")
    tour.say()

    # 1 -----------------------------------------------------------------------------------
    def first_request() -> tuple[bool, str]:
        status = get_books()
        token = session.manager.token
        ok = status == 200 and server.token_requests == 1 and token is not None
        return (
            ok,
            f"GET /books -> {status}; token {_fp(token)} fetched ({server.token_requests} token request)",
        )

    tour.step("the first request fetches a token", first_request)
    first = session.manager.token

    # 2 -----------------------------------------------------------------------------------
    def reuse() -> tuple[bool, str]:
        statuses: list[int] = []
        lock = threading.Lock()
        barrier = threading.Barrier(_THREADS)

        def worker() -> None:
            barrier.wait()
            for _ in range(_REQUESTS_PER_THREAD):
                status = get_books()
                with lock:
                    statuses.append(status)

        threads = [threading.Thread(target=worker) for _ in range(_THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        total = _THREADS * _REQUESTS_PER_THREAD
        ok = statuses == [200] * total and server.token_requests == 1 and session.manager.token is first
        return ok, (
            f"{_THREADS} threads x {_REQUESTS_PER_THREAD} GET /books -> {statuses.count(200)} x 200 "
            f"on token {_fp(first)}; still {_plural(server.token_requests, 'token request')}"
        )

    tour.step("many requests from several threads reuse it", reuse)

    # 3 -----------------------------------------------------------------------------------
    def renewal() -> tuple[bool, str]:
        gate = server.hold_token_requests()  # the renewal will wait at the server until released
        clock.advance(_TOKEN_TTL - 600)  # 10 minutes left: inside the renewal window
        before = update_count()
        statuses = [get_books()]
        in_flight = _wait(lambda: server.token_requests == 2)  # the renewal reached the server
        statuses += [get_books() for _ in range(4)]
        served_on_old = session.manager.token is first and update_count() == before
        gate.set()
        renewed = _wait(lambda: update_count() > before)
        token = session.manager.token
        ok = statuses == [200] * 5 and in_flight and served_on_old and renewed and token is not first
        return ok, (
            f"10 min before expiry, 5 x GET /books -> 200 at once on token {_fp(first)},\n"
            f"while the renewal was held at the server; released -> token {_fp(token)}"
        )

    tour.step("near expiry the token is renewed in the background, no request waits", renewal)
    second = session.manager.token

    # 4 -----------------------------------------------------------------------------------
    def updates_fired() -> tuple[bool, str]:
        with updates_lock:
            seen = list(updates)
        ok = seen == [_fp(first), _fp(second)]
        return ok, f"on_token_update fired {len(seen)} times: {', '.join(seen)} (once per new token)"

    tour.step("on_token_update fires for each new token", updates_fired)

    # 5 -----------------------------------------------------------------------------------
    def scopes() -> tuple[bool, str]:
        refused = session.post(orders, json={"book_id": 2, "quantity": 1}, timeout=10)
        challenge = refused.headers.get("WWW-Authenticate", "")
        with ClientCredentialsSession(
            **server.credentials("bookstore-app"), scopes=[OAuthScope.OrdersWrite]
        ) as writer:
            created = writer.post(orders, json={"book_id": 2, "quantity": 1}, timeout=10)
        ok = (
            refused.status_code == 403
            and 'error="insufficient_scope"' in challenge
            and session.manager.token is second  # a 403 is not the token's fault: nothing retired
            and created.status_code == 201
        )
        order = created.json().get("order", {}) if created.status_code == 201 else {}
        return ok, (
            f"POST /orders as bookstore-reader -> {refused.status_code} insufficient_scope;\n"
            f"as bookstore-app with orders.write -> {created.status_code} (order #{order.get('id', '?')})"
        )

    tour.step("a write without orders.write is refused, and works with a client that has it", scopes)

    # 6 -----------------------------------------------------------------------------------
    def revocation() -> tuple[bool, str]:
        before = server.stats()
        server.revoke(session.manager.token)
        status = get_books()
        after = server.stats()
        token = session.manager.token
        ok = (
            status == 200
            and after["api_401s"] == before["api_401s"] + 1
            and after["token_requests"] == before["token_requests"] + 1
            and token is not second
        )
        return ok, (
            f"server revoked token {_fp(second)}; GET /books -> 401 invalid_token -> token retired\n"
            f"-> new token {_fp(token)} -> request replayed -> {status}"
        )

    tour.step("a revoked token is recovered from: 401 -> retire -> replay", revocation)
    third = session.manager.token

    # 7 -----------------------------------------------------------------------------------
    def outage() -> tuple[bool, str]:
        server.fail_token_requests(None, status=503)  # every token request fails until cleared
        errors_before = server.token_errors
        clock.advance(_TOKEN_TTL - 600)  # the current token enters its renewal window
        statuses = [get_books() for _ in range(10)]
        # The background renewal has failed once it reached the server and its thread is gone.
        failed = _wait(lambda: server.token_errors > errors_before and not _renewal_running())
        statuses += [get_books() for _ in range(10)]
        still_third = session.manager.token is third
        failed_requests = server.token_errors - errors_before
        server.clear_failures()
        clock.advance(120)  # past the failure backoff
        before = update_count()
        statuses.append(get_books())
        recovered = _wait(lambda: update_count() > before)
        token = session.manager.token
        ok = (
            statuses == [200] * len(statuses)
            and failed
            and still_third
            and failed_requests >= 1
            and recovered
            and token is not third
        )
        return ok, (
            f"token endpoint down (503): {_plural(failed_requests, 'token request')} failed in the "
            f"background;\n{len(statuses) - 1} x GET /books -> 200 on the still-valid token {_fp(third)}; "
            f"endpoint back -> token {_fp(token)}"
        )

    tour.step("while the token endpoint is down, requests go on with the still-valid token", outage)
    session.close()

    # 8 -----------------------------------------------------------------------------------
    tour.step("DPoP: a token bound to the client's key, a fresh proof per request", lambda: _dpop(server))

    # 9 -----------------------------------------------------------------------------------
    tour.step("async httpx: many coroutines, one token request, the event loop never blocked",
              lambda: _async_httpx(server))

    stats = server.stats()
    elapsed = time.monotonic() - started
    tour.say()
    tour.say("summary")
    rows = [
        ("API requests", stats["api_requests"], f"{stats['api_401s']} x 401, {stats['api_403s']} x 403"),
        ("token requests", stats["token_requests"], f"{stats['tokens_issued']} tokens issued"),
        (
            "retries",
            recorder.retries + stats["api_401s"],
            f"{_plural(recorder.retries, 'token-request retry', 'token-request retries')}, "
            f"{_plural(stats['api_401s'], 'replay')} after 401",
        ),
        (
            "failures",
            stats["token_errors"],
            "token requests that failed (injected outage" + ("" if tour.skipped else ", DPoP nonce") + ")",
        ),
        ("errors seen by callers", len(caller_errors), ", ".join(caller_errors) or "none"),
    ]
    for name, value, note in rows:
        tour.say(f"  {name:<24}{value:>5}   {note}")
    passed = sum(tour.results)
    tour.say()
    all_ok = passed == len(tour.results) and not caller_errors
    verdict = (
        "every step behaved as stated" if all_ok else f"{len(tour.results) - passed} step(s) did NOT behave"
    )
    skipped = f", {len(tour.skipped)} skipped" if tour.skipped else ""
    tour.say(f"{passed}/{len(tour.results)} steps ok{skipped}: {verdict} ({elapsed:.1f} s)")
    return all_ok


def _dpop(server: LocalAuthorizationServer) -> tuple[bool | None, str]:
    """One DPoP session (RFC 9449) against a server that demands nonces at both ends."""
    server.token_dpop_nonce = server.api_dpop_nonce = True
    requests_before, proofs_before = server.token_requests, len(server.dpop_proofs)
    api_401s_before = server.api_401s
    try:
        dpop_session = ClientCredentialsSession(
            **server.credentials("bookstore-reader"), scopes=[OAuthScope.BooksRead], dpop=True
        )
    except ConfigurationError as exc:  # cryptography/PyJWT missing: the error names the extra
        return None, f"{exc}"
    try:
        statuses = [dpop_session.get(server.api_url + "books", timeout=10).status_code for _ in range(3)]
        token = dpop_session.manager.token
        thumbprint = dpop_session.manager.dpop_thumbprint
    finally:
        dpop_session.close()
        server.token_dpop_nonce = server.api_dpop_nonce = False
    token_requests = server.token_requests - requests_before
    nonce_401s = server.api_401s - api_401s_before
    proofs = server.dpop_proofs[proofs_before:]
    bound = token is not None and token.token_type == "DPoP" and server.token_binding(token) == thumbprint
    ok = (
        statuses == [200] * 3 and bound and token_requests == 2 and nonce_401s == 1
        and len({p.jti for p in proofs}) == 4
    )
    return ok, (
        f"dpop=True, key {str(thumbprint)[:8]}…: the token endpoint asked for a nonce -> asked once more "
        f"({_plural(token_requests, 'token request')});\n{token.token_type if token else '-'} token "
        f"{_fp(token)} bound to that key; 3 x GET /books, each with its own proof -> {statuses}\n"
        f"(the API asked for its own nonce first -> {_plural(nonce_401s, 'replay')}; "
        "the token endpoint's is not offered to it)"
    )


_COROUTINES = 20
_TICKS = 10


def _async_httpx(server: LocalAuthorizationServer) -> tuple[bool | None, str]:
    """Coroutines on one ``httpx.AsyncClient`` wait for one token request, held at the server.

    A ticker coroutine must tick :data:`_TICKS` times while the fetch is held before the
    tour lets it go: a loop blocked by the fetch could not.
    """
    try:
        import anyio
        import httpx

        from .httpx import ClientCredentialsAuth
    except ImportError:
        return None, "httpx is not installed: pip install 'reqcc[httpx]'"
    auth = ClientCredentialsAuth(**server.credentials("bookstore-reader"), scopes=[OAuthScope.BooksRead])
    requests_before = server.token_requests
    gate = server.hold_token_requests(1, timeout=10)
    statuses: list[int] = []
    ticks = [0]
    held_ticks = [0]

    async def main() -> None:
        async def tick() -> None:
            while len(statuses) < _COROUTINES:
                await anyio.sleep(0.005)
                ticks[0] += 1

        async def call() -> None:
            statuses.append((await client.get(server.api_url + "books")).status_code)

        with anyio.fail_after(10):
            async with (
                httpx.AsyncClient(auth=auth, event_hooks={"request": [auth.keep_home]}, timeout=10) as client,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(tick)
                for _ in range(_COROUTINES):
                    tg.start_soon(call)
                while server.token_requests == requests_before:
                    await anyio.sleep(0.005)
                start = ticks[0]
                while ticks[0] - start < _TICKS:
                    await anyio.sleep(0.005)
                held_ticks[0] = ticks[0] - start
                gate.set()

    try:
        anyio.run(main)
    finally:
        gate.set()
        auth.close()
    token_requests = server.token_requests - requests_before
    ok = statuses == [200] * _COROUTINES and token_requests == 1 and held_ticks[0] >= _TICKS
    return ok, (
        f"{_COROUTINES} coroutines on one httpx.AsyncClient -> {_plural(token_requests, 'token request')} "
        f"(token {_fp(auth.manager.token)}), fetched in a worker thread;\n"
        f"the event loop ticked {held_ticks[0]} times while that request was held at the server; "
        f"{statuses.count(200)} x 200"
    )


def serve(port: int = 0, *, out: TextIO, stop: threading.Event | None = None) -> int:
    """Run the demo's server until interrupted (or ``stop`` is set), printing how to use it.

    :raises ConfigurationError: the port cannot be listened on.
    """
    try:
        server = LocalAuthorizationServer(token_ttl=_TOKEN_TTL, port=port)
    except OSError as exc:
        raise ConfigurationError(
            f"port {port}: cannot listen on 127.0.0.1:{port} ({exc.strerror or type(exc).__name__})"
        ) from None
    with server:
        out.write(how_to_call(server))
        out.flush()
        waiter = stop if stop is not None else threading.Event()
        try:
            while not waiter.wait(0.5):
                pass
        except KeyboardInterrupt:
            out.write("\nstopped\n")
    return 0


def how_to_call(server: LocalAuthorizationServer) -> str:
    """What ``reqcc demo --serve`` prints: the server's URLs, its clients with their secrets, and
    ready-to-paste ``reqcc`` and ``curl`` command lines.

    The secrets are shown on purpose: they are the demo's throwaway credentials, valid only on
    this server on 127.0.0.1 while it runs (a newcomer cannot call the server without them).
    """
    q = shlex.quote
    token_url, books, orders = server.token_url, server.api_url + "books", server.api_url + "orders"
    clients = sorted(server.clients.values(), key=lambda c: (c.is_public, c.client_id))
    width = max([len("client id")] + [len(c.client_id) for c in clients])
    secret_width = max([len("secret")] + [len(c.secret or "(public)") for c in clients])
    lines = [
        "reqcc demo server on 127.0.0.1 (Ctrl-C to stop)",
        f"  token endpoint   {token_url}",
        f"  bookstore API    {server.api_url}",
        "                   GET books needs books.read, GET orders orders.read, POST orders orders.write",
        "",
        "clients: throwaway demo credentials, valid only on this server while it runs",
        f"  {'client id':<{width}}  {'secret':<{secret_width}}  {'auth method':<19}  scopes",
    ]
    for client in clients:
        method = "none" if client.is_public else "client_secret_basic"
        secret = client.secret if client.secret is not None else "(public)"
        lines.append(
            f"  {client.client_id:<{width}}  {secret:<{secret_width}}  {method:<19}  "
            + " ".join(sorted(client.scopes))
        )
    app = server.clients.get("bookstore-app") or next((c for c in clients if not c.is_public), None)
    lines += ["", "try, in another shell (reqcc, or python -m reqcc):"]
    if app is not None and app.secret is not None:
        lines += [
            f"  export REQCC_TOKEN_URL={q(token_url)}",
            f"  export REQCC_CLIENT_ID={q(app.client_id)}",
            f"  export REQCC_CLIENT_SECRET={q(app.secret)}",
            "  reqcc token --scope BooksRead --scope OrdersRead",
            f"  reqcc request {q(books)} --scope BooksRead",
            f"  reqcc request --json '{{\"book_id\": 1}}' {q(orders)} --scope OrdersWrite",
        ]
        public = next((c for c in clients if c.is_public), None)
        if public is not None:  # a public client sends its id and no secret
            lines.append(f"  REQCC_CLIENT_ID={q(public.client_id)} reqcc token --auth-method none")
        lines += [
            "",
            "or with curl:",
            f"  curl -s -u {q(app.client_id + ':' + app.secret)} -d grant_type=client_credentials "
            f"-d scope=books.read {q(token_url)}",
            '  curl -s -H "Authorization: Bearer $(reqcc token --format access-token --scope BooksRead)" '
            f"{q(books)}",
        ]
    return "\n".join(lines) + "\n"
