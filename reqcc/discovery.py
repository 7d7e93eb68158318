"""Authorization server metadata: find the token endpoint from the issuer.

Two documents describe an authorization server: the OpenID Connect one at
``{issuer}/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0 §4) and the
RFC 8414 one at ``{origin}/.well-known/oauth-authorization-server{path}`` (§3.1: the
well-known segment goes between the host and the issuer's path). Some servers publish
the RFC 8414 document with the suffix appended to the issuer instead
(``{issuer}/.well-known/oauth-authorization-server``, django-oauth-toolkit's layout).
:func:`fetch_metadata` reads the first of the three that exists (or the one
``metadata_url`` names), and accepts it only if its ``issuer`` equals the configured
issuer exactly (RFC 8414 §3.3, the mix-up defence): a document that names another issuer
is a :class:`~reqcc.errors.ConfigurationError` and no token request may follow.

Nothing here caches: the caller (the manager) keeps the result for its life and backs
a failure off like a token failure. Given the caller's
:class:`~reqcc.token_endpoint.RetryPolicy`, each metadata request is retried as a token
request is: :class:`MetadataError` is a :class:`~reqcc.errors.TokenRequestError`, so a
5xx or 429 answer is transient the same way a token endpoint's is, and a connection
error or timeout too; another 4xx is not (it moves on to the next well-known URL).
Each request goes out through the one send path to the authorization server
(:func:`reqcc.to_server.send`, as token requests do); the answer is then checked by pure
functions, :func:`metadata_answer_status` and :func:`parse_metadata_body`. The body is
parsed with the token answers' bounded JSON reader (:func:`reqcc._body.load_json`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from requests.structures import CaseInsensitiveDict

from ._body import load_json
from ._log import excerpt, log
from ._urls import is_loopback_host, origin, require_secure_url
from .client_auth import TLS_AUTH_METHODS
from .errors import ConfigurationError, InsecureTransportError, TokenDeadlineError, TokenRequestError
from .to_server import MAX_ANSWER_BYTES, Answer, Timeout, send
from .token_endpoint import DEFAULT_TIMEOUT, RetryPolicy, describe_failure
from .token_messages import answer_response, parse_retry_after

__all__ = [
    "AuthorizationServerMetadata",
    "MetadataError",
    "OIDC_WELL_KNOWN",
    "OAUTH_WELL_KNOWN",
    "MAX_METADATA_BYTES",
    "DEFAULT_AUTH_METHODS",
    "check_issuer",
    "check_metadata_url",
    "well_known_urls",
    "fetch_metadata",
    "parse_metadata",
    "parse_metadata_body",
    "metadata_answer_status",
    "choose_auth_method",
]

#: The OpenID Connect Discovery suffix, appended to the issuer.
OIDC_WELL_KNOWN = "/.well-known/openid-configuration"
#: The RFC 8414 well-known segment, inserted between the issuer's host and path.
OAUTH_WELL_KNOWN = "/.well-known/oauth-authorization-server"
#: The largest metadata document read, in bytes (after content decoding).
MAX_METADATA_BYTES = MAX_ANSWER_BYTES
#: ``token_endpoint_auth_methods_supported`` when the document omits it (RFC 8414 §2).
DEFAULT_AUTH_METHODS: tuple[str, ...] = ("client_secret_basic",)

# A 4xx other than 429 means "no document for us at this URL": the next URL is tried
# (a gateway may answer 401 or 403 where nothing is published, not only 404).
_TRANSIENT_4XX = frozenset({429})
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

    :ivar issuer: the issuer, equal to the configured one (with ``metadata_url`` and no
        configured issuer: the one the document names).
    :ivar token_endpoint: the token endpoint (https, or http to a loopback host when the
        issuer and the document's URL are plain http on loopback too).
    :ivar token_endpoint_auth_methods_supported: the methods the server lists, or ``None``
        when the document omits the field (then :attr:`auth_methods` is the RFC 8414
        default, ``client_secret_basic`` alone).
    :ivar mtls_endpoint_aliases: RFC 8705 §5 endpoints for mutual-TLS clients (string
        values only; the ``token_endpoint`` alias, if any, is a checked URL).
    :ivar source_url: the URL the document was read from.
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


def check_metadata_url(metadata_url: object) -> str:
    """Validate a configured ``metadata_url`` and return it unchanged.

    It is an absolute https URL (or http to a loopback host) without user information or
    fragment; a query is allowed (some servers select a tenant or policy by one).

    :raises ConfigurationError: ``metadata_url`` is not such a URL.
    :raises InsecureTransportError: it is plain http to a host that is not loopback.
    """
    if not isinstance(metadata_url, str) or not metadata_url:
        raise ConfigurationError("metadata_url must be a non-empty string (the metadata document's URL)")
    parts = urlsplit(metadata_url)
    if parts.scheme.lower() not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(
            f"metadata_url must be an https URL with a host; got {excerpt(metadata_url, (), 120)!r}"
        )
    require_secure_url(metadata_url, "metadata_url")
    if parts.fragment or "#" in metadata_url:
        raise ConfigurationError(
            f"metadata_url must not have a fragment; got {excerpt(metadata_url, (), 120)!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError("metadata_url must not carry user information (user:password@)")
    return metadata_url


def well_known_urls(issuer: str) -> tuple[str, ...]:
    """Return the metadata URLs of ``issuer``, in the order they are tried.

    First the OpenID Connect one, ``{issuer}/.well-known/openid-configuration`` (what most
    servers publish), then the RFC 8414 §3.1 one,
    ``{origin}/.well-known/oauth-authorization-server{path}``, then the RFC 8414 suffix
    appended to the issuer, ``{issuer}/.well-known/oauth-authorization-server`` (where
    django-oauth-toolkit and others publish it). A trailing ``/`` of the issuer is dropped
    first in all three. For an issuer without a path the last two are the same URL, listed
    once: the plain ``{origin}/.well-known/oauth-authorization-server``.
    """
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    oidc = urlunsplit((parts.scheme, parts.netloc, path + OIDC_WELL_KNOWN, "", ""))
    oauth = urlunsplit((parts.scheme, parts.netloc, OAUTH_WELL_KNOWN + path, "", ""))
    appended = urlunsplit((parts.scheme, parts.netloc, path + OAUTH_WELL_KNOWN, "", ""))
    return (oidc, oauth) if appended == oauth else (oidc, oauth, appended)


def fetch_metadata(
    issuer: str | None,
    session: requests.Session,
    *,
    metadata_url: str | None = None,
    timeout: Timeout | None = DEFAULT_TIMEOUT,
    clock: Callable[[], float] = time.time,
    deadline: float | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    retries: RetryPolicy | None = None,
) -> AuthorizationServerMetadata:
    """Read ``issuer``'s metadata document and return what reqcc uses of it.

    The URLs of :func:`well_known_urls` are tried in order (or ``metadata_url`` alone); a
    4xx answer other than 429 moves on to the next one. Each is a GET with
    ``Accept: application/json`` and no credentials, sent with ``session`` (its proxies,
    CA bundle and adapters, and its ``verify``); redirects are followed only within the
    URL's origin. The body is read up to :data:`MAX_METADATA_BYTES` and decoded with the
    token answers' bounded JSON reader (too deep a document is a :class:`MetadataError`).
    With ``retries``, a transient failure of one of these requests (a connection error,
    a timeout, HTTP 429, 500, 502, 503, 504) is retried by its rules, within ``deadline``.

    :param issuer: the configured issuer (see :func:`check_issuer`); ``None`` only with
        ``metadata_url``, and then the document's own ``issuer`` is taken (checked as a
        configured one would be).
    :param session: the ``requests.Session`` that sends (reqcc's token session).
    :param metadata_url: the metadata document's URL, read instead of the well-known ones
        (see :func:`check_metadata_url`).
    :param timeout: (connect, read) seconds, or one number for both.
    :param clock: the wall clock in Unix seconds (to read an HTTP-date ``Retry-After``).
    :param deadline: a ``monotonic()`` time by which the whole read (every request, every
        byte of every answer) must be over (the token fetch's ``token_deadline``); ``None``
        for none. Each request's timeout is cut to what is left.
    :param monotonic: the clock ``deadline`` is read on.
    :param retries: how a transient failure is retried (the token requests' rules and
        settings); ``None``: not at all.
    :raises ConfigurationError: the document names another issuer, or neither ``issuer``
        nor ``metadata_url`` is given.
    :raises TokenDeadlineError: the deadline passed (a server that drips its document, or
        one that keeps failing until then).
    :raises InsecureTransportError: the ``token_endpoint`` is plain http to a non-loopback
        host, or to a loopback host while the issuer or the document's URL is not loopback.
    :raises MetadataError: no document, an error status, a body that is not a JSON object
        or is too large, a missing or malformed ``token_endpoint``.
    :raises requests.RequestException: the network failed.
    """
    if issuer is not None:
        issuer = check_issuer(issuer)
    if metadata_url is not None:
        urls: tuple[str, ...] = (check_metadata_url(metadata_url),)
    elif issuer is None:
        raise ConfigurationError(
            "give issuer= or metadata_url= (or both) to read authorization server metadata"
        )
    else:
        urls = well_known_urls(issuer)
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    misses: list[str] = []
    response: requests.Response | None = None
    final_url = ""
    clipped = _Clipped(timeout, deadline, monotonic)
    for url in urls:
        response, final_url, body = _read_retried(session, url, clipped, clock, retries)
        if body is None:
            log.debug("no authorization server metadata at %s (HTTP %d)", url, response.status_code)
            misses.append(f"{final_url} answered HTTP {response.status_code}")
            continue
        metadata = parse_metadata_body(body, issuer, final_url, response=response)
        log.debug(
            "issuer %s: token endpoint %s (from %s)", metadata.issuer, metadata.token_endpoint, final_url
        )
        return metadata
    raise MetadataError(
        f"no authorization server metadata for {_whose(issuer, metadata_url)}: {'; '.join(misses)}",
        url=final_url,
        response=response,
    )


def _whose(issuer: str | None, metadata_url: str | None) -> str:
    return f"issuer {issuer}" if issuer is not None else f"metadata_url {metadata_url}"


def parse_metadata_body(
    body: bytes, issuer: str | None, url: str, *, response: requests.Response | None = None
) -> AuthorizationServerMetadata:
    """Decode and check a metadata document's body read from ``url`` (see :func:`parse_metadata`).

    The body is decoded with the token answers' bounded JSON reader
    (:func:`reqcc._body.load_json`).

    :param response: the ``response`` of the error for a body that is not JSON.
    :raises MetadataError: the body is not JSON (or nested too deep), or
        :func:`parse_metadata` refuses the document.
    """
    try:
        document = load_json(body)
    except ValueError as exc:
        raise MetadataError(
            f"authorization server metadata at {url} is not JSON ({exc}): "
            f"{excerpt(body.decode('utf-8', 'replace')) or '<empty>'}",
            url=url,
            response=response,
        ) from None
    return parse_metadata(document, issuer, url)


def parse_metadata(document: object, issuer: str | None, url: str) -> AuthorizationServerMetadata:
    """Check a decoded metadata document read from ``url`` and return its useful part.

    With ``issuer`` ``None`` (a ``metadata_url`` given alone) the document's own
    ``issuer`` is taken, checked as a configured one would be (:func:`check_issuer`).
    A plain-http ``token_endpoint`` (or mTLS alias) is accepted only from a loopback
    issuer that is itself plain http, in a document read over plain http on loopback (a
    local test server): a remote server's document cannot send the client's credentials
    in cleartext to whatever listens on a local port, and an https issuer never downgrades.

    :raises ConfigurationError: its ``issuer`` is not exactly ``issuer``.
    :raises InsecureTransportError: its ``token_endpoint`` (or mTLS alias) is plain http
        to a host that is not loopback, or to loopback from an issuer or URL that is not
        plain http on loopback.
    :raises MetadataError: it is not a JSON object, or a field reqcc uses is missing or
        malformed.
    """
    if not isinstance(document, dict):
        raise MetadataError(
            f"authorization server metadata at {url} is not a JSON object ({type(document).__name__})",
            url=url,
        )
    found = document.get("issuer")
    if issuer is None:
        issuer = _document_issuer(found, url)
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
    local = _plain_loopback(issuer) and _plain_loopback(url)
    token_endpoint = _url_field(document, "token_endpoint", url, local=local)
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
        alias = _url_field(aliases_value, "token_endpoint", url, local=local, prefix="mtls_endpoint_aliases.")
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


def _plain_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme.lower() == "http" and is_loopback_host(parts.hostname)


def _document_issuer(found: object, url: str) -> str:
    """The issuer a document read from a ``metadata_url`` names, checked as a configured one."""
    if not isinstance(found, str) or not found:
        raise MetadataError(f"authorization server metadata at {url} names no issuer", url=url)
    try:
        return check_issuer(found)
    except InsecureTransportError as exc:
        raise InsecureTransportError(f"authorization server metadata at {url}: {exc}") from None
    except ConfigurationError as exc:
        raise MetadataError(f"authorization server metadata at {url}: {exc}", url=url) from None


def choose_auth_method(
    metadata: AuthorizationServerMetadata,
    *,
    has_client_secret: bool,
    has_private_key: bool,
    key_credential: str = "a private_key",
) -> str:
    """Pick a client authentication method the server lists, for a user who named none.

    With a private key (or a platform's client assertion, which goes out as
    ``private_key_jwt`` too): ``private_key_jwt``. With a client secret: the first of
    ``client_secret_basic``, ``client_secret_post`` and ``client_secret_jwt`` that the
    server lists. A server that omits the list accepts ``client_secret_basic`` (RFC 8414 §2).
    A server whose list holds none of them (oauth2-mock-server lists only ``none``, yet
    takes Basic) gets the first of them anyway (``client_secret_basic`` for a secret,
    RFC 8414's default), with one WARNING naming the server's list and ``auth_method=``.

    :param key_credential: what ``has_private_key`` stands for, as the WARNING names it:
        ``"a private_key"``, ``"a client_assertion_file"``, ``"a client_assertion callable"``.
    :raises ConfigurationError: neither a client secret nor a private key is configured.
    """
    listed = metadata.auth_methods
    if has_private_key:
        candidates: Iterable[str] = ("private_key_jwt",)
        credential = key_credential
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
    fallback = next(iter(candidates))
    log.warning(
        "the token endpoint of %s lists none of the methods reqcc can use with %s (%s); it lists: %s. "
        "Using %s (RFC 8414's default); pass auth_method= to choose another",
        metadata.issuer, credential, ", ".join(candidates), ", ".join(listed) or "nothing", fallback,
    )
    return fallback


# -- HTTP ---------------------------------------------------------------------------------


class _Clipped:
    """A metadata read's timeout and deadline, and its errors for :func:`reqcc.to_server.send`."""

    def __init__(self, timeout: Timeout, deadline: float | None, monotonic: Callable[[], float]) -> None:
        self.timeout = timeout
        self.deadline = deadline
        self.monotonic = monotonic

    def expired(
        self,
        url: str,
        response: requests.Response | None = None,
        received: int | None = None,
        cause: BaseException | None = None,
    ) -> TokenDeadlineError:
        """The error for a metadata read still going at the deadline."""
        so_far = "" if received is None else f" (still sending its document, {received} bytes so far)"
        last = "" if cause is None else f" (last failure: {describe_failure(cause)})"
        return TokenDeadlineError(
            f"authorization server metadata at {url}{so_far} was not read within the token deadline"
            f"{last}; no token request was sent",
            response=getattr(cause, "response", None),
        )

    def too_large(self, url: str, response: requests.Response) -> MetadataError:
        """The error for a document larger than :data:`MAX_METADATA_BYTES`."""
        return MetadataError(
            f"authorization server metadata at {url} is too large (more than {MAX_METADATA_BYTES} bytes)",
            url=url,
        )

    def check(self, url: str, cause: BaseException | None) -> None:
        """Raise the deadline error (from ``cause``) once the deadline has passed."""
        if self.deadline is not None and self.monotonic() >= self.deadline:
            raise self.expired(url, cause=cause) from cause


def _read_retried(
    session: requests.Session,
    url: str,
    clipped: _Clipped,
    clock: Callable[[], float],
    retries: RetryPolicy | None,
) -> tuple[requests.Response, str, bytes | None]:
    """:func:`_read` ``url``, retried by ``retries`` (if any) within the deadline."""
    def read() -> tuple[requests.Response, str, bytes | None]:
        return _read(session, url, clipped, clock)

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
    session: requests.Session, url: str, clipped: _Clipped, clock: Callable[[], float]
) -> tuple[requests.Response, str, bytes | None]:
    """One metadata request: the final response (closed), its URL and its body (``None``: no document there).

    :raises MetadataError: an answer that is neither a document nor "not here" (with its
        status and ``Retry-After``: a 429 or 5xx is transient).
    """
    answer, final_url = _get(session, url, clipped)
    found = metadata_answer_status(
        answer.status, answer.headers, answer.body, url=final_url, now=clock, response=answer.response
    )
    if found:
        return answer.response, final_url, answer.body
    return answer.response, final_url, None


def metadata_answer_status(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    url: str,
    now: Callable[[], float],
    response: requests.Response | None = None,
) -> bool:
    """Return whether an answer of ``url`` is a metadata document (``False``: none there).

    A 4xx other than 429 means "no document for us at this URL" (a gateway may answer 401
    or 403 where nothing is published, not only 404); a 2xx is a document to parse.

    :param now: the wall clock, read only for an HTTP-date ``Retry-After``.
    :param response: the error's ``response``; by default one made of ``(status, headers, body)``.
    :raises MetadataError: any other status (with ``Retry-After``: a 429 or 5xx is transient).
    """
    if _no_document(status):
        return False
    if not 200 <= status < 300:
        raise MetadataError(
            f"authorization server metadata at {url} answered HTTP {status}; "
            f"body: {excerpt(body.decode('utf-8', 'replace')) or '<empty>'}",
            url=url,
            response=answer_response(status, headers, body) if response is None else response,
            retry_after=parse_retry_after(CaseInsensitiveDict(headers).get("Retry-After"), now()),
        )
    return True


def _no_document(status: int) -> bool:
    return 400 <= status < 500 and status not in _TRANSIENT_4XX


def _get(session: requests.Session, url: str, clipped: _Clipped) -> tuple[Answer, str]:
    """GET ``url`` following same-origin redirects; return the final answer (read) and URL."""
    home = origin(url)
    for _ in range(_MAX_REDIRECTS + 1):
        log.debug("reading authorization server metadata from %s", url)
        answer = send(
            session,
            "GET",
            url,
            headers={"Accept": "application/json"},
            refusals=clipped,
            timeout=clipped.timeout,
            deadline=clipped.deadline,
            monotonic=clipped.monotonic,
            skip_body=lambda r: bool(r.is_redirect and r.headers.get("Location"))
            or _no_document(r.status_code),
        )
        location = answer.headers.get("Location")
        if not (answer.response.is_redirect and location):
            return answer, url
        target = urljoin(url, location)
        if origin(target) != home:
            raise MetadataError(
                f"authorization server metadata at {url} redirects to another origin "
                f"({excerpt(target, (), 120)}); refusing to follow",
                url=url,
            )
        url = target
    raise MetadataError(f"authorization server metadata at {url}: too many redirects", url=url)


def _url_field(
    document: Mapping[str, Any], name: str, url: str, *, local: bool, prefix: str = ""
) -> str | None:
    """Return the URL in ``document[name]`` (``None`` if absent), checked to be a secure absolute URL.

    Plain http (to loopback) only when ``local``: the issuer and the document are plain http
    on loopback too.
    """
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not urlsplit(value).hostname:
        raise MetadataError(
            f"authorization server metadata at {url}: {prefix}{name} must be an absolute URL",
            url=url,
        )
    require_secure_url(value, f"{prefix}{name} (from {url})")
    if urlsplit(value).scheme.lower() == "http" and not local:
        raise InsecureTransportError(
            f"{prefix}{name} (from {url}) is plain http to a loopback host, accepted only from a "
            "plain-http loopback issuer: another server's metadata may not send the client's "
            "credentials in cleartext to whatever listens on this machine"
        )
    return value
