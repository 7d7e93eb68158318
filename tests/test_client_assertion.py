"""Unit tests of client assertions the platform signed (contract item 38): file, callable, keywords.

The token endpoint is a ``requests_mock.Adapter`` on the manager's token session; the
platform's JWTs are signed with jwcrypto (tests/platform_tokens.py), not by reqcc.
"""

from __future__ import annotations

import json
import logging
import os
import string
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests_mock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reqcc import (
    ClientAssertionError,
    ClientCredentialsManager,
    ClientCredentialsSession,
    ConfigurationError,
    InvalidClient,
    ReqccError,
    mount,
)
from reqcc.client_assertion import (
    ASSERTION_TYPE,
    EXPIRY_MARGIN,
    MAX_ASSERTION_SIZE,
    AssertionFile,
    ExternalAssertion,
)
from reqcc.stores import FileTokenStore

from .conftest import CLIENT_ID, CLIENT_SECRET, TOKEN_URL, FakeClock, TokenIssuer, manager_kwargs
from .platform_tokens import KubeletVolume, Platform, unsigned_jwt, write_in_place, write_replace
from .reachable import reachable_text

PLATFORM = Platform()


@pytest.fixture
def wire() -> tuple[requests_mock.Adapter, TokenIssuer]:
    issuer = TokenIssuer()
    adapter = requests_mock.Adapter()
    adapter.register_uri("POST", TOKEN_URL, text=issuer)
    return adapter, issuer


def assertion_manager(
    clock: FakeClock, wire: tuple[requests_mock.Adapter, TokenIssuer], **overrides: Any
) -> ClientCredentialsManager:
    kwargs = manager_kwargs(clock, wire[0], **overrides)
    if "client_secret" not in overrides:
        del kwargs["client_secret"]
    return ClientCredentialsManager(**kwargs)


def sent_assertion(issuer: TokenIssuer, index: int = -1) -> str:
    return issuer.form(index)["client_assertion"][0]


# -- what goes on the wire -------------------------------------------------------------


def test_the_file_is_sent_as_an_rfc7523_assertion_with_client_id(
    tmp_path: Path, clock: FakeClock, wire: Any
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(PLATFORM.mint(now=clock()) + "\n")  # the newline is not part of it
    manager = assertion_manager(clock, wire, client_assertion_file=token_file)
    manager.fetch_token()
    form = wire[1].form()
    assert form["client_assertion_type"] == [ASSERTION_TYPE]
    assert form["client_assertion"] == [token_file.read_text().strip()]
    assert form["client_id"] == [CLIENT_ID]
    assert "client_secret" not in form and "Authorization" not in wire[1].requests[-1].headers
    assert manager.auth_method == "private_key_jwt"


def test_the_callable_gets_the_token_endpoint_as_audience_once_per_request(
    clock: FakeClock, wire: Any
) -> None:
    audiences: list[str] = []

    def platform_token(audience: str) -> str:
        audiences.append(audience)
        return PLATFORM.mint(now=clock(), audience=audience)

    manager = assertion_manager(clock, wire, client_assertion=platform_token)
    manager.fetch_token()
    manager.fetch_token()
    assert audiences == [TOKEN_URL, TOKEN_URL]
    assert sent_assertion(wire[1], 0) != sent_assertion(wire[1], 1)


# -- a file that changes -----------------------------------------------------------------


@pytest.mark.parametrize("rotate", ["replace", "in_place", "kubelet"])
def test_a_rotated_file_is_read_again(tmp_path: Path, clock: FakeClock, wire: Any, rotate: str) -> None:
    first = PLATFORM.mint(now=clock(), lifetime=600)
    # Longer lifetime: a different size too, so an in-place rewrite within one mtime tick is seen.
    second = PLATFORM.mint(now=clock() + 480, lifetime=100_000)
    if rotate == "kubelet":
        volume = KubeletVolume(tmp_path / "sa")
        volume.publish(first)
        path: Path = volume.path
    else:
        path = tmp_path / "token"
        path.write_text(first)
    manager = assertion_manager(clock, wire, client_assertion_file=path)
    manager.fetch_token()
    manager.fetch_token()  # unchanged: the copy held
    clock.advance(480)
    if rotate == "kubelet":
        volume.publish(second)
    elif rotate == "replace":
        write_replace(path, second)
    else:
        write_in_place(path, second)
    manager.fetch_token()
    assert [sent_assertion(wire[1], i) for i in range(3)] == [first, first, second]


def test_an_unchanged_file_is_not_read_again(tmp_path: Path, clock: FakeClock, monkeypatch: Any) -> None:
    path = tmp_path / "token"
    path.write_text(PLATFORM.mint(now=clock()))
    reader = AssertionFile(path, clock=clock)
    opened: list[str] = []
    real_open = os.open

    def counting_open(name: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(os.fspath(name))
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting_open)
    for _ in range(5):
        reader.read()
    assert opened == [str(path)]


def test_an_expired_file_sends_nothing_and_names_the_file(
    tmp_path: Path, clock: FakeClock, wire: Any
) -> None:
    path = tmp_path / "token"
    path.write_text(PLATFORM.mint(now=clock(), lifetime=600))
    manager = assertion_manager(clock, wire, client_assertion_file=path)
    manager.fetch_token()
    clock.advance(600 - EXPIRY_MARGIN)  # within the margin: not sent
    with pytest.raises(ClientAssertionError, match="has expired") as caught:
        manager.fetch_token()
    assert str(path) in str(caught.value) and caught.value.source == str(path)
    assert not isinstance(caught.value, ConfigurationError)
    assert wire[1].count == 1
    # The platform catches up: the next fetch uses the new file.
    write_replace(path, PLATFORM.mint(now=clock(), lifetime=600))
    manager.fetch_token()
    assert wire[1].count == 2


def test_an_expired_assertion_fails_a_session_request_without_a_token_request(
    tmp_path: Path, clock: FakeClock, wire: Any
) -> None:
    path = tmp_path / "token"
    path.write_text(PLATFORM.mint(now=clock() - 7200, lifetime=3600))
    api = requests_mock.Adapter()
    api.register_uri("GET", "https://api.example.com/books", json=[])
    kwargs = manager_kwargs(clock, wire[0], client_assertion_file=path)
    del kwargs["client_secret"]
    session = ClientCredentialsSession(base_url="https://api.example.com/", adapter=api, **kwargs)
    with pytest.raises(ClientAssertionError, match="has expired"):
        session.get("https://api.example.com/books")
    assert wire[1].count == 0 and api.call_count == 0


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "does not exist"),
        ("", "is empty"),
        ("\n  \n", "is empty"),
        ("not a jwt", "is not a JWT"),
        ("a.b.c", "payload is not a JSON object"),
        (unsigned_jwt({"sub": "x"}), "no numeric 'exp'"),
        (unsigned_jwt({"exp": "soon"}), "no numeric 'exp'"),
        (unsigned_jwt({"exp": True}), "no numeric 'exp'"),
        ("x" * (MAX_ASSERTION_SIZE + 1), "larger than"),
        ("é.é.é", "non-ASCII"),
    ],
    ids=["missing", "empty", "blank", "garbage", "payload", "no-exp", "text-exp", "bool-exp", "huge", "utf8"],
)
def test_an_unusable_file_is_a_typed_error_naming_it(
    tmp_path: Path, clock: FakeClock, wire: Any, content: str | None, problem: str
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    manager = assertion_manager(clock, wire, client_assertion_file=path)
    with pytest.raises(ClientAssertionError, match=problem) as caught:
        manager.fetch_token()
    assert str(path) in str(caught.value)
    assert wire[1].count == 0


def test_an_unreadable_file_or_a_folder_is_a_typed_error(tmp_path: Path, clock: FakeClock, wire: Any) -> None:
    manager = assertion_manager(clock, wire, client_assertion_file=tmp_path)
    with pytest.raises(ClientAssertionError, match=r"cannot be read|not a regular file"):
        manager.fetch_token()
    if os.geteuid() != 0:
        path = tmp_path / "token"
        path.write_text(PLATFORM.mint(now=clock()))
        path.chmod(0)
        manager = assertion_manager(clock, wire, client_assertion_file=path)
        with pytest.raises(ClientAssertionError, match="cannot be read"):
            manager.fetch_token()
    assert wire[1].count == 0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_hanging(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "token"
    os.mkfifo(path)  # nobody writes to it: a blocking open would never return
    with pytest.raises(ClientAssertionError, match="not a regular file"):
        AssertionFile(path, clock=clock).read()


def test_a_huge_file_is_not_read_whole(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "token"
    with open(path, "wb") as handle:
        handle.truncate(1 << 30)  # sparse: a GiB that costs no disk
    with pytest.raises(ClientAssertionError, match="larger than"):
        AssertionFile(path, clock=clock).read()


def test_the_file_error_is_retried_after_the_failure_backoff(
    tmp_path: Path, clock: FakeClock, wire: Any
) -> None:
    path = tmp_path / "token"
    manager = assertion_manager(clock, wire, client_assertion_file=path)
    with pytest.raises(ClientAssertionError):
        manager.fetch_token()
    path.write_text(PLATFORM.mint(now=clock()))
    assert manager.token is None
    api = requests_mock.Adapter()
    api.register_uri("GET", "https://api.example.com/x", json={})
    session = ClientCredentialsSession(base_url="https://api.example.com/", adapter=api, manager=manager)
    clock.advance(120)  # past any failure backoff
    assert session.get("https://api.example.com/x").status_code == 200
    assert wire[1].count == 1


# -- a callable ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("returned", "problem"),
    [("", "empty string"), (None, "NoneType"), (b"x.y.z", "bytes"), ("nope", "not a JWT")],
)
def test_a_callable_returning_no_jwt_is_a_typed_error(
    clock: FakeClock, wire: Any, returned: Any, problem: str
) -> None:
    manager = assertion_manager(clock, wire, client_assertion=lambda audience: returned)
    with pytest.raises(ClientAssertionError, match=problem):
        manager.fetch_token()
    assert wire[1].count == 0


def test_a_callable_that_raises_is_a_typed_error_naming_it(clock: FakeClock, wire: Any) -> None:
    def spiffe_svid(audience: str) -> str:
        raise ConnectionError("workload API socket gone")

    manager = assertion_manager(clock, wire, client_assertion=spiffe_svid)
    with pytest.raises(ClientAssertionError, match=r"spiffe_svid raised ConnectionError") as caught:
        manager.fetch_token()
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert wire[1].count == 0


def test_an_expired_callable_assertion_is_not_sent(clock: FakeClock, wire: Any) -> None:
    manager = assertion_manager(
        clock, wire, client_assertion=lambda audience: PLATFORM.mint(now=clock() - 3600, lifetime=60)
    )
    with pytest.raises(ClientAssertionError, match="has expired"):
        manager.fetch_token()
    assert wire[1].count == 0


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"client_secret": CLIENT_SECRET}, "client_secret= does not go with"),
        ({"private_key": "-----BEGIN PRIVATE KEY-----"}, "private_key= does not go with"),
        ({"assertion_algorithm": "ES256"}, "assertion_algorithm= does not go with"),
        ({"assertion_audience": "x"}, "assertion_audience= does not go with"),
        ({"auth_method": "client_secret_basic", "client_secret": CLIENT_SECRET}, "not 'client_secret_basic'"),
        ({"auth_method": "none"}, "not 'none'"),
        ({"client_assertion": lambda a: "x"}, "not both"),
    ],
)
def test_mixing_credentials_is_a_configuration_error(
    tmp_path: Path, extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        ClientCredentialsManager(
            token_url=TOKEN_URL, client_id=CLIENT_ID, client_assertion_file=tmp_path / "token", **extra
        )
    assert CLIENT_SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("client_assertion_file", "", "non-empty file path"),
        ("client_assertion_file", 42, "must be a file path"),
        ("client_assertion", "eyJ.not.callable", "must be callable"),
    ],
)
def test_bad_values_are_configuration_errors(keyword: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        ClientCredentialsManager(token_url=TOKEN_URL, client_id=CLIENT_ID, **{keyword: value})
    assert "eyJ" not in str(caught.value)


def test_auth_method_private_key_jwt_may_be_said(tmp_path: Path) -> None:
    manager = ClientCredentialsManager(
        token_url=TOKEN_URL,
        client_id=CLIENT_ID,
        auth_method="private_key_jwt",
        client_assertion_file=tmp_path / "token",
    )
    assert manager.auth_method == "private_key_jwt"


def test_the_constructor_reads_nothing(tmp_path: Path) -> None:
    # The file may appear after start-up (a volume mounted late): only a fetch reads it.
    ClientCredentialsManager(
        token_url=TOKEN_URL, client_id=CLIENT_ID, client_assertion_file=tmp_path / "nope"
    )


def test_session_adapter_and_mount_take_the_keywords(tmp_path: Path) -> None:
    import requests

    path = tmp_path / "token"
    session = ClientCredentialsSession(token_url=TOKEN_URL, client_id=CLIENT_ID, client_assertion_file=path)
    assert session.manager.auth_method == "private_key_jwt"
    adapter = mount(
        requests.Session(),
        "https://api.example.com/",
        token_url=TOKEN_URL,
        client_id=CLIENT_ID,
        client_assertion=lambda audience: "x",
    )
    assert adapter.manager.auth_method == "private_key_jwt"


# -- secrets ---------------------------------------------------------------------------------


def test_the_assertion_is_in_no_repr_log_or_error(
    tmp_path: Path, clock: FakeClock, wire: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assertion = PLATFORM.mint(now=clock())
    path = tmp_path / "token"
    path.write_text(assertion)
    # The server echoes what it got in its error: the message must not carry it.
    wire[1].answers.append(
        {"status_code": 401, "json": {"error": "invalid_client", "error_description": f"bad {assertion}"}}
    )
    caplog.set_level(logging.DEBUG, logger="reqcc")
    manager = assertion_manager(clock, wire, client_assertion_file=path)
    with pytest.raises(InvalidClient) as caught:
        manager.fetch_token()
    seen = [str(caught.value), repr(caught.value), repr(manager), repr(manager._endpoint), caplog.text]
    seen += [repr(manager._endpoint.client_auth)] if manager._endpoint is not None else []
    assert all(assertion not in text for text in seen)
    assert all(assertion.split(".")[2] not in text for text in seen)  # nor its signature alone
    assert str(path) in repr(manager._endpoint.client_auth)  # type: ignore[union-attr]


def test_the_store_key_holds_the_source_not_the_value(tmp_path: Path, clock: FakeClock, wire: Any) -> None:
    path = tmp_path / "token"
    path.write_text(PLATFORM.mint(now=clock(), lifetime=600))
    store_path = tmp_path / "store.json"
    store = FileTokenStore(store_path, clock=clock)
    manager = assertion_manager(clock, wire, client_assertion_file=path, token_store=store)
    manager.get_token()
    assert wire[1].count == 1
    assert sent_assertion(wire[1]) not in store_path.read_text()
    assert str(path) not in store_path.read_text()  # the key is a digest
    # A rotation keeps the key: another process after the rotation adopts the stored token.
    write_replace(path, PLATFORM.mint(now=clock() + 1, lifetime=900))
    other = assertion_manager(clock, wire, client_assertion_file=path, token_store=store)
    assert other.get_token().access_token == manager.get_token().access_token
    assert wire[1].count == 1
    # Another file (another identity) is another entry.
    path_b = tmp_path / "other"
    path_b.write_text(PLATFORM.mint(now=clock(), lifetime=600))
    elsewhere = assertion_manager(clock, wire, client_assertion_file=path_b, token_store=store)
    assert elsewhere.get_token().access_token != manager.get_token().access_token
    assert wire[1].count == 2


def test_a_callables_store_key_is_its_qualified_name() -> None:
    def identity_a(audience: str) -> str:
        return "a"

    def identity_b(audience: str) -> str:
        return "b"

    auth_a = ExternalAssertion(CLIENT_ID, assertion=identity_a)
    assert auth_a.key_secrets() == (f"callable:{__name__}.{identity_a.__qualname__}",)
    assert auth_a.key_secrets() != ExternalAssertion(CLIENT_ID, assertion=identity_b).key_secrets()


def test_client_assertion_error_is_a_reqcc_error_with_its_source() -> None:
    error = ClientAssertionError("x", source="/p")
    assert isinstance(error, ReqccError) and error.source == "/p"
    import pickle

    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes; errors cross processes
    assert type(copy) is ClientAssertionError and copy.source == "/p" and str(copy) == "x"


# -- redaction of assertion-shaped values (property) ---------------------------------------

_B64URL_PART = st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=56)
#: In every drawn signature. Hypothesis also draws the source's own string literals and
#: pieces of them ('token_ur' of "token_url"), which the fixed texts the test searches
#: hold (repr(manager), log lines): a signature holding this mark, which none of them
#: does, is found there only if it leaked. Any base64url characters may still come before
#: and after it (a signature starting or ending with "-" or "_" included).
_SIGNATURE_MARK = "Qz7Xw9Vk"
_SIGNATURES = st.builds(lambda head, tail: head + _SIGNATURE_MARK + tail, _B64URL_PART, _B64URL_PART)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    signature=_SIGNATURES,
    subject=st.text(min_size=1, max_size=30),
    echo=st.sampled_from(["raw", "json", "url", "html"]),
)
def test_an_echoed_assertion_never_reaches_an_error_or_a_log(
    signature: str, subject: str, echo: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    assertion = unsigned_jwt({"sub": subject, "exp": clock() + 3600}).rsplit(".", 1)[0] + "." + signature
    shown = {
        "raw": assertion,
        "json": json.dumps(assertion)[1:-1],
        "url": quote(assertion, safe=""),
        "html": assertion.replace(".", "&#46;"),  # no longer JWT-shaped: only the secret list finds it
    }[echo]
    adapter = requests_mock.Adapter()
    adapter.register_uri(
        "POST",
        TOKEN_URL,
        status_code=400,
        text=f'{{"error": "invalid_client", "error_description": "refused {shown}"}}',
        headers={"Content-Type": "application/json"},
    )
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="reqcc"):
        manager = ClientCredentialsManager(
            **{k: v for k, v in manager_kwargs(clock, adapter).items() if k != "client_secret"},
            client_assertion=lambda audience: assertion,
        )
        with pytest.raises(InvalidClient) as caught:
            manager.fetch_token()
    for text in (str(caught.value), repr(caught.value), caplog.text, repr(manager)):
        assert _SIGNATURE_MARK not in text  # no part of the signature around the mark either
        assert assertion not in text
        assert signature not in text
        assert shown not in text


def test_a_refused_assertion_is_counted_but_a_missing_one_is_not(
    tmp_path: Path, clock: FakeClock, otel: Any
) -> None:
    # check_ready runs before the telemetry's token request: a missing file is no request.
    adapter = requests_mock.Adapter()
    adapter.register_uri("POST", TOKEN_URL, json={"access_token": "t", "token_type": "Bearer"})
    path = tmp_path / "token"
    kwargs = {k: v for k, v in manager_kwargs(clock, adapter).items() if k != "client_secret"}
    manager = ClientCredentialsManager(
        **kwargs,
        client_assertion_file=path,
        meter_provider=otel.meter_provider,
        tracer_provider=otel.tracer_provider,
    )
    with pytest.raises(ClientAssertionError):
        manager.fetch_token()
    assert otel.requests_by() == {} and otel.exporter.get_finished_spans() == ()
    assertion = PLATFORM.mint(now=clock())
    path.write_text(assertion)
    manager.fetch_token()
    assert otel.requests_by() == {("success", None): 1}
    # A refusal that echoes the assertion: an error span, and nothing of it recorded.
    adapter.register_uri(
        "POST",
        TOKEN_URL,
        status_code=401,
        json={"error": "invalid_client", "error_description": f"bad assertion {assertion}"},
    )
    with pytest.raises(InvalidClient):
        manager.fetch_token()
    assert otel.requests_by()[("error", "invalid_client")] == 1
    recorded = otel.recorded_text()
    assert assertion not in recorded and assertion.split(".")[2] not in recorded


# -- black box: a session against a real loopback server that trusts the platform ------------


FEDERATED_CLIENT = "orders-service"


def federated_server(clock: FakeClock, **kwargs: Any) -> Any:
    from reqcc.testing import FederatedCredential, LocalAuthorizationServer, RegisteredClient

    from .platform_tokens import ENTRA_AUDIENCE, K8S_ISSUER, K8S_SUBJECT

    credential = FederatedCredential(
        issuer=K8S_ISSUER, subject=K8S_SUBJECT, audience=ENTRA_AUDIENCE, key=PLATFORM.public_pem()
    )
    client = RegisteredClient(FEDERATED_CLIENT, None, frozenset({"books.read"}), federated=(credential,))
    return LocalAuthorizationServer(clients=[client], clock=clock, **kwargs)


def federated_session(server: Any, clock: FakeClock, **kwargs: Any) -> ClientCredentialsSession:
    return ClientCredentialsSession(
        token_url=server.token_url,
        client_id=FEDERATED_CLIENT,
        scopes=["books.read"],
        base_url=server.api_url,
        clock=clock,
        refresh_ahead=0,
        **kwargs,
    )


@pytest.fixture
def wall_clock() -> FakeClock:
    import time

    return FakeClock(time.time())


@pytest.mark.parametrize(
    ("prefix", "suffix"),
    [("", "\n"), ("", "\r\n"), ("  \t", " \n\n"), ("\ufeff", ""), ("\ufeff", "\n")],
    ids=["newline", "crlf", "blanks", "bom", "bom-newline"],
)
def test_a_hand_written_file_is_sent_without_its_newline_or_bom(
    tmp_path: Path, wall_clock: FakeClock, prefix: str, suffix: str
) -> None:
    assertion = PLATFORM.mint(now=wall_clock())
    path = tmp_path / "token"
    path.write_bytes((prefix + assertion + suffix).encode("utf-8"))
    with federated_server(wall_clock) as server:
        with federated_session(server, wall_clock, client_assertion_file=path) as session:
            assert session.get(server.api_url + "books").status_code == 200
        assert server.token_request_log[-1].form["client_assertion"] == [assertion]


@pytest.mark.parametrize(
    ("claims", "problem"),
    [
        ({"exp": 10**400}, "numeric 'exp'"),  # too large for a float: was a bare OverflowError
        ({"exp": -(10**400)}, "numeric 'exp'"),
        ({"exp": "4102444800"}, "numeric 'exp'"),
        ({"exp": None}, "numeric 'exp'"),
        ({"exp": [4102444800]}, "numeric 'exp'"),
        ({"exp": 1.5}, "has expired"),
    ],
    ids=["huge-int", "huge-negative", "string", "null", "list", "float-past"],
)
def test_an_odd_exp_is_a_typed_error_and_no_token_request(
    tmp_path: Path, wall_clock: FakeClock, claims: dict[str, Any], problem: str
) -> None:
    path = tmp_path / "token"
    path.write_text(unsigned_jwt({"iss": "x", "sub": "y", **claims}))
    with federated_server(wall_clock) as server:
        with federated_session(server, wall_clock, client_assertion_file=path) as session:
            with pytest.raises(ClientAssertionError, match=problem) as caught:
                session.get(server.api_url + "books")
        assert caught.value.source == str(path)
        assert server.token_requests == 0 and server.api_requests == 0


def test_a_float_exp_in_the_future_is_used(tmp_path: Path, wall_clock: FakeClock) -> None:
    path = tmp_path / "token"
    path.write_text(PLATFORM.mint(now=wall_clock(), exp=wall_clock() + 600.75))
    with federated_server(wall_clock) as server:
        with federated_session(server, wall_clock, client_assertion_file=path) as session:
            assert session.get(server.api_url + "books").status_code == 200


@pytest.mark.parametrize("kind", ["text", "directory", "symlink-loop", "dangling-symlink", "fifo"])
def test_what_is_not_a_jwt_file_sends_nothing(tmp_path: Path, wall_clock: FakeClock, kind: str) -> None:
    path = tmp_path / "token"
    if kind == "text":
        path.write_text("this is not a token\n")
    elif kind == "directory":
        path.mkdir()
    elif kind == "symlink-loop":
        os.symlink(tmp_path / "other", path)
        os.symlink(path, tmp_path / "other")
    elif kind == "dangling-symlink":
        os.symlink(tmp_path / "nowhere", path)
    else:
        os.mkfifo(path)
    with federated_server(wall_clock) as server:
        with federated_session(server, wall_clock, client_assertion_file=path) as session:
            with pytest.raises(ClientAssertionError) as caught:
                session.get(server.api_url + "books")
        assert str(path) in str(caught.value)
        assert server.token_requests == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 0")
def test_a_file_without_read_permission_sends_nothing(tmp_path: Path, wall_clock: FakeClock) -> None:
    path = tmp_path / "token"
    path.write_text(PLATFORM.mint(now=wall_clock()))
    path.chmod(0)
    with federated_server(wall_clock) as server:
        with federated_session(server, wall_clock, client_assertion_file=path) as session:
            with pytest.raises(ClientAssertionError, match="Permission denied"):
                session.get(server.api_url + "books")
        assert server.token_requests == 0


def test_a_deleted_file_fails_the_next_fetch_and_its_return_recovers(
    tmp_path: Path, wall_clock: FakeClock
) -> None:
    path = tmp_path / "token"
    path.write_text(PLATFORM.mint(now=wall_clock(), lifetime=3600))
    with federated_server(wall_clock, token_ttl=60) as server:
        session = federated_session(server, wall_clock, client_assertion_file=path, monotonic=wall_clock)
        with session:
            assert session.get(server.api_url + "books").status_code == 200
            path.unlink()
            wall_clock.advance(120)  # the token expired; the assertion held would still be valid
            with pytest.raises(ClientAssertionError, match="does not exist"):
                session.get(server.api_url + "books")
            path.write_text(PLATFORM.mint(now=wall_clock(), lifetime=3600))
            wall_clock.advance(60)  # past the failure backoff
            assert session.get(server.api_url + "books").status_code == 200
        assert server.token_requests == 2


def test_a_thousand_threads_one_token_request_per_rotation(tmp_path: Path, wall_clock: FakeClock) -> None:
    import threading

    volume = KubeletVolume(tmp_path / "sa")
    volume.publish(PLATFORM.mint(now=wall_clock(), lifetime=3600))
    threads_count, rounds = 1000, 3
    with federated_server(wall_clock) as server:
        with federated_session(server, wall_clock, client_assertion_file=volume.path) as session:
            manager = session.manager
            for round_ in range(rounds):
                barrier = threading.Barrier(threads_count)
                tokens: list[str] = []

                def call(barrier: threading.Barrier = barrier, tokens: list[str] = tokens) -> None:
                    barrier.wait()
                    tokens.append(manager.get_token().access_token)

                workers = [threading.Thread(target=call) for _ in range(threads_count)]
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
                assert len(tokens) == threads_count and len(set(tokens)) == 1
                # A few real API calls with it, then the platform rotates and the token is retired.
                assert session.get(server.api_url + "books").status_code == 200
                volume.publish(PLATFORM.mint(now=wall_clock(), lifetime=3600, jti=f"round-{round_}"))
                manager.invalidate(manager.token)
        log = server.token_request_log
    assert len(log) == rounds
    sent = [record.form["client_assertion"][0] for record in log]
    assert len(set(sent)) == rounds  # each round's one fetch read the rotated file


def test_the_assertion_is_in_no_log_repr_or_carried_request(
    tmp_path: Path, wall_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    from .platform_tokens import K8S_SUBJECT

    trusted = PLATFORM.mint(now=wall_clock())
    untrusted = Platform(subject=K8S_SUBJECT).mint(now=wall_clock())  # a key the server does not trust
    path = tmp_path / "token"
    path.write_text(trusted)
    caplog.set_level(logging.DEBUG)  # every logger: reqcc, urllib3, the server's
    with federated_server(wall_clock) as server:
        with federated_session(server, wall_clock, client_assertion_file=path) as session:
            assert session.get(server.api_url + "books").status_code == 200
            shown = [repr(session), repr(session.manager), repr(session.get_adapter(server.api_url))]
            path.write_text(untrusted)
            session.manager.invalidate(session.manager.token)
            with pytest.raises(InvalidClient) as caught:
                session.get(server.api_url + "books")
    exc = caught.value
    carried = exc.request.body if exc.request is not None else b""
    assert isinstance(carried, bytes) and b"client_assertion=%3Credacted%3E" in carried
    shown += [str(exc), repr(exc), caplog.text, carried.decode(), str(exc.request.headers)]  # type: ignore[union-attr]
    shown.append(reachable_text(exc))
    for assertion in (trusted, untrusted):
        for text in shown:
            assert assertion not in text and assertion.split(".")[2] not in text


def test_a_dpop_nonce_demand_is_answered_with_the_file_read_again(
    tmp_path: Path, wall_clock: FakeClock
) -> None:
    path = tmp_path / "token"
    assertion = PLATFORM.mint(now=wall_clock())
    path.write_text(assertion + "\n")
    with federated_server(wall_clock, token_dpop_nonce=True, api_dpop_nonce=True) as server:
        with federated_session(server, wall_clock, client_assertion_file=path, dpop=True) as session:
            assert session.get(server.api_url + "books").status_code == 200
            assert session.manager.token.token_type == "DPoP"  # type: ignore[union-attr]
        log = server.token_request_log
    assert len(log) == 2  # the nonce demand, then the token
    assert [record.form["client_assertion"] for record in log] == [[assertion], [assertion]]
