"""One client's token endpoint: its token requests, retried, with their hooks and telemetry.

Each request is built and its answer parsed by the pure functions of
:mod:`reqcc.token_messages` (oauthlib's ``BackendApplicationClient`` prepares the form body
and checks the answer, a fresh client per request, so no state carries over between
fetches) and sent through :func:`reqcc.to_server.send`, the one send path to the
authorization server. The request is sent this way rather than through requests-oauthlib's
``OAuth2Session.fetch_token``, which logs the Basic credentials, a posted secret and the
issued token at DEBUG level and mutates the session's state mid-fetch. A user who needs
requests-oauthlib's compliance hooks for a non-standard server passes an ``OAuth2Session``
as ``token_session``: its ``access_token_request`` and ``access_token_response`` hooks are
applied here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests

from . import fork_safety
from ._log import log
from .client_auth import ClientAuth, ClientSecretBasic
from .dpop import DPOP_HEADER, DPOP_NONCE_HEADER, DPoPProver, is_valid_nonce, token_endpoint_demands_nonce
from .errors import (
    ConfigurationError,
    OAuthProviderError,
    TokenAnswerCutOff,
    TokenDeadlineError,
    TokenRequestError,
    TokenResponseError,
)
from .oauth_token import OAuthToken
from .telemetry import Telemetry
from .to_server import (
    DEFAULT_TIMEOUT as DEFAULT_TIMEOUT,  # defined there: the manager needs it, not this module
)
from .to_server import MAX_ANSWER_BYTES, read_answer, send
from .to_server import Timeout as Timeout  # re-exported: the type of every timeout keyword
from .token_messages import (
    RETRY_STATUSES,
    AnswerContext,
    TokenRequest,
    build_token_request,
    parse_token_answer,
    with_dpop_proof,
)

__all__ = [
    "TokenEndpoint", "RetryPolicy", "DEFAULT_TIMEOUT", "MAX_RESPONSE_BYTES", "RETRY_STATUSES",
    "RETRY_ERROR_CODES", "CLIENT_ERROR_CODES",
]

#: The largest token response read (after decoding): 1 MiB, as Go's x/oauth2.
MAX_RESPONSE_BYTES = MAX_ANSWER_BYTES
#: §5.2 error codes that are retried.
RETRY_ERROR_CODES = frozenset({"temporarily_unavailable", "server_error"})
#: §5.2 error codes that are never retried, whatever the HTTP status they come with.
CLIENT_ERROR_CODES = frozenset({
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
    "unsupported_grant_type", "invalid_scope",
})

_RESERVED_FIELDS = frozenset(
    {"grant_type", "scope", "client_id", "client_secret", "client_assertion", "client_assertion_type"}
)

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
            request, no retry (contract item 27).
        :raises OAuthProviderError: the server answered with a §5.2 error body.
        :raises TokenResponseError: the answer is not a usable token response.
        :raises TokenAnswerCutOff: the answer was cut off mid-body in the last attempt (a
            cut answer is retried like a reset); also requests' ``ChunkedEncodingError``.
        :raises TokenDeadlineError: the deadline passed.
        :raises requests.RequestException: the network failed (after the retries).
        """
        extra = check_form_fields(extra_params or {}, "fetch_token()") if extra_params else {}
        self.client_auth.check_ready(self.token_url)  # a missing client assertion sends nothing
        policy = self.retry_policy()
        if not retries:
            policy.max_retries = 0
        try:
            return policy.call(
                lambda: self._request_once(extra, deadline),
                what=f"token request to {self.token_url}",
                deadline=deadline,
                monotonic=self._monotonic,
                check_deadline=lambda cause: self._check_deadline(deadline, cause),
            )
        except requests.exceptions.ChunkedEncodingError as exc:
            raise self._cut_off(exc) from exc

    def _cut_off(self, exc: requests.exceptions.ChunkedEncodingError) -> TokenAnswerCutOff:
        """The error for an answer cut off mid-body in the last attempt (no part of it is parsed).

        The connection was reset or closed before the body's end, or a compressed body
        ended before its stream did. Its message names neither the body nor what urllib3
        read of it: a prefix of a token answer holds the token.
        """
        response = exc.response
        status = f"HTTP {response.status_code}, " if response is not None else ""
        return TokenAnswerCutOff(
            f"token endpoint {self.where} cut its answer off before the end ({status}the "
            f"connection reset, closed early or a compressed body truncated) for client "
            f"{self._client}; nothing of it was used",
            response=response,
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
            # Not past the deadline: no HTTP request (nor telemetry span) is started after it.
            self._check_deadline(deadline, exc)
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
        request = build_token_request(
            self.token_url,
            self.client_auth.prepare(self.token_url),  # fresh credentials each time
            client_id=self.client_auth.client_id,
            scope=self.scope,
            fields={**self.token_params, **extra},
        )
        hooks = getattr(self.session, "compliance_hook", None)
        if hooks:
            for hook in hooks.get("access_token_request", ()):
                request = TokenRequest(*hook(request.url, dict(request.headers), request.body))
        dpop = self.dpop
        if dpop is not None:
            request = with_dpop_proof(request, dpop.token_proof(request.url, nonce))
        log.debug("requesting a token from %s (auth method %s)", request.url, self.client_auth.method)
        refusals = _Refusals(self)
        try:
            answer = send(
                self.session,
                "POST",
                request.url,
                data=request.body.encode("utf-8"),
                headers=request.plain_headers,
                auth_headers=request.auth_headers,
                credentials="the token request (client credentials)",
                refusals=refusals,
                timeout=self.timeout,
                deadline=deadline,
                monotonic=self._monotonic,
                # On every answer, success too (RFC 9449 §8.2), before its body is read.
                on_headers=(
                    None if dpop is None else lambda r: dpop.update_token_nonce(request.url, r.headers)
                ),
            )
        except requests.RequestException as exc:  # a network failure: it carries the request too
            _scrub(exc)
            raise
        response = answer.response
        # Every error raised from here on carries the response, and through it the request:
        # error reporters print both. Hand them a copy without the client's credentials.
        if isinstance(response.request, requests.PreparedRequest):
            response.request = _without_credentials(response.request)
        status, headers, body = answer.status, answer.headers, answer.body
        if hooks:
            for hook in hooks.get("access_token_response", ()):
                response = hook(response)
            # What a hook returns is read capped too (a body already read: checked as it is).
            body = read_answer(response, request.url, refusals)
            status, headers = response.status_code, response.headers
        token = parse_token_answer(
            status, headers, body, self.answer_context(), now=self._clock(), response=response
        )
        if self.scope and token.scope and set(token.scopes) != set(self.scope.split()):
            log.info(
                "token %s was granted scope %r; requested %r", token.fingerprint, token.scope, self.scope
            )
        return token

    def answer_context(self) -> AnswerContext:
        """What parsing this endpoint's answers needs: names for messages, secrets, the token type."""
        auth = self.client_auth
        return AnswerContext(
            where=self.where,
            client_id=auth.client_id,
            auth_method=auth.method,
            scope=self.scope,
            token_type="Bearer" if self.dpop is None else "DPoP",
            secrets=tuple(self.secrets()),
            basic_encoding_changed=isinstance(auth, ClientSecretBasic) and auth.encoding_changes_credential(),
        )

    @property
    def where(self) -> str:
        """The token endpoint as shown in messages: host and path, without the query."""
        parts = urlsplit(self.token_url)
        return f"{parts.netloc.rpartition('@')[2]}{parts.path or '/'}"

    @property
    def _client(self) -> str:
        return _short_repr(self.client_auth.client_id)

    def __repr__(self) -> str:
        return f"TokenEndpoint({self.token_url!r}, {self.client_auth!r})"


#: Form fields of a token request that hold the client's credentials.
_CREDENTIAL_FIELDS = frozenset({"client_secret", "client_assertion"})
#: What stands in for a credential in :func:`_without_credentials`.
_REDACTED = "<redacted>"


def _without_credentials(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Return a copy of a token request fit to travel with an error: its credentials redacted.

    Errors of the token request carry it (``exc.request``, ``exc.response.request``), and
    error reporters print its headers and body. The copy's ``Authorization`` (the Basic
    credential) and ``DPoP`` headers and its ``client_secret`` and ``client_assertion`` form
    fields read :data:`_REDACTED`; everything else is as sent (contract items 13 and 31).
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


def _scrub(exc: requests.RequestException) -> None:
    """Make a failed token request's exception carry copies without the client's credentials."""
    if isinstance(exc.request, requests.PreparedRequest):
        exc.request = _without_credentials(exc.request)
    if exc.response is not None and isinstance(exc.response.request, requests.PreparedRequest):
        exc.response.request = _without_credentials(exc.response.request)


class _Refusals:
    """A token endpoint's errors for :func:`reqcc.to_server.send`: the deadline, the size cap."""

    def __init__(self, endpoint: TokenEndpoint) -> None:
        self._endpoint = endpoint

    def expired(self, url: str, response: requests.Response | None, received: int | None) -> Exception:
        """The deadline error: no time left to send, or the answer still arriving."""
        where, client = self._endpoint.where, _short_repr(self._endpoint.client_auth.client_id)
        if response is None:
            return TokenDeadlineError(
                f"token endpoint {where} did not issue a token for client {client} within the token deadline"
            )
        return TokenDeadlineError(
            f"token endpoint {where} was still sending its answer (HTTP {response.status_code}, "
            f"{received} bytes so far) for client {client} at the token deadline; the rest was not read",
            response=response,
        )

    def too_large(self, url: str, response: requests.Response) -> Exception:
        """The error for an answer larger than :data:`MAX_RESPONSE_BYTES`."""
        return TokenResponseError(
            f"token endpoint {self._endpoint.where} answered HTTP {response.status_code} with a body "
            f"larger than {MAX_RESPONSE_BYTES} bytes (after decoding) for client "
            f"{_short_repr(self._endpoint.client_auth.client_id)}; the rest was not read",
            response=response,
        )


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
    # ChunkedEncodingError: the answer was cut off mid-body (a reset, an early close, a
    # truncated gzip stream), a network failure like a reset before the answer.
    return isinstance(
        exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    )


def _short_repr(value: str, limit: int = 60) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 2] + "…'"


def describe_failure(exc: BaseException) -> str:
    """A failure as named in a retry WARNING: a reqcc error's message, else the exception's type."""
    if isinstance(exc, TokenRequestError):
        return str(exc)
    return type(exc).__name__
