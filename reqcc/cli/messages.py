"""What the ``reqcc`` command says when something fails: one line, and an exit code."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import requests

from ..client_assertion import ClientAssertionError
from ..errors import ConfigurationError, NotATokenEndpoint, OAuthProviderError, ReqccError, TokenRequestError
from .exit_codes import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_NETWORK,
    EXIT_OAUTH,
    EXIT_TOKEN_RESPONSE,
)

__all__ = ["CliError", "describe", "shown_url"]

_FLAG_OF_KEYWORD = {
    "private_key": "--private-key-file",
    "client_assertion_file": "--client-assertion-file",
    "encryption_key": "--cache-key-file / REQCC_CACHE_KEY",
    "token_url": "--token-url",
    "issuer": "--issuer",
    "metadata_url": "--metadata-url",
    "client_id": "--client-id",
    "client_secret": "REQCC_CLIENT_SECRET / --client-secret-file",
    "scopes": "--scope",
    "auth_method": "--auth-method",
    "basic_auth_encoding": "--basic-auth-encoding",
    "token_params": "--token-param",
    "timeout": "--timeout",
    "base_url": "URL",
}


class CliError(Exception):
    """A problem to report on one line with an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def shown_url(url: str) -> str:
    """``url`` without its query, fragment or user info (they may carry credentials), for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    shown = f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else url[:80]
    return shown + ("?…" if parts.query else "")


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def _network_reason(exc: BaseException) -> str:
    if isinstance(exc, requests.exceptions.SSLError):
        kind = "TLS error"
    elif isinstance(exc, requests.Timeout):
        kind = "timed out"
    else:
        kind = "connection failed"
    text = str(exc)
    match = _ERRNO.search(text)
    if match:
        return f"{kind}: {match.group(1).strip()}"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"{kind}: certificate verify failed"
    return f"{kind} ({type(exc).__name__})"


_TOKEN_URL_HINT = "check --token-url / REQCC_TOKEN_URL: it must be the token endpoint itself"
_CLIENT_HINT = (
    "check --client-id / REQCC_CLIENT_ID, the secret in REQCC_CLIENT_SECRET / --client-secret-file, "
    "and --auth-method"
)


def _flag_hint(exc: TokenRequestError) -> str:
    """The flags to check for a token-endpoint failure, judged by the answer, not the message.

    The library's message already says what went wrong and which keyword to check
    (``token_url``, ``client_id``...); a shell user sets flags and variables, so this names them.
    """
    if isinstance(exc, NotATokenEndpoint):  # a 404, 405, redirect, HTML page or an API's 401/403
        return _TOKEN_URL_HINT
    if isinstance(exc, OAuthProviderError):
        if exc.error == "invalid_client" and 'basic_auth_encoding="raw"' in str(exc):
            return f"{_CLIENT_HINT}; if they are right, try --basic-auth-encoding raw"
        if exc.error in ("invalid_client", "unauthorized_client"):
            return _CLIENT_HINT
        if exc.error == "invalid_scope":
            return "check --scope / REQCC_SCOPES"
    return ""


def _token_failure(exc: TokenRequestError) -> str:
    """The library's own message (it names the fix), then the command line's flags to check."""
    hint = _flag_hint(exc)
    return f"{type(exc).__name__}: {exc}" + (f"; on the command line, {hint}" if hint else "")


def describe(exc: BaseException, url: str | None) -> tuple[str, int]:
    """Return the one-line message and exit code for ``exc``.

    A token-endpoint failure shows the library's own message (which names the client, the
    endpoint and what to check) followed by the flags to check; the message is never replaced
    by a generic one.
    """
    if isinstance(exc, CliError):
        return str(exc), exc.code
    if isinstance(exc, ConfigurationError):
        message = str(exc)
        keyword = message.split(" ", 1)[0].rstrip(":,")
        flag = _FLAG_OF_KEYWORD.get(keyword)
        hint = f" (check {flag})" if flag else ""
        return f"configuration error: {message}{hint}", EXIT_CONFIG
    if isinstance(exc, ClientAssertionError):  # a missing or stale file: the flag to check
        return (
            f"{type(exc).__name__}: {exc} (check --client-assertion-file / REQCC_CLIENT_ASSERTION_FILE)",
            EXIT_CONFIG,
        )
    if isinstance(exc, OAuthProviderError):
        return _token_failure(exc), EXIT_OAUTH
    if isinstance(exc, TokenRequestError):
        return _token_failure(exc), EXIT_TOKEN_RESPONSE
    if isinstance(exc, ReqccError):
        return f"{type(exc).__name__}: {exc}", EXIT_TOKEN_RESPONSE
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        request = getattr(exc, "request", None)
        target = getattr(request, "url", None) or url or "the server"
        parts = urlsplit(target)
        where = shown_url(f"{parts.scheme}://{parts.netloc}") if parts.netloc else target
        return f"network error talking to {where}: {_network_reason(exc)}", EXIT_NETWORK
    if isinstance(exc, requests.RequestException):
        return f"request failed: {type(exc).__name__}", EXIT_NETWORK
    return f"unexpected error: {type(exc).__name__} (run with --debug for the traceback)", EXIT_ERROR
