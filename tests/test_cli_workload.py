"""The command line with workload identity (``--client-assertion-file``) and a sealed ``--cache``."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reqcc.testing import FederatedCredential, LocalAuthorizationServer, RegisteredClient
from tests.test_cli import call

from .platform_tokens import ENTRA_AUDIENCE, K8S_ISSUER, K8S_SUBJECT, Platform

PLATFORM = Platform()
CLIENT = "orders-service"
KEY = bytes(range(32))


@pytest.fixture
def server() -> Iterator[LocalAuthorizationServer]:
    trust = FederatedCredential(K8S_ISSUER, K8S_SUBJECT, ENTRA_AUDIENCE, PLATFORM.public_pem())
    client = RegisteredClient(CLIENT, None, frozenset({"books.read"}), federated=(trust,))
    with LocalAuthorizationServer(clients=[client, RegisteredClient("app", "app-secret")]) as srv:
        yield srv


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(PLATFORM.mint(now=time.time()))
    return path


def env(server: LocalAuthorizationServer, **extra: str) -> dict[str, str]:
    return {"REQCC_TOKEN_URL": server.token_url, "REQCC_CLIENT_ID": CLIENT, **extra}


def test_the_flag_authenticates_with_the_file(server: LocalAuthorizationServer, token_file: Path) -> None:
    result = call(
        "token", "--client-assertion-file", str(token_file), "--format", "access-token", env=env(server)
    )
    assert result.returncode == 0, result.stderr
    [record] = server.token_request_log
    assert record.auth_method == "private_key_jwt" and record.status == 200


def test_the_environment_variable_too(server: LocalAuthorizationServer, token_file: Path) -> None:
    result = call("token", env=env(server, REQCC_CLIENT_ASSERTION_FILE=str(token_file)))
    assert result.returncode == 0, result.stderr
    assert server.token_request_log[-1].auth_method == "private_key_jwt"


def test_a_flag_naming_another_credential_overrides_the_variable(
    server: LocalAuthorizationServer, token_file: Path
) -> None:
    result = call(
        "token",
        "--client-id",
        "app",
        "--auth-method",
        "client_secret_post",
        env=env(server, REQCC_CLIENT_ASSERTION_FILE=str(token_file), REQCC_CLIENT_SECRET="app-secret"),
    )
    assert result.returncode == 0, result.stderr
    assert server.token_request_log[-1].auth_method == "client_secret_post"


def test_a_missing_or_expired_file_is_a_configuration_exit_naming_it(
    server: LocalAuthorizationServer, tmp_path: Path
) -> None:
    missing = tmp_path / "nope"
    result = call("token", "--client-assertion-file", str(missing), env=env(server))
    assert (
        result.returncode == 3
        and str(missing) in result.stderr
        and "--client-assertion-file" in result.stderr
    )
    stale = tmp_path / "stale"
    assertion = PLATFORM.mint(now=time.time() - 7200)
    stale.write_text(assertion)
    result = call("token", "--client-assertion-file", str(stale), env=env(server))
    assert result.returncode == 3 and "has expired" in result.stderr and assertion not in result.stderr
    assert server.token_requests == 0


@pytest.mark.parametrize(
    "flags",
    [
        ["--client-secret-file", "-"],
        ["--private-key-file", "k.pem"],
        ["--auth-method", "client_secret_basic"],
    ],
)
def test_mixing_is_a_configuration_exit(
    server: LocalAuthorizationServer, token_file: Path, flags: list[str]
) -> None:
    result = call("token", "--client-assertion-file", str(token_file), *flags, env=env(server))
    assert result.returncode == 3, result.stderr
    assert server.token_requests == 0


# -- the sealed cache --------------------------------------------------------------------------


def test_a_sealed_cache_holds_no_token_and_is_reused_with_the_key(
    server: LocalAuthorizationServer, token_file: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache.json"
    sealed = env(
        server, REQCC_CLIENT_ASSERTION_FILE=str(token_file), REQCC_CACHE_KEY=base64.b64encode(KEY).decode()
    )
    first = call("token", "--cache", str(cache), "--format", "access-token", env=sealed)
    assert first.returncode == 0, first.stderr
    access = first.stdout.strip()
    assert access and access not in cache.read_text()
    assert token_file.read_text() not in cache.read_text()
    second = call("token", "--cache", str(cache), "--format", "access-token", env=sealed)
    assert second.stdout.strip() == access and server.token_requests == 1
    # The key from a file (raw bytes) opens it too; another key fetches its own token.
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    without = {k: v for k, v in sealed.items() if k != "REQCC_CACHE_KEY"}
    third = call(
        "token",
        "--cache",
        str(cache),
        "--cache-key-file",
        str(key_file),
        "--format",
        "access-token",
        env=without,
    )
    assert third.stdout.strip() == access and server.token_requests == 1
    other = call(
        "token",
        "--cache",
        str(cache),
        "--format",
        "access-token",
        env={**without, "REQCC_CACHE_KEY": base64.b64encode(bytes(32)).decode()},
    )
    assert other.returncode == 0 and other.stdout.strip() != access and server.token_requests == 2
    assert all(isinstance(e["token"], str) for e in json.loads(cache.read_text())["entries"].values())


@pytest.mark.parametrize("value", ["short", base64.b64encode(b"x" * 31).decode(), "!!!"])
def test_a_bad_cache_key_is_refused_without_showing_it(
    server: LocalAuthorizationServer, token_file: Path, tmp_path: Path, value: str
) -> None:
    result = call(
        "token",
        "--cache",
        str(tmp_path / "c.json"),
        env=env(server, REQCC_CLIENT_ASSERTION_FILE=str(token_file), REQCC_CACHE_KEY=value),
    )
    assert result.returncode == 3 and "REQCC_CACHE_KEY" in result.stderr and value not in result.stderr
    assert server.token_requests == 0


@pytest.mark.parametrize("via", ["file", "variable"])
def test_a_hex_cache_key_is_refused_with_how_to_make_one(
    server: LocalAuthorizationServer, token_file: Path, tmp_path: Path, via: str
) -> None:
    hex_key = bytes(range(32)).hex()  # what 'openssl rand -hex 32' gives a newcomer
    key_file = tmp_path / "key"
    key_file.write_text(hex_key + "\n")
    extra = ["--cache-key-file", str(key_file)] if via == "file" else []
    variables = {"REQCC_CACHE_KEY": hex_key} if via == "variable" else {}
    result = call(
        "token",
        "--cache",
        str(tmp_path / "c.json"),
        *extra,
        env=env(server, REQCC_CLIENT_ASSERTION_FILE=str(token_file), **variables),
    )
    assert result.returncode == 3 and "openssl rand -base64 32" in result.stderr
    assert hex_key not in result.stderr and server.token_requests == 0


def test_a_cache_key_file_without_cache_is_refused(tmp_path: Path) -> None:
    result = call(
        "token",
        "--token-url",
        "https://a.test/t",
        "--client-id",
        "x",
        "--auth-method",
        "none",
        "--cache-key-file",
        str(tmp_path / "k"),
    )
    assert result.returncode == 3 and "--cache" in result.stderr
