"""How the client authenticates to the token endpoint (RFC 6749 §2.3): the methods and their names.

Each method turns the client's credentials into the headers and form fields of one
token request. They know nothing of sending it. The secret-based, mutual-TLS and
``none`` methods are here; the JWT assertions are in :mod:`reqcc.jwt_auth` (optional
dependency, imported only when one is asked for); both build on :mod:`reqcc.auth_base`.
:func:`make_client_auth` turns an ``auth_method`` name into a method.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, quote_plus

from .auth_base import AuthParts, ClientAuth
from .client_assertion import AssertionCallable, ExternalAssertion
from .errors import ConfigurationError

__all__ = [
    "AUTH_METHODS",
    "ClientAuth",
    "AuthParts",
    "ClientSecretBasic",
    "ClientSecretPost",
    "NoClientAuth",
    "TLSClientAuth",
    "JWT_AUTH_METHODS",
    "TLS_AUTH_METHODS",
    "make_client_auth",
]


class ClientSecretBasic(ClientAuth):
    """``client_secret_basic``: HTTP Basic with the form-urlencoded id and secret.

    RFC 6749 §2.3.1 has both encoded with ``application/x-www-form-urlencoded`` before
    Base64, so a secret with ``:``, ``%``, ``+`` or a space survives. reqcc percent-encodes
    every byte but the unreserved ones, writing a space as ``%20`` rather than ``+``: a form
    decoder reads ``%20`` as a space just the same, and servers that decode with a plain
    percent-decoder (Authlib does) would read ``+`` as a plus. Some servers do not decode
    at all: ``encoding="raw"`` sends the values unencoded (UTF-8).
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
            user, password = quote(self.client_id, safe=""), quote(self._secret, safe="")
        else:
            user, password = self.client_id, self._secret
        return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")

    def prepare(self, token_url: str) -> AuthParts:
        return AuthParts(headers={"Authorization": f"Basic {self._credential(self.encoding)}"})

    def encoding_changes_credential(self) -> bool:
        """Whether the id or secret went out form-encoded, different from its raw value.

        Then a refusal may be the server's failure to decode it (contract item 35).
        """
        return self.encoding == "form" and self._credential("form") != self._credential("raw")

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


class TLSClientAuth(ClientAuth):
    """``tls_client_auth`` / ``self_signed_tls_client_auth`` (RFC 8705 §2): mutual TLS.

    The client proves itself with the certificate it presents in the TLS handshake, which
    the token session sends (``token_session.cert = (cert_file, key_file)``, or an adapter
    with its own ``ssl_context``). The form carries only ``client_id``.
    """

    def __init__(self, client_id: str, *, method: str = "tls_client_auth") -> None:
        super().__init__(client_id)
        if method not in TLS_AUTH_METHODS:
            raise ConfigurationError(
                f"TLSClientAuth method must be one of {TLS_AUTH_METHODS}, got {method!r}"
            )
        self.method = method

    def prepare(self, token_url: str) -> AuthParts:
        return AuthParts(form={"client_id": self.client_id})


#: The JWT client-assertion methods (RFC 7523 §2.2), available with ``pip install 'reqcc[jwt]'``.
JWT_AUTH_METHODS = ("client_secret_jwt", "private_key_jwt")
#: The mutual-TLS methods (RFC 8705 §2); the certificate comes from the token session.
TLS_AUTH_METHODS = ("tls_client_auth", "self_signed_tls_client_auth")
#: The ``auth_method`` names reqcc accepts.
AUTH_METHODS = ("client_secret_basic", "client_secret_post", *JWT_AUTH_METHODS, *TLS_AUTH_METHODS, "none")


def make_client_auth(
    auth_method: str | ClientAuth,
    client_id: str,
    client_secret: str | None,
    *,
    basic_auth_encoding: str = "form",
    private_key: str | bytes | Mapping[str, Any] | None = None,
    assertion_algorithm: str | None = None,
    assertion_audience: str | Sequence[str] | None = None,
    client_assertion_file: str | os.PathLike[str] | None = None,
    client_assertion: AssertionCallable | None = None,
    clock: Callable[[], float] = time.time,
) -> ClientAuth:
    """Build the :class:`ClientAuth` for ``auth_method`` (a name from :data:`AUTH_METHODS`).

    An already built :class:`ClientAuth` is returned as it is. ``private_key`` and the
    ``assertion_*`` keywords belong to the JWT methods (:mod:`reqcc.jwt_auth`); ``clock``
    stamps their assertions. ``client_assertion_file`` or ``client_assertion`` (an
    assertion the platform signed, :mod:`reqcc.client_assertion`) make ``private_key_jwt``
    without a key of reqcc's own; they exclude the other credentials.

    :raises ConfigurationError: unknown method, a secret-based method without a secret, a
        JWT keyword given to a method that does not use it, or a JWT method without the
        ``reqcc[jwt]`` extra installed.
    """
    if isinstance(auth_method, ClientAuth):
        return auth_method
    if auth_method not in AUTH_METHODS:
        raise ConfigurationError(
            f"auth_method must be one of {', '.join(AUTH_METHODS)}; got {auth_method!r}"
        )
    if client_assertion_file is not None or client_assertion is not None:
        _check_external_assertion(
            auth_method, client_secret, private_key, assertion_algorithm, assertion_audience
        )
        return ExternalAssertion(
            client_id, assertion_file=client_assertion_file, assertion=client_assertion, clock=clock
        )
    _check_jwt_keywords(auth_method, private_key, assertion_algorithm, assertion_audience)
    if auth_method in ("client_secret_basic", "client_secret_post", "client_secret_jwt"):
        if not isinstance(client_secret, str) or not client_secret:
            raise ConfigurationError(
                f"client_secret is required for auth_method={auth_method!r} "
                "(pass client_secret=…, or choose another auth_method)"
            )
    if auth_method == "client_secret_basic":
        assert client_secret is not None
        return ClientSecretBasic(client_id, client_secret, encoding=basic_auth_encoding)
    if auth_method == "client_secret_post":
        assert client_secret is not None
        return ClientSecretPost(client_id, client_secret)
    if auth_method in JWT_AUTH_METHODS:
        from . import jwt_auth  # the optional dependency is imported only here

        if auth_method == "client_secret_jwt":
            assert client_secret is not None
            return jwt_auth.ClientSecretJWT(
                client_id, client_secret, algorithm=assertion_algorithm, audience=assertion_audience,
                clock=clock,
            )
        if private_key is None:
            raise ConfigurationError(
                "private_key is required for auth_method='private_key_jwt' "
                "(a PEM string, PEM bytes or a JWK dict)"
            )
        return jwt_auth.PrivateKeyJWT(
            client_id, private_key, algorithm=assertion_algorithm, audience=assertion_audience, clock=clock
        )
    if auth_method in TLS_AUTH_METHODS:
        return TLSClientAuth(client_id, method=auth_method)
    return NoClientAuth(client_id)


def _check_external_assertion(
    auth_method: str,
    client_secret: str | None,
    private_key: object,
    assertion_algorithm: object,
    assertion_audience: object,
) -> None:
    """An assertion the platform signed is the client's one credential, sent as ``private_key_jwt``."""
    if auth_method != "private_key_jwt":
        raise ConfigurationError(
            "client_assertion_file= / client_assertion= authenticate with the platform's JWT as "
            f"auth_method='private_key_jwt' (or leave auth_method out), not {auth_method!r}"
        )
    for name, value in (
        ("client_secret", client_secret),
        ("private_key", private_key),
        ("assertion_algorithm", assertion_algorithm),
        ("assertion_audience", assertion_audience),
    ):
        if value is not None:
            raise ConfigurationError(
                f"{name}= does not go with client_assertion_file= / client_assertion=: the platform's "
                "JWT is the client's credential, signed by the platform (reqcc signs nothing); drop one"
            )


def _check_jwt_keywords(
    auth_method: str,
    private_key: object,
    assertion_algorithm: object,
    assertion_audience: object,
) -> None:
    if private_key is not None and auth_method != "private_key_jwt":
        raise ConfigurationError(
            f"private_key is used only with auth_method='private_key_jwt' (got {auth_method!r})"
        )
    if auth_method not in JWT_AUTH_METHODS:
        for name, value in (
            ("assertion_algorithm", assertion_algorithm),
            ("assertion_audience", assertion_audience),
        ):
            if value is not None:
                raise ConfigurationError(
                    f"{name} is used only with auth_method='client_secret_jwt' or 'private_key_jwt' "
                    f"(got {auth_method!r})"
                )
