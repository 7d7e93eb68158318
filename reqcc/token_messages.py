"""The token request and its answer as data: building one and parsing the other, without I/O.

:func:`build_token_request` turns a client's settings and its authentication's
:class:`~reqcc.auth_base.AuthParts` into the URL, headers and form body of one token
request (oauthlib's ``BackendApplicationClient`` prepares the form); :func:`with_dpop_proof`
adds a DPoP proof. :func:`parse_token_answer` turns ``(status, headers, body)`` into an
:class:`~reqcc.OAuthToken` or the typed error, as Go's x/oauth2 keeps building and parsing
apart from sending (``internal/token.go``). Sending is :func:`reqcc.to_server.send`; the
retries, the hooks and the telemetry are :mod:`reqcc.token_endpoint`'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn
from urllib.parse import urlencode

import requests

from ._body import load_json
from ._log import excerpt
from .auth_base import AuthParts
from .challenges import parse_www_authenticate
from .dpop import DPOP_HEADER
from .errors import (
    TOKEN_ENDPOINT_ERROR_CODES,
    NotATokenEndpoint,
    TokenResponseError,
    provider_error_class,
)
from .oauth_token import OAuthToken

__all__ = [
    "TokenRequest", "AnswerContext", "build_token_request", "with_dpop_proof", "parse_token_answer",
    "parse_retry_after", "answer_response", "RETRY_STATUSES", "BASIC_ENCODING_HINT",
    "NOT_A_TOKEN_ENDPOINT",
]

#: HTTP statuses of the token endpoint that are retried.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Added to an ``invalid_client`` refusal of a Basic credential that form-encoding changed.
BASIC_ENCODING_HINT = (
    "; the client_id or client_secret holds characters that client_secret_basic form-encodes "
    "(RFC 6749 §2.3.1) and many servers do not decode: if the credential is right, try "
    'basic_auth_encoding="raw"'
)
#: How a wrong ``token_url`` is named in messages (:class:`~reqcc.NotATokenEndpoint`).
NOT_A_TOKEN_ENDPOINT = "this does not look like a token endpoint: check token_url"


@dataclass(frozen=True)
class TokenRequest:
    """One token request as data: where it goes and what it carries.

    :ivar url: the token endpoint.
    :ivar headers: the headers, ``Authorization`` (client authentication) included.
    :ivar body: the form body, ``application/x-www-form-urlencoded``.
    """

    url: str
    headers: Mapping[str, str]
    body: str

    @property
    def auth_headers(self) -> dict[str, str]:
        """The credential headers (``Authorization``), the only ones that may carry a secret."""
        return {k: v for k, v in self.headers.items() if k.lower() == "authorization"}

    @property
    def plain_headers(self) -> dict[str, str]:
        """Every header but the credential ones."""
        return {k: v for k, v in self.headers.items() if k.lower() != "authorization"}


def build_token_request(
    url: str,
    parts: AuthParts,
    *,
    client_id: str,
    scope: str | None,
    fields: Mapping[str, str],
) -> TokenRequest:
    """Return the client-credentials token request of one client.

    :param url: the token endpoint.
    :param parts: what the client authentication adds (headers, form fields); a
        ``client_id`` among its form fields is sent, the others too.
    :param client_id: the client's id (oauthlib's client is created with it).
    :param scope: the requested scopes, space-joined, or ``None``.
    :param fields: extra form fields (``token_params`` and a fetch's own), appended after
        oauthlib's: a field in both would be a TypeError there, oauthlib drops empty
        values, and names such as ``body`` are its own parameters.
    """
    form = dict(parts.form)
    include_client_id = form.pop("client_id", None) is not None
    from oauthlib.oauth2 import BackendApplicationClient  # imported at the first token request

    client = BackendApplicationClient(client_id)
    body: str = client.prepare_request_body(scope=scope, include_client_id=include_client_id, **form)
    if fields:
        body += "&" + urlencode(list(fields.items()))
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded",
        **parts.headers,
    }
    return TokenRequest(url, headers, body)


def with_dpop_proof(request: TokenRequest, proof: str) -> TokenRequest:
    """Return ``request`` with a DPoP proof header (RFC 9449 §5)."""
    return TokenRequest(request.url, {**request.headers, DPOP_HEADER: proof}, request.body)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Return the seconds a ``Retry-After`` header asks for (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class AnswerContext:
    """What parsing a token answer needs to know of the request it answers.

    :ivar where: the token endpoint as shown in messages (host and path).
    :ivar client_id: the client's id (shown in messages, given to oauthlib's checks).
    :ivar auth_method: the client authentication method's name.
    :ivar scope: the requested scopes, space-joined, or ``None``.
    :ivar token_type: the token type asked for: ``"Bearer"``, or ``"DPoP"`` with a DPoP proof.
    :ivar secrets: the values redacted from every message.
    :ivar basic_encoding_changed: a Basic credential went out form-encoded, different from
        its raw value (an ``invalid_client`` then hints at ``basic_auth_encoding``).
    """

    where: str
    client_id: str
    auth_method: str
    scope: str | None = None
    token_type: str = "Bearer"
    secrets: tuple[str, ...] = field(default=(), repr=False)
    basic_encoding_changed: bool = False

    @property
    def client(self) -> str:
        """The client id as shown in messages: its repr, cut to 60 characters."""
        shown = repr(self.client_id)
        return shown if len(shown) <= 60 else shown[:58] + "…'"


def answer_response(status: int, headers: Mapping[str, str], body: bytes) -> requests.Response:
    """A read ``requests.Response`` holding ``(status, headers, body)``, for an error's ``response``."""
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers)
    response._content = body
    response._content_consumed = True  # type: ignore[attr-defined]
    return response


def parse_token_answer(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    context: AnswerContext,
    *,
    now: float,
    response: requests.Response | None = None,
) -> OAuthToken:
    """Turn the token endpoint's answer into an :class:`OAuthToken` or a typed error.

    Every malformed answer is a :class:`~reqcc.TokenResponseError` (a
    :class:`~reqcc.NotATokenEndpoint` for what is no token endpoint's answer, an
    :class:`~reqcc.OAuthProviderError` for a §5.2 error body), never a bare exception. A
    token of another type than ``context.token_type`` is refused: no downgrade to an
    unbound token, no DPoP token that was not asked for.

    :param headers: the answer's headers, looked up case-insensitively.
    :param now: the wall clock in Unix seconds (the token's expiry, ``Retry-After`` dates).
    :param response: given to the errors as their ``response``; by default one is made
        of ``(status, headers, body)``.
    """
    headers = requests.structures.CaseInsensitiveDict(headers)
    if response is None:
        response = answer_response(status, headers, body)
    text = body.decode("utf-8", errors="replace")
    secrets = context.secrets
    retry_after = parse_retry_after(headers.get("Retry-After"), now)
    try:
        data: Any = load_json(body)
    except ValueError:  # not JSON, not UTF-8/16/32, or nested too deep
        data = None
    body_excerpt = excerpt(text, secrets) or "<empty>"
    code = data.get("error") if isinstance(data, dict) else None
    where, client = context.where, context.client
    reason = wrong_url_reason(status, headers, text, data, code)
    if reason:
        shown_code = excerpt(code, secrets, 60) if isinstance(code, str) and code else None
        raise NotATokenEndpoint(
            f"token endpoint {where} answered HTTP {status}"
            f"{f' with error {shown_code!r}' if shown_code else ''} for client {client}: "
            f"{reason}; body: {body_excerpt}",
            response=response,
            retry_after=retry_after,
            error=shown_code,
        )
    if isinstance(data, dict) and "error" in data:
        code = data["error"]
        if isinstance(code, str) and code:
            _raise_provider_error(data, code, status, context, response, retry_after)
        raise TokenResponseError(
            f"token endpoint {where} answered HTTP {status} with an \"error\" that is not "
            f"a non-empty string, for client {client}; body: {body_excerpt}",
            response=response,
            retry_after=retry_after,
        )
    if not 200 <= status < 300:
        raise TokenResponseError(
            f"token endpoint {where} answered HTTP {status} without an OAuth error for client "
            f"{client}; body: {body_excerpt}",
            response=response,
            retry_after=retry_after,
        )
    if data is None:
        raise TokenResponseError(
            f"token endpoint {where} answered HTTP {status} with a body that is not JSON"
            f"; body: {body_excerpt}",
            response=response,
        )
    if not isinstance(data, dict):
        raise TokenResponseError(
            f"token endpoint {where} answered HTTP {status} with JSON that is not an object: "
            f"{body_excerpt}",
            response=response,
        )
    from oauthlib.oauth2 import BackendApplicationClient

    try:
        token = OAuthToken.from_response(data, now=now, requested_scope=context.scope)
        # oauthlib's own checks, on a fresh client with no requested scope: its scope
        # change Warning and its status-blind error mapping cannot fire or leak.
        # It is given the fields as reqcc read them (an expires_in of "3600.5" is a number
        # to us, an int() error to oauthlib).
        checked = {k: v for k, v in data.items() if k not in ("expires_in", "expires_at")}
        if token.expires_in is not None:
            checked["expires_in"] = token.expires_in
        BackendApplicationClient(context.client_id).parse_request_body_response(json.dumps(checked))
    except Exception as exc:  # any failure to read the answer is the answer's fault
        message = (
            excerpt(str(exc), secrets, 120)
            if isinstance(exc, ValueError) and not isinstance(exc, UnicodeError)
            else type(exc).__name__
        )
        raise TokenResponseError(
            f"token endpoint {where} answered HTTP {status} with an unusable token response "
            f"({message}); body: {body_excerpt}",
            response=response,
        ) from None
    return _check_token_type(token, status, context, response)


def _check_token_type(
    token: OAuthToken, status: int, context: AnswerContext, response: requests.Response
) -> OAuthToken:
    """Accept a DPoP token exactly when one was asked for: no downgrade, no surprise."""
    if token.token_type == context.token_type:
        return token
    if context.token_type == "DPoP":
        message = (
            "token endpoint answered a DPoP token request with a Bearer token: refusing the "
            "downgrade to an unbound token (does the server support DPoP for this client?)"
        )
    else:
        message = (
            "token endpoint issued a DPoP token, but reqcc did not ask for one: token_type is not Bearer"
        )
    raise TokenResponseError(f"{message} [HTTP {status}]", response=response)


def _raise_provider_error(
    data: Mapping[str, Any],
    code: str,
    status: int,
    context: AnswerContext,
    response: requests.Response,
    retry_after: float | None,
) -> NoReturn:
    secrets = context.secrets
    description = data.get("error_description")
    uri = data.get("error_uri")
    shown_code = excerpt(code, secrets, 60)
    shown_description = excerpt(str(description), secrets) if description is not None else None
    shown_uri = excerpt(str(uri), secrets, 300) if uri is not None else None
    message = f"token endpoint {context.where} refused client {context.client}: {shown_code}"
    if shown_description:
        message += f" ({shown_description})"
    message += f" [HTTP {status}]"
    if code == "invalid_client":
        message += (
            f"; sent with auth method {context.auth_method!r}: check client_id, the "
            "credential and auth_method"
        )
        if context.basic_encoding_changed:
            message += BASIC_ENCODING_HINT
    elif code == "invalid_scope":
        asked = f"'{excerpt(context.scope, secrets, 200)}'" if context.scope else "none (no scope parameter)"
        message += f"; scopes asked for: {asked}"
    raise provider_error_class(code)(
        shown_code,
        shown_description,
        shown_uri,
        response=response,
        retry_after=retry_after,
        message=message,
    )


def wrong_url_reason(status: int, headers: Mapping[str, str], text: str, data: object, code: object) -> str:
    """Why the answer says ``token_url`` names no token endpoint, or ``""`` (contract item 35).

    A redirect (token requests do not follow them), a 404 or 405 whatever the body, a
    401 or 403 with an error code no token endpoint sends (RFC 6750's ``invalid_token``,
    an API's own), or an HTML page that is not a server failure. Not a 401 with a
    ``Basic`` challenge: that refuses the client's credentials.

    :param headers: looked up case-insensitively (a ``CaseInsensitiveDict``).
    """
    if 300 <= status < 400:
        return f"{NOT_A_TOKEN_ENDPOINT} (token requests do not follow redirects)"
    if status in (404, 405):
        return NOT_A_TOKEN_ENDPOINT
    if status == 401 and _challenges_basic(headers.get("WWW-Authenticate")):
        # A Basic challenge answers the client's credentials (RFC 6749 §5.2): a token
        # endpoint, or a proxy in front of it, refusing them (Spring Boot's JSON error
        # page says "error": "Unauthorized"), not an API path.
        return ""
    if status in (401, 403) and isinstance(code, str) and code not in TOKEN_ENDPOINT_ERROR_CODES:
        return NOT_A_TOKEN_ENDPOINT
    html = "html" in headers.get("Content-Type", "").lower() or text.lstrip()[:1] == "<"
    if html and data is None and status < 500 and status not in RETRY_STATUSES:
        return NOT_A_TOKEN_ENDPOINT
    return ""


def _challenges_basic(value: str | None) -> bool:
    """Whether a ``WWW-Authenticate`` value holds a ``Basic`` challenge (read within bounds)."""
    return bool(value) and any(scheme == "basic" for scheme, _ in parse_www_authenticate(value or ""))
