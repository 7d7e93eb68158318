"""The token manager: the life of one client's token.

:class:`ClientCredentialsManager` hands out the token in use while it is usable (the fast
path: no lock), gets a new one when it is not, adopts it, and retires it when the
resource server rejects it. It is the head of a chain of token sources, in the shape of
Go's ``golang.org/x/oauth2``: a reusing source (:mod:`reqcc.reusing`: the token held, one
flight, renewal, the failure backoff, fork safety) in front of a store source
(:mod:`reqcc.store_source`, with ``token_store=``) in front of a provider or endpoint
source (:mod:`reqcc.token_source`). This module checks the keywords (:mod:`reqcc.config`),
builds that chain and adds the public API. It knows nothing of transport adapters.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import requests

from ._keywords import passes_keywords
from ._log import log
from .client_assertion import AssertionCallable
from .client_auth import ClientAuth
from .config import (
    DEFAULT_PROBE_INTERVAL,
    DEFAULT_REFRESH_AHEAD,
    DEFAULT_TOKEN_DEADLINE,
    ManagerKeywords,
    TokenProvider,
    TokenUpdateCallback,
    check_config,
)
from .cooldown import RejectionCooldown
from .dpop import DPoPKey, DPoPProver
from .errors import ConfigurationError
from .oauth_token import DEFAULT_CLOCK_SKEW, OAuthToken
from .provider import coerce_token
from .reusing import ReusingSource
from .scopes import OAuthScope
from .to_server import DEFAULT_TIMEOUT
from .token_source import EndpointSource, ProviderSource, TokenSource

if TYPE_CHECKING:  # optional dependency: types only
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from .discovery import AuthorizationServerMetadata  # imported with issuer= only
    from .store_source import StoreSource  # imported with token_store= only
    from .stores.base import TokenStore
    from .telemetry import Telemetry
    from .to_server import Timeout
    from .token_endpoint import TokenEndpoint  # imported by check_config, at the first manager

__all__ = ["ClientCredentialsManager", "TokenProvider", "TokenUpdateCallback"]

# Importable from here as they were before the configuration checks, the single flight
# and the manager's other jobs moved to modules of their own.
from .config import normalize_scopes as normalize_scopes
from .errors import TokenProviderError as TokenProviderError
from .provider import call_provider as call_provider
from .single_flight import MAX_INTERRUPTED as MAX_INTERRUPTED
from .single_flight import LeaderInterrupted as LeaderInterrupted
from .single_flight import SingleFlight as SingleFlight


def __getattr__(name: str) -> Any:
    """Serve ``TokenEndpoint``, importable from here as before, from :mod:`reqcc.token_endpoint`.

    That module (and the token request's others under it) loads with the first manager.
    """
    if name == "TokenEndpoint":
        from .token_endpoint import TokenEndpoint

        return TokenEndpoint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ClientCredentialsManager(ReusingSource):
    """Obtains, caches and renews client-credentials tokens for one client.

    Thread-safe: one manager serves any number of threads and sessions. It is the
    reusing source (:mod:`reqcc.reusing`) at the head of its chain of token sources.

    :param token_url: the token endpoint (https, or http to a loopback host). Give it or
        ``issuer``, not both.
    :param issuer: the authorization server's issuer identifier (https, or http to a
        loopback host), instead of ``token_url``: on first need (never in the constructor)
        the manager reads its metadata (``{issuer}/.well-known/openid-configuration``, else
        the RFC 8414 ``/.well-known/oauth-authorization-server{path}``), requires the
        document's ``issuer`` to equal this one exactly, and uses its ``token_endpoint``
        (its ``mtls_endpoint_aliases`` one for the mutual-TLS methods) for the manager's
        life. A failure raises a :class:`~reqcc.discovery.MetadataError` (or a
        :class:`~reqcc.ConfigurationError` for another issuer) and is retried after the
        failure backoff, like a token failure. See :doc:`/discovery`.
    :param metadata_url: the metadata document's URL, read instead of the issuer's
        well-known URLs (for a server that publishes it elsewhere); implies discovery, so
        not with ``token_url``. With ``issuer`` too, the document's ``issuer`` must equal
        it; alone, the document's own ``issuer`` is taken, checked like a configured one
        (https, or http to a loopback host). Either way a plain-http ``token_endpoint`` is
        accepted only when the issuer and ``metadata_url`` are plain http on loopback too.
    :param client_id: the client identifier; required.
    :param client_secret: the client secret (for the ``client_secret_*`` methods).
    :param scopes: :class:`~reqcc.OAuthScope` members or plain strings, sent space-joined.
    :param token: a token to start with (:class:`~reqcc.OAuthToken` or a dict).
    :param clock_skew: seconds subtracted from the expiry when judging validity (default 30),
        capped at half the token's lifetime.
    :param token_provider: ``(last_token, manager) -> OAuthToken``; replaces the built-in fetch.
        Called only when there is no usable token; it may call :meth:`fetch_token`.
    :param on_token_update: ``(token) -> None``, called once per new token obtained by a fetch
        or by the provider (not for tokens given by hand).
    :param auth_method: ``"client_secret_basic"``, ``"client_secret_post"``,
        ``"client_secret_jwt"``, ``"private_key_jwt"``, ``"tls_client_auth"``,
        ``"self_signed_tls_client_auth"``, ``"none"``, or a
        :class:`~reqcc.ClientAuth` instance. The mutual-TLS methods need a
        ``token_session`` that presents the client certificate. When not given:
        with ``token_url``, ``"client_secret_basic"``; with ``issuer``, ``"private_key_jwt"``
        if a ``private_key`` is given, else the first of ``client_secret_basic``,
        ``client_secret_post`` and ``client_secret_jwt`` that the server lists.
    :param basic_auth_encoding: ``"form"`` (RFC 6749 §2.3.1, default) or ``"raw"``.
    :param private_key: for ``private_key_jwt``: PEM str, PEM bytes or a JWK dict.
    :param assertion_algorithm: the JWS ``alg`` of a JWT assertion (default ``RS256`` for
        ``private_key_jwt``, ``HS256`` for ``client_secret_jwt``).
    :param assertion_audience: the ``aud`` of a JWT assertion (default: the token endpoint,
        the discovered one with ``issuer``).
    :param client_assertion_file: a JWT file the platform writes and rotates (a Kubernetes
        projected service-account token, Entra workload identity's
        ``AZURE_FEDERATED_TOKEN_FILE``, a SPIFFE JWT-SVID): the client authenticates with it
        as an RFC 7523 assertion it did not sign (``auth_method`` ``"private_key_jwt"``,
        implied). The file is read again when it changes and never sent past its ``exp``; a
        missing, empty or expired one is a :class:`~reqcc.ClientAssertionError` naming it,
        and no token request is sent. No ``client_secret`` or ``private_key`` with it. See
        :doc:`/workload-identity`.
    :param client_assertion: instead of a file, ``(audience) -> str`` returning the
        platform's JWT; called once per token request with the token endpoint URL (the
        discovered one with ``issuer``). Its qualified name, never its value, goes into
        the token-store key.
    :param token_params: extra form fields sent with every token request (``audience``, …).
    :param timeout: token request timeout, seconds or (connect, read); default (5, 15).
    :param token_session: the ``requests.Session`` token requests go through (proxies, CA
        bundle, client certificate); an ``OAuth2Session`` has its compliance hooks applied.
    :param refresh_ahead: fraction of the lifetime before expiry in which a valid token is
        renewed in the background (default 0.2; 0 disables).
    :param max_retries: retries of a transient token-endpoint failure (default 2).
    :param retry_backoff: base seconds of the exponential wait between those retries.
    :param max_retry_wait: the longest one retry waits (a longer ``Retry-After`` ends retrying).
    :param failure_backoff: while a usable token is held (a renewal ahead of expiry
        failed), seconds before the first new attempt after a failed fetch (default 1);
        doubles per consecutive failure, jittered, up to ``max_failure_backoff``.
    :param max_failure_backoff: the longest that wait grows to, in seconds (default 60);
        a ``Retry-After`` longer than this is waited this long.
    :param probe_interval: while no usable token is held and the token endpoint is failing,
        seconds between two probes of it (default 1, jittered by ±20 %): one probe at a time
        for all threads, each a single HTTP request, and callers in between get the last
        error at once. So an outage costs the endpoint about one request an interval, and
        its return is seen within about one (contract item 27). Meanwhile a held token is used
        up to its real expiry, the ``clock_skew`` margin included (item 28).
    :param token_deadline: seconds one token fetch may take, all of it (default 30): every
        attempt, every retry wait and every byte of the answer, and every thread waiting for
        it. A token endpoint that never answers or drips its answer, or a ``token_provider``
        that never returns, ends in a :class:`~reqcc.TokenDeadlineError` for every waiting
        caller by then (a provider's own thread cannot be interrupted: the others stop
        waiting for it, and the next caller starts a new fetch). ``timeout`` stays the
        per-attempt (connect, read) pair.
    :param clock: wall clock in Unix seconds (default ``time.time``), for absolute expiries.
    :param monotonic: monotonic clock (default ``time.monotonic``), for in-process validity.
    :param sleep: how to wait between retries (default ``time.sleep``).
    :param token_store: a :class:`~reqcc.stores.TokenStore` (``FileTokenStore``,
        ``RedisTokenStore``) shared with other processes: a token is read from it before
        one is fetched or asked of the provider, and what this process obtains is written
        to it, so the fleet fetches (and renews ahead) once. ``on_token_update`` fires only
        in the process that obtained the token, not for tokens read from the store. Its
        key includes the token endpoint, so with ``issuer`` discovery comes first.
    :param dpop: ``True`` to ask for DPoP-bound tokens (RFC 9449) with a new EC P-256 key
        (ES256) made for this manager. Default: DPoP exactly when ``dpop_key`` is given.
        Needs ``pip install 'reqcc[dpop]'``.
    :param dpop_key: the DPoP private key: PEM (``str``/``bytes``), a private JWK dict (EC,
        RSA or OKP) or a :class:`~reqcc.DPoPKey`; implies ``dpop=True``. Every token
        request and every API request then carries a fresh proof signed by it, and only
        ``DPoP`` tokens are accepted. The key is never stored, logged or shown; the
        token-store key includes its thumbprint.
    :param meter_provider: the OpenTelemetry ``MeterProvider`` of reqcc's metrics
        (default: the global one). Used only with ``opentelemetry-api`` installed.
    :param tracer_provider: the OpenTelemetry ``TracerProvider`` of reqcc's spans
        (default: the global one). See :doc:`/telemetry`.
    """

    @passes_keywords()
    def __init__(
        self,
        *,
        token_url: str | None = None,
        issuer: str | None = None,
        metadata_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        scopes: Iterable[OAuthScope | str] | str | None = None,
        token: OAuthToken | Mapping[str, Any] | None = None,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        token_provider: TokenProvider | None = None,
        on_token_update: TokenUpdateCallback | None = None,
        auth_method: str | ClientAuth | None = None,
        basic_auth_encoding: str = "form",
        private_key: str | bytes | Mapping[str, Any] | None = None,
        assertion_algorithm: str | None = None,
        assertion_audience: str | Sequence[str] | None = None,
        client_assertion_file: str | os.PathLike[str] | None = None,
        client_assertion: AssertionCallable | None = None,
        token_params: Mapping[str, str] | None = None,
        timeout: Timeout | None = DEFAULT_TIMEOUT,
        token_session: requests.Session | None = None,
        refresh_ahead: float = DEFAULT_REFRESH_AHEAD,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        max_retry_wait: float = 10.0,
        failure_backoff: float = 1.0,
        max_failure_backoff: float = 60.0,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        token_deadline: float = DEFAULT_TOKEN_DEADLINE,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        token_store: TokenStore | None = None,
        dpop: bool | None = None,
        dpop_key: str | bytes | Mapping[str, Any] | DPoPKey | None = None,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        # The keywords as bound to this signature, defaults applied, go to reqcc.config as one
        # mapping: read first, and by the names ManagerKeywords mirrors from the signature,
        # so nothing but the keywords is taken (test_structure keeps the two equal).
        config = check_config(
            **{name: value for name, value in locals().items() if name in ManagerKeywords.__annotations__}
        )
        # At most 30 instance attributes, all told (the reusing source's too): CPython keeps
        # an instance's attributes inline only up to 30 keys, and past that get_token's read of
        # self._current becomes a dict look-up (tests/test_reusing.py checks it). So the
        # manager keeps the checked configuration whole, not copied field by field.
        self._config = config
        keywords = config.keywords
        self.token_provider = keywords["token_provider"]
        self._rejection_cooldown = RejectionCooldown(keywords["monotonic"])
        # The chain of token sources (x/oauth2's shape): this reusing source -> the token
        # store, if any -> the token_provider | the token endpoint (discovered or given).
        self._endpoints = EndpointSource(
            config.endpoint,
            config.discovery,
            monotonic=keywords["monotonic"],
            known_tokens=self._known_tokens,
        )
        inner: ProviderSource | EndpointSource = self._endpoints
        if keywords["token_provider"] is not None:
            inner = ProviderSource(
                keywords["token_provider"],
                self,
                last=lambda: self._last_token,
                retired=lambda: self._retired,
                clock_skew=lambda: self.clock_skew,
                clock=keywords["clock"],
                dpop=config.dpop is not None,
            )
        source: TokenSource = inner
        #: The store source with ``token_store=``, else ``None``.
        self._store: StoreSource | None = None
        if keywords["token_store"] is not None:
            from .store_source import StoreSource  # the store machinery loads with token_store= only

            source = self._store = StoreSource(
                inner,
                self._endpoints,
                keywords["token_store"],
                config.shared,
                scopes=config.scopes,
                acceptable=self._replaces_held,
                probe_delay=self._probe_delay,
                dpop=config.dpop is not None,
                held=lambda: self.token,
                monotonic=keywords["monotonic"],
                sleep=keywords["sleep"],
                clock=keywords["clock"],
            )
        super().__init__(
            source,
            clock_skew=keywords["clock_skew"],
            refresh_ahead=keywords["refresh_ahead"],
            renews_ahead=keywords["token_provider"] is None,
            token_deadline=keywords["token_deadline"],
            failure_backoff=keywords["failure_backoff"],
            max_failure_backoff=keywords["max_failure_backoff"],
            probe_interval=keywords["probe_interval"],
            clock=keywords["clock"],
            monotonic=keywords["monotonic"],
            on_token_update=keywords["on_token_update"],
            waited=config.telemetry.waited,
            peek=self._store.peek if self._store is not None else None,
            waiting_for=inner.where,
        )
        if token is not None:
            self.token = coerce_token(token, "token", ConfigurationError, self._clock)

    # -- configuration, read-only -------------------------------------------------------

    @property
    def failure_backoff(self) -> float:
        """Seconds before the first new attempt after a failed renewal (the ``failure_backoff`` keyword)."""
        return self._backoff.base

    @property
    def max_failure_backoff(self) -> float:
        """The longest wait after failed fetches, in seconds (the ``max_failure_backoff`` keyword)."""
        return self._backoff.maximum

    @property
    def probe_interval(self) -> float:
        """Seconds between two probes of a failing token endpoint (the ``probe_interval`` keyword)."""
        return self._backoff.probe_interval

    @property
    def token_store(self) -> TokenStore | None:
        """The token store shared with other processes (the ``token_store`` keyword), or ``None``."""
        return self._store.store if self._store is not None else None

    @property
    def _endpoint(self) -> TokenEndpoint | None:
        """The token endpoint; ``None`` with ``issuer`` until it is discovered."""
        return self._endpoints.endpoint

    @property
    def token_url(self) -> str | None:
        """The token endpoint: ``token_url``, or with ``issuer``/``metadata_url`` the discovered one.

        ``None`` while an ``issuer``'s metadata has not been read yet (it is read on the
        first token request, or by :meth:`discover`).
        """
        endpoint = self._endpoint
        return endpoint.token_url if endpoint is not None else None

    @property
    def issuer(self) -> str | None:
        """The configured issuer, or ``None`` when the manager was given ``token_url``.

        With ``metadata_url`` and no ``issuer``: the issuer the document names, once read.
        """
        discovery = self._config.discovery
        return discovery.issuer if discovery is not None else None

    @property
    def metadata(self) -> AuthorizationServerMetadata | None:
        """The issuer's metadata once read (``None`` before, and without ``issuer``/``metadata_url``)."""
        discovery = self._config.discovery
        return discovery.metadata if discovery is not None else None

    @property
    def client_id(self) -> str:
        """The client identifier."""
        return self._config.client_id

    @property
    def auth_method(self) -> str | None:
        """The client authentication method's name.

        ``None`` only with ``issuer`` and no ``auth_method`` before discovery (the method
        is then one the server lists).
        """
        endpoint = self._endpoint
        if endpoint is not None:
            return endpoint.client_auth.method
        discovery = self._config.discovery
        assert discovery is not None
        return discovery.auth_method

    @property
    def scopes(self) -> tuple[str, ...]:
        """The requested scopes' wire values."""
        return self._config.scopes

    @property
    def monotonic(self) -> Callable[[], float]:
        """The monotonic clock this manager reads (its ``monotonic`` keyword)."""
        return self._monotonic

    @property
    def _telemetry(self) -> Telemetry:
        """This manager's metrics and spans (built from ``meter_provider`` and ``tracer_provider``)."""
        return self._config.telemetry

    @property
    def rejection_cooldown(self) -> RejectionCooldown:
        """The endpoints whose 401s are not the token's fault, for now (contract item 19).

        An endpoint that refused a freshly fetched token too is remembered here for a
        minute, and its 401s retire no token meanwhile. One per manager: every adapter and
        session sharing this manager shares it, so such an endpoint costs two token
        requests in all.
        """
        return self._rejection_cooldown

    @property
    def token_params(self) -> dict[str, str]:
        """The extra form fields sent with every token request (a copy)."""
        return dict(self._config.token_params)

    def discover(self) -> str:
        """Read the issuer's metadata now, if not done yet, and return the token endpoint.

        Not needed (the first token request discovers), but useful to check a
        configuration at start-up. Without ``issuer`` or ``metadata_url`` it returns
        ``token_url``. It does
        not go through the failure backoff.

        :raises ConfigurationError: the metadata names another issuer.
        :raises InsecureTransportError: it names a plain-http token endpoint that only a
            plain-http loopback issuer may name.
        :raises MetadataError: no usable metadata.
        :raises TokenDeadlineError: the metadata was not read within ``token_deadline``.
        :raises requests.RequestException: the network failed.
        """
        return self._endpoints.resolve(self._monotonic() + self.token_deadline).token_url

    @property
    def dpop(self) -> DPoPProver | None:
        """The DPoP key and server nonces of this manager, or ``None`` when it asks for Bearer tokens."""
        return self._config.dpop

    @property
    def dpop_thumbprint(self) -> str | None:
        """The RFC 7638 thumbprint of the DPoP key (the ``jkt`` tokens are bound to), or ``None``."""
        dpop = self._config.dpop
        return dpop.thumbprint if dpop is not None else None

    def authorize(self, request: requests.PreparedRequest, token: OAuthToken) -> None:
        """Make ``request`` (a copy the caller owns, about to be sent) present ``token``.

        A Bearer token is set as ``Authorization: Bearer …``; a DPoP token as
        ``Authorization: DPoP …`` with a fresh ``DPoP`` proof for the request's method and
        URL, carrying ``ath`` and the origin's latest nonce.

        :raises ConfigurationError: a DPoP token, but this manager has no DPoP key.
        """
        if token.token_type != "DPoP":
            request.headers["Authorization"] = f"Bearer {token.access_token}"
            return
        dpop = self._config.dpop
        if dpop is None:
            raise ConfigurationError(
                f"token {token.fingerprint} is a DPoP token, but this manager has no DPoP key "
                "(pass dpop=True or dpop_key=)"
            )
        dpop.authorize(request.headers, request.method or "GET", request.url or "", token.access_token)

    # -- the token ---------------------------------------------------------------------

    @property
    def token(self) -> OAuthToken | None:
        """The token in use, or ``None`` (none yet, or the last one was retired).

        Set it to an :class:`OAuthToken` or a dict to use that token (``on_token_update``
        is not called for it), or to ``None`` to drop the current one.
        """
        current = self._current
        return current.token if current is not None else None

    @token.setter
    def token(self, value: OAuthToken | Mapping[str, Any] | None) -> None:
        if value is None:
            self._drop()
            return
        self._adopt(coerce_token(value, "token", ConfigurationError, self._clock), notify=False)

    def fetch_token(self, **extra_params: str) -> OAuthToken:
        """Request a new token from the token endpoint now, adopt it and return it.

        ``extra_params`` are added to this request's form (after ``token_params``).
        Meant for ``token_provider`` callbacks and for forcing a renewal; it neither waits
        for nor joins another fetch in progress.
        """
        deadline = self._monotonic() + self.token_deadline
        token = self._endpoints.resolve(deadline).request_token(extra_params, deadline=deadline)
        self._adopt(token, notify=True)
        return token

    def is_expired(self, token: OAuthToken) -> bool:
        """Return whether ``token`` is expired (expiry minus the capped skew has passed).

        The current token is judged on the monotonic deadline derived when it was
        adopted, so a wall-clock jump neither expires it nor keeps it alive.

        Always with the ``clock_skew`` margin (contract item 2), also while the token
        endpoint fails: the manager then still hands out the token it holds up to its real
        expiry (item 28), so that token may be "expired" here and in use. Its real expiry is
        ``token.is_expired(0)``.
        """
        current = self._current
        if current is not None and token is current.token:
            return not current.usable(self._monotonic())
        return token.is_expired(self.clock_skew, self._clock())

    def is_valid(self, token: OAuthToken | None) -> bool:
        """Return whether ``token`` can be used now: not expired and not retired by a 401.

        Judged with the ``clock_skew`` margin as :meth:`is_expired`, whether or not the token
        endpoint is failing: this is the check a ``token_provider`` makes before returning
        a stored token, and the provider's answer is checked with the margin too (contract
        item 4). While the endpoint fails the manager also hands out the token it holds in
        that margin (item 28); this does not say so.
        """
        return (
            isinstance(token, OAuthToken)
            and token.access_token != self._retired
            and not self.is_expired(token)
        )

    def invalidate(self, token: OAuthToken) -> bool:
        """Retire ``token`` (the resource server rejected it) if it is still the current one.

        Returns whether it was current. Concurrent calls for the same token retire it
        once, so they cause a single new fetch.
        """
        if not self._retire(token):
            return False
        log.info("token %s retired after the resource server rejected it", token.fingerprint)
        self._telemetry.rejection()
        return True

    def close(self) -> None:
        """Release the token session if the manager created it."""
        if self._endpoint is not None:
            self._endpoint.close()

    def __repr__(self) -> str:
        token = self.token
        where = f"token_url={self.token_url!r}"
        discovery, dpop = self._config.discovery, self._config.dpop
        if discovery is not None:
            where = f"issuer={discovery.issuer!r}, {where}"
            if discovery.metadata_url is not None:
                where = f"metadata_url={discovery.metadata_url!r}, {where}"
        return (
            f"ClientCredentialsManager({where}, client_id={self.client_id!r}, "
            f"auth_method={self.auth_method!r}, scopes={self._config.scopes!r}, "
            f"token={token.fingerprint if token is not None else None!r}"
            + (f", dpop_thumbprint={dpop.thumbprint!r})" if dpop is not None else ")")
        )
