"""contract item 34: ``WWW-Authenticate`` read within bounds, the origin cool-down, ``error.type``.

Observed on 0.2: a DPoP client receiving a 401 with a valid ``DPoP-Nonce`` and many long
``WWW-Authenticate`` lines spent seconds of CPU and hundreds of MiB parsing them (1 MiB of
header: +90 MiB peak; plain requests: none of that); an API refusing every token on per-id
paths (``/orders/<id>``) cost a token request per call (100 calls: 101 token requests); a
token endpoint answering a new 41-character ``error`` code each time minted a new
``error.type`` metric series per request (60 in 60).
"""

from __future__ import annotations

import logging
import re
import secrets
import tracemalloc
from collections.abc import Callable

import pytest
import requests

from reqcc import ClientCredentialsAdapter, ClientCredentialsManager, OAuthProviderError, OAuthToken
from reqcc.cooldown import REJECTION_COOLDOWN, REJECTION_ORIGIN_STRIKES, RejectionCooldown

from ..conftest import API, Env, FakeClock, TokenIssuer
from ..hostile_server import HostileServer, Reply
from ..otel_sdk import Otel

MiB = 1 << 20
ORDERS = API + "orders/"

# -- WWW-Authenticate within bounds -------------------------------------------------------


def _dpop_session() -> requests.Session:
    manager = ClientCredentialsManager(
        token_url="https://auth.example.com/t", client_id="c", client_secret="s", dpop=True,
        token=OAuthToken("tok", token_type="DPoP", expires_in=3600),
    )
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", ClientCredentialsAdapter(manager=manager))
    return session


def _peak(send: Callable[[], requests.Response]) -> tuple[requests.Response, int]:
    tracemalloc.start()
    try:
        response = send()
        return response, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_many_long_www_authenticate_lines_cost_what_they_cost_plain_requests(
    serve: Callable[..., HostileServer],
) -> None:
    line = "DPoP " + "a," * 32_000  # 64 KiB: 32 000 one-letter challenges per line
    reply = Reply(status=401, headers={"DPoP-Nonce": "n-1"}, header_lines=[("WWW-Authenticate", line)] * 4)
    plain_server, reqcc_server = serve(reply, lifetime=10), serve(Reply(body=b"{}"), reply, lifetime=10)
    plain = requests.Session()
    plain.trust_env = False
    _, plain_peak = _peak(lambda: plain.get(plain_server.url + "/x", timeout=10))
    session = _dpop_session()
    session.get(reqcc_server.url + "/warm-up", timeout=10)  # imports, the key's first proof
    response, reqcc_peak = _peak(lambda: session.get(reqcc_server.url + "/x", timeout=10))
    assert response.status_code == 401 and len(reqcc_server.requests) == 2
    # 0.2: about 22 MiB over plain requests for these 256 KiB (a dict per challenge).
    assert reqcc_peak < plain_peak + 2 * MiB


def test_a_nonce_demand_after_a_long_bearer_challenge_is_still_honoured(
    serve: Callable[..., HostileServer],
) -> None:
    challenge = 'Bearer realm="' + "r" * 2000 + '", DPoP algs="ES256", error="use_dpop_nonce"'
    server = serve(
        Reply(status=401, headers={"DPoP-Nonce": "n-1", "WWW-Authenticate": challenge}),
        Reply(status=200, body=b"{}"),
        lifetime=10,
    )
    assert _dpop_session().get(server.url + "/x", timeout=10).status_code == 200
    assert len(server.requests) == 2


# -- the origin cool-down -------------------------------------------------------------------


def _under(prefix: str) -> re.Pattern[str]:
    """A ``requests_mock`` URL matcher for every URL that starts with ``prefix``."""
    return re.compile(re.escape(prefix) + ".*")


def test_an_api_refusing_every_token_on_per_id_paths_cools_its_origin_down(
    make_env: Callable[..., Env], caplog: pytest.LogCaptureFixture
) -> None:
    env = make_env()
    env.api.register_uri("GET", _under(ORDERS), status_code=401)
    with caplog.at_level(logging.WARNING, "reqcc"):
        statuses = [env.session.get(f"{ORDERS}{i}").status_code for i in range(100)]
    assert statuses == [401] * 100
    # 0.2: 101 token requests. Now the first token and one per strike.
    assert env.issuer.count == 1 + REJECTION_ORIGIN_STRIKES
    assert env.api.call_count == 100 + REJECTION_ORIGIN_STRIKES  # one replay per strike
    origin_warnings = [r for r in caplog.records if "in a row" in r.getMessage()]
    assert len(origin_warnings) == 1 and "https://api.example.com:443" in origin_warnings[0].getMessage()


def test_below_the_strikes_a_revocation_elsewhere_on_the_origin_is_recovered_at_once(
    make_env: Callable[..., Env],
) -> None:
    env = make_env()
    env.api.register_uri("GET", _under(ORDERS), status_code=401)
    for round_ in range(3):  # each round: strikes - 1 refusing endpoints, then a revocation
        for i in range(REJECTION_ORIGIN_STRIKES - 1):
            assert env.session.get(f"{ORDERS}{round_}-{i}").status_code == 401
        before = env.issuer.count
        env.api.register_uri("GET", API + "books", [{"status_code": 401}, {"json": {"ok": True}}])
        assert env.session.get(API + "books").json() == {"ok": True}
        assert env.issuer.count == before + 1  # retired and replaced at once
    # The accepted fresh token started the strikes over each time: the origin never cooled.
    assert not env.manager.rejection_cooldown.active("GET " + API + "books")


def test_the_origin_cool_down_ends(make_env: Callable[..., Env], clock: FakeClock) -> None:
    env = make_env()
    env.api.register_uri("GET", _under(ORDERS), status_code=401)
    for i in range(REJECTION_ORIGIN_STRIKES + 5):
        env.session.get(f"{ORDERS}{i}")
    count = env.issuer.count
    clock.advance(REJECTION_COOLDOWN + 1)
    env.api.register_uri("GET", API + "books", [{"status_code": 401}, {"json": {"ok": True}}])
    assert env.session.get(API + "books").json() == {"ok": True}
    assert env.issuer.count == count + 1


def test_the_origin_cool_down_is_per_origin_and_bounded() -> None:
    now = [0.0]
    cooldown = RejectionCooldown(lambda: now[0], seconds=60, size=2, strikes=2)
    cooldown.start("GET https://a.example/1")
    cooldown.start("GET https://a.example/2")
    assert cooldown.active("POST https://a.example:443/other")
    assert not cooldown.active("GET https://b.example/1")
    assert not cooldown.active("GET http://a.example/1")  # another scheme: another origin
    for host in ("c", "d", "e"):  # strikes are remembered for at most `size` origins
        cooldown.start(f"GET https://{host}.example/1")
    cooldown.start("GET https://c.example/2")
    assert not cooldown.active("GET https://c.example/3")  # c's first strike was forgotten
    now[0] = 61.0
    assert not cooldown.active("GET https://a.example/3")


# -- error.type takes registered codes only --------------------------------------------------


def test_a_new_error_code_per_answer_mints_no_metric_series(
    make_env: Callable[..., Env], otel: Otel
) -> None:
    codes = [secrets.token_hex(20) + "x" for _ in range(60)]  # 41 characters each
    issuer = TokenIssuer(answers=[{"status_code": 400, "json": {"error": code}} for code in codes])
    env = make_env(
        issuer=issuer, failure_backoff=0, probe_interval=0, max_retries=0,
        meter_provider=otel.meter_provider, tracer_provider=otel.tracer_provider,
    )
    for _ in codes:
        with pytest.raises(OAuthProviderError):
            env.session.get(API + "books")
    assert issuer.count == 60
    # 0.2: 60 series, one per code.
    assert otel.requests_by() == {("error", "OAuthProviderError"): 60}
    assert not any(code in otel.recorded_text() for code in codes)


def test_one_endpoint_refusing_again_after_its_cool_down_is_no_new_strike(
    make_env: Callable[..., Env], clock: FakeClock
) -> None:
    env = make_env()
    env.api.register_uri("GET", API + "forbidden", status_code=401)
    for i in range(REJECTION_ORIGIN_STRIKES):  # refuses a fresh token once per cool-down
        if i:
            clock.advance(REJECTION_COOLDOWN + 1)
        env.session.get(API + "forbidden")
    assert env.issuer.count == 1 + REJECTION_ORIGIN_STRIKES
    # The origin did not cool down: a revocation elsewhere is recovered from at once.
    env.api.register_uri("GET", API + "books", [{"status_code": 401}, {"json": {"ok": True}}])
    assert env.session.get(API + "books").json() == {"ok": True}
