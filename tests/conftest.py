"""Shared fixtures for the unit tests.

Unit tests never touch the network: a ``requests_mock.Adapter`` is the inner transport of
the reqcc adapter (``adapter=``) and another one serves the token endpoint through the
manager's ``token_session=``. Time is a :class:`reqcc.testing.FakeClock`: its ``time`` is
``clock=``, its ``monotonic`` is ``monotonic=``, and ``sleep=`` records the waits and moves
both clocks instead of sleeping.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import pytest
import requests
import requests_mock

from reqcc import ClientCredentialsManager, ClientCredentialsSession
from reqcc.testing import FakeClock as ShippedFakeClock

from .hostile_server import HostileServer, Reply

if TYPE_CHECKING:
    from .otel_sdk import Otel

TOKEN_URL = "https://auth.example.com/oauth/token"
API = "https://api.example.com/"
CLIENT_ID = "bookstore-client"
CLIENT_SECRET = "sup3r-s3cret-Value"
START = 1_700_000_000.0


# The shipped clock. The old name stays for branches written before it shipped; callable
# (its wall clock) as the old one was, so their ``clock()`` reads keep working.
class FakeClock(ShippedFakeClock):
    """:class:`reqcc.testing.FakeClock`, callable (its wall clock) for tests written before it shipped."""

    __call__ = ShippedFakeClock.time


@dataclass
class TokenIssuer:
    """The token endpoint's behaviour: issues ``tok-1``, ``tok-2``, … and records every request.

    ``answers`` queues scripted answers (dicts of ``requests_mock`` response keywords:
    ``status_code``, ``json``, ``text``, ``headers``) used before issuing tokens.
    """

    expires_in: Any = 3600
    extra: dict[str, Any] = field(default_factory=dict)
    prefix: str = "tok-"
    answers: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __call__(self, request: Any, context: Any) -> str:
        self.requests.append(request)
        if self.answers:
            answer = dict(self.answers.pop(0))
            context.status_code = answer.pop("status_code", 200)
            context.headers.update(answer.pop("headers", {}))
            if "json" in answer:
                context.headers.setdefault("Content-Type", "application/json")
                return json.dumps(answer["json"])
            return str(answer.get("text", ""))
        payload: dict[str, Any] = {
            "access_token": f"{self.prefix}{next(self._counter)}",
            "token_type": "Bearer",
        }
        if self.expires_in is not None:
            payload["expires_in"] = self.expires_in
        payload.update(self.extra)
        context.headers["Content-Type"] = "application/json"
        return json.dumps(payload)

    @property
    def count(self) -> int:
        """How many token requests arrived."""
        return len(self.requests)

    def form(self, index: int = -1) -> dict[str, list[str]]:
        """The parsed form body of one token request."""
        body = self.requests[index].body
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        return parse_qs(body, keep_blank_values=True)


@dataclass
class Env:
    """A session wired to mocks: ``api`` (resource server) and ``auth`` (token endpoint)."""

    session: ClientCredentialsSession
    api: requests_mock.Adapter
    auth: requests_mock.Adapter
    issuer: TokenIssuer
    clock: FakeClock

    @property
    def manager(self) -> ClientCredentialsManager:
        return self.session.manager

    def bearers(self) -> list[str | None]:
        """The ``Authorization`` header of every request the resource server received."""
        return [r.headers.get("Authorization") for r in self.api.request_history]

    def sent(self) -> int:
        """Every request that reached a mock (token endpoint and resource server)."""
        return self.api.call_count + self.auth.call_count


def token_session_for(auth: requests_mock.Adapter) -> requests.Session:
    """A ``requests.Session`` whose https and http traffic goes to ``auth``."""
    session = requests.Session()
    session.mount("https://", auth)
    session.mount("http://", auth)
    return session


def manager_kwargs(fake: FakeClock, auth: requests_mock.Adapter, /, **overrides: Any) -> dict[str, Any]:
    """The keywords of a manager that talks to ``auth`` on the ``fake`` clock (no background renewal).

    ``overrides`` replace any of them (``clock=``, ``monotonic=`` included).
    """
    kwargs: dict[str, Any] = {
        "token_url": TOKEN_URL,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **fake.keywords(),
        "refresh_ahead": 0,
        "token_session": token_session_for(auth),
    }
    kwargs.update(overrides)
    return kwargs


@pytest.fixture
def serve() -> Iterator[Callable[..., HostileServer]]:
    """``serve(*replies, **kwargs)`` starts a raw-socket :class:`HostileServer`, closed after the test."""
    servers: list[HostileServer] = []

    def start(*replies: Reply, **kwargs: Any) -> HostileServer:
        server = HostileServer(*replies, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def otel() -> Iterator[Otel]:
    """OpenTelemetry SDK providers recording in memory (tests/otel_sdk.py), shut down after the test."""
    from .otel_sdk import Otel  # the SDK is imported only by the tests that use it

    o = Otel()
    yield o
    o.shutdown()


@pytest.fixture
def netrc_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A netrc file (``NETRC=``) with a default login, which requests turns into Basic auth."""
    netrc = tmp_path / "netrc"
    netrc.write_text("default login someone password netrc-pass\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_env(clock: FakeClock) -> Iterator[Callable[..., Env]]:
    """Build an :class:`Env`; keywords go to ``ClientCredentialsSession`` (``issuer=`` to replace it).

    Defaults: ``base_url=API``, the fake clock for ``clock``/``monotonic``/``sleep``,
    ``refresh_ahead=0`` (no background thread: the resilience tests own that), the library's
    own retry and failure-backoff defaults. The resource server answers every request
    ``200 {"ok": true}``.
    """
    sessions: list[requests.Session] = []

    def build(*, issuer: TokenIssuer | None = None, **overrides: Any) -> Env:
        auth = requests_mock.Adapter()
        api = requests_mock.Adapter()
        issuer = issuer if issuer is not None else TokenIssuer()
        auth.register_uri("POST", TOKEN_URL, text=issuer)
        api.register_uri(requests_mock.ANY, requests_mock.ANY, json={"ok": True})
        overrides.setdefault("base_url", API)
        kwargs = manager_kwargs(clock, auth, **overrides)
        if "manager" in kwargs and kwargs["manager"] is not None:
            kwargs = {k: kwargs[k] for k in ("manager", "base_url")}
        session = ClientCredentialsSession(adapter=api, **kwargs)
        sessions.append(session)
        return Env(session=session, api=api, auth=auth, issuer=issuer, clock=clock)

    yield build
    for session in sessions:
        session.close()
