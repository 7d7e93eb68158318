"""A manager's configuration: the keywords it takes, and how each is checked.

Everything here runs once, in the constructor; nothing here runs per request or per
token. Each keyword is declared once, in :class:`~reqcc.ClientCredentialsManager`'s
signature (name, type, default) and its docstring (meaning). :class:`ManagerKeywords`
mirrors the names and types for type checkers, as PEP 692 needs a ``TypedDict`` for the
``**kwargs`` the session, the adapter and ``mount`` pass through (a test keeps it equal to
the signature). :func:`check_config` takes the keywords as one mapping, as bound to the
signature, and returns a :class:`ManagerConfig` (the mapping with checked values, and what
was built from it) or raises a :class:`~reqcc.ConfigurationError` naming the keyword and
what it must be.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import urlsplit

import requests

from ._keywords import unexpected_keywords
from ._urls import require_secure_url
from .client_assertion import AssertionCallable
from .client_auth import JWT_AUTH_METHODS, TLS_AUTH_METHODS, ClientAuth, make_client_auth
from .dpop import DPoPKey, DPoPProver
from .errors import ConfigurationError
from .oauth_token import OAuthToken
from .scopes import OAuthScope

if TYPE_CHECKING:  # for the provider's type only: the manager is the layer above
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

    from .discovered import DiscoveredEndpoint  # imported by check_config, with issuer= only
    from .manager import ClientCredentialsManager
    from .stores._shared import SharedTokens  # the store machinery: imported with token_store= only
    from .stores.base import TokenStore
    from .telemetry import Telemetry
    from .to_server import Timeout
    from .token_endpoint import TokenEndpoint  # the token request's modules: imported by check_config

__all__ = [
    "DEFAULT_REFRESH_AHEAD",
    "DEFAULT_TOKEN_DEADLINE",
    "ManagerConfig",
    "ManagerKeywords",
    "TokenProvider",
    "TokenUpdateCallback",
    "check_config",
    "check_dpop",
    "normalize_scopes",
]


def __getattr__(name: str) -> Any:
    """Serve ``share`` and ``store_key``, importable from here as before, from :mod:`reqcc.store_source`.

    That module (and the store machinery under it) loads with the first ``token_store=``.
    """
    if name in ("share", "store_key"):
        from . import store_source

        return getattr(store_source, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

#: ``(last_token, manager) -> OAuthToken`` (a dict is accepted too).
TokenProvider = Callable[[OAuthToken | None, "ClientCredentialsManager"], Any]
#: ``(token) -> None``
TokenUpdateCallback = Callable[[OAuthToken], None]

#: What separates the scopes in a single string: spaces and/or commas.
_SCOPE_SEPARATORS = re.compile(r"[\s,]+")

#: Fraction of a token's lifetime, before the skew margin, in which it is renewed ahead.
DEFAULT_REFRESH_AHEAD = 0.2
#: Seconds one token fetch may take for every thread that needs it (contract item 14).
DEFAULT_TOKEN_DEADLINE = 30.0
#: Seconds between two probes of a failing token endpoint while no usable token is held (item 27).
DEFAULT_PROBE_INTERVAL = 1.0


class ManagerKeywords(TypedDict, total=False):
    """The keywords of :class:`~reqcc.ClientCredentialsManager`, with their types.

    The static mirror of the manager's signature, which declares each keyword (name, type
    and default) and documents it: PEP 692 types a ``**kwargs`` only with a ``TypedDict``,
    so the session, the adapter and :func:`~reqcc.mount` pass ``Unpack[ManagerKeywords]``
    through to the manager they create, and a type checker checks each keyword by name and
    type. A test keeps this list identical to the signature (same names, order and types).
    At run time the pass-through signatures and the misspelt-keyword messages are built
    from the manager's signature (:mod:`reqcc._keywords`); :func:`check_config` takes the
    keywords as a ``ManagerKeywords``, whose names the manager hands over.
    """

    token_url: str | None
    issuer: str | None
    metadata_url: str | None
    client_id: str | None
    client_secret: str | None
    scopes: Iterable[OAuthScope | str] | str | None
    token: OAuthToken | Mapping[str, Any] | None
    clock_skew: float
    token_provider: TokenProvider | None
    on_token_update: TokenUpdateCallback | None
    auth_method: str | ClientAuth | None
    basic_auth_encoding: str
    private_key: str | bytes | Mapping[str, Any] | None
    assertion_algorithm: str | None
    assertion_audience: str | Sequence[str] | None
    client_assertion_file: str | os.PathLike[str] | None
    client_assertion: AssertionCallable | None
    token_params: Mapping[str, str] | None
    timeout: Timeout | None
    token_session: requests.Session | None
    refresh_ahead: float
    max_retries: int
    retry_backoff: float
    max_retry_wait: float
    failure_backoff: float
    max_failure_backoff: float
    probe_interval: float
    token_deadline: float
    clock: Callable[[], float]
    monotonic: Callable[[], float]
    sleep: Callable[[float], None]
    token_store: TokenStore | None
    dpop: bool | None
    dpop_key: str | bytes | Mapping[str, Any] | DPoPKey | None
    meter_provider: MeterProvider | None
    tracer_provider: TracerProvider | None


@dataclass(frozen=True)
class ManagerConfig:
    """A manager's checked configuration (what :func:`check_config` returns).

    ``keywords`` is the manager's keywords as checked, so no keyword is declared again
    here: each with the value given, or the checked one where the check converts it of the
    same type (the seconds as ``float``, the ``token_store``). The credentials and the token
    (``client_secret``, ``private_key``, ``client_assertion``, ``dpop_key``, ``token``) are
    left out: the client authentication, the DPoP prover and the manager hold what they
    need of them. The other fields are what was built from the keywords, or normalized
    into another type: the token endpoint with its client authentication (with
    ``issuer=``: ``endpoint`` is ``None`` and ``discovery`` builds it on first need), the
    client identifier (a ``str``), the scopes' wire values, the checked ``token_params``,
    the DPoP prover and the telemetry. ``shared`` is ``None`` until the endpoint is known,
    as the store key depends on it.
    """

    keywords: ManagerKeywords = field(repr=False)
    endpoint: TokenEndpoint | None
    discovery: DiscoveredEndpoint | None
    client_id: str
    scopes: tuple[str, ...]
    token_params: dict[str, str]
    dpop: DPoPProver | None
    telemetry: Telemetry
    shared: SharedTokens | None


def _seconds(value: Any, keyword: str, *, allow_zero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{keyword} must be a number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigurationError(f"{keyword} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def _check_timeout(timeout: Any) -> Timeout:
    if isinstance(timeout, tuple):
        if len(timeout) != 2:
            raise ConfigurationError("timeout must be seconds or a (connect, read) pair")
        return (
            _seconds(timeout[0], "timeout", allow_zero=False),
            _seconds(timeout[1], "timeout", allow_zero=False),
        )
    return _seconds(timeout, "timeout", allow_zero=False)


def normalize_scopes(scopes: Iterable[OAuthScope | str] | str | None) -> tuple[str, ...]:
    """Return the wire values of ``scopes``, in order, without duplicates.

    The one reading of scopes, for the Python keyword and the command line alike
    (``--scope``, ``REQCC_SCOPES``): a single string is a list separated by spaces and/or
    commas; an item that is exactly the name of an :class:`OAuthScope` member
    (``"BooksRead"``) means that member's wire value (``"books.read"``); any other string
    is sent as it is.

    :raises ConfigurationError: an item is neither an :class:`OAuthScope` nor a ``str``,
        or is not a single scope token (empty, or with whitespace in it).
    """
    if scopes is None:
        return ()
    if isinstance(scopes, str):
        scopes = [part for part in _SCOPE_SEPARATORS.split(scopes) if part]
    out: list[str] = []
    try:
        items = list(scopes)
    except TypeError:
        raise ConfigurationError(
            f"scopes must be an iterable of OAuthScope or str, got {type(scopes).__name__}"
        ) from None
    members = OAuthScope.__members__
    for item in items:
        if isinstance(item, OAuthScope):
            value = item.value
        elif isinstance(item, str):
            value = members[item].value if item in members else item
        else:
            raise ConfigurationError(
                f"scopes: {item!r} is neither an OAuthScope nor a str"
            )
        if not value or any(ch.isspace() for ch in value):
            raise ConfigurationError(f"scopes: {value!r} is not a single scope token")
        if value not in out:
            out.append(value)
    return tuple(out)


def _check_token_url(token_url: Any) -> str:
    if token_url is None:
        raise ConfigurationError("token_url is required (the token endpoint's https URL)")
    if not isinstance(token_url, str) or "://" not in token_url:
        raise ConfigurationError(f"token_url must be an absolute URL, got {token_url!r}")
    if "@" in urlsplit(token_url).netloc:
        raise ConfigurationError(
            "token_url must not carry credentials (user:password@host); "
            "pass client_id= and client_secret= instead"
        )
    require_secure_url(token_url, "token_url")
    return token_url


def check_dpop(dpop: bool | None, dpop_key: Any, clock: Callable[[], float]) -> DPoPProver | None:
    """Return the DPoP prover the ``dpop``/``dpop_key`` keywords ask for, or ``None`` (no DPoP).

    ``dpop=True`` alone generates an EC P-256 key; ``dpop_key`` (PEM, private JWK or a
    :class:`~reqcc.DPoPKey`) implies DPoP, and contradicts an explicit ``dpop=False``.
    Keys made here stamp their proofs with ``clock``; a ``DPoPKey`` keeps its own.
    """
    if dpop is not None and not isinstance(dpop, bool):
        raise ConfigurationError(f"dpop must be True or False, got {type(dpop).__name__}")
    if dpop_key is None:
        return DPoPProver(DPoPKey(clock=clock)) if dpop else None
    if dpop is False:
        raise ConfigurationError("dpop_key= asks for DPoP, but dpop=False: drop one of the two")
    if isinstance(dpop_key, DPoPKey):
        return DPoPProver(dpop_key)
    if not isinstance(dpop_key, (str, bytes, Mapping)):
        raise ConfigurationError(
            "dpop_key must be PEM (str or bytes), a private JWK dict or a DPoPKey, "
            f"got {type(dpop_key).__name__}"
        )
    return DPoPProver(DPoPKey(dpop_key, clock=clock))


def check_config(**keywords: Unpack[ManagerKeywords]) -> ManagerConfig:
    """Check the manager's keywords (all but ``token``) and build its token endpoint.

    ``keywords`` are the manager's keywords, every one given (``token`` may be left out and
    is not checked here): the defaults are the manager's, in its signature, and the manager
    hands over its keywords as bound to it. So a keyword is declared once, in
    :class:`~reqcc.ClientCredentialsManager`'s signature; :class:`ManagerKeywords` mirrors it
    for type checkers, and what is checked here is read from the mapping by name.
    With ``issuer=`` the endpoint is not built (nothing is fetched here): what can be
    checked without the server's metadata is checked now, and ``discovery`` builds the
    endpoint on first need.

    The checks run in a fixed order, so the first problem reported is always the same.

    :raises TypeError: a keyword is missing, or is not one of the manager's (as a call
        naming a parameter that does not exist).
    :raises ConfigurationError: a keyword is of the wrong type or out of range.
    :raises InsecureTransportError: ``token_url``, ``issuer`` or ``metadata_url`` is plain
        http to a non-loopback host.
    """
    _require_every_keyword(keywords)
    token_url, issuer, metadata_url = keywords["token_url"], keywords["issuer"], keywords["metadata_url"]
    discover = issuer is not None or metadata_url is not None
    if token_url is None and not discover:
        raise ConfigurationError(
            "token_url is required (the token endpoint's https URL), or issuer= instead (the "
            "authorization server's issuer identifier, whose metadata names the token endpoint)"
        )
    if token_url is not None and discover:
        raise ConfigurationError(
            f"give token_url= or {'issuer' if issuer is not None else 'metadata_url'}=, not both (with "
            "issuer= or metadata_url=, the token endpoint is the one the metadata names)"
        )
    if discover:
        from .discovery import check_issuer, check_metadata_url  # discovery loads when configured

        if issuer is not None:
            issuer = check_issuer(issuer)
        if metadata_url is not None:
            metadata_url = check_metadata_url(metadata_url)
    else:
        token_url = _check_token_url(token_url)
    client_id, client_secret = keywords["client_id"], keywords["client_secret"]
    if not isinstance(client_id, str) or not client_id:
        raise ConfigurationError("client_id is required (a non-empty string)")
    if client_secret is not None and not isinstance(client_secret, str):
        raise ConfigurationError("client_secret must be a string")
    if keywords["token_provider"] is not None and not callable(keywords["token_provider"]):
        raise ConfigurationError("token_provider must be callable: (last_token, manager) -> OAuthToken")
    if keywords["on_token_update"] is not None and not callable(keywords["on_token_update"]):
        raise ConfigurationError("on_token_update must be callable: (token) -> None")
    token_session = keywords["token_session"]
    if token_session is not None and not isinstance(token_session, requests.Session):
        raise ConfigurationError("token_session must be a requests.Session")
    max_retries = keywords["max_retries"]
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigurationError(f"max_retries must be an integer >= 0, got {max_retries!r}")
    keywords["refresh_ahead"] = _seconds(keywords["refresh_ahead"], "refresh_ahead")
    if keywords["refresh_ahead"] >= 1:
        raise ConfigurationError(
            f"refresh_ahead is a fraction of the lifetime in [0, 1), got {keywords['refresh_ahead']!r}"
        )
    clock, monotonic, sleep = keywords["clock"], keywords["monotonic"], keywords["sleep"]
    for name, value in (("clock", clock), ("monotonic", monotonic), ("sleep", sleep)):
        if not callable(value):
            raise ConfigurationError(f"{name} must be callable")

    keywords["clock_skew"] = _seconds(keywords["clock_skew"], "clock_skew")
    keywords["failure_backoff"] = _seconds(keywords["failure_backoff"], "failure_backoff")
    keywords["max_failure_backoff"] = _seconds(keywords["max_failure_backoff"], "max_failure_backoff")
    keywords["probe_interval"] = _seconds(keywords["probe_interval"], "probe_interval")
    keywords["token_deadline"] = _seconds(keywords["token_deadline"], "token_deadline", allow_zero=False)
    scopes = normalize_scopes(keywords["scopes"])
    prover = check_dpop(keywords["dpop"], keywords["dpop_key"], clock)
    timeout = None if keywords["timeout"] is None else _check_timeout(keywords["timeout"])
    retry_backoff = keywords["retry_backoff"] = _seconds(keywords["retry_backoff"], "retry_backoff")
    max_retry_wait = keywords["max_retry_wait"] = _seconds(keywords["max_retry_wait"], "max_retry_wait")
    from .telemetry import create_telemetry  # the token request's modules load with the first manager
    from .token_endpoint import TokenEndpoint, check_form_fields

    telemetry = create_telemetry(
        client_id, meter_provider=keywords["meter_provider"], tracer_provider=keywords["tracer_provider"]
    )
    # Read now: with issuer=, build_auth runs after this function has returned, and the
    # mapping it returns keeps no credential.
    private_key, client_assertion_file = keywords["private_key"], keywords["client_assertion_file"]
    client_assertion = keywords["client_assertion"]

    def build_auth(method: str | ClientAuth) -> ClientAuth:
        client_auth = make_client_auth(
            method,
            client_id,
            client_secret,
            basic_auth_encoding=keywords["basic_auth_encoding"],
            private_key=private_key,
            assertion_algorithm=keywords["assertion_algorithm"],
            assertion_audience=keywords["assertion_audience"],
            client_assertion_file=client_assertion_file,
            client_assertion=client_assertion,
            clock=clock,
        )
        if client_auth.method in TLS_AUTH_METHODS and token_session is None:
            raise ConfigurationError(
                f"auth_method={client_auth.method!r} authenticates with a client certificate: pass "
                "token_session=, a requests.Session whose cert (or adapter) presents it"
            )
        return client_auth

    # Built now whenever the method is known (a bad key or a missing secret fails here):
    # given, implied by a private key or a platform's assertion, or the default of a fixed
    # token_url.
    auth_method = keywords["auth_method"]
    has_assertion = client_assertion_file is not None or client_assertion is not None
    has_key = private_key is not None or has_assertion
    known_auth: ClientAuth | None = None
    if auth_method is not None:
        known_auth = build_auth(auth_method)
    elif has_assertion or (discover and private_key is not None):
        known_auth = build_auth("private_key_jwt")
    elif not discover:
        known_auth = build_auth("client_secret_basic")
    else:
        _check_credentials_for_discovery(keywords)

    def make_endpoint(url: str, method: str) -> TokenEndpoint:
        client_auth = known_auth if known_auth is not None else build_auth(method)
        return TokenEndpoint(
            url,
            client_auth,
            scope=" ".join(scopes) or None,
            token_params=keywords["token_params"],
            timeout=timeout,
            session=token_session,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
            max_retry_wait=max_retry_wait,
            clock=clock,
            sleep=sleep,
            dpop=prover,
            telemetry=telemetry,
            monotonic=monotonic,
        )

    endpoint: TokenEndpoint | None = None
    discovery: DiscoveredEndpoint | None = None
    if discover:
        from .discovered import DiscoveredEndpoint, key_credential

        discovery = DiscoveredEndpoint(
            issuer,
            make_endpoint,
            auth_method=None if auth_method is None or known_auth is None else known_auth.method,
            has_client_secret=client_secret is not None,
            has_private_key=has_key,
            key_credential=key_credential(
                client_assertion_file=client_assertion_file, client_assertion=client_assertion
            ),
            session=token_session,
            timeout=timeout,
            clock=clock,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
            max_retry_wait=max_retry_wait,
            sleep=sleep,
            metadata_url=metadata_url,
        )
    else:
        assert token_url is not None and known_auth is not None
        endpoint = make_endpoint(token_url, known_auth.method)
    token_params = check_form_fields(keywords["token_params"] or {}, "token_params")
    shared = None
    if keywords["token_store"] is not None:  # the store machinery loads with its first user, not with reqcc
        from .store_source import share
        from .stores.base import check_token_store

        store = keywords["token_store"] = check_token_store(keywords["token_store"])
        if endpoint is not None:
            shared = share(store, endpoint, scopes, monotonic=monotonic, sleep=sleep, clock=clock)
    # The credentials and the token are not kept: they live on in what was built from them
    # (the client authentication, the DPoP prover, the manager's token), and only there.
    keywords.pop("client_secret", None)
    keywords.pop("private_key", None)
    keywords.pop("client_assertion", None)
    keywords.pop("dpop_key", None)
    keywords.pop("token", None)
    return ManagerConfig(
        keywords,
        endpoint=endpoint,
        discovery=discovery,
        client_id=client_id,
        scopes=scopes,
        token_params=token_params,
        dpop=prover,
        telemetry=telemetry,
        shared=shared,
    )


def _require_every_keyword(keywords: Mapping[str, Any]) -> None:
    """Raise the ``TypeError`` of a call to :func:`check_config` missing a keyword or naming an unknown one.

    What the 0.2 signature (every keyword a required parameter) raised; the names are
    :class:`ManagerKeywords`' (``token`` may be left out).
    """
    names = ManagerKeywords.__annotations__
    unknown = [name for name in keywords if name not in names]
    if unknown:
        raise unexpected_keywords("check_config", unknown, names)
    missing = [name for name in names if name != "token" and name not in keywords]
    if missing:
        raise TypeError(f"check_config() missing keyword arguments: {', '.join(map(repr, missing))}")


def _check_credentials_for_discovery(keywords: ManagerKeywords) -> None:
    """With discovery (``issuer=``, ``metadata_url=``) and no ``auth_method``: check what the choice needs."""
    if not keywords["client_secret"]:
        raise ConfigurationError(
            "with issuer= (or metadata_url=) and no auth_method=, give client_secret= (or private_key=): "
            "reqcc picks a method the server lists for it; or pass auth_method= (such as 'none' for a "
            "public client)"
        )
    basic_auth_encoding = keywords["basic_auth_encoding"]
    if basic_auth_encoding not in ("form", "raw"):
        raise ConfigurationError(f"basic_auth_encoding must be 'form' or 'raw', got {basic_auth_encoding!r}")
    jwt_keywords = (
        ("assertion_algorithm", keywords["assertion_algorithm"]),
        ("assertion_audience", keywords["assertion_audience"]),
    )
    for name, value in jwt_keywords:
        if value is not None:
            raise ConfigurationError(
                f"{name} is used only with a JWT method: with issuer=, pass "
                f"auth_method={JWT_AUTH_METHODS[0]!r} (or private_key= for {JWT_AUTH_METHODS[1]!r}) too"
            )
