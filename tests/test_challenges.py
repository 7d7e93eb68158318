"""reqcc.challenges: ``WWW-Authenticate`` read within bounds (contract item 34)."""

from __future__ import annotations

from reqcc.challenges import MAX_CHALLENGES, MAX_LENGTH, MAX_PARAMS, error_code, parse_www_authenticate


def test_at_most_max_challenges_are_read() -> None:
    value = ", ".join(["a"] * 10_000)  # 0.2: 10 000 challenges (a dict each)
    assert parse_www_authenticate(value) == [("a", {})] * MAX_CHALLENGES


def test_at_most_max_params_are_read_per_challenge() -> None:
    value = "DPoP " + ", ".join(f"p{i}=v" for i in range(1000))
    ((scheme, params),) = parse_www_authenticate(value)
    assert scheme == "dpop" and params == {f"p{i}": "v" for i in range(MAX_PARAMS)}


def test_nothing_past_max_length_is_read() -> None:
    padding = 'Bearer realm="' + "x" * MAX_LENGTH + '"'
    late = padding + ', DPoP error="use_dpop_nonce"'
    assert parse_www_authenticate(late) == [("bearer", {})]  # the cut realm is malformed: it stops there
    assert error_code('Bearer realm="' + "x" * MAX_LENGTH + '", error="invalid_token"') is None


def test_a_usual_header_is_read_whole() -> None:
    value = (
        'Bearer realm="' + "x" * 1000 + '", error="invalid_token", '
        'DPoP algs="ES256", error="use_dpop_nonce"'
    )
    assert parse_www_authenticate(value) == [
        ("bearer", {"realm": "x" * 1000, "error": "invalid_token"}),
        ("dpop", {"algs": "ES256", "error": "use_dpop_nonce"}),
    ]
    assert error_code(value) == "invalid_token"


def test_error_code_is_lenient_as_rfc_6750_servers_are() -> None:
    assert error_code("Bearer error=Invalid_Token") == "invalid_token"
    assert error_code('Bearer realm=api error="invalid_token"') == "invalid_token"  # no comma
    assert error_code('Bearer realm="api"') is None
