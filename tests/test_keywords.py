"""The manager's keywords, seen from the session, the adapter and ``mount()``.

One source: their run-time signatures (what ``help()`` and ``inspect.signature`` show) are
built from the manager's signature, so every keyword appears with its default and a
keyword added to the manager appears everywhere. A misspelt keyword is a ``TypeError``
naming what the user called and the closest valid keywords.
"""

from __future__ import annotations

import inspect
import pydoc
from collections.abc import Callable
from typing import Any

import pytest
import requests

from reqcc import ClientCredentialsAdapter, ClientCredentialsManager, ClientCredentialsSession, mount
from reqcc._keywords import passes_keywords, unexpected_keywords

from .conftest import CLIENT_SECRET, TOKEN_URL

MANAGER = {
    name: parameter
    for name, parameter in inspect.signature(ClientCredentialsManager).parameters.items()
}
OWN = {
    ClientCredentialsSession: ["base_url", "adapter", "manager"],
    ClientCredentialsAdapter: ["inner", "manager"],
    mount: ["session", "prefix", "inner", "manager"],
}


@pytest.mark.parametrize("callable_", list(OWN), ids=lambda c: c.__name__)
def test_signature_lists_own_then_every_manager_keyword(callable_: Callable[..., Any]) -> None:
    parameters = inspect.signature(callable_).parameters
    assert list(parameters) == OWN[callable_] + list(MANAGER)
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for name, expected in MANAGER.items():
        assert parameters[name] == expected  # same kind, annotation and default


def test_the_manager_signature_is_its_own() -> None:
    init = ClientCredentialsManager.__init__
    assert inspect.signature(init) == inspect.signature(init.__wrapped__)  # type: ignore[attr-defined]
    assert MANAGER["clock_skew"].default == 30.0
    assert MANAGER["token_url"].default is None


@pytest.mark.parametrize("callable_", list(OWN), ids=lambda c: c.__name__)
def test_help_shows_every_keyword_with_its_default(callable_: Callable[..., Any]) -> None:
    text = pydoc.render_doc(callable_, renderer=pydoc.plaintext)
    for name, parameter in MANAGER.items():
        assert f"{name}: {parameter.annotation!r} = {parameter.default!r}" in text


def test_a_keyword_added_to_the_source_flows_through() -> None:
    # What a new manager keyword (dpop=, issuer=, …) will do: no second list to update.
    def source(*, token_url: str | None = None, issuer: str | None = None) -> None: ...

    @passes_keywords(source)
    def wrapper(prefix: str, *, manager: object = None, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    assert str(inspect.signature(wrapper)) == (
        "(prefix: 'str', *, manager: 'object' = None, token_url: 'str | None' = None, "
        "issuer: 'str | None' = None) -> 'dict[str, Any]'"
    )
    assert wrapper("p", issuer="https://as.example") == {"issuer": "https://as.example"}
    with pytest.raises(TypeError, match=r"^wrapper\(\) got an unexpected keyword argument 'isuer'; "
                                        r"did you mean 'issuer'\?$"):
        wrapper("p", isuer="x")


# -- misspelt keywords -------------------------------------------------------------------

CALLS: list[tuple[str, Callable[..., Any]]] = [
    ("ClientCredentialsSession", lambda **kw: ClientCredentialsSession(**kw)),
    ("ClientCredentialsAdapter", lambda **kw: ClientCredentialsAdapter(**kw)),
    ("ClientCredentialsManager", lambda **kw: ClientCredentialsManager(**kw)),
    ("mount", lambda **kw: mount(requests.Session(), "https://api.example.com/", **kw)),
]


@pytest.mark.parametrize(("called", "call"), CALLS, ids=[c for c, _ in CALLS])
def test_a_misspelt_keyword_names_the_callable_and_the_closest_keywords(
    called: str, call: Callable[..., Any]
) -> None:
    with pytest.raises(TypeError) as caught:
        call(token_url=TOKEN_URL, client_id="app", client_secrt=CLIENT_SECRET)
    assert str(caught.value) == (
        f"{called}() got an unexpected keyword argument 'client_secrt'; "
        "did you mean 'client_secret' or 'client_assertion' or 'client_id'?"
    )
    assert CLIENT_SECRET not in str(caught.value)  # names, never values


def test_the_sessions_own_keywords_are_suggested_too() -> None:
    with pytest.raises(TypeError) as caught:
        ClientCredentialsSession(base_uri="https://api.example.com/", token_url=TOKEN_URL, client_id="app")
    assert str(caught.value) == (
        "ClientCredentialsSession() got an unexpected keyword argument 'base_uri'; did you mean 'base_url'?"
    )


def test_a_subclass_is_named_as_called() -> None:
    class BookstoreSession(ClientCredentialsSession):
        pass

    with pytest.raises(TypeError, match=r"^BookstoreSession\(\) got an unexpected keyword argument 'scope';"
                                        r" did you mean 'scopes'\?$"):
        BookstoreSession(token_url=TOKEN_URL, client_id="app", scope="books.read")


def test_every_unknown_keyword_is_listed_and_far_ones_get_no_guess() -> None:
    with pytest.raises(TypeError) as caught:
        mount(requests.Session(), "https://api.example.com/", token_url=TOKEN_URL, scope="x", zzz=1)
    assert str(caught.value) == (
        "mount() got unexpected keyword arguments 'scope' (did you mean 'scopes'?), 'zzz'"
    )


def test_the_message_helper_without_close_matches() -> None:
    error = unexpected_keywords("f", ["qqq"], ["token_url"])
    assert str(error) == "f() got an unexpected keyword argument 'qqq'"


def test_correct_keywords_still_work() -> None:
    session = ClientCredentialsSession(token_url=TOKEN_URL, client_id="app", client_secret="s", scopes="a")
    assert session.manager.scopes == ("a",)
    adapter = mount(requests.Session(), "https://api.example.com/", manager=session.manager)
    assert adapter.manager is session.manager
    with pytest.raises(TypeError, match="either manager= or the manager's keywords"):
        ClientCredentialsAdapter(manager=session.manager, client_id="app")
