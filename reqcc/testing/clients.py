"""The clients the local server knows, and how a token request identifies its client.

:class:`RegisteredClient` is one registered client; :data:`DEFAULT_CLIENTS` the ones a
server starts with. :func:`client_credentials` reads the client authentication a token
request presents (``client_secret_basic``, ``client_secret_post`` or ``none``): the one
place to teach the server another client authentication method.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus

from .federation import FederatedCredential

__all__ = [
    "BOOKSTORE_SCOPES",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENTS",
    "ClientSpec",
    "RegisteredClient",
    "UnknownClientError",
    "client_credentials",
    "normalize_clients",
]

#: The bookstore API's scopes.
BOOKSTORE_SCOPES: frozenset[str] = frozenset({"books.read", "orders.read", "orders.write"})

#: The ``client_assertion_type`` of a JWT client assertion (RFC 7523 §2.2).
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

#: The client :meth:`LocalAuthorizationServer.credentials` uses when none is named.
DEFAULT_CLIENT_ID = "bookstore-app"


@dataclass(frozen=True)
class RegisteredClient:
    """A client the server knows.

    :param client_id: the client identifier.
    :param secret: its secret, or ``None`` for a public client (``auth_method="none"``).
    :param scopes: the scopes it may be granted. A request without ``scope`` gets all of them.
    :param dpop: the client must send a DPoP proof with every token request (RFC 9449); it
        gets DPoP-bound tokens. (Any client that sends a proof gets one.)
    :param federated: platform issuers whose JWTs authenticate the client as RFC 7523
        client assertions (``private_key_jwt``), as Entra's federated identity credentials
        do: see :class:`~reqcc.testing.FederatedCredential`. A client with only these has
        ``secret=None`` and is not public.
    """

    client_id: str
    secret: str | None
    scopes: frozenset[str] = BOOKSTORE_SCOPES
    dpop: bool = False
    federated: tuple[FederatedCredential, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.federated, tuple):
            object.__setattr__(self, "federated", tuple(self.federated))
        if isinstance(self.scopes, str):
            object.__setattr__(self, "scopes", frozenset(self.scopes.split()))
        elif not isinstance(self.scopes, frozenset):
            object.__setattr__(self, "scopes", frozenset(self.scopes))

    @property
    def is_public(self) -> bool:
        """Whether the client has no credential (it authenticates with its ``client_id`` only)."""
        return self.secret is None and not self.federated

    def __repr__(self) -> str:
        secret = "None" if self.secret is None else "<hidden>"
        dpop = ", dpop=True" if self.dpop else ""
        federated = f", federated={list(self.federated)!r}" if self.federated else ""
        return (
            f"RegisteredClient(client_id={self.client_id!r}, secret={secret}, "
            f"scopes={sorted(self.scopes)!r}{dpop}{federated})"
        )


#: The clients registered when ``clients`` is not given: one with every scope, one that may
#: only read, and a public client that may read books.
DEFAULT_CLIENTS: Mapping[str, RegisteredClient] = {
    c.client_id: c
    for c in (
        RegisteredClient(DEFAULT_CLIENT_ID, "bookstore-secret", BOOKSTORE_SCOPES),
        RegisteredClient("bookstore-reader", "reader-secret", frozenset({"books.read", "orders.read"})),
        RegisteredClient("bookstore-public", None, frozenset({"books.read"})),
    )
}


class UnknownClientError(KeyError):
    """:meth:`LocalAuthorizationServer.credentials` cannot tell which registered client is meant.

    Raised for a ``client_id`` that is not registered, or for no ``client_id`` when several
    clients are registered and none is :data:`DEFAULT_CLIENT_ID`. The message names the
    registered client ids. A :class:`KeyError`, as an unknown client always raised.
    """

    def __str__(self) -> str:
        # KeyError's own str() is the repr of its argument: quotes around a sentence.
        return str(self.args[0]) if self.args else ""


#: How a client may be given to the server: a :class:`RegisteredClient`, or
#: ``(secret_or_None, scopes)``.
ClientSpec = RegisteredClient | tuple[str | None, Iterable[str]]


def normalize_clients(
    clients: Mapping[str, ClientSpec] | Iterable[RegisteredClient] | None,
) -> dict[str, RegisteredClient]:
    """Return ``clients`` (as the server's ``clients`` keyword takes them) keyed by client id."""
    if clients is None:
        return dict(DEFAULT_CLIENTS)
    out: dict[str, RegisteredClient] = {}
    if isinstance(clients, Mapping):
        for client_id, spec in clients.items():
            if isinstance(spec, RegisteredClient):
                out[client_id] = spec
            else:
                secret, scopes = spec
                out[client_id] = RegisteredClient(client_id, secret, frozenset(scopes))
    else:
        for client in clients:
            out[client.client_id] = client
    return out


def client_credentials(
    headers: Mapping[str, str], form: Mapping[str, list[str]]
) -> tuple[str | None, str | None, str | None]:
    """Return ``(client_id, secret, auth_method)`` as a token request presents them.

    An RFC 7523 client assertion is ``(client_id, assertion, "private_key_jwt")``; the
    ``client_id`` must be in the form (the assertion's ``sub`` is the platform's subject).

    :raises ValueError: a malformed Basic header, or credentials in both header and body.
    """
    authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    body_id = next(iter(form.get("client_id") or ()), None)
    body_secret = next(iter(form.get("client_secret") or ()), None)
    assertion_type = next(iter(form.get("client_assertion_type") or ()), None)
    assertion = next(iter(form.get("client_assertion") or ()), None)
    if assertion_type is not None or assertion is not None:
        if authorization is not None or body_secret is not None:
            raise ValueError("more than one client authentication method")
        if assertion_type != JWT_BEARER or not assertion:
            raise ValueError("client_assertion_type must be " + JWT_BEARER + ", with a client_assertion")
        return body_id, assertion, "private_key_jwt"
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise ValueError("unsupported Authorization scheme at the token endpoint")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError("malformed Basic credentials") from None
        user, colon, password = decoded.partition(":")
        if not colon:
            raise ValueError("malformed Basic credentials")
        if body_secret is not None:
            raise ValueError("more than one client authentication method")
        # RFC 6749 §2.3.1: both were form-urlencoded before Base64.
        client_id, secret = unquote_plus(user), unquote_plus(password)
        if body_id is not None and body_id != client_id:
            raise ValueError("client_id in the body differs from the Basic credentials")
        return client_id, secret, "client_secret_basic"
    if body_secret is not None:
        return body_id, body_secret, "client_secret_post"
    if body_id is not None:
        return body_id, None, "none"
    return None, None, None
