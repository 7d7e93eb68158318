"""The 401 cool-down (contract items 19 and 34), as a user of a session sees it.

The origin cool-down exists for an API that refuses every fresh token across many paths
(``/orders/<id>``): a burst of refusals. A few endpoints that refuse every token (a missing
permission) hit now and then, hours apart, between thousands of accepted requests, are not
that; they must not switch off the recovery from a real revocation for the whole origin.
"""

from __future__ import annotations

from collections.abc import Callable

from reqcc.cooldown import REJECTION_COOLDOWN, REJECTION_ORIGIN_STRIKES

from .conftest import API, Env, FakeClock


def test_refusing_endpoints_hit_hours_apart_do_not_cool_the_origin_down(
    make_env: Callable[..., Env], clock: FakeClock
) -> None:
    env = make_env()
    env.api.register_uri("GET", API + "books", json={"ok": True})
    for i in range(REJECTION_ORIGIN_STRIKES):
        for _ in range(50):  # an hour of ordinary traffic, every request accepted
            clock.advance(72)
            assert env.session.get(API + "books").status_code == 200
        env.api.register_uri("GET", f"{API}admin/{i}", status_code=401)  # a missing permission
        assert env.session.get(f"{API}admin/{i}").status_code == 401
    clock.advance(10)
    before = env.issuer.count
    # The authorization server revokes the token: the next 401 must be recovered from.
    env.api.register_uri("GET", API + "books", [{"status_code": 401}, {"json": {"ok": True}}])
    assert env.session.get(API + "books").json() == {"ok": True}
    assert env.issuer.count == before + 1


def test_a_burst_of_refusals_on_per_id_paths_still_cools_the_origin_down(
    make_env: Callable[..., Env], clock: FakeClock
) -> None:
    env = make_env()
    for i in range(30):  # one call every 2 s: well inside one cool-down
        env.api.register_uri("GET", f"{API}orders/{i}", status_code=401)
        assert env.session.get(f"{API}orders/{i}").status_code == 401
        clock.advance(REJECTION_COOLDOWN / 30)
    assert env.issuer.count == 1 + REJECTION_ORIGIN_STRIKES
