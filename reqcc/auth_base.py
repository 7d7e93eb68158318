"""What a client authentication method is: the :class:`ClientAuth` interface and its :class:`AuthParts`.

The methods themselves are in :mod:`reqcc.client_auth` and :mod:`reqcc.jwt_auth`; both
import this module and neither imports the other at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["AuthParts", "ClientAuth"]


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

    def check_ready(self, token_url: str) -> None:
        """Raise now if this method cannot authenticate the next request to ``token_url``.

        Called once per fetch, before any request is sent or counted. The default does
        nothing; a method whose credential comes from outside (a platform's assertion file)
        checks it here, so that a missing or expired one sends nothing.
        """

    def secrets(self) -> tuple[str, ...]:
        """Return the secret values this method holds, so that error excerpts can redact them."""
        return ()

    def key_secrets(self) -> tuple[str, ...]:
        """Return what the token-store key's fingerprint is keyed by (default: :meth:`secrets`).

        A method whose credential rotates by itself (a platform's assertion) returns its
        source instead, so that a rotation does not start a new store entry.
        """
        return self.secrets()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client_id={self.client_id!r})"
