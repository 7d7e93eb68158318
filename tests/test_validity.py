"""The renewal window of a token adopted late in its life (reqcc.validity, contract item 12).

The window is ``refresh_ahead`` of the token's *lifetime* (``expires_in``), not of what is
left of it when the manager adopts it: a stored token granted for an hour with 100 s left
is already in its window. Only a token without ``expires_in`` is judged by what is left.
"""

from __future__ import annotations

from collections.abc import Callable

from reqcc import OAuthToken

from .conftest import Env
from .test_renewal import renewed


def stored(env: Env, *, left: float, expires_in: float | None) -> OAuthToken:
    """A token as another process stored it: granted ``expires_in`` s ago or less, ``left`` s to go."""
    return OAuthToken(access_token="stored", token_type="Bearer", expires_in=expires_in,
                      expiry=env.clock.now + left)


def test_a_stored_hour_token_with_100_s_left_is_in_its_renewal_window(make_env: Callable[..., Env]) -> None:
    env = make_env(refresh_ahead=0.1, clock_skew=0)
    env.manager.token = stored(env, left=100, expires_in=3600)
    # The window is 10 % of 3600 s = the last 360 s: 100 s left is inside it. (Sized from
    # the 100 s left it would be the last 10 s, and the token would not be renewed.)
    assert env.manager.get_token().access_token == "stored"  # still served meanwhile
    assert renewed(env, 1)
    assert env.manager.get_token().access_token == "tok-1"


def test_a_stored_hour_token_before_its_renewal_window_is_not_renewed(make_env: Callable[..., Env]) -> None:
    env = make_env(refresh_ahead=0.1, clock_skew=0)
    env.manager.token = stored(env, left=361, expires_in=3600)
    assert env.manager.get_token().access_token == "stored"
    assert renewed(env, 0)
    env.clock.advance(1.5)  # 359.5 s left: inside the last 360 s
    assert env.manager.get_token().access_token == "stored"
    assert renewed(env, 1)


def test_a_token_without_expires_in_is_windowed_by_what_is_left(make_env: Callable[..., Env]) -> None:
    env = make_env(refresh_ahead=0.1, clock_skew=0)
    env.manager.token = stored(env, left=100, expires_in=None)
    # Its lifetime is unknown: 10 % of the 100 s left, the last 10 s.
    assert env.manager.get_token().access_token == "stored"
    env.clock.advance(89)
    assert env.manager.get_token().access_token == "stored"
    assert renewed(env, 0)
    env.clock.advance(2)  # 9 s left
    assert env.manager.get_token().access_token == "stored"
    assert renewed(env, 1)
