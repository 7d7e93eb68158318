"""reqcc: the OAuth 2.0 client-credentials grant for ``requests``, as a transport plug-in.

>>> session = ClientCredentialsSession(token_url=..., client_id=..., client_secret=...,
...                                    scopes=[OAuthScope.BooksRead], base_url="https://api.example.com/")
>>> session.get("https://api.example.com/books")  # token fetched, reused, renewed, retired on 401
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .adapter import ClientCredentialsAdapter
from .client_assertion import ClientAssertionError
from .client_auth import ClientAuth
from .dpop import DPoPKey  # imports nothing optional: cryptography/PyJWT load when a key is made
from .errors import (
    ConfigurationError,
    InsecureTransportError,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    NotATokenEndpoint,
    OAuthProviderError,
    ReqccError,
    ServerError,
    TemporarilyUnavailable,
    TokenAnswerCutOff,
    TokenDeadlineError,
    TokenProviderError,
    TokenRequestError,
    TokenResponseError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from .manager import ClientCredentialsManager
from .oauth_token import InvalidTokenValue, OAuthToken
from .scopes import OAuthScope, OAuthScopeClientCredentialsEnum
from .session import ClientCredentialsSession, mount

if TYPE_CHECKING:
    from .discovery import AuthorizationServerMetadata, MetadataError

__all__ = [
    "AuthorizationServerMetadata",
    "ClientAssertionError",
    "ClientAuth",
    "ClientCredentialsAdapter",
    "ClientCredentialsManager",
    "ClientCredentialsSession",
    "ConfigurationError",
    "DPoPKey",
    "InsecureTransportError",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTokenValue",
    "MetadataError",
    "NotATokenEndpoint",
    "OAuthProviderError",
    "OAuthScope",
    "OAuthScopeClientCredentialsEnum",
    "OAuthToken",
    "ReqccError",
    "ServerError",
    "TemporarilyUnavailable",
    "TokenAnswerCutOff",
    "TokenDeadlineError",
    "TokenProviderError",
    "TokenRequestError",
    "TokenResponseError",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "mount",
    "__version__",
]

#: Public names whose module loads on first use (``import reqcc`` stays light): name -> module.
_LAZY = {"AuthorizationServerMetadata": ".discovery", "MetadataError": ".discovery"}


def __getattr__(name: str) -> Any:
    """Import a public name of :data:`_LAZY` from its module when first asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
