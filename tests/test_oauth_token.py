"""OAuthToken: expiry from a response (item 1), expiry judgement with skew (item 2), dict/JSON forms."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from reqcc import OAuthToken
from reqcc.oauth_token import DEFAULT_CLOCK_SKEW

NOW = 1_700_000_000.0


# -- item 1: expiry is absolute Unix seconds, now + expires_in at receipt ------------------


def test_expiry_is_receipt_time_plus_expires_in() -> None:
    token = OAuthToken.from_response({"access_token": "abc", "expires_in": 3600}, now=NOW)
    assert token.expiry == NOW + 3600
    assert token.expires_in == 3600


def test_expiry_defaults_to_the_real_utc_clock() -> None:
    before = time.time()
    token = OAuthToken.from_response({"access_token": "abc", "expires_in": 60})
    after = time.time()
    assert token.expiry is not None
    assert before + 60 <= token.expiry <= after + 60


def test_expires_in_as_a_numeric_string_is_accepted() -> None:
    token = OAuthToken.from_response({"access_token": "abc", "expires_in": "3600"}, now=NOW)
    assert token.expires_in == 3600
    assert token.expiry == NOW + 3600


@pytest.mark.parametrize("bad", ["soon", "", [], {}, True, -5, float("nan")])
def test_malformed_expires_in_is_a_value_error_naming_the_field(bad: object) -> None:
    with pytest.raises(ValueError, match="expires_in"):
        OAuthToken.from_response({"access_token": "abc", "expires_in": bad}, now=NOW)


def test_a_response_expiry_field_is_ignored_in_favour_of_receipt_time() -> None:
    # A server's own expires_at/expiry is on its clock; ours is now + expires_in.
    data = {"access_token": "abc", "expires_in": 100, "expiry": 5.0, "expires_at": 7.0}
    assert OAuthToken.from_response(data, now=NOW).expiry == NOW + 100


def test_no_expires_in_means_no_expiry_and_never_expired_by_the_clock() -> None:
    token = OAuthToken.from_response({"access_token": "abc"}, now=NOW)
    assert token.expiry is None
    assert token.expires_in is None
    assert token.is_expired(now=NOW + 10 * 365 * 86400) is False
    assert token.is_expired(skew=10**9, now=10**12) is False


def test_missing_token_type_is_bearer_and_case_is_ignored() -> None:
    assert OAuthToken.from_dict({"access_token": "a"}).token_type == "Bearer"
    assert OAuthToken.from_dict({"access_token": "a", "token_type": "bearer"}).token_type == "Bearer"
    assert OAuthToken.from_dict({"access_token": "a", "token_type": "BEARER"}).token_type == "Bearer"


def test_dpop_token_type_is_recorded_in_one_spelling() -> None:
    for spelling in ("DPoP", "dpop", "DPOP"):
        token = OAuthToken.from_dict({"access_token": "a", "token_type": spelling})
        assert token.token_type == "DPoP"
        assert OAuthToken.from_dict(token.to_dict()).token_type == "DPoP"
    assert OAuthToken("a", token_type="dpop").token_type == "DPoP"
    assert OAuthToken("a", token_type="bearer").token_type == "Bearer"


@pytest.mark.parametrize("token_type", ["mac", "N_A", "", 5])
def test_other_token_types_are_refused(token_type: object) -> None:
    with pytest.raises(ValueError, match="token_type"):
        OAuthToken.from_dict({"access_token": "a", "token_type": token_type})


@pytest.mark.parametrize("data", [{}, {"access_token": ""}, {"access_token": 42}, {"token_type": "Bearer"}])
def test_missing_access_token_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="access_token"):
        OAuthToken.from_dict(data)


def test_requested_scope_is_recorded_when_the_response_has_none() -> None:
    token = OAuthToken.from_response({"access_token": "a"}, now=NOW, requested_scope="books.read orders.read")
    assert token.scope == "books.read orders.read"
    assert token.scopes == ("books.read", "orders.read")
    granted = OAuthToken.from_response(
        {"access_token": "a", "scope": "books.read"}, now=NOW, requested_scope="books.read orders.read"
    )
    assert granted.scopes == ("books.read",)


# -- item 2: expired <=> expiry - min(skew, lifetime/2) <= now ----------------------------


def test_default_skew_is_30_seconds() -> None:
    assert DEFAULT_CLOCK_SKEW == 30
    token = OAuthToken.from_response({"access_token": "a", "expires_in": 3600}, now=NOW)
    assert token.is_expired(now=NOW + 3600 - 31) is False
    assert token.is_expired(now=NOW + 3600 - 30) is True


def test_expiry_without_skew_is_exact() -> None:
    token = OAuthToken.from_response({"access_token": "a", "expires_in": 3600}, now=NOW)
    assert token.is_expired(skew=0, now=NOW + 3599) is False
    assert token.is_expired(skew=0, now=NOW + 3600) is True
    assert token.is_expired(skew=0, now=NOW + 3601) is True


def test_expiry_with_skew_subtracts_it() -> None:
    token = OAuthToken.from_response({"access_token": "a", "expires_in": 3600}, now=NOW)
    assert token.is_expired(skew=100, now=NOW + 3499) is False
    assert token.is_expired(skew=100, now=NOW + 3500) is True


def test_skew_is_capped_at_half_the_lifetime() -> None:
    token = OAuthToken.from_response({"access_token": "a", "expires_in": 40}, now=NOW)
    assert token.effective_skew(30) == 20
    assert token.is_expired(skew=30, now=NOW) is False  # not expired on arrival
    assert token.is_expired(skew=30, now=NOW + 19) is False
    assert token.is_expired(skew=30, now=NOW + 20) is True


def test_a_skew_longer_than_the_lifetime_still_leaves_half_of_it() -> None:
    token = OAuthToken.from_response({"access_token": "a", "expires_in": 10}, now=NOW)
    assert token.is_expired(skew=3600, now=NOW + 4) is False
    assert token.is_expired(skew=3600, now=NOW + 5) is True


def test_skew_without_known_lifetime_is_applied_in_full() -> None:
    token = OAuthToken(access_token="a", expiry=NOW + 100)
    assert token.effective_skew(30) == 30
    assert token.is_expired(skew=30, now=NOW + 69) is False
    assert token.is_expired(skew=30, now=NOW + 70) is True


# -- dict and JSON forms ("save it to a database") ----------------------------------------


def test_to_dict_from_dict_json_round_trip_is_exact() -> None:
    response = {
        "access_token": "abc.def",
        "token_type": "Bearer",
        "expires_in": 3599,
        "scope": "books.read orders.read",
        "refresh_token": "r-1",
        "id": 7,
        "nested": {"a": [1, 2.5, None, "x"], "ok": True},
    }
    token = OAuthToken.from_response(response, now=NOW + 0.123)
    saved = json.dumps(token.to_dict())
    restored = OAuthToken.from_dict(json.loads(saved), now=NOW + 5000)
    assert restored == token
    assert restored.expiry == NOW + 0.123 + 3599  # the saved expiry, not recomputed
    assert restored.extra == {"id": 7, "nested": {"a": [1, 2.5, None, "x"], "ok": True}}
    assert json.loads(json.dumps(restored.to_dict())) == json.loads(saved)


def test_round_trip_of_a_minimal_token_keeps_it_minimal() -> None:
    token = OAuthToken(access_token="abc")
    assert token.to_dict() == {"access_token": "abc", "token_type": "Bearer"}
    assert OAuthToken.from_dict(json.loads(json.dumps(token.to_dict()))) == token


def test_from_dict_reads_requests_oauthlib_expires_at() -> None:
    token = OAuthToken.from_dict({"access_token": "a", "expires_at": NOW + 10, "expires_in": 3600}, now=NOW)
    assert token.expiry == NOW + 10
    assert "expires_at" not in token.extra


def test_from_dict_with_only_expires_in_is_taken_as_fresh() -> None:
    token = OAuthToken.from_dict({"access_token": "a", "expires_in": 60}, now=NOW)
    assert token.expiry == NOW + 60


def test_from_dict_refuses_a_non_mapping() -> None:
    with pytest.raises(ValueError, match="mapping"):
        OAuthToken.from_dict(["access_token", "a"])  # type: ignore[arg-type]


def test_repr_and_str_show_a_fingerprint_never_the_tokens() -> None:
    token = OAuthToken(access_token="the-access-token-xyz", refresh_token="the-refresh-token-xyz", expiry=NOW)
    for text in (repr(token), str(token), f"{token}", repr([token])):
        assert "the-access-token-xyz" not in text
        assert "the-refresh-token-xyz" not in text
        assert token.fingerprint in text
    assert len(token.fingerprint) == 8


def test_tokens_are_hashable_value_objects() -> None:
    a = OAuthToken.from_response({"access_token": "abc", "expires_in": 60, "id": [1]}, now=NOW)
    b = OAuthToken.from_dict(a.to_dict())
    assert a == b and hash(a) == hash(b)
    assert len({a, b, OAuthToken(access_token="other")}) == 2


# -- item 16: a token must be usable as a header value, however it is made -----------------

UNSAFE = {
    "crlf": "abc\r\nX-Injected: 1",
    "lf": "abc\nX",
    "nul": "abc\x00def",
    "tab": "abc\tdef",
    "space": "abc def",
    "del": "abc\x7fdef",
    "non-ascii": "abcé",
    "unicode-line-separator": "abc\u2028def",
}


@pytest.mark.parametrize("value", list(UNSAFE.values()), ids=list(UNSAFE))
def test_an_unsafe_access_token_is_refused_without_echoing_it(value: str) -> None:
    from reqcc.oauth_token import InvalidTokenValue

    for build in (
        lambda: OAuthToken(value),
        lambda: OAuthToken.from_dict({"access_token": value}),
        lambda: OAuthToken.from_response({"access_token": value, "expires_in": 60}, now=NOW),
    ):
        with pytest.raises(InvalidTokenValue) as caught:
            build()
        assert isinstance(caught.value, ValueError)
        message = str(caught.value)
        assert "abc" not in message and "X-Injected" not in message
        assert "cannot be sent in an HTTP header" in message


@pytest.mark.parametrize("value", [*UNSAFE.values(), "", None, 42], ids=[*UNSAFE, "empty", "none", "int"])
def test_an_unsafe_access_token_is_a_reqcc_error_and_still_a_value_error(value: Any) -> None:
    # Bad input gets a typed reqcc error; ``except ValueError`` keeps catching it too.
    import reqcc

    with pytest.raises(reqcc.ReqccError) as caught:
        OAuthToken(access_token=value)
    assert type(caught.value) is reqcc.InvalidTokenValue
    assert isinstance(caught.value, reqcc.ConfigurationError)
    with pytest.raises(ValueError):
        OAuthToken.from_dict({"access_token": value})
    if isinstance(value, str) and value:
        assert value not in str(caught.value) and value not in repr(caught.value)
        assert "abc" not in str(caught.value) + repr(caught.value)


@pytest.mark.parametrize(
    "value", ["00D5e000000!AQ4AQF.x:y", "eyJ.eyJ.sig", "a+/b==", "~-._", "!\"#$%&'()*,;<>?@[]^`{|}"]
)
def test_every_visible_ascii_token_is_accepted(value: str) -> None:
    # Stricter RFC 6750 b64token checks would refuse real tokens (Salesforce's hold "!").
    assert OAuthToken(value).access_token == value


def test_a_400_digit_expires_in_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="expires_in is too large"):
        OAuthToken.from_response({"access_token": "abc", "expires_in": 10**400}, now=NOW)
    with pytest.raises(ValueError, match="expiry is too large"):
        OAuthToken.from_dict({"access_token": "abc", "expiry": -(10**400)})


def test_an_integer_lifetime_stays_an_integer() -> None:
    token = OAuthToken.from_dict({"access_token": "abc", "expires_in": 60}, now=NOW)
    assert token.to_dict()["expires_in"] == 60 and isinstance(token.expires_in, int)


def test_unsafe_tokens_are_refused_on_every_manager_path() -> None:
    import requests_mock

    from reqcc import ClientCredentialsManager, ConfigurationError, TokenProviderError

    bad = {"access_token": "abc\r\nX-Injected: 1"}
    with pytest.raises(ConfigurationError) as caught:
        ClientCredentialsManager(token_url="https://idp.example/token", client_id="c", client_secret="s",
                                 token=bad)
    assert "X-Injected" not in str(caught.value)

    manager = ClientCredentialsManager(
        token_url="https://idp.example/token", client_id="c", client_secret="s",
        token_provider=lambda last, m: bad,
    )
    with pytest.raises(TokenProviderError) as provided:
        manager.get_token()
    assert "X-Injected" not in str(provided.value)

    with pytest.raises(ConfigurationError):
        manager.token = bad
    assert manager.token is None

    session = __import__("requests").Session()
    transport = requests_mock.Adapter()
    transport.register_uri("POST", "https://idp.example/token", json=bad)
    session.mount("https://", transport)
    fetching = ClientCredentialsManager(token_url="https://idp.example/token", client_id="c",
                                        client_secret="s", token_session=session, max_retries=0)
    from reqcc import TokenResponseError

    with pytest.raises(TokenResponseError) as fetched:
        fetching.get_token()
    assert "X-Injected" not in str(fetched.value)
