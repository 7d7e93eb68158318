"""Waiting for a token on an event loop without blocking it (contract item 37).

:class:`AsyncTokenWait` is what an async front end awaits for a token. The warm path is
the manager's lock-free :meth:`~reqcc.ClientCredentialsManager.usable_token`: no await, no
thread. So is the look ``get_token()`` takes first when that finds none: while the token
endpoint is failing, the held token serves up to its real expiry (contract item 28), and a
coroutine learns that on the loop; so does one that would get the last error again at once
between two probes of a failing endpoint (item 27; without a token store: looking in one is
I/O). Otherwise, without a usable token, the first coroutine of a loop
starts one worker thread that calls the manager's blocking ``get_token()`` (so it joins the
same single flight as the sync threads of a shared manager: one token request in all), and
every coroutine of that loop needing a token meanwhile awaits one event the thread sets
when it is done: waiting coroutines hold no thread each. The thread is not tied to any
coroutine: cancelling a waiting coroutine (the first one included) does not cancel the
fetch, and the others still get its token. Each coroutine that waited is recorded in
``reqcc.token.wait.duration`` (contract item 26). A coroutine waits ``token_deadline`` at
most, then gets a :class:`~reqcc.TokenDeadlineError` (a ``token_provider`` that never
returns keeps its thread; the next coroutine after the deadline starts a new one).

Runs on any loop anyio supports (asyncio, trio); anyio is imported on the first cold wait.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ._log import log
from .errors import TokenDeadlineError
from .manager import ClientCredentialsManager
from .oauth_token import OAuthToken
from .single_flight import LeaderInterrupted, _copy_error

if TYPE_CHECKING:
    from anyio.lowlevel import EventLoopToken

__all__ = ["AsyncTokenWait"]


class _Pending:
    """One worker thread's ``get_token()`` and the event of the loop its waiters await."""

    __slots__ = ("deadline", "done", "error", "event", "token")

    def __init__(self, event: Any, deadline: float) -> None:
        self.event = event
        self.deadline = deadline
        self.done = False
        self.token: OAuthToken | None = None
        self.error: BaseException | None = None


class AsyncTokenWait:
    """Hands coroutines a usable token of ``manager``; at most one worker thread per loop fetches.

    :param manager: the token manager (shared with sync front ends, if any).
    """

    def __init__(self, manager: ClientCredentialsManager) -> None:
        self.manager = manager
        # The fetch under way per event loop (its native token); an entry goes when its
        # fetch ends, so a program that runs many loops one after another keeps none of them.
        # The lock guards only dict operations (never held across a wait).
        self._pending: dict[object, _Pending] = {}
        self._lock = threading.Lock()

    async def token(self) -> OAuthToken:
        """Return a usable token; a fetch, if one is needed, runs in a worker thread.

        :raises ReqccError: the fetch's error (each coroutine raises its own copy).
        :raises TokenDeadlineError: no token within ``token_deadline``.
        """
        manager = self.manager
        token = manager.usable_token()
        if token is not None:
            return token
        # While the token endpoint fails, the held token serves up to its real expiry
        # (item 28): get_token()'s own first look, lock-free, so no thread is needed to learn it.
        token = manager._held_while_failing()
        if token is not None:
            return token
        # Between two probes of a failing endpoint, the last error again, as get_token()
        # would raise it at once: on the loop too, not through a worker thread per caller.
        manager._raise_repeated_failure()
        return await self._wait()

    async def _wait(self) -> OAuthToken:
        import anyio
        import anyio.lowlevel

        manager = self.manager
        loop = anyio.lowlevel.current_token()
        key = loop.native_token
        now = manager.monotonic()
        with self._lock:
            pending = self._pending.get(key)
            start = pending is None or pending.done or now >= pending.deadline
            if start:
                pending = self._pending[key] = _Pending(anyio.Event(), now + manager.token_deadline)
        assert pending is not None
        if start:
            threading.Thread(
                target=self._fetch, args=(pending, loop, key), name="reqcc-async-token", daemon=True
            ).start()
        try:
            with anyio.move_on_after(max(0.0, pending.deadline - now)):
                await pending.event.wait()
        finally:
            # Item 26: every coroutine that had to wait is a caller that waited (the worker
            # thread's own wait in the single flight may be recorded too, as a thread's).
            manager._telemetry.waited(manager.monotonic() - now)
        if not pending.done:
            raise TokenDeadlineError(
                f"no token within token_deadline ({manager.token_deadline:g}s): "
                "the token request did not end in time"
            )
        if pending.error is not None:
            raise _copy_error(pending.error, pending.error.__traceback__)
        assert pending.token is not None
        return pending.token

    def _fetch(self, pending: _Pending, loop: EventLoopToken, key: object) -> None:
        """The worker thread: ``get_token()``, then wake the loop's waiters."""
        import anyio.from_thread

        interrupt: BaseException | None = None
        try:
            pending.token = self.manager.get_token()
        except Exception as exc:
            pending.error = exc
        except BaseException as exc:  # item 21: raised in this thread only; the waiters get a ReqccError
            interrupt = exc
            pending.error = LeaderInterrupted(type(exc).__name__)
        pending.done = True
        with self._lock:
            if self._pending.get(key) is pending:
                del self._pending[key]
        try:
            anyio.from_thread.run_sync(pending.event.set, token=loop)
        except Exception as exc:  # the loop has ended: nobody waits any more
            log.debug("the event loop waiting for the token has ended (%s)", type(exc).__name__)
        if interrupt is not None:
            raise interrupt
