"""``LocalAuthorizationServer.credentials()`` and the ``reqcc_server`` fixture with custom clients.

A marker that registers only custom clients used to leave ``credentials()`` with a
``KeyError`` for the default client it looked for.
"""

from __future__ import annotations

import pytest

from reqcc import ClientCredentialsSession, OAuthScope
from reqcc.testing import DEFAULT_CLIENT_ID, LocalAuthorizationServer, RegisteredClient, UnknownClientError


@pytest.mark.reqcc_server(clients={"svc": ("svc-secret", {"books.read"})})
def test_the_only_custom_client_is_the_default(reqcc_server: LocalAuthorizationServer) -> None:
    credentials = reqcc_server.credentials()
    assert credentials == {
        "token_url": reqcc_server.token_url,
        "client_id": "svc",
        "base_url": reqcc_server.api_url,
        "client_secret": "svc-secret",
    }
    with ClientCredentialsSession(**credentials, scopes=[OAuthScope.BooksRead]) as session:
        assert session.get(reqcc_server.api_url + "books", timeout=10).status_code == 200
    assert reqcc_server.last_token_request is not None
    assert reqcc_server.last_token_request.client_id == "svc"


@pytest.mark.reqcc_server(clients=[RegisteredClient("cli", None, frozenset({"books.read"}))])
def test_the_only_public_client_is_the_default(reqcc_server: LocalAuthorizationServer) -> None:
    credentials = reqcc_server.credentials()
    assert credentials["client_id"] == "cli" and credentials["auth_method"] == "none"
    assert "client_secret" not in credentials


_TWO_CLIENTS = {"a": ("secret-of-a", {"books.read"}), "b": ("secret-of-b", {"orders.read"})}


@pytest.mark.reqcc_server(clients=_TWO_CLIENTS)
def test_several_custom_clients_need_a_client_id(reqcc_server: LocalAuthorizationServer) -> None:
    with pytest.raises(UnknownClientError) as raised:
        reqcc_server.credentials()
    message = str(raised.value)
    assert "'a'" in message and "'b'" in message and "client_id=" in message
    assert not message.startswith(('"', "'"))  # a sentence, not KeyError's repr of one
    assert "secret-of" not in message  # ids only, never a secret
    assert reqcc_server.credentials("b")["client_secret"] == "secret-of-b"
    assert isinstance(raised.value, KeyError)  # what an unknown client always raised


def test_an_unknown_client_id_names_the_registered_ones() -> None:
    server = LocalAuthorizationServer(clients={"x": ("px", {"books.read"})})
    try:
        with pytest.raises(KeyError, match=r"no registered client 'nope' \(registered: 'x'\)"):
            server.credentials("nope")
    finally:
        server.close()


def test_the_default_client_still_wins_among_several() -> None:
    server = LocalAuthorizationServer()
    try:
        assert server.credentials()["client_id"] == DEFAULT_CLIENT_ID
        assert server.credentials("bookstore-reader")["client_id"] == "bookstore-reader"
        server.register_client("extra", "extra-secret", ["books.read"])
        assert server.credentials()["client_id"] == DEFAULT_CLIENT_ID
    finally:
        server.close()


def test_no_client_at_all() -> None:
    server = LocalAuthorizationServer(clients={})
    try:
        with pytest.raises(UnknownClientError, match="no client is registered"):
            server.credentials()
        server.register_client("late", "late-secret", ["books.read"])
        assert server.credentials()["client_id"] == "late"  # registered later: now the only one
    finally:
        server.close()
