"""OAuth scopes of the bookstore API (the values the generated SDKs send on the wire)."""

from __future__ import annotations

from enum import Enum

__all__ = ["OAuthScope", "OAuthScopeClientCredentialsEnum"]


class OAuthScope(str, Enum):
    """A scope the bookstore API defines.

    Any authorization server works with reqcc: wherever a scope is accepted, a plain
    ``str`` may be given instead of a member of this enum.
    """

    BooksRead = "books.read"
    OrdersRead = "orders.read"
    OrdersWrite = "orders.write"

    def __str__(self) -> str:
        return self.value


#: The generated SDK's name for :class:`OAuthScope`.
OAuthScopeClientCredentialsEnum = OAuthScope
