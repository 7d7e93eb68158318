"""Token stores: the key, FileTokenStore, and the manager sharing tokens through a store.

The fleet tests start 8 real processes (fork and spawn) against one counting token
server on 127.0.0.1; the Redis store has the same tests in test_stores_redis.py.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reqcc import (
    ClientCredentialsManager,
    ClientCredentialsSession,
    ConfigurationError,
    InvalidClient,
    OAuthToken,
    TokenProviderError,
)
from reqcc.stores import FileTokenStore, TokenStore, token_store_key
from reqcc.testing import FakeClock
from tests.store_workers import CLIENT_SECRET, run_fleet, run_killed_holder
from tests.threads import run_threads
from tests.token_server import TokenServer

SECRET = "s3cret:+%/ value"

# The fleet tests fork on purpose (gunicorn and Celery fork their workers); Python 3.12+
# warns that the test process has threads (the token server's) when it forks.
pytestmark = pytest.mark.filterwarnings("ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning")


@pytest.fixture
def server() -> Iterator[TokenServer]:
    with TokenServer() as srv:
        yield srv


class Clock(FakeClock):
    """The shipped clock at this file's old start times (the name kept for tests written before it)."""

    def __init__(self) -> None:
        super().__init__(1_000_000.0, monotonic_start=500.0)


class Updates:
    def __init__(self) -> None:
        self.tokens: list[OAuthToken] = []

    def __call__(self, token: OAuthToken) -> None:
        self.tokens.append(token)


def manager(
    server: TokenServer, store: TokenStore, clock: Clock | None = None, **kwargs: Any
) -> ClientCredentialsManager:
    options: dict[str, Any] = {
        "token_url": server.token_url,
        "client_id": "client-1",
        "client_secret": SECRET,
        "scopes": ["books.read", "orders.read"],
        "token_store": store,
        "on_token_update": Updates(),
    }
    if clock is not None:
        options.update(clock=clock.time, monotonic=clock.monotonic)
    options.update(kwargs)
    return ClientCredentialsManager(**options)


def updates(m: ClientCredentialsManager) -> list[OAuthToken]:
    assert isinstance(m.on_token_update, Updates)
    return m.on_token_update.tokens


def wait_for(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for a background renewal to land."""
    for _ in range(1000):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


# -- the key -----------------------------------------------------------------------------


def key(**changes: Any) -> str:
    fields: dict[str, Any] = {
        "token_url": "https://auth.example.com/token",
        "client_id": "client-1",
        "auth_method": "client_secret_basic",
        "scopes": ["books.read", "orders.read"],
        "token_params": {"audience": "api"},
        "secrets": [SECRET],
    }
    fields.update(changes)
    return token_store_key(**fields)


def test_key_is_a_digest_that_changes_with_what_makes_tokens_interchangeable() -> None:
    base = key()
    assert len(base) == 64 and int(base, 16) >= 0
    assert key(scopes=["orders.read", "books.read", "books.read"]) == base  # a set, sorted
    assert key() == base  # stable across calls (and processes: no per-process salt)
    variants = [
        key(token_url="https://auth.example.com/token2"),
        key(client_id="client-2"),
        key(auth_method="client_secret_post"),
        key(scopes=["books.read"]),
        key(token_params={"audience": "other"}),
        key(token_params={}),
        key(secrets=["another secret"]),
        key(secrets=[]),
        key(key_id="2026-11"),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)


def test_key_never_contains_the_secret() -> None:
    import hashlib

    digest = key()
    assert SECRET not in digest
    assert hashlib.sha256(SECRET.encode()).hexdigest() not in digest


def test_managers_of_different_clients_use_different_keys(server: TokenServer, tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    a = manager(server, store)
    assert manager(server, store)._store.shared is not None  # type: ignore[union-attr]
    keys = {
        m._store.shared.key  # type: ignore[union-attr]
        for m in (
            a,
            manager(server, store, client_id="client-2"),
            manager(server, store, client_secret="other"),
            manager(server, store, scopes=["books.read"]),
            manager(server, store, token_params={"audience": "x"}),
            manager(server, store, auth_method="client_secret_post"),
        )
    }
    assert len(keys) == 6
    reordered = manager(server, store, scopes=["orders.read", "books.read"])
    assert reordered._store.shared.key == a._store.shared.key  # type: ignore[union-attr]


def test_token_store_must_implement_the_protocol(server: TokenServer) -> None:
    with pytest.raises(ConfigurationError, match="TokenStore"):
        manager(server, object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="lease_timeout"):
        FileTokenStore("x.json", lease_timeout=0)


# -- FileTokenStore on its own ------------------------------------------------------------


def test_file_store_round_trip_mode_0600_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "tokens.json"
    store = FileTokenStore(path)
    assert store.read("k") is None
    token = OAuthToken("abc", expires_in=60, expiry=time.time() + 60, scope="books.read", extra={"x": 1})
    store.write("k", token)
    assert store.read("k") == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no leftovers
    store.write("other", OAuthToken("def"))
    assert store.read("k") == token and store.read("other") == OAuthToken("def")
    assert isinstance(store, TokenStore)


def test_file_store_lease_is_exclusive_expires_by_itself_and_release_checks_the_holder(
    tmp_path: Path,
) -> None:
    now = [1000.0]
    store = FileTokenStore(tmp_path / "t.json", lease_timeout=5, clock=lambda: now[0])
    first = store.acquire_lease("k")
    assert first is not None
    assert store.acquire_lease("k") is None
    assert store.acquire_lease("other-key") is not None
    now[0] += 5.1  # the holder died: its lease runs out
    second = store.acquire_lease("k")
    assert second is not None and second != first
    store.release_lease("k", first)  # the late first holder cannot release the second's lease
    assert store.acquire_lease("k") is None
    store.release_lease("k", second)
    assert store.acquire_lease("k") is not None


def test_file_store_drops_expired_tokens_when_it_rewrites(tmp_path: Path) -> None:
    now = [1000.0]
    store = FileTokenStore(tmp_path / "t.json", clock=lambda: now[0])
    store.write("old", OAuthToken("a", expires_in=10, expiry=1010.0))
    store.write("forever", OAuthToken("b"))
    now[0] = 1020.0
    store.write("new", OAuthToken("c", expires_in=10, expiry=1030.0))
    entries = json.loads((tmp_path / "t.json").read_text())["entries"]
    assert sorted(entries) == ["forever", "new"]


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"reqcc_token_store": 99, "entries": {}}',
        b"[" * 200_000 + b"]" * 200_000,  # deep nesting within the 1 MiB: was a RecursionError
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    ],
    ids=["broken", "empty", "binary", "array", "version", "deep-array", "deep-object"],
)
def test_corrupt_file_reads_as_empty_and_is_replaced(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(content)
    path.chmod(0o600)
    store = FileTokenStore(path)
    with caplog.at_level(logging.WARNING, "reqcc"):
        assert store.read("k") is None
    assert "corrupt" in caplog.text
    store.write("k", OAuthToken("abc"))
    assert store.read("k") == OAuthToken("abc")


def test_corrupt_entry_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "t.json"
    store = FileTokenStore(path)
    store.write("good", OAuthToken("abc"))
    document = json.loads(path.read_text())
    document["entries"]["bad"] = {"token": {"token_type": "Bearer"}}
    path.write_text(json.dumps(document))
    with caplog.at_level(logging.WARNING, "reqcc"):
        assert store.read("bad") is None
    assert "not a token" in caplog.text
    assert store.read("good") == OAuthToken("abc")


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_file_open_to_other_users_is_not_trusted_and_is_replaced_private(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "t.json"
    store = FileTokenStore(path)
    store.write("k", OAuthToken("abc"))
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, "reqcc"):
        assert store.read("k") is None
    assert "0644" in caplog.text and "abc" not in caplog.text
    store.write("k", OAuthToken("def"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.read("k") == OAuthToken("def")


@pytest.mark.skipif(os.name != "posix", reason="POSIX file owners")
def test_file_of_another_user_is_not_trusted_and_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "t.json"
    store = FileTokenStore(path)
    store.write("k", OAuthToken("abc"))
    owner = path.stat().st_uid
    # Another user planted the file (mode 0600, right format): seen as another user's, as
    # a non-root user cannot chown a file to someone else.
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    with caplog.at_level(logging.WARNING, "reqcc"):
        assert store.read("k") is None
        store.write("mine", OAuthToken("def"))  # replaces the file, not merges into it
    assert f"belongs to another user (uid {owner})" in caplog.text and "abc" not in caplog.text
    monkeypatch.undo()
    assert store.read("k") is None
    assert store.read("mine") == OAuthToken("def")


def test_unreadable_file_is_logged_and_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "t.json"
    store = FileTokenStore(path)
    store.write("k", OAuthToken("abc"))
    real_open = os.open
    blocked = [True]

    def open_(name: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        # As root, chmod 000 does not stop reading: simulate the EACCES a normal user gets.
        if blocked[0] and os.fspath(name) == str(path) and not flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    with caplog.at_level(logging.WARNING, "reqcc"):
        assert store.read("k") is None
        store.write("k", OAuthToken("def"))
    assert "unreadable" in caplog.text
    blocked[0] = False
    assert store.read("k") == OAuthToken("def")


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="needs O_NOFOLLOW")
def test_symlinked_file_is_not_followed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    FileTokenStore(elsewhere).write("k", OAuthToken("planted"))
    path = tmp_path / "t.json"
    path.symlink_to(elsewhere)
    store = FileTokenStore(path)
    with caplog.at_level(logging.WARNING, "reqcc"):
        assert store.read("k") is None
    assert "symbolic link" in caplog.text
    store.write("k", OAuthToken("mine"))
    assert not path.is_symlink()
    assert FileTokenStore(elsewhere).read("k") == OAuthToken("planted")


def test_file_store_on_a_broken_path_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = FileTokenStore(blocker / "t.json")  # its folder is a regular file
    with pytest.raises(OSError):
        store.read("k")
    with pytest.raises(OSError):
        store.acquire_lease("k")


# -- the manager with a store: one process, several managers -----------------------------


def test_second_manager_reads_the_token_instead_of_fetching(server: TokenServer, tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "t.json")
    a, b = manager(server, store), manager(server, store)
    token = a.get_token()
    assert b.get_token() == token
    assert server.token_requests == 1
    assert updates(a) == [token]
    assert updates(b) == []  # read from the store: no on_token_update
    assert CLIENT_SECRET not in (tmp_path / "t.json").read_text()
    assert SECRET not in (tmp_path / "t.json").read_text()


def test_threads_of_many_managers_cause_one_fetch(server: TokenServer, tmp_path: Path) -> None:
    server.delay = 0.2
    store = FileTokenStore(tmp_path / "t.json")
    managers = [manager(server, store) for _ in range(4)]
    seen = run_threads(lambda i: managers[i % 4].get_token().access_token, 16)
    assert isinstance(seen[0], str) and seen == [seen[0]] * 16, seen
    assert server.token_requests == 1
    assert sum(len(updates(m)) for m in managers) == 1


def test_expired_stored_token_is_replaced(server: TokenServer, tmp_path: Path) -> None:
    clock = Clock()
    store = FileTokenStore(tmp_path / "t.json", clock=clock.time)
    old = manager(server, store, clock).get_token()
    clock.advance(3600)
    fresh = manager(server, store, clock)
    token = fresh.get_token()
    assert token != old and server.token_requests == 2
    assert updates(fresh) == [token]
    assert manager(server, store, clock).get_token() == token
    assert server.token_requests == 2


def test_token_stored_under_another_key_is_neither_used_nor_lost(server: TokenServer, tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "t.json")
    theirs = manager(server, store, client_id="another-client").get_token()
    ours = manager(server, store).get_token()
    assert ours != theirs and server.token_requests == 2
    assert manager(server, store, client_id="another-client").get_token() == theirs
    assert manager(server, store).get_token() == ours
    assert server.token_requests == 2
    assert len(json.loads((tmp_path / "t.json").read_text())["entries"]) == 2


def test_token_for_another_secret_or_scope_set_is_not_used(server: TokenServer, tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "t.json")
    first = manager(server, store).get_token()
    assert manager(server, store, client_secret="rotated").get_token() != first
    assert manager(server, store, scopes=["books.read"]).get_token() != first
    assert server.token_requests == 3


@pytest.mark.parametrize("content", ["garbage{", "[" * 300_000], ids=["garbage", "deep"])
def test_session_with_a_corrupt_store_file_succeeds_and_repairs_it(
    server: TokenServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    path = tmp_path / "t.json"
    path.write_text(content)
    path.chmod(0o600)
    with caplog.at_level(logging.DEBUG, "reqcc"):
        session = ClientCredentialsSession(
            token_url=server.token_url, client_id="c", client_secret=SECRET,
            base_url=server.base_url, token_store=FileTokenStore(path),
        )
        assert session.get(server.api_url + "books").status_code == 200
    assert server.token_requests == 1
    assert json.loads(path.read_text())["reqcc_token_store"] == 1
    token = session.manager.token
    assert token is not None
    assert token.access_token not in caplog.text and SECRET not in caplog.text


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_manager_does_not_use_a_token_from_a_file_open_to_others(server: TokenServer, tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    store = FileTokenStore(path)
    first = manager(server, store).get_token()
    path.chmod(0o666)
    second = manager(server, store).get_token()
    assert second != first and server.token_requests == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert manager(server, store).get_token() == second


class FlakyStore:
    """A FileTokenStore that fails like a full disk, on demand, and logs every call.

    A call fails while ``broken`` is set, when its method is in ``failing``, or when more
    than ``fail_after`` calls have been made.
    """

    def __init__(self, path: Path, clock: Clock) -> None:
        self.inner = FileTokenStore(path, clock=clock.time)
        self.lease_timeout = self.inner.lease_timeout
        self.poll_interval = self.inner.poll_interval
        self.broken = False
        self.failing: set[str] = set()
        self.fail_after: int | None = None
        self.calls: list[str] = []
        self.keys: set[str] = set()

    def _check(self, method: str, key: str) -> None:
        self.calls.append(method)
        self.keys.add(key)
        if (
            self.broken
            or method in self.failing
            or (self.fail_after is not None and len(self.calls) > self.fail_after)
        ):
            raise OSError(28, "No space left on device")

    @property
    def key(self) -> str:
        [key] = self.keys
        return key

    def read(self, key: str) -> OAuthToken | None:
        self._check("read", key)
        return self.inner.read(key)

    def write(self, key: str, token: OAuthToken) -> None:
        self._check("write", key)
        self.inner.write(key, token)

    def acquire_lease(self, key: str) -> str | None:
        self._check("acquire_lease", key)
        return self.inner.acquire_lease(key)

    def release_lease(self, key: str, holder: str) -> None:
        self._check("release_lease", key)
        self.inner.release_lease(key, holder)


LEAD = ["read", "acquire_lease", "read", "write", "release_lease"]


def test_broken_store_falls_back_to_fetching_and_is_retried_after_a_backoff(
    server: TokenServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    store = FlakyStore(tmp_path / "t.json", clock)
    store.broken = True
    m = manager(server, store, clock)
    with caplog.at_level(logging.INFO, "reqcc"):
        first = m.get_token()
        assert server.token_requests == 1 and store.calls == ["read"]
        assert "No space left on device" in caplog.text and "fetching tokens in this process" in caplog.text
        assert updates(m) == [first]
        # Within the backoff the store is left alone.
        m.invalidate(first)
        second = m.get_token()
        assert server.token_requests == 2 and store.calls == ["read"]
        # After it, the store is used again.
        store.broken = False
        clock.advance(1.5)
        m.invalidate(second)
        third = m.get_token()
        assert server.token_requests == 3 and store.calls == ["read", *LEAD]
        assert "works again" in caplog.text
    assert manager(server, store, clock).get_token() == third
    assert server.token_requests == 3
    for token in (first, second, third):
        assert token.access_token not in caplog.text
    assert SECRET not in caplog.text


def test_store_on_a_broken_path_never_fails_a_request(
    server: TokenServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, "reqcc"):
        session = ClientCredentialsSession(
            token_url=server.token_url, client_id="c", client_secret=SECRET,
            base_url=server.base_url, token_store=FileTokenStore(blocker / "t.json"),
        )
        assert session.get(server.api_url + "books").status_code == 200
        assert session.get(server.api_url + "books").status_code == 200
    assert server.token_requests == 1
    assert "token store" in caplog.text and "NotADirectoryError" in caplog.text


def test_store_write_failure_costs_no_second_fetch(
    server: TokenServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    store = FlakyStore(tmp_path / "t.json", clock)
    store.failing = {"write"}
    m = manager(server, store, clock)
    with caplog.at_level(logging.WARNING, "reqcc"):
        token = m.get_token()
    assert server.token_requests == 1  # the token fetched is used, not fetched again
    assert updates(m) == [token]
    assert store.calls == LEAD
    assert "No space left on device" in caplog.text and token.access_token not in caplog.text
    assert store.inner.read(store.key) is None  # not stored...
    assert store.inner.acquire_lease(store.key) is not None  # ...and the lease released


def test_store_failing_in_the_middle_of_a_lead_costs_one_fetch_and_one_warning(
    server: TokenServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    store = FlakyStore(tmp_path / "t.json", clock)
    store.fail_after = 2  # the first read and the lease work; the disk fills up after them
    m = manager(server, store, clock)
    with caplog.at_level(logging.DEBUG, "reqcc"):
        token = m.get_token()
    assert server.token_requests == 1 and updates(m) == [token]
    assert store.calls == LEAD  # the failed read is followed by a fetch, a write and a release
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "fetching tokens in this process" in warnings[0].getMessage()
    assert caplog.text.count("failed again (OSError)") == 2  # the write and the release
    assert m.get_token() == token and server.token_requests == 1
    # The lease could not be released: it runs out by itself.
    assert store.inner.acquire_lease(store.key) is None
    clock.advance(store.lease_timeout + 1)
    assert store.inner.acquire_lease(store.key) is not None


def test_failed_fetch_releases_the_lease_and_is_not_stored(server: TokenServer, tmp_path: Path) -> None:
    from tests.token_server import Failure

    store = FlakyStore(tmp_path / "t.json", Clock())
    server.failures.append(Failure(status=400, error="invalid_client"))
    m = manager(server, store)
    with pytest.raises(InvalidClient, match="invalid_client"):
        m.get_token()
    assert store.calls == ["read", "acquire_lease", "read", "release_lease"]  # no write
    assert store.inner.read(store.key) is None
    assert store.inner.acquire_lease(store.key) is not None


def test_rejected_token_in_the_store_is_replaced_once(server: TokenServer, tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "t.json")
    a, b = manager(server, store), manager(server, store)
    old = a.get_token()
    assert b.get_token() == old
    server.revoke_all()  # the resource server now rejects it: both managers see a 401
    assert a.invalidate(old)
    new = a.get_token()  # the stored token is the one a retired: fetched anew, and stored
    assert new != old and server.token_requests == 2
    assert b.invalidate(old)
    assert b.get_token() == new  # b finds a's new token in the store
    assert server.token_requests == 2


def test_refresh_ahead_happens_once_for_the_fleet(server: TokenServer, tmp_path: Path) -> None:
    server.expires_in = 100
    clock = Clock()
    store = FileTokenStore(tmp_path / "t.json", clock=clock.time)
    managers = [manager(server, store, clock) for _ in range(4)]
    first = managers[0].get_token()
    assert all(m.get_token() == first for m in managers[1:])
    assert server.token_requests == 1
    clock.advance(55)  # inside the renewal window (the last 20% before expiry minus skew)
    server.delay = 0.1
    for m in managers:
        assert m.get_token() == first  # the current token is still served meanwhile
    wait_for(lambda: all(m.token is not None and m.token != first for m in managers))
    tokens = {m.token.access_token for m in managers if m.token is not None}
    assert len(tokens) == 1
    assert server.token_requests == 2
    assert sum(len(updates(m)) for m in managers) == 2  # one per fetched token, in its fetcher


def test_provider_is_called_once_for_all_managers_and_its_result_shared(
    server: TokenServer, tmp_path: Path
) -> None:
    calls: list[OAuthToken | None] = []

    def provider(last: OAuthToken | None, m: ClientCredentialsManager) -> OAuthToken:
        calls.append(last)
        return m.fetch_token()

    store = FileTokenStore(tmp_path / "t.json")
    a = manager(server, store, token_provider=provider)
    b = manager(server, store, token_provider=provider)
    token = a.get_token()
    assert b.get_token() == token
    assert len(calls) == 1 and server.token_requests == 1
    assert updates(a) == [token] and updates(b) == []


def test_provider_result_is_checked_before_it_is_stored(server: TokenServer, tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "t.json")
    expired = OAuthToken("stale", expires_in=60, expiry=time.time() - 10)
    a = manager(server, store, token_provider=lambda last, m: expired)
    with pytest.raises(TokenProviderError, match="expired"):
        a.get_token()
    assert store.read(a._store.shared.key) is None  # type: ignore[union-attr]


# -- many processes ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_eight_processes_cold_start_one_token_request_file_store(
    server: TokenServer, tmp_path: Path, method: str
) -> None:
    server.delay = 0.1  # the token request is in flight while the others look
    results = run_fleet(method, ("file", str(tmp_path / "tokens.json"), 10.0), server)
    assert [r[1] for r in results] == [200] * 8, results
    assert len({r[2] for r in results}) == 1
    assert sum(r[3] for r in results) == 1  # on_token_update fired in the one that fetched
    assert server.token_requests == 1
    assert server.api_requests == 8


def test_lease_holder_killed_mid_fetch_file_store(server: TokenServer, tmp_path: Path) -> None:
    results, _elapsed = run_killed_holder(("file", str(tmp_path / "tokens.json"), 1.0), server)
    assert [r[1] for r in results] == [200] * 4, results
    assert len({r[2] for r in results}) == 1
    # The holder's request, then one by the waiter that took over its expired lease.
    assert server.token_requests == 2


class StuckLeaseStore:
    """A store whose lease is always held by someone else who never writes a token."""

    lease_timeout = 2.0
    poll_interval = 0.5

    def __init__(self) -> None:
        self.reads = 0
        self.written: list[OAuthToken] = []

    def read(self, key: str) -> OAuthToken | None:
        self.reads += 1
        return None

    def write(self, key: str, token: OAuthToken) -> None:
        self.written.append(token)

    def acquire_lease(self, key: str) -> str | None:
        return None

    def release_lease(self, key: str, holder: str) -> None:
        raise AssertionError("never acquired")


def test_waiter_fetches_itself_after_two_lease_timeouts(
    server: TokenServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    store = StuckLeaseStore()
    m = manager(server, store, clock, sleep=clock.sleep)  # waiting moves the fake clocks
    with caplog.at_level(logging.WARNING, "reqcc"):
        token = m.get_token()
    assert server.token_requests == 1
    assert store.reads == 1 + 8  # the first look, then one per poll for 2 x 2 s at 0.5 s
    assert store.written == [token]  # shared for the others all the same
    assert updates(m) == [token]
    assert "after waiting 4.0s" in caplog.text


def test_waiter_takes_over_a_lease_its_live_holder_never_releases(
    server: TokenServer, tmp_path: Path
) -> None:
    store = FileTokenStore(tmp_path / "t.json", lease_timeout=0.3, poll_interval=0.02)
    m = manager(server, store)
    assert store.acquire_lease(m._store.shared.key) is not None  # type: ignore[union-attr]  # a stuck holder
    token = m.get_token()
    assert server.token_requests == 1
    assert store.read(m._store.shared.key) == token  # type: ignore[union-attr]


# -- black box: what a session does with odd entries of a file store (contract item 32) ---------


def _rewrite_only_token(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads(path.read_text())
    (entry,) = document["entries"].values()
    change(entry["token"])
    path.write_text(json.dumps(document))
    path.chmod(0o600)


@pytest.mark.parametrize("token_type", ["bearer", "BEARER", None], ids=["lower", "upper", "absent"])
def test_a_bearer_session_adopts_an_entry_whatever_the_case_of_its_type(
    tmp_path: Path, token_type: str | None
) -> None:
    from reqcc.testing import LocalAuthorizationServer

    path = tmp_path / "tokens.json"
    with LocalAuthorizationServer() as server:
        with ClientCredentialsSession(**server.credentials(), token_store=FileTokenStore(path)) as first:
            first.get(server.api_url + "books")

        def retype(token: dict[str, Any]) -> None:
            token.pop("token_type")
            if token_type is not None:
                token["token_type"] = token_type

        _rewrite_only_token(path, retype)
        with ClientCredentialsSession(**server.credentials(), token_store=FileTokenStore(path)) as second:
            assert second.get(server.api_url + "books").status_code == 200
        assert server.token_requests == 1


def test_a_dpop_session_adopts_a_lower_case_dpop_entry_of_its_key(tmp_path: Path) -> None:
    from reqcc.testing import LocalAuthorizationServer

    path = tmp_path / "tokens.json"
    key = _ec_private_jwk()
    with LocalAuthorizationServer() as server:
        keywords = {**server.credentials(), "dpop_key": key}
        with ClientCredentialsSession(**keywords, token_store=FileTokenStore(path)) as first:
            first.get(server.api_url + "books")
        _rewrite_only_token(path, lambda token: token.update(token_type="dpop"))
        with ClientCredentialsSession(**keywords, token_store=FileTokenStore(path)) as second:
            response = second.get(server.api_url + "books")
            assert response.status_code == 200 and second.manager.token.token_type == "DPoP"  # type: ignore[union-attr]
        assert server.token_requests == 1


@pytest.mark.parametrize("token_type", ["bearer", None], ids=["bearer", "absent"])
def test_a_dpop_session_refuses_an_entry_that_is_not_dpop_and_replaces_it(
    tmp_path: Path, token_type: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    from reqcc.testing import LocalAuthorizationServer

    path = tmp_path / "tokens.json"
    key = _ec_private_jwk()
    with LocalAuthorizationServer() as server:
        keywords = {**server.credentials(), "dpop_key": key}
        with ClientCredentialsSession(**keywords, token_store=FileTokenStore(path)) as first:
            first.get(server.api_url + "books")

        def retype(token: dict[str, Any]) -> None:
            token.pop("token_type")
            if token_type is not None:
                token["token_type"] = token_type

        _rewrite_only_token(path, retype)
        with caplog.at_level(logging.WARNING, "reqcc"):
            with ClientCredentialsSession(**keywords, token_store=FileTokenStore(path)) as second:
                assert second.get(server.api_url + "books").status_code == 200
        assert server.token_requests == 2
        assert "holds a Bearer token" in caplog.text
        (entry,) = json.loads(path.read_text())["entries"].values()
        assert entry["token"]["token_type"] == "DPoP"  # the fetched token replaced it


def test_a_huge_entry_in_the_file_is_a_miss_not_a_header_no_server_takes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from reqcc.testing import LocalAuthorizationServer

    path = tmp_path / "tokens.json"
    with LocalAuthorizationServer() as server:
        with ClientCredentialsSession(**server.credentials(), token_store=FileTokenStore(path)) as first:
            first.get(server.api_url + "books")
        # 900 KB of header-safe token: within the file's 1 MiB, far past what write() stores.
        _rewrite_only_token(path, lambda token: token.update(access_token="A" * 900_000))
        with caplog.at_level(logging.WARNING, "reqcc"):
            with ClientCredentialsSession(**server.credentials(), token_store=FileTokenStore(path)) as second:
                # 0.3 before the fix: adopted, and every request was a 431 until it expired.
                assert second.get(server.api_url + "books").status_code == 200
                assert len(second.manager.token.access_token) < 1000  # type: ignore[union-attr]
        assert server.token_requests == 2
        assert "larger than a stored token may be" in caplog.text


def _ec_private_jwk() -> dict[str, Any]:
    from jwcrypto import jwk

    return dict(json.loads(jwk.JWK.generate(kty="EC", crv="P-256").export_private()))
