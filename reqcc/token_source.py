"""Where a manager's new token comes from: its ``token_provider``, or its token endpoint.

With a ``token_provider`` (DESIGN item 3) the provider is asked, and what it returns is
checked by :mod:`reqcc.provider`. Without one, the manager's
:class:`~reqcc.token_endpoint.TokenEndpoint` is asked; with ``issuer=`` that endpoint is
found by discovery the first time it is needed (:mod:`reqcc.discovered`), within the
fetch's deadline, and never in a constructor. Either way the endpoint is told which
access tokens the manager holds, so that it redacts them from what a failing server
echoes (DESIGN item 13).

:class:`TokenSourceMixin` is that part of :class:`~reqcc.ClientCredentialsManager`. When
to obtain a token, and what to do with it, is the manager's; the token store in between
is :mod:`reqcc.sharing`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .discovered import DiscoveredEndpoint
from .dpop import DPoPProver
from .oauth_token import OAuthToken
from .provider import call_provider
from .token_endpoint import TokenEndpoint
from .validity import HeldToken

if TYPE_CHECKING:
    from .config import TokenProvider

__all__ = ["TokenSourceMixin"]


class TokenSourceMixin:
    """Part of :class:`~reqcc.ClientCredentialsManager`: obtaining one new token."""

    #: The token endpoint; ``None`` with ``issuer`` until it is discovered.
    _endpoint: TokenEndpoint | None
    #: With ``issuer``: how the token endpoint is discovered; else ``None``.
    _discovery: DiscoveredEndpoint | None

    if TYPE_CHECKING:  # what this part reads of the manager
        token_provider: TokenProvider | None
        clock_skew: float
        _clock: Callable[[], float]
        _monotonic: Callable[[], float]
        _dpop: DPoPProver | None
        _current: HeldToken | None
        _last_token: OAuthToken | None
        _retired: str | None

    def _obtain(self, deadline: float | None = None, *, retries: bool = True) -> OAuthToken:
        """Obtain a new token from the ``token_provider`` or the token endpoint.

        ``deadline`` (``monotonic``) bounds the token request, discovery included (item 14).
        ``retries=False`` makes it a probe of an endpoint known to be failing: one HTTP
        token request, not retried (item 27).
        """
        provider = self.token_provider
        if provider is None:
            return self._token_endpoint(deadline).request_token(deadline=deadline, retries=retries)
        return call_provider(
            provider,
            self._last_token,
            self,
            retired=lambda: self._retired,
            clock_skew=self.clock_skew,
            clock=self._clock,
            dpop=self._dpop is not None,
        )

    def _token_endpoint(self, deadline: float | None = None) -> TokenEndpoint:
        """The token endpoint; with ``issuer``, discovered the first time (see :mod:`reqcc.discovered`).

        ``deadline`` (monotonic) bounds that discovery: it is part of the fetch (item 14).
        """
        endpoint = self._endpoint
        if endpoint is None:
            assert self._discovery is not None
            endpoint = self._endpoint = self._discovery.resolve(deadline, self._monotonic)
            endpoint.known_tokens = self._known_tokens
        return endpoint

    def _known_tokens(self) -> tuple[str, ...]:
        """The access tokens this manager holds, for the token endpoint's redaction (item 13)."""
        current, last = self._current, self._last_token
        return tuple({t.access_token for t in (current.token if current else None, last) if t is not None})
