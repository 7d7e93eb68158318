"""How the client authenticates to the token endpoint (RFC 6749 §2.3).

Each method turns the client's credentials into the headers and form fields of one
token request. They know nothing of sending it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

from .errors import ConfigurationError

__all__ = [
    "AUTH_METHODS",
    "ClientAuth",
    "AuthParts",
    "ClientSecretBasic",
    "ClientSecretPost",
    "NoClientAuth",
    "make_client_auth",
]


@dataclass(frozen=True)
class AuthParts:
    """What a client authentication method adds to one token request."""

    headers: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, str] = field(default_factory=dict)


class ClientAuth:
    """Base class of the client authentication methods.

    :attr:`method` is the RFC 7591 ``token_endpoint_auth_method`` name. :meth:`prepare`
    is called once per token request (a method that signs, such as a JWT assertion,
    signs afresh each time).
    """

    method: str = ""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id

    def prepare(self, token_url: str) -> AuthParts:
        """Return the headers and form fields that authenticate one request to ``token_url``."""
        raise NotImplementedError

    def secrets(self) -> tuple[str, ...]:
        """Return the secret values this method holds, so that error excerpts can redact them."""
        return ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client_id={self.client_id!r})"


class ClientSecretBasic(ClientAuth):
    """``client_secret_basic``: HTTP Basic with the form-urlencoded id and secret.

    RFC 6749 §2.3.1 has both encoded with ``application/x-www-form-urlencoded`` before
    Base64, so a secret with ``:``, ``%``, ``+`` or a space survives. Some servers decode
    the raw values instead: ``encoding="raw"`` sends them unencoded (UTF-8).
    """

    method = "client_secret_basic"

    def __init__(self, client_id: str, client_secret: str, *, encoding: str = "form") -> None:
        super().__init__(client_id)
        if encoding not in ("form", "raw"):
            raise ConfigurationError(
                f"basic_auth_encoding must be 'form' or 'raw', got {encoding!r}"
            )
        self._secret = client_secret
        self.encoding = encoding

    def _credential(self, encoding: str) -> str:
        if encoding == "form":
            user, password = quote_plus(self.client_id, safe=""), quote_plus(self._secret, safe="")
        else:
            user, password = self.client_id, self._secret
        return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")

    def prepare(self, token_url: str) -> AuthParts:
        return AuthParts(headers={"Authorization": f"Basic {self._credential(self.encoding)}"})

    def secrets(self) -> tuple[str, ...]:
        # The Base64 credential too: a server that echoes the Authorization header in an
        # error page would otherwise put it in the exception message.
        return (
            self._secret,
            quote(self._secret, safe=""),
            quote_plus(self._secret, safe=""),
            self._credential("form"),
            self._credential("raw"),
        )


class ClientSecretPost(ClientAuth):
    """``client_secret_post``: ``client_id`` and ``client_secret`` in the form body."""

    method = "client_secret_post"

    def __init__(self, client_id: str, client_secret: str) -> None:
        super().__init__(client_id)
        self._secret = client_secret

    def prepare(self, token_url: str) -> AuthParts:
        return AuthParts(form={"client_id": self.client_id, "client_secret": self._secret})

    def secrets(self) -> tuple[str, ...]:
        return (self._secret, quote(self._secret, safe=""), quote_plus(self._secret, safe=""))


class NoClientAuth(ClientAuth):
    """``none``: a public client that sends only its ``client_id``."""

    method = "none"

    def prepare(self, token_url: str) -> AuthParts:
        return AuthParts(form={"client_id": self.client_id})


#: The ``auth_method`` names reqcc accepts.
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


def make_client_auth(
    auth_method: str | ClientAuth,
    client_id: str,
    client_secret: str | None,
    *,
    basic_auth_encoding: str = "form",
) -> ClientAuth:
    """Build the :class:`ClientAuth` for ``auth_method`` (a name from :data:`AUTH_METHODS`).

    An already built :class:`ClientAuth` is returned as it is.

    :raises ConfigurationError: unknown method, or a secret-based method without a secret.
    """
    if isinstance(auth_method, ClientAuth):
        return auth_method
    if auth_method in ("client_secret_basic", "client_secret_post"):
        if not isinstance(client_secret, str) or not client_secret:
            raise ConfigurationError(
                f"client_secret is required for auth_method={auth_method!r} "
                "(pass client_secret=…, or choose another auth_method)"
            )
        if auth_method == "client_secret_basic":
            return ClientSecretBasic(client_id, client_secret, encoding=basic_auth_encoding)
        return ClientSecretPost(client_id, client_secret)
    if auth_method == "none":
        return NoClientAuth(client_id)
    raise ConfigurationError(
        f"auth_method must be one of {', '.join(AUTH_METHODS)}; got {auth_method!r}"
    )
