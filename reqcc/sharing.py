"""The manager's side of a token store: its key, the store step, which stored token it adopts.

A manager given ``token_store=`` shares its token with every process that uses the same
store and the same key: before it obtains a token it reads the store, and what it
obtains it writes there (through :class:`~reqcc.stores._shared.SharedTokens`, which
holds the lease so that the fleet fetches once). This module keys that step by
everything that makes the manager's tokens its own (:func:`store_key`: the token
endpoint, the client, its method and credentials, the scopes, the form fields and the
DPoP key's thumbprint, DESIGN item 24), and says which token found there may replace the
one held (:meth:`SharingMixin._usable_from_store`).

:class:`SharingMixin` is that part of :class:`~reqcc.ClientCredentialsManager`; how a
token is obtained when the store has none is :mod:`reqcc.token_source`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .oauth_token import OAuthToken
from .stores._shared import SharedTokens
from .stores.base import TokenStore, token_store_key
from .token_endpoint import TokenEndpoint
from .validity import HeldToken

if TYPE_CHECKING:
    from .single_flight import FailureBackoff

__all__ = ["SharingMixin", "share", "store_key"]


def store_key(endpoint: TokenEndpoint, scopes: tuple[str, ...]) -> str:
    """Return the token-store key of a manager with this endpoint and these scopes."""
    return token_store_key(
        token_url=endpoint.token_url,
        client_id=endpoint.client_auth.client_id,
        auth_method=endpoint.client_auth.method,
        scopes=scopes,
        token_params=endpoint.token_params,
        secrets=endpoint.client_auth.secrets(),
        key_id=getattr(endpoint.client_auth, "key_id", None),
        dpop_jkt=endpoint.dpop.thumbprint if endpoint.dpop is not None else None,
    )


def share(
    store: TokenStore,
    endpoint: TokenEndpoint,
    scopes: tuple[str, ...],
    *,
    monotonic: Callable[[], float],
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> SharedTokens:
    """Return the store step of a manager with this (known) endpoint and these scopes."""
    return SharedTokens(store, store_key(endpoint, scopes), monotonic=monotonic, sleep=sleep, clock=clock)


class SharingMixin:
    """Part of :class:`~reqcc.ClientCredentialsManager`: obtaining a token through its token store."""

    #: The store step, once the store key is known (with ``issuer``, after discovery); else ``None``.
    _shared: SharedTokens | None

    if TYPE_CHECKING:  # what this part reads of the manager
        token_store: TokenStore | None
        clock_skew: float
        _scopes: tuple[str, ...]
        _clock: Callable[[], float]
        _monotonic: Callable[[], float]
        _sleep: Callable[[float], None]
        _current: HeldToken | None
        _retired: str | None
        _backoff: FailureBackoff
        token_deadline: float

        def _obtain(self, deadline: float | None = None, *, retries: bool = True) -> OAuthToken: ...
        def _token_endpoint(self, deadline: float | None = None) -> TokenEndpoint: ...
        def _deadlines(self, token: OAuthToken) -> HeldToken: ...
        def _adopt(self, token: OAuthToken, *, notify: bool) -> None: ...

    def _obtain_shared(
        self, deadline: float | None = None, *, retries: bool = True
    ) -> tuple[OAuthToken, bool]:
        """Obtain a token, through the token store if there is one.

        Returns the token and whether this process obtained it (fetch or provider), as
        opposed to reading it from the store. ``retries=False``: a probe, one HTTP request.
        """
        if self.token_store is None:
            return self._obtain(deadline, retries=retries), True
        shared = self._shared
        if shared is None:  # the store key names the token endpoint: discover it first
            shared = self._shared = share(
                self.token_store,
                self._token_endpoint(deadline),
                self._scopes,
                monotonic=self._monotonic,
                sleep=self._sleep,
                clock=self._clock,
            )
        return shared.obtain(
            lambda retry: self._obtain(deadline, retries=retry),
            self._usable_from_store,
            deadline=deadline,
            retries=retries,
            probe_delay=self._backoff.probe_delay,
            secrets=lambda: self._token_endpoint(deadline).secrets(),
        )

    def _peek_store(self) -> OAuthToken | None:
        """Adopt and return a token another process stored since this one last failed, or ``None``.

        Asked by a caller that would get the last failure again (no usable token, the next
        probe not due): another process's probe may have succeeded (DESIGN item 29). At most
        one look per the store's ``poll_interval``, within ``token_deadline``.
        """
        shared = self._shared
        if shared is None:
            return None
        token = shared.peek(self._usable_from_store, self._monotonic() + self.token_deadline)
        if token is not None:
            self._adopt(token, notify=False)
        return token

    def _usable_from_store(self, token: OAuthToken) -> bool:
        """Whether a token found in the store may be adopted instead of obtaining one."""
        current = self._current
        if current is not None and token.access_token == current.token.access_token:
            return False  # the token in use is not good enough any more (expired or due)
        if token.access_token == self._retired or token.is_expired(self.clock_skew, self._clock()):
            return False
        if current is not None and current.usable(self._monotonic()):
            # Renewing ahead: only a token that is not itself due for renewal helps.
            renew_at = self._deadlines(token).renew_at
            return renew_at is None or self._monotonic() < renew_at
        return True
