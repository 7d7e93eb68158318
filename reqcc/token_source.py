"""Token sources: where a new token comes from, each behind the one method of :class:`TokenSource`.

The shape of Go's ``golang.org/x/oauth2``: a chain of small objects, each wrapping the
next. A manager's chain is

    reusing source (the manager: the token held, one flight, renewal; :mod:`reqcc.reusing`)
    -> store source (a ``token_store`` shared by many processes; :mod:`reqcc.store_source`)
    -> provider source (a ``token_provider``) | endpoint source (the token endpoint)

with the store source only when a store is given. This module holds the protocol and the
two sources at the end of the chain: :class:`EndpointSource` asks the token endpoint (with
``issuer=``, discovered the first time it is needed, within the fetch's deadline, never in
a constructor), :class:`ProviderSource` asks the ``token_provider`` and checks its answer
(:mod:`reqcc.provider`). When to ask a source, and what to do with its token, is the
reusing source's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from .oauth_token import OAuthToken
from .provider import call_provider

if TYPE_CHECKING:
    from .config import TokenProvider
    from .discovered import DiscoveredEndpoint  # imported on first use of issuer= (config)
    from .token_endpoint import TokenEndpoint  # imported by config, at the first manager

__all__ = ["EndpointSource", "Obtained", "ProviderSource", "TokenSource"]


class Obtained(NamedTuple):
    """A source's answer: the token, and whether this process obtained it.

    ``fresh`` is ``False`` for a token read from a token store (another process obtained
    it): ``on_token_update`` fires only for fresh ones (contract item 5).
    """

    token: OAuthToken
    fresh: bool


class TokenSource(Protocol):
    """Anything that hands out a new token: x/oauth2's ``TokenSource``, with a deadline."""

    def token(self, deadline: float | None, *, retries: bool = True) -> Obtained:
        """Obtain a token by ``deadline`` (``monotonic``; ``None``: no bound).

        ``retries=False`` makes it a probe of a token endpoint known to be failing: one
        HTTP token request, not retried (contract item 27).

        :raises ReqccError: no token (a ``requests`` exception for a network failure).
        """
        ...


class EndpointSource:
    """The token endpoint as a source; with ``issuer=``, discovered on first need.

    :param endpoint: the token endpoint, or ``None`` until ``discovery`` finds it.
    :param discovery: with ``issuer``/``metadata_url``: how the endpoint is discovered.
    :param monotonic: the manager's monotonic clock (discovery's deadline).
    :param known_tokens: the access tokens the manager holds, which the endpoint redacts
        from what a failing server echoes (contract item 13).
    """

    def __init__(
        self,
        endpoint: TokenEndpoint | None,
        discovery: DiscoveredEndpoint | None,
        *,
        monotonic: Callable[[], float],
        known_tokens: Callable[[], Iterable[str]],
    ) -> None:
        assert endpoint is not None or discovery is not None
        #: The token endpoint; ``None`` with ``issuer`` until it is discovered.
        self.endpoint = endpoint
        #: With ``issuer``: how the token endpoint is discovered; else ``None``.
        self.discovery = discovery
        self._monotonic = monotonic
        self._known_tokens = known_tokens
        if endpoint is not None:
            endpoint.known_tokens = known_tokens

    def token(self, deadline: float | None, *, retries: bool = True) -> Obtained:
        """Request a new token from the token endpoint (discovering it first, if need be)."""
        token = self.resolve(deadline, retries=retries).request_token(deadline=deadline, retries=retries)
        return Obtained(token, True)

    def resolve(self, deadline: float | None = None, *, retries: bool = True) -> TokenEndpoint:
        """The token endpoint; with ``issuer``, discovered the first time (see :mod:`reqcc.discovered`).

        ``deadline`` (``monotonic``) bounds that discovery: it is part of the fetch (item 14).
        ``retries=False``: the discovery is part of a probe, its requests are not retried.
        """
        endpoint = self.endpoint
        if endpoint is None:
            assert self.discovery is not None
            endpoint = self.endpoint = self.discovery.resolve(deadline, self._monotonic, retries=retries)
            endpoint.known_tokens = self._known_tokens
        return endpoint

    def where(self) -> str:
        """What a token request goes to, for messages about one that did not end in time."""
        if self.endpoint is not None:
            return f"the token request to {self.endpoint.where}"
        return "the token request (after reading the issuer's metadata)"


class ProviderSource:
    """The ``token_provider`` as a source (contract items 3 and 4).

    :param provider: ``(last_token, manager) -> OAuthToken``.
    :param manager: what the provider is given as its second argument.
    :param last: the token the manager adopted last (the provider's first argument).
    :param retired: the access token the resource server last rejected, if any.
    :param clock_skew: the manager's clock skew now (an expired answer is refused).
    :param clock: the manager's wall clock.
    :param dpop: the manager uses DPoP, so only a ``DPoP`` token will do.
    """

    def __init__(
        self,
        provider: TokenProvider,
        manager: Any,
        *,
        last: Callable[[], OAuthToken | None],
        retired: Callable[[], str | None],
        clock_skew: Callable[[], float],
        clock: Callable[[], float],
        dpop: bool,
    ) -> None:
        self.provider = provider
        self._manager = manager
        self._last = last
        self._retired = retired
        self._clock_skew = clock_skew
        self._clock = clock
        self._dpop = dpop

    def token(self, deadline: float | None, *, retries: bool = True) -> Obtained:
        """Ask the provider; :func:`~reqcc.provider.call_provider` checks its answer.

        Neither ``deadline`` nor ``retries`` reaches it: a provider's thread cannot be
        interrupted (the single flight stops waiting for it at the deadline).
        """
        token = call_provider(
            self.provider,
            self._last(),
            self._manager,
            retired=self._retired,
            clock_skew=self._clock_skew(),
            clock=self._clock,
            dpop=self._dpop,
        )
        return Obtained(token, True)

    @staticmethod
    def where() -> str:
        """What a token comes from, for messages about one that did not end in time."""
        return "the token_provider"
