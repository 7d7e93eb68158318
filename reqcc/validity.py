"""When the token a manager holds is usable, and when it is due for renewal.

A token's expiry is wall-clock time (Unix seconds), but a manager judges the token it
holds on the monotonic clock, so that a wall-clock jump neither expires it nor keeps it
alive. When a token is adopted, :func:`hold` turns its expiry, less the capped clock skew
(contract item 2), into a monotonic ``expire_at``, and the start of its renewal window
(contract item 12) into ``renew_at``. The manager's fast path reads those two numbers and
nothing else; nothing here takes a lock or runs per request.
"""

from __future__ import annotations

from collections.abc import Callable

from .oauth_token import OAuthToken

__all__ = ["HeldToken", "hold"]


class HeldToken:
    """The token in use and its deadlines on the monotonic clock (derived at adoption)."""

    __slots__ = ("end_at", "expire_at", "renew_at", "token")

    def __init__(
        self,
        token: OAuthToken,
        expire_at: float | None,
        renew_at: float | None,
        end_at: float | None = None,
    ) -> None:
        #: The token.
        self.token = token
        #: The ``monotonic`` time from which it is expired, or ``None`` (it never expires by the clock).
        self.expire_at = expire_at
        #: The ``monotonic`` time from which it is renewed ahead, or ``None`` (never ahead).
        self.renew_at = renew_at
        #: The ``monotonic`` time of its real expiry, without the clock-skew margin (default:
        #: :attr:`expire_at`). Used only while the token endpoint is failing (contract item 28).
        self.end_at = expire_at if end_at is None else end_at

    def usable(self, now: float) -> bool:
        """Whether the token is unexpired at ``now`` (``monotonic``)."""
        return self.expire_at is None or now < self.expire_at

    def unexpired(self, now: float) -> bool:
        """Whether the token's real expiry (the skew margin not subtracted) is still ahead at ``now``.

        While the token endpoint is failing, such a token is used in its skew margin
        (contract item 28): the margin guards against clock differences with a healthy
        endpoint at hand, and never reaches past the expiry the server gave.
        """
        return self.end_at is None or now < self.end_at


def hold(
    token: OAuthToken,
    *,
    clock_skew: float,
    refresh_ahead: float,
    clock: Callable[[], float],
    monotonic: Callable[[], float],
) -> HeldToken:
    """Return ``token`` with its deadlines, as of now.

    ``end_at`` is its expiry; ``expire_at`` is that less :meth:`~reqcc.OAuthToken.effective_skew`;
    ``renew_at`` is ``refresh_ahead`` of its lifetime (``expires_in``, else what is left of
    it) before that, or ``None`` when ``refresh_ahead`` is 0. A token without an expiry
    gets neither.
    """
    if token.expiry is None:
        return HeldToken(token, None, None)
    now = monotonic()
    remaining = token.expiry - clock()
    end_at = now + remaining
    expire_at = end_at - token.effective_skew(clock_skew)
    renew_at = None
    if refresh_ahead > 0:
        lifetime = token.expires_in if token.expires_in is not None else max(remaining, 0.0)
        renew_at = expire_at - refresh_ahead * lifetime
    return HeldToken(token, expire_at, renew_at, end_at)
