"""The ``token_provider`` contract: calling the provider and checking what it returns.

A provider replaces the manager's own fetch (contract items 3 and 4). What it returns must
be an :class:`~reqcc.OAuthToken` (a dict is converted), not expired, not the token the
resource server just rejected, and a ``DPoP`` token when the manager uses DPoP (a
``Bearer`` one when it does not); anything
else is a :class:`~reqcc.TokenProviderError` naming the problem and the fix, and no
request goes out with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import requests

from .errors import ReqccError, TokenProviderError
from .oauth_token import InvalidTokenValue, OAuthToken

__all__ = ["call_provider", "coerce_token"]


def coerce_token(value: Any, what: str, error: type[ReqccError], clock: Callable[[], float]) -> OAuthToken:
    """Return ``value`` as an :class:`OAuthToken` (a dict is converted, stamped by ``clock``).

    :raises error: ``value`` is neither, or a dict that is not a usable token; the
        message names ``what``.
    """
    if isinstance(value, OAuthToken):
        if value.expiry is None and value.expires_in is not None:
            # OAuthToken("…", expires_in=3600) built by hand: without an absolute expiry it would
            # never expire by the clock; take it as received now, as a dict's expires_in is.
            return dataclasses.replace(value, expiry=clock() + value.expires_in)
        return value
    if isinstance(value, Mapping):
        try:
            return OAuthToken.from_dict(value, now=clock())
        except ValueError as exc:
            raise error(f"{what} is not a usable token: {exc}") from None
    raise error(f"{what} must be an OAuthToken or a dict, got {type(value).__name__}")


def call_provider(
    provider: Callable[[OAuthToken | None, Any], Any],
    last: OAuthToken | None,
    manager: Any,
    *,
    retired: Callable[[], str | None],
    clock_skew: float,
    clock: Callable[[], float],
    dpop: bool = False,
) -> OAuthToken:
    """Call ``provider(last, manager)`` and return its token once checked.

    :param retired: returns the access token the resource server last rejected, if any
        (read after the provider returns: the provider may have fetched meanwhile).
    :param dpop: the manager uses DPoP, so only a ``DPoP`` token will do.
    :raises TokenProviderError: the provider raised (other than a ``requests`` exception,
        which propagates as it is), or returned something unusable.
    """
    try:
        result = provider(last, manager)
    except InvalidTokenValue as exc:  # a ReqccError, but the provider's own fault: it built that token
        raise TokenProviderError(f"token_provider raised {type(exc).__name__}: {exc}") from exc
    except requests.RequestException:
        raise
    except Exception as exc:
        raise TokenProviderError(f"token_provider raised {type(exc).__name__}") from exc
    token = coerce_token(result, "token_provider's result", TokenProviderError, clock)
    if token.access_token == retired():
        raise TokenProviderError(
            "token_provider returned the token the resource server just rejected (401); "
            "check manager.is_valid(stored) before returning a stored token, else return "
            "manager.fetch_token()"
        )
    if token.is_expired(clock_skew, clock()):
        raise TokenProviderError(
            "token_provider returned an expired token; check manager.is_valid(stored) "
            "before returning a stored token, else return manager.fetch_token()"
        )
    if dpop and token.token_type != "DPoP":
        raise TokenProviderError(
            f"token_provider returned a {token.token_type} token {token.fingerprint}, but this manager "
            "uses DPoP: return a DPoP token (manager.fetch_token() gets one)"
        )
    if not dpop and token.token_type != "Bearer":
        # Adopted, it could not be sent: every request would fail until the provider changed
        # its mind (the provider-side twin of a DPoP entry in a Bearer manager's store).
        raise TokenProviderError(
            f"token_provider returned a {token.token_type} token {token.fingerprint}, but this manager "
            "has no DPoP key: return a Bearer token, or give the manager dpop=True or dpop_key="
        )
    return token
