"""reqcc: the OAuth 2.0 client-credentials grant for ``requests``, as a transport plug-in.

>>> session = ClientCredentialsSession(token_url=..., client_id=..., client_secret=...,
...                                    scopes=[OAuthScope.BooksRead], base_url="https://api.example.com/")
>>> session.get("https://api.example.com/books")  # token fetched, reused, renewed, retired on 401
"""

from __future__ import annotations

from ._version import __version__
from .adapter import ClientCredentialsAdapter
from .client_assertion import ClientAssertionError
from .client_auth import ClientAuth
from .discovery import AuthorizationServerMetadata, MetadataError
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
    "TokenDeadlineError",
    "TokenProviderError",
    "TokenRequestError",
    "TokenResponseError",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "mount",
    "__version__",
]
