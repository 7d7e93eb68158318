"""The request policy generator (reqcc.policy, contract items 9-11, 18-19, 23, 36), driven by hand.

No network: each test drives ``RequestPolicy.flow`` with ``next``/``send``, giving it the
tokens it asks for (``OBTAIN``) and the answers to what it sends (``Send``), as a front end
would. The manager is real (its retirement, DPoP prover and 401 cool-down are what the
policy uses) but never fetches: its token is set by hand.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

import pytest

from reqcc import ClientCredentialsManager, InsecureTransportError, OAuthToken
from reqcc.policy import OBTAIN, RequestPolicy, Send, rejects_token
from tests.dpop_reference import unverified_claims

from .conftest import FakeClock

API = "https://api.example.com/"
INVALID = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
NONCE_CHALLENGE = {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "n-1"}


def make_manager(clock: FakeClock, **kwargs: Any) -> ClientCredentialsManager:
    return ClientCredentialsManager(
        token_url="https://auth.example.com/token", client_id="c", client_secret="s",
        clock=clock, monotonic=clock, refresh_ahead=0, **kwargs,
    )


def token(value: str, token_type: str = "Bearer") -> OAuthToken:
    return OAuthToken(access_token=value, token_type=token_type, expires_in=3600)


@pytest.fixture
def manager(clock: FakeClock) -> ClientCredentialsManager:
    m = make_manager(clock)
    m.token = token("tok-1")
    return m


def expect_send(step: Any) -> Mapping[str, str]:
    assert isinstance(step, Send), step
    return step.headers


def finished(flow: Generator[Any, Any, None], answer: tuple[int, Mapping[str, str]]) -> bool:
    try:
        flow.send(answer)
    except StopIteration:
        return True
    return False


def test_the_warm_path_asks_for_a_token_then_sends_it_as_bearer(manager: ClientCredentialsManager) -> None:
    flow = RequestPolicy(manager, base_url=API).flow("GET", API + "books")
    assert next(flow) is OBTAIN
    assert expect_send(flow.send(manager.get_token())) == {"Authorization": "Bearer tok-1"}
    assert finished(flow, (200, {}))


def test_an_explicit_authorization_header_or_a_url_outside_base_url_is_sent_untouched(
    manager: ClientCredentialsManager,
) -> None:
    policy = RequestPolicy(manager, base_url=API)
    for flow in (
        policy.flow("GET", API + "books", explicit=True),
        policy.flow("GET", "https://other.example.com/books"),
        policy.flow("GET", "https://api.example.com.evil/"),  # base_url ends with "/"
    ):
        assert expect_send(next(flow)) == {}  # no OBTAIN: no token is even looked at
        assert finished(flow, (401, INVALID))  # and its 401 retires nothing
    assert manager.token is not None and manager.token.access_token == "tok-1"


def test_base_url_is_matched_case_insensitively_like_a_requests_mount(
    manager: ClientCredentialsManager,
) -> None:
    flow = RequestPolicy(manager, base_url=API).flow("GET", "HTTPS://API.example.com/books")
    assert next(flow) is OBTAIN


@pytest.mark.parametrize("url", ["http://api.example.com/books", "http://10.0.0.1/"])
def test_plain_http_to_a_remote_host_is_refused_before_anything_is_sent(
    manager: ClientCredentialsManager, url: str
) -> None:
    flow = RequestPolicy(manager).flow("GET", url)
    with pytest.raises(InsecureTransportError):
        next(flow)


def test_loopback_http_is_allowed_but_not_through_a_proxy(manager: ClientCredentialsManager) -> None:
    assert next(RequestPolicy(manager).flow("GET", "http://127.0.0.1:8080/")) is OBTAIN
    flow = RequestPolicy(manager).flow("GET", "http://127.0.0.1:8080/", proxies={"http": "http://proxy:3128"})
    with pytest.raises(InsecureTransportError, match="proxy"):
        next(flow)
    # https through a proxy is a CONNECT tunnel: fine.
    assert next(RequestPolicy(manager).flow("GET", API, proxies={"https": "http://proxy:3128"})) is OBTAIN


def test_a_401_retires_the_token_and_replays_once_with_a_fresh_one(manager: ClientCredentialsManager) -> None:
    flow = RequestPolicy(manager).flow("POST", API + "orders")
    next(flow)
    first = manager.get_token()
    flow.send(first)
    assert flow.send((401, INVALID)) is OBTAIN  # asks for a fresh token to replay with
    assert manager.token is None  # retired
    manager.token = token("tok-2")
    assert expect_send(flow.send(manager.get_token())) == {"Authorization": "Bearer tok-2"}
    assert finished(flow, (200, {}))


def test_a_401_without_www_authenticate_counts_as_invalid_token(manager: ClientCredentialsManager) -> None:
    flow = RequestPolicy(manager).flow("GET", API)
    next(flow)
    flow.send(manager.get_token())
    assert flow.send((401, {})) is OBTAIN


@pytest.mark.parametrize(
    "status, headers",
    [
        (403, {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}),
        (401, {"WWW-Authenticate": 'Bearer error="invalid_request"'}),
        (200, {}),
        (0, {}),  # an answer from another origin, after redirects
    ],
)
def test_other_answers_neither_retire_nor_replay(
    manager: ClientCredentialsManager, status: int, headers: dict[str, str]
) -> None:
    flow = RequestPolicy(manager).flow("GET", API)
    next(flow)
    flow.send(manager.get_token())
    assert finished(flow, (status, headers))
    assert manager.token is not None


def test_a_body_that_cannot_be_replayed_retires_but_returns_the_401(
    manager: ClientCredentialsManager,
) -> None:
    flow = RequestPolicy(manager).flow("POST", API, replayable=False)
    next(flow)
    flow.send(manager.get_token())
    assert finished(flow, (401, INVALID))
    assert manager.token is None


def test_a_token_already_replaced_is_not_retired_again(manager: ClientCredentialsManager) -> None:
    flow = RequestPolicy(manager).flow("GET", API)
    next(flow)
    old = manager.get_token()
    flow.send(old)
    manager.token = token("tok-2")  # another request already replaced it
    assert flow.send((401, INVALID)) is OBTAIN
    assert manager.token is not None and manager.token.access_token == "tok-2"


def test_a_refused_fresh_token_starts_the_cool_down_and_then_401s_retire_nothing(
    manager: ClientCredentialsManager, clock: FakeClock
) -> None:
    policy = RequestPolicy(manager)
    flow = policy.flow("GET", API + "admin?x=1")
    next(flow)
    flow.send(manager.get_token())
    flow.send((401, INVALID))
    manager.token = token("tok-2")
    flow.send(manager.get_token())
    assert finished(flow, (401, INVALID))  # the fresh token was refused too: no third try
    assert manager.rejection_cooldown.active(f"GET {API}admin")

    flow = policy.flow("GET", API + "admin?x=2")  # the same endpoint, another query
    next(flow)
    flow.send(manager.get_token())
    assert finished(flow, (401, INVALID))
    assert manager.token is not None and manager.token.access_token == "tok-2"  # not retired

    clock.advance(manager.rejection_cooldown.seconds + 1)
    flow = policy.flow("GET", API + "admin")
    next(flow)
    flow.send(manager.get_token())
    assert flow.send((401, INVALID)) is OBTAIN  # cooled down: retired and replayed again


def refuse_fresh(policy: RequestPolicy, manager: ClientCredentialsManager, url: str, fresh: str) -> None:
    """One request to ``url`` whose token and then freshly fetched ``fresh`` are both refused."""
    flow = policy.flow("GET", url)
    next(flow)
    flow.send(manager.get_token())
    assert flow.send((401, INVALID)) is OBTAIN
    manager.token = token(fresh)
    flow.send(manager.get_token())
    assert finished(flow, (401, INVALID))


def test_an_origin_refusing_fresh_tokens_on_many_paths_cools_down_as_a_whole(
    manager: ClientCredentialsManager,
) -> None:
    # contract item 34, as the requests adapter does it: /orders/<id> paths each refusing
    # freshly fetched tokens cool the origin down after a few, not one path at a time.
    policy = RequestPolicy(manager)
    strikes = manager.rejection_cooldown.strikes
    for i in range(strikes):
        refuse_fresh(policy, manager, f"{API}orders/{i}", f"tok-{i + 2}")
    flow = policy.flow("GET", API + "orders/999")  # a path never seen: the origin is cooling
    next(flow)
    flow.send(manager.get_token())
    assert finished(flow, (401, INVALID))
    assert manager.token is not None and manager.token.access_token == f"tok-{strikes + 1}"


def test_a_fresh_token_accepted_on_the_origin_starts_its_strikes_over(
    manager: ClientCredentialsManager,
) -> None:
    policy = RequestPolicy(manager)
    strikes = manager.rejection_cooldown.strikes
    for i in range(strikes - 1):
        refuse_fresh(policy, manager, f"{API}orders/{i}", f"tok-{i + 2}")
    flow = policy.flow("GET", API + "books")  # revoked token; the fresh one is accepted
    next(flow)
    flow.send(manager.get_token())
    assert flow.send((401, INVALID)) is OBTAIN
    manager.token = token("tok-ok")
    flow.send(manager.get_token())
    assert finished(flow, (200, {}))
    refuse_fresh(policy, manager, f"{API}orders/last", "tok-last")  # one strike, not the last
    flow = policy.flow("GET", API + "orders/next")
    next(flow)
    flow.send(manager.get_token())
    assert flow.send((401, INVALID)) is OBTAIN  # not cooling: retired and replayed


def test_a_fresh_token_that_expired_before_its_replay_was_answered_starts_no_cool_down(
    manager: ClientCredentialsManager, clock: FakeClock
) -> None:
    # An async client's pool can hold a request for longer than the token has left (issue
    # 20: 4-s tokens, seconds in httpx's pool). The replay's 401 is then the token's age,
    # not the endpoint refusing good tokens: no cool-down, on the endpoint or its origin.
    policy = RequestPolicy(manager)
    for i in range(manager.rejection_cooldown.strikes + 1):
        manager.token = token(f"tok-sent-{i}")
        flow = policy.flow("GET", f"{API}orders/{i}")
        next(flow)
        flow.send(manager.get_token())
        assert flow.send((401, INVALID)) is OBTAIN  # retired and replayed: no cool-down so far
        manager.token = token(f"tok-fresh-{i}")
        flow.send(manager.get_token())
        clock.advance(3600)  # the replay waited past the fresh token's expiry
        assert finished(flow, (401, INVALID))
        assert not manager.rejection_cooldown.active(f"GET {API}orders/{i}")
    # The origin is not cooling either: a 401 on a new path retires and replays.
    flow = policy.flow("GET", API + "orders/next")
    next(flow)
    manager.token = token("tok-next")
    flow.send(manager.get_token())
    assert flow.send((401, INVALID)) is OBTAIN


def test_the_same_token_refused_twice_does_not_start_the_cool_down(manager: ClientCredentialsManager) -> None:
    flow = RequestPolicy(manager).flow("GET", API)
    next(flow)
    same = manager.get_token()
    flow.send(same)
    flow.send((401, INVALID))
    flow.send(same)  # the manager handed out the same token again (e.g. a provider's)
    assert finished(flow, (401, INVALID))
    assert not manager.rejection_cooldown.active(f"GET {API}")


# -- DPoP ------------------------------------------------------------------------------


@pytest.fixture
def dpop_manager(clock: FakeClock) -> ClientCredentialsManager:
    m = make_manager(clock, dpop=True)
    m.token = token("dtok-1", "DPoP")
    return m


def test_a_dpop_token_goes_with_a_fresh_proof_carrying_ath_per_send(
    dpop_manager: ClientCredentialsManager,
) -> None:
    policy = RequestPolicy(dpop_manager)
    proofs = []
    for _ in range(2):
        flow = policy.flow("GET", API + "books?page=2")
        next(flow)
        headers = expect_send(flow.send(dpop_manager.get_token()))
        assert headers["Authorization"] == "DPoP dtok-1"
        proofs.append(unverified_claims(headers["DPoP"]))
        assert finished(flow, (200, {}))
    assert proofs[0]["htm"] == "GET" and proofs[0]["htu"] == API + "books"
    assert "ath" in proofs[0] and "nonce" not in proofs[0]
    assert proofs[0]["jti"] != proofs[1]["jti"]


def test_use_dpop_nonce_is_replayed_once_with_the_nonce_without_retiring(
    dpop_manager: ClientCredentialsManager,
) -> None:
    flow = RequestPolicy(dpop_manager).flow("GET", API)
    next(flow)
    flow.send(dpop_manager.get_token())
    replay = expect_send(flow.send((401, NONCE_CHALLENGE)))
    assert unverified_claims(replay["DPoP"])["nonce"] == "n-1"
    assert finished(flow, (401, {**NONCE_CHALLENGE, "DPoP-Nonce": "n-2"}))  # once only
    assert dpop_manager.token is not None  # not retired
    flow = RequestPolicy(dpop_manager).flow("GET", API)
    next(flow)
    headers = expect_send(flow.send(dpop_manager.get_token()))
    assert unverified_claims(headers["DPoP"])["nonce"] == "n-2"  # the latest one remembered


def test_a_nonce_challenge_without_a_replayable_body_is_returned(
    dpop_manager: ClientCredentialsManager,
) -> None:
    flow = RequestPolicy(dpop_manager).flow("POST", API, replayable=False)
    next(flow)
    flow.send(dpop_manager.get_token())
    assert finished(flow, (401, NONCE_CHALLENGE))


def test_a_dpop_token_on_a_manager_without_a_key_is_a_configuration_error(
    manager: ClientCredentialsManager,
) -> None:
    from reqcc import ConfigurationError

    flow = RequestPolicy(manager).flow("GET", API)
    next(flow)
    with pytest.raises(ConfigurationError, match="no DPoP key"):
        flow.send(token("dtok", "DPoP"))


# -- entering later: present() and answered(), as the requests adapter does ----------------


class Rewinds:
    """A ``replayable`` callable that counts how often it was asked (and answers ``result``)."""

    def __init__(self, result: bool) -> None:
        self.result = result
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.result


def test_answered_ends_at_once_on_an_answer_that_needs_nothing(manager: ClientCredentialsManager) -> None:
    sent = manager.get_token()
    invalid_request = {"WWW-Authenticate": 'Bearer error="invalid_request"'}
    for status, headers in ((200, {}), (403, {}), (401, invalid_request)):
        rewind = Rewinds(True)
        flow = RequestPolicy(manager).answered("GET", API, sent, (status, headers), replayable=rewind)
        assert next(flow, None) is None
        assert rewind.calls == 0  # nothing to replay: the body is left alone
    assert manager.token is sent


def test_answered_a_401_retires_and_replays_like_flow(manager: ClientCredentialsManager) -> None:
    # The state the adapter's inline Bearer warm path hands over: token sent, 401 came back.
    sent = manager.get_token()
    rewind = Rewinds(True)
    flow = RequestPolicy(manager).answered("PUT", API + "orders/1", sent, (401, INVALID), replayable=rewind)
    assert next(flow) is OBTAIN
    assert manager.token is None and rewind.calls == 1  # retired, body made ready before asking
    manager.token = token("tok-2")
    assert expect_send(flow.send(manager.get_token())) == {"Authorization": "Bearer tok-2"}
    assert finished(flow, (401, INVALID))  # the fresh token refused too: the endpoint cools down
    assert manager.rejection_cooldown.active(f"PUT {API}orders/1")
    assert rewind.calls == 1


def test_a_replayable_callable_saying_no_returns_the_401_after_retiring(
    manager: ClientCredentialsManager,
) -> None:
    rewind = Rewinds(False)
    sent = manager.get_token()
    flow = RequestPolicy(manager).answered("POST", API, sent, (401, INVALID), replayable=rewind)
    assert next(flow, None) is None
    assert rewind.calls == 1 and manager.token is None


def test_a_replayable_callable_is_not_asked_in_the_cool_down(
    manager: ClientCredentialsManager,
) -> None:
    manager.rejection_cooldown.start(f"GET {API}")
    rewind = Rewinds(True)
    flow = RequestPolicy(manager).answered("GET", API, manager.get_token(), (401, INVALID), replayable=rewind)
    assert next(flow, None) is None
    assert rewind.calls == 0 and manager.token is not None


def test_present_starts_with_the_send_of_the_given_token(dpop_manager: ClientCredentialsManager) -> None:
    held = dpop_manager.get_token()
    flow = RequestPolicy(dpop_manager).present("GET", API + "books", held)
    headers = expect_send(next(flow))  # no OBTAIN: the front end brought the token
    assert headers["Authorization"] == "DPoP dtok-1"
    assert unverified_claims(headers["DPoP"])["htu"] == API + "books"
    assert finished(flow, (200, {}))


def test_present_replays_a_nonce_challenge_once_asking_the_body_first(
    dpop_manager: ClientCredentialsManager,
) -> None:
    rewind = Rewinds(True)
    flow = RequestPolicy(dpop_manager).present("GET", API, dpop_manager.get_token(), replayable=rewind)
    next(flow)
    assert rewind.calls == 0
    replay = expect_send(flow.send((401, NONCE_CHALLENGE)))
    assert unverified_claims(replay["DPoP"])["nonce"] == "n-1" and rewind.calls == 1
    assert finished(flow, (200, {}))
    refused = Rewinds(False)
    flow = RequestPolicy(dpop_manager).present("GET", API, dpop_manager.get_token(), replayable=refused)
    next(flow)
    assert finished(flow, (401, {**NONCE_CHALLENGE, "DPoP-Nonce": "n-3"}))  # cannot rewind: returned
    assert refused.calls == 1 and dpop_manager.token is not None


def test_answered_with_a_dpop_token_notes_the_nonce_and_replays_with_it(
    dpop_manager: ClientCredentialsManager,
) -> None:
    flow = RequestPolicy(dpop_manager).answered("GET", API, dpop_manager.get_token(), (401, NONCE_CHALLENGE))
    replay = expect_send(next(flow))
    assert unverified_claims(replay["DPoP"])["nonce"] == "n-1"
    assert finished(flow, (200, {}))


def test_the_fresh_dpop_token_of_a_replay_gets_its_nonce_replay_too(
    dpop_manager: ClientCredentialsManager,
) -> None:
    # 401 invalid_token -> retire -> the fresh token's send is asked for a nonce -> one
    # replay with it; the endpoint accepted the fresh token: no cool-down.
    rewind = Rewinds(True)
    flow = RequestPolicy(dpop_manager).flow("GET", API + "orders", replayable=rewind)
    next(flow)
    flow.send(dpop_manager.get_token())
    assert flow.send((401, {"WWW-Authenticate": 'DPoP error="invalid_token"'})) is OBTAIN
    dpop_manager.token = token("dtok-2", "DPoP")
    first = expect_send(flow.send(dpop_manager.get_token()))
    assert first["Authorization"] == "DPoP dtok-2" and "nonce" not in unverified_claims(first["DPoP"])
    replay = expect_send(flow.send((401, {**NONCE_CHALLENGE, "DPoP-Nonce": "n-7"})))
    assert replay["Authorization"] == "DPoP dtok-2"
    assert unverified_claims(replay["DPoP"])["nonce"] == "n-7"
    assert finished(flow, (200, {}))
    assert rewind.calls == 2  # before each of the two replays
    assert not dpop_manager.rejection_cooldown.active(f"GET {API}orders")


def test_admit_returns_the_origin_prefix_it_found_fit(manager: ClientCredentialsManager) -> None:
    policy = RequestPolicy(manager)
    assert policy.admit(API + "books?x=1") == ("https://api.example.com/",)
    assert policy.admit("http://127.0.0.1:8080/a") == ("http://127.0.0.1:8080/",)
    assert policy.admit("https://api.example.com?x=/y") == ("https://api.example.com?x=/",)
    assert policy.admit("https://api.example.com") == ()  # no "/" after the host: nothing to remember
    with pytest.raises(InsecureTransportError):
        policy.admit("http://api.example.com/")
    with pytest.raises(InsecureTransportError, match="proxy"):  # remembered, but a proxy applies
        policy.admit("http://127.0.0.1:8080/b", {"http": "http://proxy:3128"})


# -- the pieces ------------------------------------------------------------------------


def test_rejects_token_reads_a_bounded_challenge() -> None:
    assert rejects_token(401, None) and rejects_token(401, 'Bearer realm="x", error="invalid_token"')
    assert not rejects_token(403, None)
    assert not rejects_token(401, 'Bearer error="insufficient_scope"')
    assert not rejects_token(401, "Bearer " + "x" * 10_000 + ' error="invalid_token"')


def test_send_never_shows_its_headers() -> None:
    shown = repr(Send({"Authorization": "Bearer s3cret-token"}, token("s3cret-token")))
    assert "s3cret-token" not in shown and "Authorization" in shown


def test_usable_token_never_fetches(clock: FakeClock) -> None:
    manager = make_manager(clock)
    assert manager.usable_token() is None  # no token: None, and no request (no token_session was used)
    manager.token = token("tok-1")
    assert manager.usable_token() is manager.token
    clock.advance(3600)
    assert manager.usable_token() is None  # expired
    manager.token = token("tok-2")
    manager.invalidate(token("tok-2"))
    assert manager.usable_token() is None  # retired


def test_usable_token_starts_the_background_renewal_in_the_renewal_window(clock: FakeClock) -> None:
    import requests_mock

    from .conftest import TOKEN_URL, TokenIssuer, manager_kwargs
    from .threads import wait_until

    auth = requests_mock.Adapter()
    issuer = TokenIssuer(expires_in=100)
    auth.register_uri("POST", TOKEN_URL, text=issuer)
    manager = ClientCredentialsManager(**manager_kwargs(clock, auth, refresh_ahead=0.2, clock_skew=0))
    manager.token = OAuthToken(access_token="tok-0", token_type="Bearer", expires_in=100)
    clock.advance(79)
    assert manager.usable_token() is manager.token and issuer.requests == []  # not in the window yet
    clock.advance(2)
    held = manager.usable_token()
    assert held is not None and held.access_token == "tok-0"  # handed out at once, still valid
    assert wait_until(lambda: manager.token is not None and manager.token.access_token == "tok-1")
    assert len(issuer.requests) == 1


def test_the_secure_origins_remembered_never_let_another_host_through(
    manager: ClientCredentialsManager,
) -> None:
    policy = RequestPolicy(manager)
    assert next(policy.flow("GET", "http://127.0.0.1:8080/a")) is OBTAIN  # remembered from here on
    assert next(policy.flow("GET", "http://127.0.0.1:8080/b?x=1")) is OBTAIN
    for url in ("http://127.0.0.1.evil.example/", "http://127.0.0.2.nip.io/", "http://10.0.0.1:8080/"):
        with pytest.raises(InsecureTransportError):
            next(policy.flow("GET", url))
