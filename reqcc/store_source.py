"""The store source: a token source that reads a token store before it asks the next source.

A manager given ``token_store=`` shares its token with every process that uses the same
store and the same key: :class:`StoreSource` wraps the manager's provider or endpoint
source (:mod:`reqcc.token_source`); it reads the store first, and what the wrapped source
obtains it writes there (through :class:`~reqcc.stores._shared.SharedTokens`, which holds
the lease so that the fleet fetches once, and the fleet's outage record). The step is keyed
by everything that makes the manager's tokens its own (:func:`store_key`: the token
endpoint, the client, its method and credentials, the scopes, the form fields and the DPoP
key's thumbprint, contract item 24); which token found there may replace the one held is the
reusing source's to say (its ``acceptable``), and a token of the wrong type is a miss
(:func:`type_matches`, contract item 32).
"""

from __future__ import annotations

from collections.abc import Callable

from ._log import log
from .oauth_token import OAuthToken
from .stores._shared import SharedTokens
from .stores.base import TokenStore, token_store_key
from .token_endpoint import TokenEndpoint
from .token_source import EndpointSource, Obtained, TokenSource

__all__ = ["StoreSource", "share", "store_key", "type_matches"]


def store_key(endpoint: TokenEndpoint, scopes: tuple[str, ...]) -> str:
    """Return the token-store key of a manager with this endpoint and these scopes."""
    return token_store_key(
        token_url=endpoint.token_url,
        client_id=endpoint.client_auth.client_id,
        auth_method=endpoint.client_auth.method,
        scopes=scopes,
        token_params=endpoint.token_params,
        secrets=endpoint.client_auth.key_secrets(),
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


def type_matches(token: OAuthToken, *, dpop: bool) -> bool:
    """Whether a token found in a store has the type this manager sends (contract item 32).

    A Bearer entry for a DPoP manager would be sent without a proof (a downgrade); a DPoP
    entry for a Bearer manager cannot be sent at all. Either is a miss, logged: the
    manager obtains a token of its own, which then replaces the entry.
    """
    wanted = "DPoP" if dpop else "Bearer"
    if token.token_type == wanted:
        return True
    log.warning(
        "the token store holds a %s token (%s) for a manager that sends %s tokens: not used",
        token.token_type, token.fingerprint, wanted,
    )
    return False


class StoreSource:
    """A token source that shares tokens through a token store: the store first, then ``inner``.

    :param inner: the source that obtains a token when the store has none usable (the
        provider or the endpoint source).
    :param endpoints: the endpoint source, whose token endpoint names the store key and
        whose credentials are redacted from the fleet's outage record.
    :param store: the token store.
    :param shared: the store step, when the key is known already (else it is made once the
        token endpoint is, with ``issuer`` after discovery).
    :param scopes: the requested scopes (part of the key).
    :param acceptable: whether a token found in the store may replace the one held.
    :param probe_delay: seconds from a failure to the fleet's next probe.
    :param dpop: the manager sends DPoP tokens (a Bearer entry is a miss, and vice versa).
    :param held: the token the manager holds, or ``None``: a token obtained while the store
        failed is written back to it later only while it is still held.
    """

    def __init__(
        self,
        inner: TokenSource,
        endpoints: EndpointSource,
        store: TokenStore,
        shared: SharedTokens | None,
        *,
        scopes: tuple[str, ...],
        acceptable: Callable[[OAuthToken], bool],
        probe_delay: Callable[[Exception], float],
        dpop: bool,
        held: Callable[[], OAuthToken | None],
        monotonic: Callable[[], float],
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        self.inner = inner
        self.store = store
        #: The store step, once the store key is known (with ``issuer``, after discovery); else ``None``.
        self.shared = shared
        self._endpoints = endpoints
        self._scopes = scopes
        self._acceptable = acceptable
        self._probe_delay = probe_delay
        self._dpop = dpop
        self._held = held
        self._monotonic, self._sleep, self._clock = monotonic, sleep, clock

    def token(self, deadline: float | None, *, retries: bool = True) -> Obtained:
        """Return a usable token from the store, else ``inner``'s (written to the store).

        ``fresh`` is ``False`` for a token read from the store. ``retries=False``: a probe,
        one HTTP request. A token obtained while the store failed is written back first,
        once the store answers again (see :class:`~reqcc.stores._shared.SharedTokens`).
        """
        shared = self.shared
        if shared is None:  # the store key names the token endpoint: discover it first
            shared = self.shared = share(
                self.store,
                self._endpoints.resolve(deadline, retries=retries),
                self._scopes,
                monotonic=self._monotonic,
                sleep=self._sleep,
                clock=self._clock,
            )
        token, fresh = shared.obtain(
            lambda retry: self.inner.token(deadline, retries=retry).token,
            self._usable,
            deadline=deadline,
            retries=retries,
            probe_delay=self._probe_delay,
            secrets=lambda: self._endpoints.resolve(deadline).secrets(),
            held=self._held,
        )
        return Obtained(token, fresh)

    def peek(self, deadline: float) -> OAuthToken | None:
        """A usable token another process stored since this one last failed, or ``None``.

        For a caller that would get the last failure again (no usable token, the next probe
        not due): another process's probe may have succeeded (contract item 29). At most one
        look per the store's ``poll_interval``, within ``deadline``.
        """
        shared = self.shared
        return None if shared is None else shared.peek(self._usable, deadline)

    def _usable(self, token: OAuthToken) -> bool:
        return type_matches(token, dpop=self._dpop) and self._acceptable(token)
