"""The OAuth token value object. Knows nothing of HTTP."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._log import fingerprint
from .errors import ConfigurationError

__all__ = ["OAuthToken", "DEFAULT_CLOCK_SKEW", "TOKEN_TYPES", "InvalidTokenValue", "check_access_token"]

#: Seconds subtracted from a token's expiry when judging whether it is still usable.
DEFAULT_CLOCK_SKEW = 30.0

#: The token types reqcc sends, by their lower-case name (RFC 6750 Bearer, RFC 9449 DPoP).
TOKEN_TYPES = {"bearer": "Bearer", "dpop": "DPoP"}

_KNOWN_FIELDS = ("access_token", "token_type", "expires_in", "scope", "expiry", "refresh_token")

# What an access token may hold to be sent as ``Authorization: Bearer <token>``: visible ASCII
# without spaces (RFC 6750's b64token alphabet is stricter, but real servers issue tokens with
# "!" or ":" in them; nothing in this range can end or split a header line).
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


class InvalidTokenValue(ConfigurationError):
    """An access token that cannot be sent in an HTTP header. The message never contains it.

    Raised when an :class:`OAuthToken` is made with such a token by hand (``OAuthToken(…)``,
    ``OAuthToken.from_dict(…)``). A :class:`~reqcc.ConfigurationError`, so a
    :class:`~reqcc.ReqccError` and a ``ValueError``. Where reqcc receives the token itself
    (the token endpoint, a ``token_provider``, ``token=``) it reports it as that source's
    error instead (:class:`~reqcc.TokenResponseError`, :class:`~reqcc.TokenProviderError`,
    :class:`~reqcc.ConfigurationError`).
    """


def check_access_token(value: Any) -> str:
    """Return ``value`` if it can be sent as a bearer token in an HTTP header.

    :raises InvalidTokenValue: not a non-empty string of visible ASCII without spaces (CR,
        LF, NUL, control characters, non-ASCII and spaces are refused). The message says
        what is wrong without echoing the token.
    """
    if not isinstance(value, str) or not value:
        raise InvalidTokenValue("access_token is missing or not a non-empty string")
    if _HEADER_SAFE.fullmatch(value) is None:
        kinds = sorted({_kind(c) for c in value if not 0x21 <= ord(c) <= 0x7E})
        raise InvalidTokenValue(
            f"access_token contains {', '.join(kinds)}: it cannot be sent in an HTTP header "
            "(a token must be visible ASCII without spaces, RFC 6750)"
        )
    return value


def _kind(c: str) -> str:
    if c in "\r\n":
        return "CR/LF"
    if c == "\0":
        return "NUL"
    if c == " ":
        return "spaces"
    if ord(c) < 0x80:
        return "control characters"
    return "non-ASCII characters"


def _number(value: Any, name: str) -> float | None:
    """Read a non-negative number (int, float or numeric string); ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number of seconds, got a boolean")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"{name} must be a number of seconds, got {value[:20]!r}") from None
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:  # a 400-digit integer
            raise ValueError(f"{name} is too large a number") from None
    elif not isinstance(value, float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    number: float = value
    return number


def _scope_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
        return " ".join(value)
    raise ValueError("scope must be a space-separated string or a list of strings")


@dataclass(frozen=True, repr=False)
class OAuthToken:
    """An access token and what is known about it.

    :param access_token: the token sent as ``Authorization: Bearer …`` (or ``DPoP …``).
    :param token_type: ``"Bearer"``, or ``"DPoP"`` for a token bound to a DPoP key (RFC 9449),
        which is sent with a proof signed by that key. Spelt in these cases whatever the
        server's case.
    :param expires_in: the lifetime in seconds the server granted, or ``None`` if unknown.
    :param scope: the granted scopes, space-separated, or ``None``.
    :param expiry: absolute expiry time in Unix seconds (UTC), or ``None``: a token without
        an expiry never expires by the clock (only a 401 retires it).
    :param refresh_token: a refresh token, if the server sent one (unusual for this grant).
    :param extra: every other field of the token response, kept as received.

    The ``repr`` shows a fingerprint of the token, never the token itself. The access token
    is checked when a token is made, however it is made (a token response, a provider, a
    store, ``token=``): it must be usable as a header value (visible ASCII without spaces),
    else :class:`~reqcc.InvalidTokenValue` (a :class:`~reqcc.ConfigurationError`, so a
    ``ValueError`` too) is raised, without echoing it.
    """

    access_token: str
    token_type: str = "Bearer"
    expires_in: float | None = None
    scope: str | None = None
    expiry: float | None = None
    refresh_token: str | None = None
    # Not hashed (a dict cannot be), so that a frozen token can be a set member or dict key.
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_access_token(self.access_token)
        # One spelling per type, so that the adapter's scheme check is one comparison.
        known = TOKEN_TYPES.get(self.token_type.lower()) if isinstance(self.token_type, str) else None
        if known is not None and known != self.token_type:
            object.__setattr__(self, "token_type", known)

    @classmethod
    def from_response(
        cls,
        data: Mapping[str, Any],
        *,
        now: float | None = None,
        requested_scope: str | None = None,
    ) -> OAuthToken:
        """Build a token from a token endpoint's JSON answer received at ``now``.

        ``expiry`` becomes ``now + expires_in`` (``now`` defaults to the real UTC clock,
        ``time.time()``). A response without ``scope`` was granted the requested scope
        (RFC 6749 §5.1), so ``requested_scope`` is recorded then.

        :raises ValueError: a field is missing or malformed (the message names it).
        """
        fields = dict(data)
        fields.pop("expiry", None)
        fields.pop("expires_at", None)
        if fields.get("scope") is None and requested_scope:
            fields["scope"] = requested_scope
        expires_in = _number(fields.get("expires_in"), "expires_in")
        if expires_in is not None:
            fields["expiry"] = (time.time() if now is None else now) + expires_in
        return cls.from_dict(fields)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, now: float | None = None) -> OAuthToken:
        """Build a token from a dict, such as one saved by :meth:`to_dict`.

        ``expiry`` (or requests-oauthlib's ``expires_at``) is taken as absolute Unix
        seconds. A dict with ``expires_in`` but no expiry is taken as a fresh token
        response: its expiry becomes ``now + expires_in`` (``now`` defaults to
        ``time.time()``).

        :raises ValueError: a field is missing or malformed (the message names it).
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a token must be a mapping, got {type(data).__name__}")
        access_token = check_access_token(data.get("access_token"))
        token_type = data.get("token_type")
        if token_type is None:
            token_type = "Bearer"
        known = TOKEN_TYPES.get(token_type.lower()) if isinstance(token_type, str) else None
        if known is None:
            shown = token_type if isinstance(token_type, str) else type(token_type).__name__
            raise ValueError(f"token_type {str(shown)[:20]!r} is not Bearer (or DPoP)")
        refresh_token = data.get("refresh_token")
        if refresh_token is not None and not isinstance(refresh_token, str):
            raise ValueError("refresh_token must be a string")
        expires_in = _number(data.get("expires_in"), "expires_in")
        expiry_value = data.get("expiry", data.get("expires_at"))
        expiry = _number(expiry_value, "expiry")
        if expiry is None and expires_in is not None:
            expiry = (time.time() if now is None else now) + expires_in
        extra = {
            k: v for k, v in data.items() if k not in _KNOWN_FIELDS and k != "expires_at"
        }
        return cls(
            access_token=access_token,
            token_type=known,
            expires_in=expires_in,
            scope=_scope_text(data.get("scope")),
            expiry=expiry,
            refresh_token=refresh_token,
            extra=extra,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict that :meth:`from_dict` turns back into an equal token.

        Fields that are ``None`` are left out; ``extra`` fields sit at the top level, as
        in the token response.
        """
        out: dict[str, Any] = dict(self.extra)
        for name in _KNOWN_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @property
    def scopes(self) -> tuple[str, ...]:
        """The granted scopes as a tuple (empty when unknown)."""
        return tuple(self.scope.split()) if self.scope else ()

    @property
    def fingerprint(self) -> str:
        """A short, non-reversible tag of the access token, safe to log."""
        return fingerprint(self.access_token)

    def effective_skew(self, skew: float = DEFAULT_CLOCK_SKEW) -> float:
        """Return the skew actually applied: ``min(skew, lifetime / 2)`` when the lifetime is known.

        Capping at half the lifetime means a short-lived token is never judged expired
        the moment it arrives.
        """
        if self.expires_in is not None:
            return min(skew, self.expires_in / 2)
        return skew

    def is_expired(self, skew: float = DEFAULT_CLOCK_SKEW, now: float | None = None) -> bool:
        """Return whether the token is expired at ``now`` (Unix seconds; default: the real clock).

        Expired means the expiry is known and ``expiry - effective_skew(skew) <= now``.
        """
        if self.expiry is None:
            return False
        if now is None:
            now = time.time()
        return self.expiry - self.effective_skew(skew) <= now

    def __repr__(self) -> str:
        parts = [f"token_type={self.token_type!r}", f"fingerprint={self.fingerprint!r}"]
        if self.expiry is not None:
            parts.append(f"expiry={self.expiry!r}")
        if self.scope is not None:
            parts.append(f"scope={self.scope!r}")
        if self.refresh_token is not None:
            parts.append("refresh_token=<hidden>")
        if self.extra:
            parts.append(f"extra_fields={sorted(self.extra)!r}")
        return f"OAuthToken({', '.join(parts)})"

    __str__ = __repr__
