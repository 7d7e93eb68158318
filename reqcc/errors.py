"""Exceptions raised by reqcc.

Every reqcc exception derives from :class:`ReqccError`, itself a
``requests.exceptions.RequestException``, so code that already catches
``RequestException`` around its API calls keeps working. No message carries a
secret or a token.
"""

from __future__ import annotations

import copy
from typing import Any

import requests

__all__ = [
    "ReqccError",
    "ConfigurationError",
    "InsecureTransportError",
    "TokenRequestError",
    "OAuthProviderError",
    "InvalidRequest",
    "InvalidClient",
    "InvalidGrant",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "InvalidScope",
    "TemporarilyUnavailable",
    "ServerError",
    "TokenResponseError",
    "NotATokenEndpoint",
    "TokenAnswerCutOff",
    "TokenDeadlineError",
    "TokenProviderError",
    "REGISTERED_ERROR_CODES",
    "TOKEN_ENDPOINT_ERROR_CODES",
    "provider_error_class",
    "as_cached_error",
]


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    exc = cls.__new__(cls)
    BaseException.__init__(exc, *args)
    exc.__dict__.update(state)
    return exc


class ReqccError(requests.exceptions.RequestException):
    """Base class of every exception reqcc raises."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword-only details; rebuild them from args and __dict__ so that
        # they copy and pickle (multiprocessing, logging handlers) without calling __init__.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigurationError(ReqccError, ValueError):
    """A keyword given to reqcc is missing or wrong. The message names the keyword."""


class InsecureTransportError(ConfigurationError):
    """A credential would travel over plain http to a host that is not loopback.

    Raised at construction for ``token_url`` and before a byte is sent for a request
    that would carry a bearer token.
    """


class TokenRequestError(ReqccError):
    """The token endpoint did not issue a usable token.

    :ivar status_code: the HTTP status of the token endpoint's answer, or ``None``.
    :ivar response: the token endpoint's ``requests.Response``, or ``None``.
    :ivar retry_after: seconds the server asked us to wait (``Retry-After``), or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        response: requests.Response | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, response=response)
        self.status_code: int | None = response.status_code if response is not None else None
        self.retry_after = retry_after


class OAuthProviderError(TokenRequestError):
    """The token endpoint answered with an RFC 6749 §5.2 error body.

    :ivar error: the ``error`` code (``"invalid_client"``, …).
    :ivar description: the ``error_description``, or ``None``.
    :ivar uri: the ``error_uri``, or ``None``.

    Catch a subclass (:class:`InvalidClient`, :class:`InvalidScope`, …) for one code, or
    this class for all of them. Codes without a subclass raise this class itself.
    """

    #: The §5.2 code a subclass stands for.
    error_code: str = ""

    def __init__(
        self,
        error: str,
        description: str | None = None,
        uri: str | None = None,
        *,
        response: requests.Response | None = None,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        status = response.status_code if response is not None else None
        if message is None:
            message = f"token endpoint refused the request: {error}"
            if description:
                message += f" ({description})"
            if status is not None:
                message += f" [HTTP {status}]"
        super().__init__(message, response=response, retry_after=retry_after)
        self.error = error
        self.description = description
        self.uri = uri


class InvalidRequest(OAuthProviderError):
    """``invalid_request``: the token request is malformed (often a wrong ``token_params``)."""

    error_code = "invalid_request"


class InvalidClient(OAuthProviderError):
    """``invalid_client``: the client id or secret (or the auth method) was not accepted."""

    error_code = "invalid_client"


class InvalidGrant(OAuthProviderError):
    """``invalid_grant``: the grant was refused."""

    error_code = "invalid_grant"


class UnauthorizedClient(OAuthProviderError):
    """``unauthorized_client``: this client may not use the client-credentials grant."""

    error_code = "unauthorized_client"


class UnsupportedGrantType(OAuthProviderError):
    """``unsupported_grant_type``: the server does not offer the client-credentials grant."""

    error_code = "unsupported_grant_type"


class InvalidScope(OAuthProviderError):
    """``invalid_scope``: a requested scope is unknown or not allowed for this client."""

    error_code = "invalid_scope"


class TemporarilyUnavailable(OAuthProviderError):
    """``temporarily_unavailable``: the server is overloaded; reqcc retries it."""

    error_code = "temporarily_unavailable"


class ServerError(OAuthProviderError):
    """``server_error``: the server failed; reqcc retries it."""

    error_code = "server_error"


_PROVIDER_ERRORS: dict[str, type[OAuthProviderError]] = {
    cls.error_code: cls
    for cls in (
        InvalidRequest,
        InvalidClient,
        InvalidGrant,
        UnauthorizedClient,
        UnsupportedGrantType,
        InvalidScope,
        TemporarilyUnavailable,
        ServerError,
    )
}


#: The error codes a token endpoint sends: RFC 6749 §5.2's; ``access_denied``,
#: ``server_error`` and ``temporarily_unavailable`` of §4.1.2.1, which token endpoints send
#: too (Auth0 answers ``403 access_denied`` to a client not allowed the API); and RFC
#: 9449's ``invalid_dpop_proof`` and ``use_dpop_nonce``.
TOKEN_ENDPOINT_ERROR_CODES = frozenset({
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
    "unsupported_grant_type", "invalid_scope", "access_denied", "server_error",
    "temporarily_unavailable", "invalid_dpop_proof", "use_dpop_nonce",
})
#: Every error code registered by RFC 6749, RFC 6750 and RFC 9449: the token endpoint's,
#: the authorization endpoint's ``unsupported_response_type``, and a resource server's
#: (``invalid_token``, ``insufficient_scope``). Telemetry's ``error.type`` takes only these
#: (a server cannot mint metric series).
REGISTERED_ERROR_CODES = TOKEN_ENDPOINT_ERROR_CODES | frozenset({
    "unsupported_response_type", "invalid_token", "insufficient_scope",
})


def provider_error_class(code: str) -> type[OAuthProviderError]:
    """Return the exception class for the §5.2 error ``code`` (the base class if unknown)."""
    return _PROVIDER_ERRORS.get(code, OAuthProviderError)


class TokenResponseError(TokenRequestError):
    """The token endpoint's answer is not a usable token response.

    A non-2xx status without an OAuth error body, a body that is not a JSON object, a
    missing ``access_token``, a ``token_type`` other than Bearer, or a malformed field.
    The message carries the status and a short, redacted excerpt of the body.
    """


class TokenAnswerCutOff(TokenResponseError, requests.exceptions.ChunkedEncodingError):
    """The token endpoint's answer was cut off in the middle of its body, in the last attempt.

    The connection was reset or closed before the body's end, or a compressed body ended
    before its stream did; it was retried like a reset first. A network failure, so it is
    also requests' ``ChunkedEncodingError`` (contract item 7: network failures stay
    ``requests`` exceptions; ``except ChunkedEncodingError`` still catches it), and requests'
    own exception is its ``__cause__``. Its message carries no part of the answer: a prefix
    of a token answer holds the token.
    """


class NotATokenEndpoint(TokenResponseError):
    """``token_url`` answered as something other than a token endpoint: check ``token_url``.

    Raised, whatever the body, for a 404 or 405, a redirect (token requests do not follow
    them), an HTML page that is not a server failure, and a 401 or 403 carrying an error
    code no token endpoint sends (RFC 6750's ``invalid_token``, an API's ``not_found``):
    the URL most likely names an API path, a login page or a documentation page. The
    message says "does not look like a token endpoint: check token_url" and carries the
    status and a short, redacted excerpt of the body; ``.error`` is the body's ``error``
    code when it had one, else ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        response: requests.Response | None = None,
        retry_after: float | None = None,
        error: str | None = None,
    ) -> None:
        super().__init__(message, response=response, retry_after=retry_after)
        self.error = error


class TokenDeadlineError(TokenRequestError):
    """A token fetch did not finish within its deadline (``token_deadline``).

    Raised instead of waiting longer on a server that drips its answer a byte at a time,
    never answers, or keeps failing: the time of every attempt and retry wait counts.
    """


class TokenProviderError(ReqccError):
    """The ``token_provider`` callback failed or returned something unusable."""


def as_cached_error(exc: BaseException, note: str) -> BaseException:
    """Return a copy of ``exc`` whose message starts with ``note``, chained to ``exc``.

    Used to hand the last token-endpoint failure to callers during the failure backoff:
    the same exception type (so ``except InvalidClient`` still matches), marked as a
    repeat, with the original as ``__cause__``.
    """
    try:
        cached = copy.copy(exc)
        cached.args = (f"{note}: {exc}",)
    except Exception:  # an exotic exception type that cannot be copied
        return exc
    cached.__cause__ = exc
    cached.__traceback__ = None
    return cached
