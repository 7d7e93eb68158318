"""The token endpoint of a manager configured with ``issuer=``: discovered on first need, once.

A manager given ``issuer=`` instead of ``token_url=`` does not know its token endpoint
when it is constructed, and nothing is fetched in a constructor. The first time it needs
the endpoint (inside its single flight, so N threads cause one metadata request) it asks
:meth:`DiscoveredEndpoint.resolve`, which reads the issuer's metadata
(:func:`reqcc.discovery.fetch_metadata`), picks the client authentication method when
none was configured (:func:`reqcc.discovery.choose_auth_method`), and builds the
:class:`~reqcc.token_endpoint.TokenEndpoint`, kept for the manager's life. A failure
raises (typed) and is tried again on the next call; the manager's failure backoff spaces
those calls out. Within one call, a metadata request that fails transiently is retried
by the manager's retry settings, as its token requests are
(:class:`~reqcc.token_endpoint.RetryPolicy`).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

import requests

from . import fork_safety
from ._log import log
from .discovery import AuthorizationServerMetadata, choose_auth_method, fetch_metadata
from .token_endpoint import DEFAULT_TIMEOUT, RetryPolicy, Timeout, TokenEndpoint

__all__ = ["DiscoveredEndpoint", "EndpointFactory", "key_credential"]

#: ``(token_url, auth_method) -> TokenEndpoint``: builds the endpoint once its URL and the
#: client authentication method's name are known.
EndpointFactory = Callable[[str, str], TokenEndpoint]


def key_credential(*, client_assertion_file: object = None, client_assertion: object = None) -> str:
    """The key material a client signs (or proves) with, as a message names it.

    ``"a client_assertion_file"`` or ``"a client_assertion callable"`` for a platform's
    assertion (RFC 7523, sent as ``private_key_jwt``), else ``"a private_key"``.
    """
    if client_assertion_file is not None:
        return "a client_assertion_file"
    if client_assertion is not None:
        return "a client_assertion callable"
    return "a private_key"


class DiscoveredEndpoint:
    """Finds and keeps the token endpoint of ``issuer``.

    :param issuer: the configured issuer (checked already), or ``None`` with ``metadata_url``
        (the document's own issuer is taken then).
    :param make_endpoint: builds the token endpoint for a URL and an ``auth_method``.
    :param auth_method: the configured method's name, or ``None`` to use one the server lists.
    :param has_client_secret: whether a client secret is configured (for the choice).
    :param has_private_key: whether a private key is configured (for the choice), or a
        platform's client assertion (sent as ``private_key_jwt`` too).
    :param key_credential: what that key material is, as a warning names it (see
        :func:`key_credential`).
    :param session: the token session, which metadata requests go through too; ``None``:
        a short-lived session of their own.
    :param timeout: (connect, read) seconds of a metadata request.
    :param clock: the wall clock (an HTTP-date ``Retry-After``).
    :param max_retries: retries of a transient metadata-request failure (connection error,
        timeout, 429, 500, 502, 503, 504), as for token requests.
    :param retry_backoff: base of the exponential wait between those retries, in seconds.
    :param max_retry_wait: the longest a single retry waits; a longer ``Retry-After`` ends
        the retries.
    :param sleep: how to wait between retries.
    :param metadata_url: the metadata document's URL (checked already), read instead of the
        issuer's well-known URLs; ``None``: those.
    """

    def __init__(
        self,
        issuer: str | None,
        make_endpoint: EndpointFactory,
        *,
        auth_method: str | None,
        has_client_secret: bool,
        has_private_key: bool,
        key_credential: str = "a private_key",
        session: requests.Session | None = None,
        timeout: Timeout | None = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        max_retry_wait: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        metadata_url: str | None = None,
    ) -> None:
        self._issuer = issuer
        self.metadata_url = metadata_url
        self.auth_method = auth_method
        self._make_endpoint = make_endpoint
        self._has_client_secret = has_client_secret
        self._has_private_key = has_private_key
        self._key_credential = key_credential
        self._session = session
        self._timeout = timeout
        self._clock = clock
        self._retries = RetryPolicy(max_retries, retry_backoff, max_retry_wait, sleep=sleep)
        self._lock = threading.Lock()
        fork_safety.register(self.after_fork)
        #: The metadata read, once discovery has succeeded.
        self.metadata: AuthorizationServerMetadata | None = None
        #: The token endpoint, once discovery has succeeded.
        self.endpoint: TokenEndpoint | None = None

    @property
    def issuer(self) -> str | None:
        """The configured issuer; with ``metadata_url`` alone, the document's once read (else ``None``)."""
        metadata = self.metadata
        return self._issuer if self._issuer is not None or metadata is None else metadata.issuer

    def resolve(
        self,
        deadline: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        retries: bool = True,
    ) -> TokenEndpoint:
        """Return the token endpoint, reading the issuer's metadata the first time.

        ``deadline`` (a ``monotonic()`` time) bounds the metadata read: the fetch's
        ``token_deadline`` covers discovery too, its retry waits included. ``retries=False``:
        a probe of a failing authorization server, one metadata request per URL, no retry.

        Concurrent first calls send one metadata request; a failure is not kept (the next
        call reads again).

        :raises ConfigurationError: the metadata names another issuer, or lists no client
            authentication method the configured credentials can use.
        :raises MetadataError: no usable metadata document.
        :raises TokenDeadlineError: ``deadline`` passed while reading it.
        :raises requests.RequestException: the network failed.
        """
        endpoint = self.endpoint
        if endpoint is not None:
            return endpoint
        with self._lock:
            if self.endpoint is None:
                self.metadata, self.endpoint = self._discover(deadline, monotonic, retries)
            return self.endpoint

    def _discover(
        self, deadline: float | None, monotonic: Callable[[], float], retries: bool = True
    ) -> tuple[AuthorizationServerMetadata, TokenEndpoint]:
        policy = self._retries if retries else dataclasses.replace(self._retries, max_retries=0)

        def fetch(session: requests.Session) -> AuthorizationServerMetadata:
            return fetch_metadata(
                self._issuer, session, metadata_url=self.metadata_url, timeout=self._timeout,
                clock=self._clock, deadline=deadline, monotonic=monotonic, retries=policy,
            )

        if self._session is not None:
            metadata = fetch(self._session)
        else:
            with requests.Session() as session:
                metadata = fetch(session)
        name = self.auth_method
        if name is None:
            name = choose_auth_method(
                metadata,
                has_client_secret=self._has_client_secret,
                has_private_key=self._has_private_key,
                key_credential=self._key_credential,
            )
        elif name not in metadata.auth_methods:
            log.warning(
                "the token endpoint of %s does not list auth_method %r (it lists: %s); using it anyway",
                metadata.issuer, name, ", ".join(metadata.auth_methods) or "nothing",
            )
        endpoint = self._make_endpoint(metadata.token_endpoint_for(name), name)
        log.info("issuer %s: token endpoint %s, auth method %s", metadata.issuer, endpoint.token_url, name)
        return metadata, endpoint

    def after_fork(self) -> None:
        """Make this safe in a forked child.

        A new lock (the parent's may be held there), and the metadata retries' jitter
        reseeded (no backoff in lockstep with the parent and its other children). Run in
        the child by :mod:`reqcc.fork_safety`, right after the fork; the discovered token
        endpoint has a reset of its own.
        """
        self._lock = threading.Lock()
        self._retries.rng.seed()

    def __repr__(self) -> str:
        found = self.endpoint.token_url if self.endpoint is not None else None
        where = "" if self.metadata_url is None else f", metadata_url={self.metadata_url!r}"
        return f"DiscoveredEndpoint({self.issuer!r}{where}, token_url={found!r})"
