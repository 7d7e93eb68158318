"""One meaning for scopes: ``scopes=`` in Python, ``--scope`` and ``REQCC_SCOPES`` on the command line.

All three go through :func:`reqcc.config.normalize_scopes`: a single string is separated by
spaces and/or commas; an exact ``OAuthScope`` member name means its wire value; any other
string is sent as it is.
"""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reqcc import ClientCredentialsManager, OAuthScope
from reqcc.cli.config import manager_config
from reqcc.cli.parser import build_parser
from reqcc.config import normalize_scopes

from .conftest import TOKEN_URL

PUBLIC_CLIENT = {"token_url": TOKEN_URL, "client_id": "app", "auth_method": "none"}

CASES = [
    ("BooksRead", ("books.read",)),
    ("books.read", ("books.read",)),
    ("BooksRead,OrdersRead", ("books.read", "orders.read")),
    ("books.read orders.read", ("books.read", "orders.read")),
    (" BooksRead , custom:scope,,orders.write\t", ("books.read", "custom:scope", "orders.write")),
    ("BooksRead books.read", ("books.read",)),  # the same scope twice: once
    ("booksread OAuthScope.BooksRead", ("booksread", "OAuthScope.BooksRead")),  # not exact names: as is
    ("", ()),
    (" , ", ()),
]


def _python(text: str) -> tuple[str, ...]:
    return ClientCredentialsManager(**PUBLIC_CLIENT, scopes=text).scopes


def _cli(argv: list[str], environ: dict[str, str]) -> tuple[str, ...]:
    args = build_parser().parse_args(["token", "--token-url", TOKEN_URL, "--client-id", "app",
                                      "--auth-method", "none", *argv])
    return tuple(manager_config(args, environ, io.StringIO())["scopes"])


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_the_same_string_means_the_same_everywhere(text: str, expected: tuple[str, ...]) -> None:
    assert normalize_scopes(text) == expected
    assert _python(text) == expected
    assert _cli([f"--scope={text}"], {}) == expected
    assert _cli([], {"REQCC_SCOPES": text}) == expected


def test_repeated_scope_flags_add_up_in_order() -> None:
    assert _cli(["--scope", "OrdersWrite", "--scope", "BooksRead,x"], {"REQCC_SCOPES": "ignored"}) == (
        "orders.write", "books.read", "x",
    )


def test_a_list_holds_single_scopes_by_name_member_or_value() -> None:
    manager = ClientCredentialsManager(
        **PUBLIC_CLIENT, scopes=["BooksRead", OAuthScope.OrdersRead, "orders.write"]
    )
    assert manager.scopes == ("books.read", "orders.read", "orders.write")
    # A list item is one scope: RFC 6749 allows a comma inside a scope token.
    assert normalize_scopes(["a,b"]) == ("a,b",)


names = st.sampled_from(list(OAuthScope.__members__))
plain = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=","), min_size=1)
separators = st.lists(st.sampled_from([" ", ",", "\t", ", ", " ,\n"]), min_size=1, max_size=3).map("".join)


@given(st.lists(st.one_of(names, plain), max_size=6), st.data())
def test_any_separators_give_the_list_reading(items: list[str], data: st.DataObject) -> None:
    text = ""
    for item in items:
        text += item + data.draw(separators)
    assert normalize_scopes(text) == normalize_scopes(items)
    assert _cli([f"--scope={text}"], {}) == normalize_scopes(items)  # '=': a value may start with '-'

    members = OAuthScope.__members__
    assert normalize_scopes(items) == tuple(
        dict.fromkeys(members[i].value if i in members else i for i in items)
    )
