"""Configuration errors at construction, with messages that name the keyword (items 2, 10)."""

from __future__ import annotations

import inspect
import os
import time
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import requests_mock

import reqcc
from reqcc import (
    ClientCredentialsAdapter,
    ClientCredentialsManager,
    ClientCredentialsSession,
    ConfigurationError,
    InsecureTransportError,
    OAuthScope,
    OAuthScopeClientCredentialsEnum,
    ReqccError,
)
from reqcc.config import check_config

from .conftest import CLIENT_ID, CLIENT_SECRET, TOKEN_URL


def base(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"token_url": TOKEN_URL, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    kwargs.update(overrides)
    return kwargs


CONSTRUCTORS = [
    pytest.param(lambda **kw: ClientCredentialsManager(**kw), id="manager"),
    pytest.param(lambda **kw: ClientCredentialsAdapter(**kw), id="adapter"),
    pytest.param(lambda **kw: ClientCredentialsSession(**kw), id="session"),
    pytest.param(lambda **kw: reqcc.mount(requests.Session(), "https://api.example.com/", **kw), id="mount"),
]


def test_configuration_error_is_a_value_error_and_a_request_exception() -> None:
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(ConfigurationError, ReqccError)
    assert issubclass(ReqccError, requests.exceptions.RequestException)
    assert issubclass(InsecureTransportError, ConfigurationError)


def test_scope_enum_wire_values_and_seed_alias() -> None:
    assert [s.value for s in OAuthScope] == ["books.read", "orders.read", "orders.write"]
    assert OAuthScope.BooksRead == "books.read"
    assert str(OAuthScope.OrdersWrite) == "orders.write"
    assert OAuthScopeClientCredentialsEnum is OAuthScope


@pytest.mark.parametrize(
    ("construct", "built_type"),
    [
        pytest.param(c.values[0], t, id=c.id)
        for c, t in zip(
            CONSTRUCTORS,
            [ClientCredentialsManager, ClientCredentialsAdapter, ClientCredentialsSession,
             ClientCredentialsAdapter],
            strict=True,
        )
    ],
)
def test_a_valid_configuration_builds(construct: Any, built_type: type) -> None:
    auth = requests_mock.Adapter()
    auth.register_uri("POST", TOKEN_URL, json={"access_token": "tok-1", "token_type": "Bearer"})
    token_session = requests.Session()
    token_session.mount("https://", auth)
    built = construct(**base(scopes=[OAuthScope.BooksRead, "custom:scope"], token_session=token_session))
    assert type(built) is built_type
    manager = built if isinstance(built, ClientCredentialsManager) else built.manager
    assert isinstance(manager, ClientCredentialsManager)
    assert (manager.token_url, manager.client_id, manager.token) == (TOKEN_URL, CLIENT_ID, None)
    assert auth.call_count == 0  # nothing is fetched at construction
    assert manager.get_token().access_token == "tok-1"
    [request] = auth.request_history
    assert request.headers["Authorization"].startswith("Basic ")
    form = parse_qs(request.text)
    assert form == {"grant_type": ["client_credentials"], "scope": ["books.read custom:scope"]}


@pytest.mark.parametrize("construct", CONSTRUCTORS)
@pytest.mark.parametrize("client_id", [None, "", 42])
def test_client_id_missing_or_not_a_string(construct: Any, client_id: Any) -> None:
    with pytest.raises(ConfigurationError, match="client_id"):
        construct(**base(client_id=client_id))


@pytest.mark.parametrize("construct", CONSTRUCTORS)
@pytest.mark.parametrize("keyword", ["client_id", "token_url"])
def test_required_keyword_omitted_is_a_configuration_error(construct: Any, keyword: str) -> None:
    kwargs = base()
    del kwargs[keyword]
    with pytest.raises(ConfigurationError, match=f"{keyword} is required"):
        construct(**kwargs)


@pytest.mark.parametrize("construct", CONSTRUCTORS)
@pytest.mark.parametrize("secret", [None, ""])
@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_secret_methods_require_a_secret(construct: Any, secret: Any, auth_method: str) -> None:
    with pytest.raises(ConfigurationError, match="client_secret"):
        construct(**base(client_secret=secret, auth_method=auth_method))


def test_unknown_auth_method() -> None:
    with pytest.raises(ConfigurationError, match="auth_method"):
        ClientCredentialsManager(**base(auth_method="private_key_jwt_please"))


@pytest.mark.parametrize("construct", CONSTRUCTORS)
def test_token_url_with_credentials_is_refused_without_echoing_them(construct: Any) -> None:
    with pytest.raises(ConfigurationError, match="token_url must not carry credentials") as info:
        construct(**base(token_url="https://user:pa55word@auth.example.com/token"))
    assert "pa55word" not in str(info.value)


@pytest.mark.parametrize("construct", CONSTRUCTORS)
@pytest.mark.parametrize(
    "url",
    [
        "http://auth.example.com/oauth/token",
        "http://10.0.0.1/token",
        "http://127.0.0.1.nip.io/token",
        "http://api.localhost/token",  # may resolve through DNS: not taken for loopback
        "ftp://auth.example.com/token",
    ],
)
def test_token_url_must_be_https_unless_loopback(construct: Any, url: str) -> None:
    with pytest.raises(InsecureTransportError, match="token_url"):
        construct(**base(token_url=url))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/token",
        "http://127.5.6.7/token",
        "http://localhost/token",
        "http://LOCALHOST:9000/token",
        "http://[::1]:8080/token",
        "https://auth.example.com/token",
    ],
)
def test_loopback_http_and_https_token_urls_are_allowed(url: str) -> None:
    assert ClientCredentialsManager(**base(token_url=url)).token_url == url


@pytest.mark.parametrize("url", [None, "", "auth.example.com/token", 5])
def test_token_url_must_be_an_absolute_url(url: Any) -> None:
    with pytest.raises(ConfigurationError, match="token_url"):
        ClientCredentialsManager(**base(token_url=url))


@pytest.mark.parametrize("construct", CONSTRUCTORS)
@pytest.mark.parametrize("skew", [-1, -0.001, "30", None, True, float("nan"), float("inf"), [30]])
def test_bad_clock_skew(construct: Any, skew: Any) -> None:
    with pytest.raises(ConfigurationError, match="clock_skew"):
        construct(**base(clock_skew=skew))


@pytest.mark.parametrize("skew", [0, 0.5, 30, 86400])
def test_good_clock_skew(skew: float) -> None:
    assert ClientCredentialsManager(**base(clock_skew=skew)).clock_skew == skew


@pytest.mark.parametrize("construct", CONSTRUCTORS)
@pytest.mark.parametrize("scopes", [[OAuthScope.BooksRead, 42], [b"books.read"], [None], 7])
def test_scope_neither_enum_nor_str(construct: Any, scopes: Any) -> None:
    with pytest.raises(ConfigurationError, match="scopes"):
        construct(**base(scopes=scopes))


@pytest.mark.parametrize("scopes", [["two words"], [""]])
def test_scope_must_be_a_single_token(scopes: list[str]) -> None:
    with pytest.raises(ConfigurationError, match="scopes"):
        ClientCredentialsManager(**base(scopes=scopes))


def test_scopes_are_normalised_to_wire_values_in_order_without_duplicates() -> None:
    manager = ClientCredentialsManager(
        **base(scopes=[OAuthScope.OrdersRead, "books.read", OAuthScope.BooksRead, "x:y"])
    )
    assert manager.scopes == ("orders.read", "books.read", "x:y")
    assert ClientCredentialsManager(**base(scopes="a  b")).scopes == ("a", "b")
    assert ClientCredentialsManager(**base(scopes=None)).scopes == ()


@pytest.mark.parametrize("construct", CONSTRUCTORS)
@pytest.mark.parametrize("keyword", ["token_provider", "on_token_update"])
@pytest.mark.parametrize("value", ["not callable", 42, object()])
def test_callbacks_must_be_callable(construct: Any, keyword: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=keyword):
        construct(**base(**{keyword: value}))


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("token_params", {"grant_type": "password"}),
        ("token_params", {"scope": "x"}),
        ("token_params", {"client_secret": "x"}),
        ("token_params", {"audience": 5}),
        ("token_params", ["audience"]),
        ("timeout", 0),
        ("timeout", -1),
        ("timeout", "5"),
        ("timeout", (5,)),
        ("token_session", object()),
        ("token", "a-bare-string"),
        ("token", {"token_type": "Bearer"}),
    ],
)
def test_other_keywords_are_checked(keyword: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=keyword):
        ClientCredentialsManager(**base(**{keyword: value}))


@pytest.mark.parametrize("base_url", ["http://api.example.com/", "http://192.168.1.5:8080/"])
def test_base_url_must_be_https_unless_loopback(base_url: str) -> None:
    with pytest.raises(InsecureTransportError, match="base_url"):
        ClientCredentialsSession(base_url=base_url, **base())


@pytest.mark.parametrize("base_url", ["api.example.com", "/books", "ftp://api.example.com/"])
def test_base_url_must_be_an_http_url_with_a_host(base_url: str) -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        ClientCredentialsSession(base_url=base_url, **base())


def test_mount_prefix_must_be_secure() -> None:
    with pytest.raises(InsecureTransportError, match="prefix"):
        reqcc.mount(requests.Session(), "http://api.example.com/", **base())


def test_manager_and_manager_keywords_together_are_refused() -> None:
    manager = ClientCredentialsManager(**base())
    with pytest.raises(TypeError, match="client_id"):
        ClientCredentialsAdapter(manager=manager, client_id="other")


def test_a_bad_configuration_sends_nothing() -> None:
    auth = requests_mock.Adapter()
    token_session = requests.Session()
    token_session.mount("https://", auth)
    token_session.mount("http://", auth)
    with pytest.raises(ConfigurationError):
        ClientCredentialsSession(**base(clock_skew=-1, token_session=token_session))
    assert auth.call_count == 0


def test_no_oauthlib_environment_variable_is_set(make_env: Any) -> None:
    before = {k: v for k, v in os.environ.items() if k.startswith("OAUTHLIB")}
    env = make_env(scopes=["books.read", "orders.read"])
    env.issuer.extra = {"scope": "books.read"}  # a narrowed scope, which oauthlib would warn about
    assert env.session.get("https://api.example.com/books").status_code == 200
    assert {k: v for k, v in os.environ.items() if k.startswith("OAUTHLIB")} == before


#: Every keyword wrong at once, in the order the checks run: (keyword, wrong value, right
#: value). The same problem must be reported first whatever the code's shape.
WRONG_IN_CHECK_ORDER: list[tuple[str, Any, Any]] = [
    ("issuer", "https://as.example.com", None),  # with token_url: not both
    ("token_url", "http://as.example.com/token", TOKEN_URL),
    ("client_id", 42, CLIENT_ID),
    ("client_secret", b"bytes", CLIENT_SECRET),
    ("token_provider", 1, None),
    ("on_token_update", 1, None),
    ("token_session", object(), None),
    ("max_retries", -1, 2),
    ("refresh_ahead", 1.5, 0.2),
    ("clock", 1, time.time),
    ("monotonic", 1, time.monotonic),
    ("sleep", 1, time.sleep),
    ("clock_skew", -1, 30),
    ("failure_backoff", -1, 1),
    ("max_failure_backoff", "60", 60),
    ("probe_interval", -1, 1),
    ("token_deadline", 0, 30),
    ("scopes", [42], None),
    ("dpop", "yes", None),
    ("timeout", (1, 2, 3), None),
    ("retry_backoff", -1, 0.5),
    ("max_retry_wait", float("nan"), 10),
    ("auth_method", "bogus", None),
    ("basic_auth_encoding", "latin-1", "form"),
    ("token_params", {"grant_type": "password"}, None),
    ("token_store", object(), None),
    ("token", "a-bare-string", None),
]

#: What each of them reports, first of all the problems left.
CHECK_ORDER_MESSAGES = [
    (
        'give token_url= or issuer=, not both (with issuer= or metadata_url=, the token endpoint is the one '
        'the metadata names)'
    ),
    (
        'token_url must use https (plain http is allowed only to a loopback host such as 127.0.0.1 or '
        'localhost); refusing http://as.example.com'
    ),
    'client_id is required (a non-empty string)',
    'client_secret must be a string',
    'token_provider must be callable: (last_token, manager) -> OAuthToken',
    'on_token_update must be callable: (token) -> None',
    'token_session must be a requests.Session',
    'max_retries must be an integer >= 0, got -1',
    'refresh_ahead is a fraction of the lifetime in [0, 1), got 1.5',
    'clock must be callable',
    'monotonic must be callable',
    'sleep must be callable',
    'clock_skew must be >= 0, got -1',
    'failure_backoff must be >= 0, got -1',
    "max_failure_backoff must be a number of seconds, got '60'",
    'probe_interval must be >= 0, got -1',
    'token_deadline must be > 0, got 0',
    'scopes: 42 is neither an OAuthScope nor a str',
    'dpop must be True or False, got str',
    'timeout must be seconds or a (connect, read) pair',
    'retry_backoff must be >= 0, got -1',
    'max_retry_wait must be a number of seconds, got nan',
    (
        'auth_method must be one of client_secret_basic, client_secret_post, client_secret_jwt, '
        "private_key_jwt, tls_client_auth, self_signed_tls_client_auth, none; got 'bogus'"
    ),
    "basic_auth_encoding must be 'form' or 'raw', got 'latin-1'",
    (
        "token_params must not set 'grant_type': reqcc sends it (use scopes=, client_id=, client_secret= or "
        'auth_method= instead)'
    ),
    (
        'token_store must implement reqcc.stores.TokenStore (read, write, acquire_lease, release_lease, '
        'lease_timeout, poll_interval), such as FileTokenStore or RedisTokenStore'
    ),
    'token must be an OAuthToken or a dict, got str',
]


#: With issuer= and no auth_method: what the choice of a method needs, in order.
WRONG_FOR_DISCOVERY_IN_CHECK_ORDER: list[tuple[str, Any, Any]] = [
    ("issuer", "https://as.example.com/?tenant=1", "https://as.example.com"),
    ("client_id", "", CLIENT_ID),
    ("client_secret", None, CLIENT_SECRET),
    ("basic_auth_encoding", "latin-1", "raw"),
    ("assertion_algorithm", "RS256", None),
    ("assertion_audience", "https://as.example.com/token", None),
]

DISCOVERY_CHECK_ORDER_MESSAGES = [
    "issuer must not have a query or fragment (RFC 8414 §2); got 'https://as.example.com/?tenant=1'",
    'client_id is required (a non-empty string)',
    (
        'with issuer= (or metadata_url=) and no auth_method=, give client_secret= (or private_key=): reqcc '
        "picks a method the server lists for it; or pass auth_method= (such as 'none' for a public client)"
    ),
    "basic_auth_encoding must be 'form' or 'raw', got 'latin-1'",
    (
        'assertion_algorithm is used only with a JWT method: with issuer=, pass '
        "auth_method='client_secret_jwt' (or private_key= for 'private_key_jwt') too"
    ),
    (
        'assertion_audience is used only with a JWT method: with issuer=, pass '
        "auth_method='client_secret_jwt' (or private_key= for 'private_key_jwt') too"
    ),
]


@pytest.mark.parametrize(
    ("wrong", "messages"),
    [
        pytest.param(WRONG_IN_CHECK_ORDER, CHECK_ORDER_MESSAGES, id="token_url"),
        pytest.param(WRONG_FOR_DISCOVERY_IN_CHECK_ORDER, DISCOVERY_CHECK_ORDER_MESSAGES, id="issuer"),
    ],
)
def test_the_checks_run_in_a_fixed_order(wrong: list[tuple[str, Any, Any]], messages: list[str]) -> None:
    # Fixing the problems one by one, in the order the checks run, reports each in turn.
    keywords = {name: value for name, value, _ in wrong}
    reported = []
    for name, _, right in wrong:
        with pytest.raises(ConfigurationError) as caught:
            ClientCredentialsManager(**keywords)
        reported.append(str(caught.value))
        keywords[name] = right
    ClientCredentialsManager(**keywords)
    print(reported)
    assert reported == messages


def _every_keyword_but_the_token(**overrides: Any) -> dict[str, Any]:
    """The manager's keywords with its defaults, ``token`` left out: what 0.2's check_config required."""
    parameters = inspect.signature(ClientCredentialsManager).parameters
    keywords = {name: p.default for name, p in parameters.items() if name != "token"}
    keywords.update(base(**overrides))
    return keywords


def test_check_config_called_by_name_as_in_0_2() -> None:
    config = check_config(**_every_keyword_but_the_token(clock_skew=10, scopes="b a b"))
    assert config.client_id == CLIENT_ID
    assert config.scopes == ("b", "a")
    assert config.endpoint is not None and config.endpoint.token_url == TOKEN_URL
    # The keywords as given, with the checked values in place: seconds are floats.
    assert config.keywords["clock_skew"] == 10.0 and type(config.keywords["clock_skew"]) is float
    assert config.keywords["token_url"] == TOKEN_URL


def test_check_config_names_a_missing_or_unknown_keyword() -> None:
    keywords = _every_keyword_but_the_token()
    del keywords["sleep"], keywords["max_retries"]
    missing = r"^check_config\(\) missing keyword arguments: 'max_retries', 'sleep'$"
    with pytest.raises(TypeError, match=missing):
        check_config(**keywords)
    with pytest.raises(TypeError, match=r"^check_config\(\) got an unexpected keyword argument 'scope'; "
                                        r"did you mean 'scopes'\?$"):
        check_config(**_every_keyword_but_the_token(), scope="a")


def test_the_checked_configuration_keeps_no_credential_and_shows_none() -> None:
    # The credentials live on in what was built from them (the client authentication keeps
    # a parsed key, not its PEM); the configuration the manager keeps holds no copy.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key, dpop_key = (
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        for _ in range(2)
    )
    token = {"access_token": "at-never-kept-0123456789", "token_type": "Bearer", "expires_in": 600}
    managers = [
        ClientCredentialsManager(**base(token=token, dpop_key=dpop_key)),
        ClientCredentialsManager(
            token_url=TOKEN_URL, client_id=CLIENT_ID, auth_method="private_key_jwt", private_key=key,
            assertion_algorithm="ES256",
        ),
    ]
    secrets = [CLIENT_SECRET, token["access_token"], *key.decode().splitlines()[1:-1]]
    secrets += dpop_key.decode().splitlines()[1:-1]
    not_kept = {"client_secret", "private_key", "client_assertion", "dpop_key", "token"}
    for manager in managers:
        config = manager._config
        assert not_kept.isdisjoint(config.keywords)
        shown = repr(config) + repr(config.keywords)
        assert [secret for secret in secrets if secret in shown] == []
