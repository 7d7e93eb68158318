"""Authorization server metadata: find the token endpoint from the issuer.

Two documents describe an authorization server: the OpenID Connect one at
``{issuer}/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0 §4) and the
RFC 8414 one at ``{origin}/.well-known/oauth-authorization-server{path}`` (§3.1: the
well-known segment goes between the host and the issuer's path). :func:`fetch_metadata`
reads the first of them that exists, and accepts it only if its ``issuer`` equals the
configured issuer exactly (RFC 8414 §3.3, the mix-up defence): a document that names
another issuer is a :class:`~reqcc.errors.ConfigurationError` and no token request may
follow.

Nothing here caches: the caller (the manager) keeps the result for its life and backs
a failure off like a token failure. Given the caller's
:class:`~reqcc.token_endpoint.RetryPolicy`, each metadata request is retried as a token
request is: :class:`MetadataError` is a :class:`~reqcc.errors.TokenRequestError`, so a
5xx or 429 answer is transient the same way a token endpoint's is, and a connection
error or timeout too; a 404 is not (it moves on to the next well-known URL).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests

from ._body import DEFAULT_BODY_LIMIT, BodyLimitError, read_capped
from ._log import excerpt, log
from ._urls import NO_TOKEN_ATTRIBUTE, origin, require_secure_url
from .client_auth import TLS_AUTH_METHODS
from .errors import ConfigurationError, TokenDeadlineError, TokenRequestError
from .token_endpoint import DEFAULT_TIMEOUT, RetryPolicy, Timeout, describe_failure, parse_retry_after

__all__ = [
    "AuthorizationServerMetadata",
    "MetadataError",
    "OIDC_WELL_KNOWN",
    "OAUTH_WELL_KNOWN",
    "MAX_METADATA_BYTES",
    "DEFAULT_AUTH_METHODS",
    "check_issuer",
    "well_known_urls",
    "fetch_metadata",
    "parse_metadata",
    "choose_auth_method",
]

#: The OpenID Connect Discovery suffix, appended to the issuer.
OIDC_WELL_KNOWN = "/.well-known/openid-configuration"
#: The RFC 8414 well-known segment, inserted between the issuer's host and path.
OAUTH_WELL_KNOWN = "/.well-known/oauth-authorization-server"
#: The largest metadata document read, in bytes (after content decoding).
MAX_METADATA_BYTES = DEFAULT_BODY_LIMIT
#: ``token_endpoint_auth_methods_supported`` when the document omits it (RFC 8414 §2).
DEFAULT_AUTH_METHODS: tuple[str, ...] = ("client_secret_basic",)

# Statuses meaning "no document at this URL": the next well-known URL is tried.
_NOT_HERE = frozenset({404, 410})
_MAX_REDIRECTS = 5


class MetadataError(TokenRequestError):
    """The authorization server's metadata could not be read or is not usable.

    The message names the URL read. Like a token endpoint's failure, a 429 or 5xx answer
    (``status_code``) is transient and retried; a missing or malformed document is not.

    :ivar url: the metadata URL whose answer failed, or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        response: requests.Response | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, response=response, retry_after=retry_after)
        self.url = url


@dataclass(frozen=True)
class AuthorizationServerMetadata:
    """What reqcc uses of an authorization server's metadata document.

    :ivar issuer: the issuer, equal to the configured one.
    :ivar token_endpoint: the token endpoint (https, or http to a loopback host).
    :ivar token_endpoint_auth_methods_supported: the methods the server lists, or ``None``
        when the document omits the field (then :attr:`auth_methods` is the RFC 8414
        default, ``client_secret_basic`` alone).
    :ivar mtls_endpoint_aliases: RFC 8705 §5 endpoints for mutual-TLS clients (string
        values only; the ``token_endpoint`` alias, if any, is a checked URL).
    :ivar source_url: the well-known URL the document was read from.
    :ivar raw: a read-only copy of the whole document.
    """

    issuer: str
    token_endpoint: str
    token_endpoint_auth_methods_supported: tuple[str, ...] | None = None
    mtls_endpoint_aliases: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    source_url: str = ""
    raw: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False, repr=False)

    @property
    def auth_methods(self) -> tuple[str, ...]:
        """The client authentication methods the token endpoint accepts (with the RFC 8414 default)."""
        listed = self.token_endpoint_auth_methods_supported
        return DEFAULT_AUTH_METHODS if listed is None else listed

    def token_endpoint_for(self, auth_method: str) -> str:
        """Return the token endpoint to use with ``auth_method``.

        The mutual-TLS methods (``tls_client_auth``, ``self_signed_tls_client_auth``) use
        ``mtls_endpoint_aliases.token_endpoint`` when the server publishes one (RFC 8705 §5);
        every other method, and a server without the alias, uses :attr:`token_endpoint`.
        """
        if auth_method in TLS_AUTH_METHODS:
            return self.mtls_endpoint_aliases.get("token_endpoint", self.token_endpoint)
        return self.token_endpoint


def check_issuer(issuer: object) -> str:
    """Validate a configured issuer and return it unchanged.

    An issuer is an https URL (or http to a loopback host) with a host and neither a
    query nor a fragment (RFC 8414 §2). It is compared exactly, so it is not normalised.

    :raises ConfigurationError: ``issuer`` is not such a URL.
    :raises InsecureTransportError: ``issuer`` is plain http to a host that is not loopback.
    """
    if not isinstance(issuer, str) or not issuer:
        raise ConfigurationError("issuer must be a non-empty string (the authorization server's URL)")
    parts = urlsplit(issuer)
    if parts.scheme.lower() not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(f"issuer must be an https URL with a host; got {excerpt(issuer, (), 120)!r}")
    require_secure_url(issuer, "issuer")
    if parts.query or parts.fragment or "?" in issuer or "#" in issuer:
        raise ConfigurationError(
            f"issuer must not have a query or fragment (RFC 8414 §2); got {excerpt(issuer, (), 120)!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError("issuer must not carry user information (user:password@)")
    return issuer


def well_known_urls(issuer: str) -> tuple[str, str]:
    """Return the metadata URLs of ``issuer``, in the order they are tried.

    First the OpenID Connect one, ``{issuer}/.well-known/openid-configuration`` (what most
    servers publish), then the RFC 8414 §3.1 one,
    ``{origin}/.well-known/oauth-authorization-server{path}``. A trailing ``/`` of the
    issuer is dropped first in both. For an issuer without a path the RFC 8414 URL is the
    plain ``{origin}/.well-known/oauth-authorization-server``.
    """
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    oidc = urlunsplit((parts.scheme, parts.netloc, path + OIDC_WELL_KNOWN, "", ""))
    oauth = urlunsplit((parts.scheme, parts.netloc, OAUTH_WELL_KNOWN + path, "", ""))
    return oidc, oauth


def fetch_metadata(
    issuer: str,
    session: requests.Session,
    *,
    timeout: Timeout | None = DEFAULT_TIMEOUT,
    clock: Callable[[], float] = time.time,
    deadline: float | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    retries: RetryPolicy | None = None,
) -> AuthorizationServerMetadata:
    """Read ``issuer``'s metadata document and return what reqcc uses of it.

    The URLs of :func:`well_known_urls` are tried in order; a 404 or 410 moves on to the
    next one. Each is a GET with ``Accept: application/json`` and no credentials, sent
    with ``session`` (its proxies, CA bundle and adapters); redirects are followed only
    within the issuer's origin. The body is read up to :data:`MAX_METADATA_BYTES`.
    With ``retries``, a transient failure of one of these requests (a connection error,
    a timeout, HTTP 429, 500, 502, 503, 504) is retried by its rules, within ``deadline``.

    :param issuer: the configured issuer (see :func:`check_issuer`).
    :param session: the ``requests.Session`` that sends (reqcc's token session).
    :param timeout: (connect, read) seconds, or one number for both.
    :param clock: the wall clock in Unix seconds (to read an HTTP-date ``Retry-After``).
    :param deadline: a ``monotonic()`` time by which the whole read (every request, every
        byte of every answer) must be over (the token fetch's ``token_deadline``); ``None``
        for none. Each request's timeout is cut to what is left.
    :param monotonic: the clock ``deadline`` is read on.
    :param retries: how a transient failure is retried (the token requests' rules and
        settings); ``None``: not at all.
    :raises ConfigurationError: the document names another issuer.
    :raises TokenDeadlineError: the deadline passed (a server that drips its document, or
        one that keeps failing until then).
    :raises InsecureTransportError: the ``token_endpoint`` is plain http to a non-loopback host.
    :raises MetadataError: no document, an error status, a body that is not a JSON object
        or is too large, a missing or malformed ``token_endpoint``.
    :raises requests.RequestException: the network failed.
    """
    issuer = check_issuer(issuer)
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    misses: list[str] = []
    response: requests.Response | None = None
    final_url = ""
    clipped = _Clipped(timeout, deadline, monotonic, issuer)
    for url in well_known_urls(issuer):
        response, final_url, body = _read_retried(session, url, issuer, clipped, clock, retries)
        if body is None:
            log.debug("no authorization server metadata at %s (HTTP %d)", url, response.status_code)
            misses.append(f"{final_url} answered HTTP {response.status_code}")
            continue
        try:
            document = json.loads(body)
        except ValueError:
            raise MetadataError(
                f"authorization server metadata at {final_url} is not JSON: "
                f"{excerpt(body.decode('utf-8', 'replace')) or '<empty>'}",
                url=final_url,
                response=response,
            ) from None
        metadata = parse_metadata(document, issuer, final_url)
        log.debug("issuer %s: token endpoint %s (from %s)", issuer, metadata.token_endpoint, final_url)
        return metadata
    raise MetadataError(
        f"no authorization server metadata for issuer {issuer}: {'; '.join(misses)}",
        url=final_url,
        response=response,
    )


def parse_metadata(document: object, issuer: str, url: str) -> AuthorizationServerMetadata:
    """Check a decoded metadata document read from ``url`` and return its useful part.

    :raises ConfigurationError: its ``issuer`` is not exactly ``issuer``.
    :raises InsecureTransportError: its ``token_endpoint`` (or mTLS alias) is plain http
        to a host that is not loopback.
    :raises MetadataError: it is not a JSON object, or a field reqcc uses is missing or
        malformed.
    """
    if not isinstance(document, dict):
        raise MetadataError(
            f"authorization server metadata at {url} is not a JSON object ({type(document).__name__})",
            url=url,
        )
    found = document.get("issuer")
    if found != issuer:
        if isinstance(found, str):
            shown = f"issuer {excerpt(found, (), 200)!r}"
        else:
            shown = "no issuer" if found is None else f"a {type(found).__name__} as issuer"
        raise ConfigurationError(
            f"authorization server metadata at {url} names {shown}, not the configured issuer "
            f"{issuer!r} (compared exactly, trailing slash included); refusing it: a server may not "
            "speak for another issuer"
        )
    token_endpoint = _url_field(document, "token_endpoint", url)
    if token_endpoint is None:
        raise MetadataError(f"authorization server metadata at {url} has no token_endpoint", url=url)
    methods = document.get("token_endpoint_auth_methods_supported")
    if methods is not None and not (
        isinstance(methods, list) and all(isinstance(m, str) for m in methods)
    ):
        raise MetadataError(
            f"authorization server metadata at {url}: token_endpoint_auth_methods_supported "
            "must be an array of strings",
            url=url,
        )
    aliases_value = document.get("mtls_endpoint_aliases")
    aliases: dict[str, str] = {}
    if aliases_value is not None:
        if not isinstance(aliases_value, dict):
            raise MetadataError(
                f"authorization server metadata at {url}: mtls_endpoint_aliases must be a JSON object",
                url=url,
            )
        aliases = {k: v for k, v in aliases_value.items() if isinstance(v, str)}
        alias = _url_field(aliases_value, "token_endpoint", url, prefix="mtls_endpoint_aliases.")
        if alias is not None:
            aliases["token_endpoint"] = alias
    return AuthorizationServerMetadata(
        issuer=issuer,
        token_endpoint=token_endpoint,
        token_endpoint_auth_methods_supported=None if methods is None else tuple(methods),
        mtls_endpoint_aliases=MappingProxyType(aliases),
        source_url=url,
        raw=MappingProxyType(copy.deepcopy(document)),
    )


def choose_auth_method(
    metadata: AuthorizationServerMetadata,
    *,
    has_client_secret: bool,
    has_private_key: bool,
) -> str:
    """Pick a client authentication method the server lists, for a user who named none.

    With a private key: ``private_key_jwt``. With a client secret: the first of
    ``client_secret_basic``, ``client_secret_post`` and ``client_secret_jwt`` that the
    server lists. A server that omits the list accepts ``client_secret_basic`` (RFC 8414 §2).

    :raises ConfigurationError: no listed method fits the configured credentials (the
        message lists the server's methods; pass ``auth_method=`` to choose one).
    """
    listed = metadata.auth_methods
    if has_private_key:
        candidates: Iterable[str] = ("private_key_jwt",)
        credential = "a private_key"
    elif has_client_secret:
        candidates = ("client_secret_basic", "client_secret_post", "client_secret_jwt")
        credential = "a client_secret"
    else:
        raise ConfigurationError(
            "auth_method is required when neither client_secret nor private_key is given "
            f"(the server at {metadata.issuer} lists: {', '.join(listed) or 'nothing'})"
        )
    for method in candidates:
        if method in listed:
            return method
    raise ConfigurationError(
        f"the token endpoint of {metadata.issuer} accepts none of the methods reqcc can use with "
        f"{credential} ({', '.join(candidates)}); it lists: {', '.join(listed) or 'nothing'}. "
        "Pass auth_method= to choose one"
    )


# -- HTTP ---------------------------------------------------------------------------------


class _NoCredentials(requests.auth.AuthBase):
    """Sends no Authorization header (not the session's auth, not .netrc) and no bearer token."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers.pop("Authorization", None)
        setattr(r, NO_TOKEN_ATTRIBUTE, True)
        return r


class _Clipped:
    """The per-request timeout of a metadata read, cut to what is left of its deadline."""

    def __init__(
        self, timeout: Timeout, deadline: float | None, monotonic: Callable[[], float], issuer: str
    ) -> None:
        self.timeout = timeout
        self.deadline = deadline
        self.monotonic = monotonic
        self.issuer = issuer

    def expired(
        self, url: str, received: int | None = None, cause: BaseException | None = None
    ) -> TokenDeadlineError:
        """The error for a metadata read still going at the deadline."""
        so_far = "" if received is None else f" (still sending its document, {received} bytes so far)"
        last = "" if cause is None else f" (last failure: {describe_failure(cause)})"
        return TokenDeadlineError(
            f"authorization server metadata at {url}{so_far} was not read within the token deadline"
            f"{last}; no token request was sent",
            response=getattr(cause, "response", None),
        )

    def check(self, url: str, cause: BaseException | None) -> None:
        """Raise the deadline error (from ``cause``) once the deadline has passed."""
        if self.deadline is not None and self.monotonic() >= self.deadline:
            raise self.expired(url, cause=cause) from cause

    def left(self, url: str) -> Timeout:
        """The timeout of the next request (raises once the deadline has passed)."""
        if self.deadline is None:
            return self.timeout
        left = self.deadline - self.monotonic()
        if left <= 0:
            raise self.expired(url)
        if isinstance(self.timeout, tuple):
            return (min(self.timeout[0], left), min(self.timeout[1], left))
        return min(self.timeout, left)


def _read_retried(
    session: requests.Session,
    url: str,
    issuer: str,
    clipped: _Clipped,
    clock: Callable[[], float],
    retries: RetryPolicy | None,
) -> tuple[requests.Response, str, bytes | None]:
    """:func:`_read` ``url``, retried by ``retries`` (if any) within the deadline."""
    def read() -> tuple[requests.Response, str, bytes | None]:
        return _read(session, url, issuer, clipped, clock)

    if retries is None:
        return read()
    return retries.call(
        read,
        what=f"authorization server metadata request to {url}",
        deadline=clipped.deadline,
        monotonic=clipped.monotonic,
        check_deadline=lambda cause: clipped.check(url, cause),
    )


def _read(
    session: requests.Session, url: str, issuer: str, clipped: _Clipped, clock: Callable[[], float]
) -> tuple[requests.Response, str, bytes | None]:
    """One metadata request: the final response (closed), its URL and its body (``None``: no document there).

    :raises MetadataError: an answer that is neither a document nor "not here" (with its
        status and ``Retry-After``: a 429 or 5xx is transient).
    """
    response, final_url = _get(session, url, issuer, clipped)
    try:
        if response.status_code in _NOT_HERE:
            return response, final_url, None
        body = _read_capped_body(response, MAX_METADATA_BYTES, final_url, clipped)
    finally:
        response.close()
    if not 200 <= response.status_code < 300:
        raise MetadataError(
            f"authorization server metadata at {final_url} answered HTTP {response.status_code}; "
            f"body: {excerpt(body.decode('utf-8', 'replace')) or '<empty>'}",
            url=final_url,
            response=response,
            retry_after=parse_retry_after(response.headers.get("Retry-After"), clock()),
        )
    return response, final_url, body


def _get(
    session: requests.Session, url: str, issuer: str, clipped: _Clipped
) -> tuple[requests.Response, str]:
    """GET ``url`` following same-origin redirects; return the final response (unread) and URL."""
    home = origin(issuer)
    for _ in range(_MAX_REDIRECTS + 1):
        timeout = clipped.left(url)
        log.debug("reading authorization server metadata from %s", url)
        # requests.Session.request, not an override (OAuth2Session's adds a token of its own).
        response = requests.Session.request(
            session,
            "GET",
            url,
            headers={"Accept": "application/json"},
            auth=_NoCredentials(),
            timeout=timeout,
            allow_redirects=False,
            stream=True,
            verify=session.verify,
        )
        location = response.headers.get("Location")
        if not (response.is_redirect and location):
            return response, url
        response.close()
        target = urljoin(url, location)
        if origin(target) != home:
            raise MetadataError(
                f"authorization server metadata at {url} redirects to another origin "
                f"({excerpt(target, (), 120)}); refusing to follow",
                url=url,
            )
        url = target
    raise MetadataError(f"authorization server metadata at {url}: too many redirects", url=url)


def _read_capped_body(response: requests.Response, limit: int, url: str, clipped: _Clipped) -> bytes:
    """Read ``response``'s decoded body with the shared capped reader (too large: :class:`MetadataError`)."""
    try:
        return read_capped(response, limit, deadline=clipped.deadline, monotonic=clipped.monotonic)
    except BodyLimitError as exc:
        if exc.reason == "deadline":
            raise clipped.expired(url, exc.received) from None
        raise MetadataError(
            f"authorization server metadata at {url} is too large (more than {limit} bytes)", url=url
        ) from exc


def _url_field(document: Mapping[str, Any], name: str, url: str, *, prefix: str = "") -> str | None:
    """Return the URL in ``document[name]`` (``None`` if absent), checked to be a secure absolute URL."""
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not urlsplit(value).hostname:
        raise MetadataError(
            f"authorization server metadata at {url}: {prefix}{name} must be an absolute URL",
            url=url,
        )
    require_secure_url(value, f"{prefix}{name} (from {url})")
    return value
