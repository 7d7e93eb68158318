"""One client's token endpoint: prepares, sends, retries and parses token requests.

oauthlib's ``BackendApplicationClient`` prepares the form body and checks the answer
(a fresh client per request, so no state carries over between fetches). The request is
sent here rather than through requests-oauthlib's ``OAuth2Session.fetch_token``, which
logs the Basic credentials, a posted secret and the issued token at DEBUG level and
mutates the session's state mid-fetch. A user who needs requests-oauthlib's compliance
hooks for a non-standard server passes an ``OAuth2Session`` as ``token_session``: its
``access_token_request`` and ``access_token_response`` hooks are applied here.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests

from . import fork_safety
from ._body import DEFAULT_BODY_LIMIT, BodyLimitError, load_json, read_capped
from ._log import excerpt, log
from ._urls import NO_TOKEN_ATTRIBUTE, require_no_cleartext_proxy
from .challenges import parse_www_authenticate
from .client_auth import ClientAuth, ClientSecretBasic
from .dpop import DPOP_HEADER, DPOP_NONCE_HEADER, DPoPProver, is_valid_nonce, token_endpoint_demands_nonce
from .errors import (
    TOKEN_ENDPOINT_ERROR_CODES,
    ConfigurationError,
    NotATokenEndpoint,
    OAuthProviderError,
    TokenDeadlineError,
    TokenRequestError,
    TokenResponseError,
    provider_error_class,
)
from .oauth_token import OAuthToken
from .telemetry import Telemetry

__all__ = [
    "TokenEndpoint", "RetryPolicy", "DEFAULT_TIMEOUT", "MAX_RESPONSE_BYTES", "RETRY_STATUSES",
    "RETRY_ERROR_CODES", "CLIENT_ERROR_CODES",
]

#: (connect, read) seconds for a token request when no ``timeout`` is given.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 15.0)
#: The largest token response read (after decoding): 1 MiB, as Go's x/oauth2.
MAX_RESPONSE_BYTES = DEFAULT_BODY_LIMIT
#: HTTP statuses of the token endpoint that are retried.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: §5.2 error codes that are retried.
RETRY_ERROR_CODES = frozenset({"temporarily_unavailable", "server_error"})
#: §5.2 error codes that are never retried, whatever the HTTP status they come with.
CLIENT_ERROR_CODES = frozenset({
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
    "unsupported_grant_type", "invalid_scope",
})

#: Added to an ``invalid_client`` refusal of a Basic credential that form-encoding changed.
BASIC_ENCODING_HINT = (
    "; the client_id or client_secret holds characters that client_secret_basic form-encodes "
    "(RFC 6749 §2.3.1) and many servers do not decode: if the credential is right, try "
    'basic_auth_encoding="raw"'
)
#: How a wrong ``token_url`` is named in messages (:class:`~reqcc.NotATokenEndpoint`).
NOT_A_TOKEN_ENDPOINT = "this does not look like a token endpoint: check token_url"

_RESERVED_FIELDS = frozenset(
    {"grant_type", "scope", "client_id", "client_secret", "client_assertion", "client_assertion_type"}
)

Timeout = float | tuple[float, float]
_T = TypeVar("_T")


def check_form_fields(params: Mapping[str, Any], keyword: str) -> dict[str, str]:
    """Validate extra form fields: string names and values, none that reqcc sets itself."""
    if not isinstance(params, Mapping):
        raise ConfigurationError(f"{keyword} must be a mapping of form field names to strings")
    out: dict[str, str] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"{keyword}: field names must be non-empty strings")
        if name in _RESERVED_FIELDS:
            raise ConfigurationError(
                f"{keyword} must not set {name!r}: reqcc sends it (use scopes=, client_id=, "
                "client_secret= or auth_method= instead)"
            )
        if not isinstance(value, str):
            raise ConfigurationError(f"{keyword}[{name!r}] must be a string")
        out[name] = value
    return out


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


@dataclass
class RetryPolicy:
    """How a request to the authorization server is retried after a transient failure.

    The token endpoint's rules, which discovery's metadata requests follow too: at most
    ``max_retries`` retries of a failure :func:`is_transient` accepts, each after
    ``retry_backoff * 2**n`` seconds jittered to between half and all of it and at
    most ``max_retry_wait``; a ``Retry-After`` the error carries is waited instead, and one
    longer than ``max_retry_wait`` ends the retries.

    :ivar max_retries: retries of a transient failure (0: none).
    :ivar retry_backoff: base of the exponential wait between retries, in seconds.
    :ivar max_retry_wait: the longest a single retry waits.
    :ivar sleep: how to wait between retries.
    :ivar rng: the jitter's generator (reseed it in a forked child).
    """

    max_retries: int = 2
    retry_backoff: float = 0.5
    max_retry_wait: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def wait(self, exc: BaseException, attempt: int) -> float | None:
        """Return how long to wait before retry ``attempt + 1`` after ``exc``, or ``None`` not to retry."""
        if attempt >= self.max_retries or not is_transient(exc):
            return None
        retry_after: float | None = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return None if retry_after > self.max_retry_wait else float(retry_after)
        base = self.retry_backoff * (2**attempt)
        return float(min(self.max_retry_wait, base * (0.5 + self.rng.random() / 2)))

    def call(
        self,
        send: Callable[[], _T],
        *,
        what: str,
        deadline: float | None,
        monotonic: Callable[[], float],
        check_deadline: Callable[[BaseException | None], None],
    ) -> _T:
        """Return what ``send()`` returns, retrying it after each transient failure.

        :param send: one attempt; it raises a ``requests.RequestException`` to fail.
        :param what: the request as named in the WARNING logged before each retry.
        :param deadline: a ``monotonic`` time by which every attempt and wait must be over;
            ``None`` for none. A wait that would end at or past it is not taken: the
            failure is raised as it is.
        :param monotonic: the clock ``deadline`` is read on.
        :param check_deadline: called before each attempt (with ``None``) and after each
            failure (with it); raises the caller's deadline error once ``deadline`` has passed.
        :raises requests.RequestException: the last failure (a deadline error as is, at once).
        """
        attempt = 0
        while True:
            check_deadline(None)
            try:
                return send()
            except TokenDeadlineError:
                raise
            except requests.RequestException as exc:
                check_deadline(exc)
                wait = self.wait(exc, attempt)
                if wait is None:
                    raise
                if deadline is not None and monotonic() + wait >= deadline:
                    raise  # no time left for another attempt: the real cause, not a timeout
                attempt += 1
                log.warning(
                    "%s failed (%s); retry %d of %d in %.2fs",
                    what, describe_failure(exc), attempt, self.max_retries, wait,
                )
                self.sleep(wait)


class _FormAuth(requests.auth.AuthBase):
    """Sets exactly the client-authentication headers, overriding session auth and .netrc.

    It also marks the request as one a reqcc adapter must pass through untouched: a
    ``token_session`` that reqcc is mounted on (one session for API and token calls) would
    otherwise route the token request back into the manager, which waits on itself.
    """

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers.pop("Authorization", None)
        r.headers.update(self._headers)
        setattr(r, NO_TOKEN_ATTRIBUTE, True)
        return r

    def __repr__(self) -> str:
        return "_FormAuth(<hidden>)"


#: Form fields of a token request that hold the client's credentials.
_CREDENTIAL_FIELDS = frozenset({"client_secret", "client_assertion"})
#: What stands in for a credential in :func:`_without_credentials`.
_REDACTED = "<redacted>"


def _without_credentials(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Return a copy of a token request fit to travel with an error: its credentials redacted.

    Errors of the token request carry it (``exc.request``, ``exc.response.request``), and
    error reporters print its headers and body. The copy's ``Authorization`` (the Basic
    credential) and ``DPoP`` headers and its ``client_secret`` and ``client_assertion`` form
    fields read :data:`_REDACTED`; everything else is as sent (DESIGN items 13 and 31).
    """
    safe = request.copy()
    for name in ("Authorization", DPOP_HEADER):
        if name in safe.headers:
            safe.headers[name] = _REDACTED
    body = safe.body
    if isinstance(body, (bytes, str)) and body:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        fields = parse_qsl(text, keep_blank_values=True)
        if any(name in _CREDENTIAL_FIELDS for name, _ in fields):
            redacted = urlencode([(n, _REDACTED if n in _CREDENTIAL_FIELDS else v) for n, v in fields])
            safe.body = redacted.encode("utf-8") if isinstance(body, bytes) else redacted
            safe.headers["Content-Length"] = str(len(redacted.encode("utf-8")))
    return safe


class TokenEndpoint:
    """Sends client-credentials token requests for one client and returns parsed tokens.

    :param token_url: the token endpoint.
    :param client_auth: how the client authenticates (see :mod:`reqcc.client_auth`).
    :param scope: the requested scopes, space-joined, or ``None``.
    :param token_params: extra form fields sent with every request.
    :param timeout: (connect, read) seconds, or one number for both.
    :param session: the ``requests.Session`` that sends; one is created (and owned) if ``None``.
    :param max_retries: retries of a transient failure (connection error, timeout, 429,
        5xx, ``temporarily_unavailable``, ``server_error``).
    :param retry_backoff: base of the exponential wait between retries, in seconds.
    :param max_retry_wait: the longest a single retry waits; a ``Retry-After`` asking for
        more ends the retries (the error carries ``retry_after``).
    :param clock: the wall clock in Unix seconds (expiry of fetched tokens).
    :param sleep: how to wait between retries.
    :param dpop: the client's DPoP key and nonces, to ask for DPoP-bound tokens (RFC 9449):
        every attempt carries a fresh proof, a ``use_dpop_nonce`` answer is retried once with
        the server's nonce (and fresh client credentials), and only a ``DPoP`` token is accepted.
    :param monotonic: the monotonic clock the ``deadline`` of :meth:`request_token` is read on.
    :param telemetry: what each HTTP token request is reported to (each exchange: retries
        and DPoP nonce replays included); default: nothing is recorded.
    """

    def __init__(
        self,
        token_url: str,
        client_auth: ClientAuth,
        *,
        scope: str | None = None,
        token_params: Mapping[str, str] | None = None,
        timeout: Timeout | None = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        max_retry_wait: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        dpop: DPoPProver | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.token_url = token_url
        #: The access tokens the owner holds, redacted from anything this endpoint reports too
        #: (a failing server may echo the token in use); the manager points it at its tokens.
        self.known_tokens: Callable[[], Iterable[str]] = tuple
        self.dpop = dpop
        self.client_auth = client_auth
        self.scope = scope or None
        self.token_params = check_form_fields(token_params or {}, "token_params")
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self._owns_session = session is None
        self.session = requests.Session() if session is None else session
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.max_retry_wait = max_retry_wait
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self._random = random.Random()
        self.telemetry = Telemetry() if telemetry is None else telemetry
        fork_safety.register(self.after_fork)

    def after_fork(self) -> None:
        """Make this endpoint safe to use in a process forked from the one that created it.

        An owned session is replaced (no sockets shared with the parent) and the retry
        jitter is reseeded (no backoff in lockstep with the parent and its other children).
        Run in the child by :mod:`reqcc.fork_safety`, right after the fork.
        """
        if self._owns_session:
            self.session = requests.Session()
        self._random.seed()

    def close(self) -> None:
        """Close the session if this endpoint created it."""
        if self._owns_session:
            self.session.close()

    def secrets(self) -> Iterable[str]:
        """The values to redact from anything this endpoint reports: credentials and known tokens."""
        return (*self.client_auth.secrets(), *self.known_tokens())

    # -- one token, with retries ------------------------------------------------------

    def request_token(
        self,
        extra_params: Mapping[str, str] | None = None,
        *,
        deadline: float | None = None,
        retries: bool = True,
    ) -> OAuthToken:
        """Request a token, retrying transient failures, and return it.

        :param extra_params: extra form fields for this request only.
        :param deadline: a ``monotonic`` time by which the whole fetch (every attempt, every
            retry wait, every byte of the answer) must be over; ``None`` for no deadline.
        :param retries: ``False`` for a probe of an endpoint known to be failing: one HTTP
            request, no retry (DESIGN item 27).
        :raises OAuthProviderError: the server answered with a §5.2 error body.
        :raises TokenResponseError: the answer is not a usable token response.
        :raises TokenDeadlineError: the deadline passed.
        :raises requests.RequestException: the network failed (after the retries).
        """
        extra = check_form_fields(extra_params or {}, "fetch_token()") if extra_params else {}
        self.client_auth.check_ready(self.token_url)  # a missing client assertion sends nothing
        policy = self.retry_policy()
        if not retries:
            policy.max_retries = 0
        return policy.call(
            lambda: self._request_once(extra, deadline),
            what=f"token request to {self.token_url}",
            deadline=deadline,
            monotonic=self._monotonic,
            check_deadline=lambda cause: self._check_deadline(deadline, cause),
        )

    def retry_policy(self) -> RetryPolicy:
        """This endpoint's retry settings, as they are now (a change applies to the next fetch)."""
        return RetryPolicy(
            self.max_retries, self.retry_backoff, self.max_retry_wait, sleep=self._sleep, rng=self._random
        )

    def _check_deadline(self, deadline: float | None, cause: BaseException | None) -> None:
        if deadline is None or self._monotonic() < deadline:
            return
        error = TokenDeadlineError(
            f"token endpoint {self.where} did not issue a token for client {self._client} "
            "within the token deadline"
            + (f" (last failure: {describe_failure(cause)})" if cause is not None else ""),
            response=getattr(cause, "response", None),
        )
        raise error from cause

    def retry_wait(self, exc: BaseException, attempt: int) -> float | None:
        """Return how long to wait before retrying after ``exc``, or ``None`` not to retry."""
        return self.retry_policy().wait(exc, attempt)

    # -- one HTTP exchange -------------------------------------------------------------

    def prepare_body(self, extra: Mapping[str, str]) -> tuple[dict[str, str], str]:
        """Return the headers and form body of one token request (fresh credentials each time)."""
        parts = self.client_auth.prepare(self.token_url)
        form = dict(parts.form)
        include_client_id = form.pop("client_id", None) is not None
        from oauthlib.oauth2 import BackendApplicationClient  # imported at the first token request

        client = BackendApplicationClient(self.client_auth.client_id)
        body: str = client.prepare_request_body(
            scope=self.scope, include_client_id=include_client_id, **form
        )
        # token_params and fetch_token()'s extras are appended here, not passed to oauthlib as
        # keywords: a field in both would be a TypeError there (the extra one wins here),
        # oauthlib drops empty values, and names such as "body" are its own parameters.
        fields = {**self.token_params, **extra}
        if fields:
            body += "&" + urlencode(list(fields.items()))
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
            **parts.headers,
        }
        return headers, body

    def _request_once(self, extra: Mapping[str, str], deadline: float | None = None) -> OAuthToken:
        try:
            return self._counted_exchange(extra, deadline)
        except OAuthProviderError as exc:
            # RFC 9449 §8: the server wants a nonce in the proof; it sent one. Exactly one
            # more exchange, built afresh (new proof, new client assertion), signed with the
            # nonce of that answer: the shared store may meanwhile hold another answer's.
            response = exc.response
            nonce = (response.headers.get(DPOP_NONCE_HEADER) or "").strip() if response is not None else ""
            if (
                self.dpop is None
                or response is None
                or not token_endpoint_demands_nonce(response.status_code, {"error": exc.error})
                or not is_valid_nonce(nonce)
            ):
                raise
            log.debug("the token endpoint asked for a DPoP nonce; asking once more with it")
            return self._counted_exchange(extra, deadline, nonce)

    def _counted_exchange(
        self, extra: Mapping[str, str], deadline: float | None, nonce: str | None = None
    ) -> OAuthToken:
        # Telemetry counts HTTP token requests: every exchange, retries and nonce replays too.
        with self.telemetry.token_request(self.token_url):
            return self._exchange(extra, deadline, nonce)

    def _exchange(
        self, extra: Mapping[str, str], deadline: float | None, nonce: str | None = None
    ) -> OAuthToken:
        headers, body = self.prepare_body(extra)
        url = self.token_url
        hooks = getattr(self.session, "compliance_hook", None)
        if hooks:
            for hook in hooks.get("access_token_request", ()):
                url, headers, body = hook(url, headers, body)
        auth_headers = {k: v for k, v in headers.items() if k.lower() == "authorization"}
        plain_headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        if self.dpop is not None:
            plain_headers[DPOP_HEADER] = self.dpop.token_proof(url, nonce)
        if url[:5].lower() == "http:":  # loopback (checked at construction): only without a proxy
            proxies = self.session.merge_environment_settings(url, {}, None, None, None)["proxies"]
            require_no_cleartext_proxy(url, proxies, "the token request (client credentials)")
        log.debug("requesting a token from %s (auth method %s)", url, self.client_auth.method)
        try:
            response = self._send(url, body, plain_headers, auth_headers, deadline)
        except requests.RequestException as exc:  # a network failure: it carries the request too
            if isinstance(exc.request, requests.PreparedRequest):
                exc.request = _without_credentials(exc.request)
            if exc.response is not None and isinstance(exc.response.request, requests.PreparedRequest):
                exc.response.request = _without_credentials(exc.response.request)
            raise
        # Every error raised from here on carries the response, and through it the request:
        # error reporters print both. Hand them a copy without the client's credentials.
        response.request = _without_credentials(response.request)
        if self.dpop is not None:
            # On every answer, success too (RFC 9449 §8.2).
            self.dpop.update_token_nonce(url, response.headers)
        self._read_body(response, deadline)
        if hooks:
            for hook in hooks.get("access_token_response", ()):
                response = hook(response)
        return self._check_token_type(self.parse_response(response), response)

    def _send(
        self,
        url: str,
        body: str,
        headers: dict[str, str],
        auth_headers: dict[str, str],
        deadline: float | None,
    ) -> requests.Response:
        """POST one token request; return the response, its body not read yet."""
        # requests.Session.request, not the session's own override: OAuth2Session.request
        # would refuse loopback http and add a token of its own.
        return requests.Session.request(
            self.session,
            "POST",
            url,
            data=body.encode("utf-8"),
            headers=headers,
            auth=_FormAuth(auth_headers),
            timeout=self._attempt_timeout(deadline),
            allow_redirects=False,
            # Explicitly: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a
            # Session.verify it is not handed per request (psf/requests#3829), which would
            # silently drop the CA bundle (or verify=False) configured on token_session.
            verify=self.session.verify,
            # The answer is read here, streamed and capped (a hostile server's endless or
            # gzip-bomb body is abandoned at 1 MiB), before any hook or parser sees it.
            stream=True,
        )

    def _check_token_type(self, token: OAuthToken, response: requests.Response) -> OAuthToken:
        """Accept a DPoP token exactly when one was asked for: no downgrade, no surprise."""
        expected = "Bearer" if self.dpop is None else "DPoP"
        if token.token_type == expected:
            return token
        if self.dpop is not None:
            message = (
                "token endpoint answered a DPoP token request with a Bearer token: refusing the "
                "downgrade to an unbound token (does the server support DPoP for this client?)"
            )
        else:
            message = (
                "token endpoint issued a DPoP token, but reqcc did not ask for one: token_type is not Bearer"
            )
        raise TokenResponseError(f"{message} [HTTP {response.status_code}]", response=response)

    def _attempt_timeout(self, deadline: float | None) -> Timeout:
        if deadline is None:
            return self.timeout
        left = max(0.001, deadline - self._monotonic())
        if isinstance(self.timeout, tuple):
            return (min(self.timeout[0], left), min(self.timeout[1], left))
        return min(self.timeout, left)

    def _read_body(self, response: requests.Response, deadline: float | None) -> bytes:
        """Read the answer's body, capped at :data:`MAX_RESPONSE_BYTES` after decoding."""
        try:
            return read_capped(response, MAX_RESPONSE_BYTES, deadline=deadline, monotonic=self._monotonic)
        except BodyLimitError as exc:
            if exc.reason == "deadline":
                raise TokenDeadlineError(
                    f"token endpoint {self.where} was still sending its answer (HTTP "
                    f"{response.status_code}, {exc.received} bytes so far) for client {self._client} "
                    "at the token deadline; the rest was not read",
                    response=response,
                ) from None
            raise TokenResponseError(
                f"token endpoint {self.where} answered HTTP {response.status_code} with a body "
                f"larger than {MAX_RESPONSE_BYTES} bytes (after decoding) for client {self._client}; "
                "the rest was not read",
                response=response,
            ) from None

    @property
    def where(self) -> str:
        """The token endpoint as shown in messages: host and path, without the query."""
        parts = urlsplit(self.token_url)
        return f"{parts.netloc.rpartition('@')[2]}{parts.path or '/'}"

    @property
    def _client(self) -> str:
        return _short_repr(self.client_auth.client_id)

    def parse_response(self, response: requests.Response) -> OAuthToken:
        """Turn the token endpoint's answer into an :class:`OAuthToken` or a typed error.

        Every malformed answer is a :class:`TokenResponseError` (or an
        :class:`OAuthProviderError` for a §5.2 error body), never a bare exception.
        """
        status = response.status_code
        raw = self._read_body(response, None)  # no-op when already read
        text = raw.decode("utf-8", errors="replace")
        secrets = tuple(self.secrets())
        retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
        try:
            data: Any = load_json(raw)
        except ValueError:  # not JSON, not UTF-8/16/32, or nested too deep
            data = None
        body_excerpt = excerpt(text, secrets) or "<empty>"
        code = data.get("error") if isinstance(data, dict) else None
        reason = self._wrong_url(response, text, data, code)
        if reason:
            shown_code = excerpt(code, secrets, 60) if isinstance(code, str) and code else None
            raise NotATokenEndpoint(
                f"token endpoint {self.where} answered HTTP {status}"
                f"{f' with error {shown_code!r}' if shown_code else ''} for client {self._client}: "
                f"{reason}; body: {body_excerpt}",
                response=response,
                retry_after=retry_after,
                error=shown_code,
            )
        if isinstance(data, dict) and "error" in data:
            code = data["error"]
            if isinstance(code, str) and code:
                self._raise_provider_error(data, code, response, retry_after, secrets)
            raise TokenResponseError(
                f"token endpoint {self.where} answered HTTP {status} with an \"error\" that is not "
                f"a non-empty string, for client {self._client}; body: {body_excerpt}",
                response=response,
                retry_after=retry_after,
            )
        if not 200 <= status < 300:
            raise TokenResponseError(
                f"token endpoint {self.where} answered HTTP {status} without an OAuth error for client "
                f"{self._client}; body: {body_excerpt}",
                response=response,
                retry_after=retry_after,
            )
        if data is None:
            raise TokenResponseError(
                f"token endpoint {self.where} answered HTTP {status} with a body that is not JSON"
                f"; body: {body_excerpt}",
                response=response,
            )
        if not isinstance(data, dict):
            raise TokenResponseError(
                f"token endpoint {self.where} answered HTTP {status} with JSON that is not an object: "
                f"{body_excerpt}",
                response=response,
            )
        from oauthlib.oauth2 import BackendApplicationClient  # loaded by prepare_body already

        try:
            token = OAuthToken.from_response(data, now=self._clock(), requested_scope=self.scope)
            # oauthlib's own checks, on a fresh client with no requested scope: its scope
            # change Warning and its status-blind error mapping cannot fire or leak.
            # It is given the fields as reqcc read them (an expires_in of "3600.5" is a number
            # to us, an int() error to oauthlib).
            checked = {k: v for k, v in data.items() if k not in ("expires_in", "expires_at")}
            if token.expires_in is not None:
                checked["expires_in"] = token.expires_in
            BackendApplicationClient(self.client_auth.client_id).parse_request_body_response(
                json.dumps(checked)
            )
        except Exception as exc:  # any failure to read the answer is the answer's fault
            message = (
                excerpt(str(exc), secrets, 120)
                if isinstance(exc, ValueError) and not isinstance(exc, UnicodeError)
                else type(exc).__name__
            )
            raise TokenResponseError(
                f"token endpoint {self.where} answered HTTP {status} with an unusable token response "
                f"({message}); body: {body_excerpt}",
                response=response,
            ) from None
        if self.scope and token.scope and set(token.scopes) != set(self.scope.split()):
            log.info(
                "token %s was granted scope %r; requested %r", token.fingerprint, token.scope, self.scope
            )
        return token

    def _raise_provider_error(
        self,
        data: Mapping[str, Any],
        code: str,
        response: requests.Response,
        retry_after: float | None,
        secrets: tuple[str, ...],
    ) -> None:
        description = data.get("error_description")
        uri = data.get("error_uri")
        shown_code = excerpt(code, secrets, 60)
        shown_description = excerpt(str(description), secrets) if description is not None else None
        shown_uri = excerpt(str(uri), secrets, 300) if uri is not None else None
        message = f"token endpoint {self.where} refused client {self._client}: {shown_code}"
        if shown_description:
            message += f" ({shown_description})"
        message += f" [HTTP {response.status_code}]"
        if code == "invalid_client":
            message += (
                f"; sent with auth method {self.client_auth.method!r}: check client_id, the "
                "credential and auth_method"
            )
            auth = self.client_auth
            if isinstance(auth, ClientSecretBasic) and auth.encoding_changes_credential():
                message += BASIC_ENCODING_HINT
        elif code == "invalid_scope":
            asked = f"'{excerpt(self.scope, secrets, 200)}'" if self.scope else "none (no scope parameter)"
            message += f"; scopes asked for: {asked}"
        raise provider_error_class(code)(
            shown_code,
            shown_description,
            shown_uri,
            response=response,
            retry_after=retry_after,
            message=message,
        )

    @staticmethod
    def _wrong_url(response: requests.Response, text: str, data: object, code: object) -> str:
        """Why the answer says ``token_url`` names no token endpoint, or ``""`` (DESIGN item 35).

        A redirect (token requests do not follow them), a 404 or 405 whatever the body, a
        401 or 403 with an error code no token endpoint sends (RFC 6750's ``invalid_token``,
        an API's own), or an HTML page that is not a server failure. Not a 401 with a
        ``Basic`` challenge: that refuses the client's credentials.
        """
        status = response.status_code
        if 300 <= status < 400:
            return f"{NOT_A_TOKEN_ENDPOINT} (token requests do not follow redirects)"
        if status in (404, 405):
            return NOT_A_TOKEN_ENDPOINT
        if status == 401 and _challenges_basic(response.headers.get("WWW-Authenticate")):
            # A Basic challenge answers the client's credentials (RFC 6749 §5.2): a token
            # endpoint, or a proxy in front of it, refusing them (Spring Boot's JSON error
            # page says "error": "Unauthorized"), not an API path.
            return ""
        if status in (401, 403) and isinstance(code, str) and code not in TOKEN_ENDPOINT_ERROR_CODES:
            return NOT_A_TOKEN_ENDPOINT
        html = "html" in response.headers.get("Content-Type", "").lower() or text.lstrip()[:1] == "<"
        if html and data is None and status < 500 and status not in RETRY_STATUSES:
            return NOT_A_TOKEN_ENDPOINT
        return ""

    def __repr__(self) -> str:
        return f"TokenEndpoint({self.token_url!r}, {self.client_auth!r})"


def _challenges_basic(value: str | None) -> bool:
    """Whether a ``WWW-Authenticate`` value holds a ``Basic`` challenge (read within bounds)."""
    return bool(value) and any(scheme == "basic" for scheme, _ in parse_www_authenticate(value or ""))


def is_transient(exc: BaseException) -> bool:
    """Return whether a token request that failed with ``exc`` may succeed if tried again."""
    if isinstance(exc, OAuthProviderError):
        if exc.error in RETRY_ERROR_CODES:
            return True
        if exc.error in CLIENT_ERROR_CODES:  # the same request fails the same way again
            return False
        return exc.status_code in RETRY_STATUSES
    if isinstance(exc, TokenRequestError):
        return exc.status_code in RETRY_STATUSES
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    return isinstance(exc, (requests.ConnectionError, requests.Timeout))


def _short_repr(value: str, limit: int = 60) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 2] + "…'"


def describe_failure(exc: BaseException) -> str:
    """A failure as named in a retry WARNING: a reqcc error's message, else the exception's type."""
    if isinstance(exc, TokenRequestError):
        return str(exc)
    return type(exc).__name__
