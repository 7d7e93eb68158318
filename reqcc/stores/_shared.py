"""The store step of a manager's token flight: share one token among many processes.

Used by :class:`~reqcc.ClientCredentialsManager` inside its single-flight leader, so at
most one thread per process talks to the store at a time:

    read the store → usable? adopt it
    else take the lease → read again → fetch (or call the provider) → write → release
    lease taken by another process → poll the store until its token appears, taking the
    lease over if it runs out; after two lease timeouts, fetch here

A broken store never fails a request: it is logged, this process fetches for itself, and
the store is tried again after a short backoff.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

from .._log import excerpt, log
from ..oauth_token import OAuthToken
from .base import TokenStore

__all__ = ["SharedTokens"]

_T = TypeVar("_T")

#: Seconds the store is left alone after a failure; doubles per consecutive failure.
STORE_RETRY_BACKOFF = 1.0
#: The longest the store is left alone after failures.
MAX_STORE_RETRY_BACKOFF = 30.0


class _StoreFailed(Exception):
    """The store raised; it has been logged and backed off."""


class SharedTokens:
    """Obtains a token through a :class:`~reqcc.stores.TokenStore` for one manager.

    :param store: the store.
    :param key: this client configuration's key (:func:`~reqcc.stores.token_store_key`).
    :param monotonic: the manager's monotonic clock (lease waits, store backoff).
    :param sleep: how to wait between two reads of the store.
    """

    def __init__(
        self,
        store: TokenStore,
        key: str,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.key = key
        self._monotonic = monotonic
        self._sleep = sleep
        self._failures = 0
        self._retry_at = -math.inf

    def obtain(
        self, fetch: Callable[[], OAuthToken], acceptable: Callable[[OAuthToken], bool]
    ) -> tuple[OAuthToken, bool]:
        """Return a token and whether this process obtained it (``False``: read from the store).

        :param fetch: obtains a new token (the token endpoint or the provider); its
            exceptions propagate, after the lease is released.
        :param acceptable: whether a token found in the store may be used instead.
        """
        if self._monotonic() < self._retry_at:
            return fetch(), True
        try:
            return self._obtain(fetch, acceptable)
        except _StoreFailed:
            return fetch(), True

    def _obtain(
        self, fetch: Callable[[], OAuthToken], acceptable: Callable[[OAuthToken], bool]
    ) -> tuple[OAuthToken, bool]:
        store, key = self.store, self.key
        token = self._call(store.read, key)
        if token is not None and acceptable(token):
            log.debug("token %s read from the token store", token.fingerprint)
            return token, False
        # One lease timeout for a dead or stuck holder's lease to run out (then one of the
        # waiters takes it over), one for the next holder's fetch.
        deadline = self._monotonic() + 2 * store.lease_timeout
        while True:
            holder = self._call(store.acquire_lease, key)
            if holder is not None:
                return self._lead(holder, fetch, acceptable)
            if self._monotonic() >= deadline:
                log.warning(
                    "no token in the token store after waiting %.1fs for the process holding "
                    "its lease; fetching in this process",
                    2 * store.lease_timeout,
                )
                token = fetch()
                self._write(token)
                return token, True
            self._sleep(store.poll_interval)
            token = self._call(store.read, key)
            if token is not None and acceptable(token):
                log.debug("token %s read from the token store after waiting", token.fingerprint)
                return token, False

    def _lead(
        self, holder: str, fetch: Callable[[], OAuthToken], acceptable: Callable[[OAuthToken], bool]
    ) -> tuple[OAuthToken, bool]:
        try:
            # Read again: the previous holder may have written just before releasing.
            try:
                token = self._call(self.store.read, self.key)
            except _StoreFailed:
                token = None
            if token is not None and acceptable(token):
                return token, False
            token = fetch()
            self._write(token)
            return token, True
        finally:
            try:
                self._call(self.store.release_lease, self.key, holder)
            except _StoreFailed:
                pass  # logged; the lease runs out by itself

    def _write(self, token: OAuthToken) -> None:
        try:
            self._call(self.store.write, self.key, token)
        except _StoreFailed:
            return
        log.debug("token %s written to the token store", token.fingerprint)

    def _call(self, method: Callable[..., _T], *args: object) -> _T:
        try:
            result = method(*args)
        except Exception as exc:
            self._failed(exc)
            raise _StoreFailed from exc
        if self._failures:
            log.info("token store %r works again", self.store)
            self._failures = 0
            self._retry_at = -math.inf
        return result

    def _failed(self, exc: Exception) -> None:
        if self._monotonic() < self._retry_at:  # already backing off (a release after a failed read)
            log.debug("token store %r failed again (%s)", self.store, type(exc).__name__)
            return
        self._failures += 1
        delay = min(MAX_STORE_RETRY_BACKOFF, STORE_RETRY_BACKOFF * 2 ** (self._failures - 1))
        self._retry_at = self._monotonic() + delay
        log.warning(
            "token store %r failed (%s: %s); fetching tokens in this process, next try of the "
            "store in %.0fs",
            self.store,
            type(exc).__name__,
            excerpt(str(exc), (), 160),
            delay,
        )
