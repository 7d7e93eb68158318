"""The fork registry (reqcc.fork_safety): every per-process lock is new in a forked child.

Real forks (``os.fork``, through test_resilience.py's fork helpers): a parent thread holds
one registered lock at the moment of the fork, and the child must still take it, bounded by
a timeout on waiting for the child. The registry keeps no object alive. test_resilience.py has the manager's
own fork tests (a flight in progress, jitter, pooled connections).
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests_mock

from reqcc import ClientCredentialsSession, fork_safety
from reqcc._untokened import UntokenedNotice
from reqcc.dpop import DPoPProver
from reqcc.manager import ClientCredentialsManager

from .conftest import CLIENT_ID, CLIENT_SECRET, token_session_for
from .test_resilience import _in_child, _in_child_while_held

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform has no os.fork"),
    # Python 3.12+ warns that the test process has threads when it forks: these tests
    # fork while a thread holds a lock, on purpose.
    pytest.mark.filterwarnings("ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning"),
]

ISSUER = "https://as.example.com"
API = "https://api.example.com/"


@dataclass
class Setup:
    """A session whose manager discovers its issuer and uses DPoP: every kind of registered state."""

    session: ClientCredentialsSession
    manager: ClientCredentialsManager
    dpop: DPoPProver
    notice: UntokenedNotice


@pytest.fixture
def setup() -> Iterator[Setup]:
    pytest.importorskip("jwt")
    auth = requests_mock.Adapter()
    auth.register_uri(
        "GET", ISSUER + "/.well-known/openid-configuration",
        json={"issuer": ISSUER, "token_endpoint": ISSUER + "/token"},
    )
    session = ClientCredentialsSession(
        issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, dpop=True,
        token_session=token_session_for(auth),
    )
    notice = session.get_adapter("http://example.com/")
    assert isinstance(notice, UntokenedNotice)
    plain = requests_mock.Adapter()
    plain.register_uri("GET", requests_mock.ANY, text="ok")
    notice.inner = plain
    manager = session.manager
    assert manager.dpop is not None
    yield Setup(session, manager, manager.dpop, notice)
    session.close()


def _discovery_lock(s: Setup) -> Any:
    assert s.manager._config.discovery is not None
    return s.manager._config.discovery._lock


def _set_token(s: Setup) -> str:
    s.manager.token = {"access_token": "by-hand", "expires_in": 60}  # adopted under the lock
    token = s.manager.token
    return token.access_token if token is not None else "none"


#: Each registered lock, and what a child does that takes it (returning what it reports).
LOCKS: dict[str, tuple[Callable[[Setup], Any], Callable[[Setup], str]]] = {
    "manager": (lambda s: s.manager._lock, _set_token),
    "discovery": (_discovery_lock, lambda s: s.manager.discover()),
    "401 cool-down": (
        lambda s: s.manager.rejection_cooldown._lock,
        lambda s: str(s.manager.rejection_cooldown.active("GET " + API)),
    ),
    "API nonces": (
        lambda s: s.dpop.nonces._lock,
        lambda s: str(s.dpop.nonces.set(API, "n-child") and s.dpop.nonces.get(API)),
    ),
    "token endpoint nonces": (
        lambda s: s.dpop.token_nonces._lock,
        lambda s: str(s.dpop.token_nonces.set(ISSUER, "n-child") and s.dpop.token_nonces.get(ISSUER)),
    ),
    "untokened notice": (
        lambda s: s.notice._lock,
        lambda s: f"{s.session.get('http://example.com/books').status_code} {len(s.notice._warned)}",
    ),
}
EXPECTED = {
    "manager": "by-hand",
    "discovery": ISSUER + "/token",
    "401 cool-down": "False",
    "API nonces": "n-child",
    "token endpoint nonces": "n-child",
    "untokened notice": "200 1",
}


@pytest.mark.parametrize("which", list(LOCKS))
def test_a_child_takes_a_lock_its_parent_held_at_the_fork(setup: Setup, which: str) -> None:
    get_lock, work = LOCKS[which]
    lock = get_lock(setup)
    report = _in_child_while_held(lock, lambda: work(setup))
    assert report == EXPECTED[which]
    # The parent keeps its own lock, and it is free again.
    assert get_lock(setup) is lock and not lock.locked()


def test_the_registry_keeps_nothing_alive_and_forgets_what_was_collected(setup: Setup) -> None:
    before = set(fork_safety._resets)
    session = ClientCredentialsSession(
        issuer=ISSUER, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, dpop=True,
    )
    manager = weakref.ref(session.manager)
    registered = set(fork_safety._resets) - before
    # The manager, its discovery, its 401 cool-down, both nonce caches and the session's notice.
    assert len(registered) == 6
    session.close()
    del session
    gc.collect()
    assert manager() is None
    assert not registered & set(fork_safety._resets)


class _Recorder:
    def __init__(self, fails: bool) -> None:
        self.fails = fails
        self.reset = False
        fork_safety.register(self._after_fork)

    def _after_fork(self) -> None:
        self.reset = True
        if self.fails:
            raise RuntimeError("this reset fails")


def test_every_reset_runs_in_the_child_even_after_one_that_fails() -> None:
    failing, later = _Recorder(fails=True), _Recorder(fails=False)
    report = _in_child(lambda: f"{failing.reset} {later.reset}")
    assert report == "True True"
    assert not failing.reset and not later.reset  # the parent's are not reset


def test_only_a_bound_method_can_be_registered() -> None:
    with pytest.raises(TypeError, match="bound method"):
        fork_safety.register(lambda: None)


def test_a_process_that_used_reqcc_exits_without_noise_from_the_registry() -> None:
    # Objects still registered at interpreter exit (module globals here) must not make the
    # registry's weak references print "Exception ignored in ..." on the way out (as
    # weakref.WeakMethod's did, depending on the order modules are torn down: the timeit
    # import made it happen on CPython 3.11).
    code = (
        "import timeit\n"
        "from reqcc import ClientCredentialsSession\n"
        "from reqcc.dpop import DPoPNonces\n"
        "nonces = DPoPNonces()\n"
        "session = ClientCredentialsSession(token_url='https://as.example.com/token', client_id='c', "
        "client_secret='s', dpop=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        cwd=Path(fork_safety.__file__).parent.parent,
    )
    assert (done.returncode, done.stderr) == (0, "")
