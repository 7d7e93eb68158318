"""Tokens sealed at rest (contract item 39): ``encryption_key=`` on the file and Redis stores.

What is checked on the raw bytes: nothing of the token in the file or in Redis; a sealed
entry opens only under its own key and with one of the store's keys; anything else is a
miss with one WARNING. Processes are real (fork) and share through a real file.
"""

from __future__ import annotations

import base64
import json
import logging
import multiprocessing
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reqcc import ClientCredentialsManager, ConfigurationError, OAuthToken
from reqcc.stores import FileTokenStore, RedisTokenStore
from reqcc.stores.sealing import SEALED_PREFIX, Sealer, check_encryption_key
from tests.redis_server import RedisServer, running_redis
from tests.token_server import TokenServer

pytestmark = pytest.mark.filterwarnings("ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning")

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
ACCESS = "at-" + "Z" * 40
TOKEN = OAuthToken(access_token=ACCESS, expiry=4_000_000_000.0, scope="books.read")


def entries(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_bytes())
    return dict(document["entries"])


def set_entry(path: Path, key: str, value: Any) -> None:
    document = json.loads(path.read_bytes())
    document["entries"].setdefault(key, {})["token"] = value
    path.write_text(json.dumps(document))


def _flip_last_bit(sealed: str) -> str:
    # On the decoded bytes: a changed base64 character may change only padding bits, which
    # decode to the same bytes (the entry then opens: a flaky test, 1 run in ~8).
    raw = bytearray(base64.urlsafe_b64decode(sealed[len(SEALED_PREFIX) :]))
    raw[-1] ^= 1
    return SEALED_PREFIX + base64.urlsafe_b64encode(bytes(raw)).decode("ascii")


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "reqcc"]


# -- keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"short", "exactly 32 bytes"),
        (KEY_A + b"x", "exactly 32 bytes"),
        (KEY_A.hex(), "not text"),
        ([], "non-empty sequence"),
        ([KEY_A, b"short"], r"encryption_key\[1\] must be exactly 32 bytes"),
        ([KEY_A, KEY_A.hex()], r"encryption_key\[1\] must be 32 raw bytes"),
        (42, "got int"),
    ],
)
def test_a_bad_key_is_a_configuration_error_at_construction(tmp_path: Path, value: Any, message: str) -> None:
    for build in (
        lambda: FileTokenStore(tmp_path / "t.json", encryption_key=value),
        lambda: RedisTokenStore(url="redis://127.0.0.1:1/0", encryption_key=value),
    ):
        with pytest.raises(ConfigurationError, match=message) as caught:
            build()
        assert KEY_A.hex() not in str(caught.value) and repr(KEY_A) not in str(caught.value)


def test_keys_are_bytes_like_and_rotation_lists_keep_their_order() -> None:
    assert check_encryption_key(bytearray(KEY_A)) == (KEY_A,)
    assert check_encryption_key((KEY_B, memoryview(KEY_A))) == (KEY_B, KEY_A)
    assert (
        "KEY" not in repr(Sealer([KEY_A, KEY_B], where="x"))
        and repr(Sealer(KEY_A, where="x")) == "Sealer(1 key)"
    )


# -- the file store ----------------------------------------------------------------------


def test_a_sealed_file_holds_nothing_of_the_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path, encryption_key=KEY_A)
    store.write("k1", TOKEN)
    raw = path.read_bytes()
    assert ACCESS.encode() not in raw and b"books.read" not in raw and b"4000000000" not in raw
    assert entries(path)["k1"]["token"].startswith(SEALED_PREFIX)
    assert store.read("k1") == TOKEN
    assert FileTokenStore(path, encryption_key=KEY_A).read("k1") == TOKEN  # another process, same key


def test_each_write_has_a_fresh_nonce(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "t.json", encryption_key=KEY_A)
    store.write("k1", TOKEN)
    first = entries(tmp_path / "t.json")["k1"]["token"]
    store.write("k1", TOKEN)
    assert entries(tmp_path / "t.json")["k1"]["token"] != first


def test_an_entry_moved_to_another_key_does_not_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "t.json"
    store = FileTokenStore(path, encryption_key=KEY_A)
    store.write("victim", TOKEN)
    store.write("mine", OAuthToken(access_token="other", expiry=4_000_000_000.0))
    set_entry(path, "mine", entries(path)["victim"]["token"])
    with caplog.at_level(logging.WARNING, logger="reqcc"):
        assert store.read("mine") is None
    assert len(warnings_of(caplog)) == 1 and "opens with none" in warnings_of(caplog)[0]


def test_rotation_the_first_key_seals_every_key_opens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "t.json"
    FileTokenStore(path, encryption_key=KEY_A).write("k", TOKEN)
    rotating = FileTokenStore(path, encryption_key=[KEY_B, KEY_A])
    assert rotating.read("k") == TOKEN  # the old key still opens
    rotating.write("k", TOKEN)  # sealed with the new one
    assert FileTokenStore(path, encryption_key=KEY_B).read("k") == TOKEN
    with caplog.at_level(logging.WARNING, logger="reqcc"):
        assert FileTokenStore(path, encryption_key=KEY_A).read("k") is None  # retired key: a miss


@pytest.mark.parametrize(
    "tamper",
    [
        _flip_last_bit,  # a tag bit
        lambda s: s[: len(SEALED_PREFIX) + 20],  # truncated
        lambda s: SEALED_PREFIX + "!!!not base64!!!",
        lambda s: SEALED_PREFIX,
        lambda s: 42,
        lambda s: {"access_token": ACCESS, "token_type": "Bearer"},  # written in clear
    ],
    ids=["bit", "truncated", "garbage", "empty", "number", "clear"],
)
def test_a_tampered_or_clear_entry_is_a_miss_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, tamper: Any
) -> None:
    path = tmp_path / "t.json"
    store = FileTokenStore(path, encryption_key=KEY_A)
    store.write("k", TOKEN)
    set_entry(path, "k", tamper(entries(path)["k"]["token"]))
    with caplog.at_level(logging.WARNING, logger="reqcc"):
        for _ in range(3):
            assert store.read("k") is None
    [warning] = warnings_of(caplog)
    assert "k…" in warning and ACCESS not in warning


def test_a_store_without_key_does_not_use_a_sealed_entry(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    FileTokenStore(path, encryption_key=KEY_A).write("k", TOKEN)
    assert FileTokenStore(path).read("k") is None


def test_the_key_is_in_no_repr(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "t.json", encryption_key=KEY_A)
    text = repr(store) + repr(vars(store).get("_sealer"))
    assert (
        KEY_A.hex() not in text and repr(KEY_A) not in text and base64.b64encode(KEY_A).decode() not in text
    )


# -- processes sharing one sealed file -------------------------------------------------------


def _process(path: str, key: bytes, token_url: str, out: Any) -> None:
    try:
        manager = ClientCredentialsManager(
            token_url=token_url,
            client_id="fleet",
            client_secret="fleet-secret",
            token_store=FileTokenStore(path, encryption_key=key),
            refresh_ahead=0,
        )
        out.put(manager.get_token().fingerprint)
    except BaseException as exc:  # reported to the test
        out.put(f"{type(exc).__name__}: {exc}")


def test_processes_with_one_key_share_a_token_and_another_key_fetches_its_own(tmp_path: Path) -> None:
    path = str(tmp_path / "tokens.json")
    ctx = multiprocessing.get_context("fork")
    with TokenServer() as server:
        fingerprints = []
        for key in (KEY_A, KEY_A, KEY_B):
            out: Any = ctx.Queue()
            child = ctx.Process(target=_process, args=(path, key, server.token_url, out), daemon=True)
            child.start()
            fingerprints.append(out.get(timeout=60))
            child.join(10)
        assert fingerprints[0] == fingerprints[1] != fingerprints[2], fingerprints
        assert server.token_requests == 2
        assert all(len(f) == 8 for f in fingerprints)


# -- Redis -----------------------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path) as server:
        yield server


def test_redis_holds_nothing_of_the_token_and_binds_the_key(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    import redis

    prefix = f"t-{uuid.uuid4().hex[:6]}:"
    store = RedisTokenStore(url=redis_server.url, prefix=prefix, encryption_key=[KEY_B, KEY_A])
    store.write("k1", TOKEN)
    client = redis.Redis.from_url(redis_server.url)
    raw = client.get(f"{prefix}token:k1")
    assert raw is not None and raw.startswith(SEALED_PREFIX.encode())
    assert ACCESS.encode() not in raw and b"books.read" not in raw
    assert RedisTokenStore(url=redis_server.url, prefix=prefix, encryption_key=KEY_B).read("k1") == TOKEN
    assert client.pttl(f"{prefix}token:k1") > 0  # the time to live is kept
    # Moved under another key, or read with another key: a miss, warned once.
    client.set(f"{prefix}token:k2", raw)
    with caplog.at_level(logging.WARNING, logger="reqcc"):
        assert store.read("k2") is None
        assert store.read("k2") is None
        assert RedisTokenStore(url=redis_server.url, prefix=prefix, encryption_key=KEY_A).read("k1") is None
    assert len(warnings_of(caplog)) == 2


def test_two_stores_with_different_keys_in_one_process_do_not_mix(tmp_path: Path) -> None:
    # No global state: each store keeps its own keys.
    a = FileTokenStore(tmp_path / "a.json", encryption_key=KEY_A)
    b = FileTokenStore(tmp_path / "a.json", encryption_key=KEY_B)
    a.write("k", TOKEN)
    assert b.read("k") is None and a.read("k") == TOKEN


# -- expired sealed entries are forgotten, as clear ones are -------------------------------


def test_a_sealed_store_drops_expired_entries_when_it_rewrites(tmp_path: Path) -> None:
    now = [1000.0]
    path = tmp_path / "t.json"
    store = FileTokenStore(path, clock=lambda: now[0], encryption_key=[KEY_A, KEY_B])
    store.write("old", OAuthToken("a", expires_in=10, expiry=1010.0))
    store.write("forever", OAuthToken("b"))
    # Another fleet's entry on the same file, sealed with a key this store does not hold.
    FileTokenStore(path, clock=lambda: now[0], encryption_key=bytes(32)).write(
        "theirs", OAuthToken("c", expires_in=10, expiry=1010.0)
    )
    now[0] = 1020.0
    store.write("new", OAuthToken("d", expires_in=10, expiry=1030.0))
    assert sorted(entries(path)) == ["forever", "new", "theirs"]  # theirs: not ours to judge
    assert store.read("new") == OAuthToken("d", expires_in=10, expiry=1030.0)


def test_restarts_of_dpop_processes_do_not_fill_a_sealed_file(tmp_path: Path) -> None:
    # dpop=True makes a key per process, and the store key holds its thumbprint: each
    # process start is a new entry. Sealed entries were never pruned: after enough restarts
    # the file reached 1 MiB and every write failed (EFBIG), for every client on the host.
    import time

    from reqcc import ClientCredentialsSession
    from reqcc.testing import LocalAuthorizationServer
    from tests.conftest import FakeClock

    clock = FakeClock(time.time())
    path = tmp_path / "tokens.json"
    sizes = []
    with LocalAuthorizationServer(token_ttl=60, clock=clock) as server:
        for _ in range(6):
            store = FileTokenStore(path, clock=clock, encryption_key=KEY_A)
            keywords = {**server.credentials(), "dpop": True, "token_store": store, "clock": clock}
            with ClientCredentialsSession(**keywords) as session:
                assert session.get(server.api_url + "books").status_code == 200
            sizes.append(len(entries(path)))
            clock.advance(120)  # that process's token has expired
    assert sizes == [1] * 6


# -- black box: keys in odd forms, rotation and two keys on one file, through sessions -------


@pytest.mark.parametrize(
    "value",
    [{KEY_A}, frozenset([KEY_A]), (k for k in [KEY_A]), {KEY_A: 1}, [[KEY_A]], True, [None]],
    ids=["set", "frozenset", "generator", "dict", "nested", "bool", "none"],
)
def test_keys_without_an_order_or_not_bytes_are_refused(tmp_path: Path, value: Any) -> None:
    # A set would make "the first seals" arbitrary: refused, not guessed.
    with pytest.raises(ConfigurationError, match="encryption_key"):
        FileTokenStore(tmp_path / "t.json", encryption_key=value)


def test_a_key_given_as_a_bytearray_or_a_view_is_copied(tmp_path: Path) -> None:
    mutable = bytearray(KEY_A)
    store = FileTokenStore(tmp_path / "t.json", encryption_key=mutable)
    store.write("k", TOKEN)
    mutable[:] = bytes(32)  # the caller wipes its buffer: the store keeps its own copy
    assert store.read("k") == TOKEN
    strided = memoryview(bytes(b for pair in zip(KEY_A, KEY_B, strict=True) for b in pair))[::2]
    assert FileTokenStore(tmp_path / "t.json", encryption_key=strided).read("k") == TOKEN


def test_sessions_rotating_keys_share_without_a_fetch_and_two_keys_on_one_file_never_fail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from reqcc import ClientCredentialsSession
    from reqcc.testing import LocalAuthorizationServer

    path = tmp_path / "tokens.json"

    def session(server: LocalAuthorizationServer, key: Any) -> ClientCredentialsSession:
        store = FileTokenStore(path, encryption_key=key)
        return ClientCredentialsSession(**server.credentials(), token_store=store)

    with LocalAuthorizationServer() as server:
        with session(server, KEY_A) as old:
            assert old.get(server.api_url + "books").status_code == 200
        with session(server, [KEY_B, KEY_A]) as rotating:  # deployed [new, old]: opens the old entry
            assert rotating.get(server.api_url + "books").status_code == 200
        assert server.token_requests == 1
        with caplog.at_level(logging.WARNING, logger="reqcc"):
            # Two fleets with unrelated keys on one file: each is a miss for the other.
            for key in (bytes(32), KEY_B, bytes(32)):
                with session(server, key) as other:
                    assert other.get(server.api_url + "books").status_code == 200
        assert server.token_requests == 4  # each found the other key's entry: three more fetches
        assert all("opens with none" in message for message in warnings_of(caplog))
