"""The libraries compared, each configured as its documentation recommends for client credentials.

Every contender is built by one function from the same :class:`Env`: the API's base URL,
the token endpoint, the inner transport (a :class:`StubAdapter` in-process, a pooled
``HTTPAdapter`` over loopback) mounted on every session involved, and ``margin_scale``, the
factor applied to each library's *own default* early-expiry margin when tokens are
short-lived (the benchmark compresses hours into seconds; the margins shrink with them).

Each build returns a ``requests.Session`` (or subclass) whose ``get`` is what the benchmark
times, after ``warm`` has obtained the first token the way the library's docs do it.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.models import Response
from requests.structures import CaseInsensitiveDict
from server import STATIC_TOKEN

import reqcc

CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret-not-a-real-one"


class StubAdapter(BaseAdapter):
    """The inner transport of the in-process run: a 200 for every request, no network.

    Every request gets a fresh ``requests.Response`` (as a real transport builds one), so no
    library profits from state left on a shared object. ``POST`` to the token URL gets a
    token response instead (used once, to warm up; ``token_type`` DPoP when the request carries
    a DPoP proof). The same class serves every library.
    """

    def __init__(self, token_url: str, body: bytes = b'{"id": 1}') -> None:
        super().__init__()
        self.token_url = token_url
        self.body = body
        self.token_body = b'{"access_token": "stub-token", "token_type": "Bearer", "expires_in": 3600}'

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        """Return a new 200 response for ``request`` (no I/O)."""
        if request.url != self.token_url:
            body = self.body
        elif "DPoP" in request.headers:  # a DPoP client gets a DPoP token, as a DPoP server answers
            body = self.token_body.replace(b'"Bearer"', b'"DPoP"')
        else:
            body = self.token_body
        response = _response(200, body)
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        """Nothing to release."""


def _response(status: int, body: bytes) -> Response:
    response = Response()
    response.status_code = status
    response.headers = CaseInsensitiveDict(
        {"Content-Type": "application/json", "Content-Length": str(len(body))}
    )
    response._content = body
    response._content_consumed = True  # type: ignore[attr-defined]
    response.encoding = "utf-8"
    response.reason = "OK"
    return response


@dataclass
class Env:
    """Where a contender's session sends its requests, and through what."""

    api_url: str
    token_url: str
    transport: Callable[[], BaseAdapter]
    margin_scale: float = 1.0
    client_id: str = CLIENT_ID


def stub_env(margin_scale: float = 1.0) -> Env:
    """The in-process environment: https URLs that never leave the process."""
    token_url = "https://auth.bench.invalid/oauth/token"
    return Env("https://api.bench.invalid/", token_url, lambda: StubAdapter(token_url), margin_scale)


def pooled_transport(pool: int = 32) -> Callable[[], BaseAdapter]:
    """Plain ``HTTPAdapter`` factories with a pool large enough for ``pool`` threads."""
    return lambda: HTTPAdapter(pool_connections=4, pool_maxsize=pool)


def _mount(session: requests.Session, env: Env) -> requests.Session:
    # No environment look-ups (.netrc, proxy variables, REQUESTS_CA_BUNDLE) on any session:
    # with trust_env on, a session pays a .netrc look-up per request unless an adapter skips
    # it, which would measure the environment rather than the library.
    session.trust_env = False
    session.mount("https://", env.transport())
    session.mount("http://", env.transport())
    return session


# -- the floor ---------------------------------------------------------------------------


def build_floor(env: Env) -> requests.Session:
    """Plain ``requests.Session`` with a static ``Authorization`` header: the cost of no auth logic."""
    session = _mount(requests.Session(), env)
    session.headers["Authorization"] = f"Bearer {STATIC_TOKEN}"
    return session


# -- reqcc -------------------------------------------------------------------------------


def build_reqcc(env: Env, **options: Any) -> requests.Session:
    """reqcc's ``ClientCredentialsSession``, the inner transport given as ``adapter=``.

    ``options`` are further keywords of the session (the variant rows use them).
    """
    token_session = _mount(requests.Session(), env)
    session = reqcc.ClientCredentialsSession(
        token_url=env.token_url,
        client_id=env.client_id,
        client_secret=CLIENT_SECRET,
        base_url=env.api_url,
        adapter=env.transport(),
        token_session=token_session,
        clock_skew=30.0 * env.margin_scale,  # reqcc's default margin, 30 s
        **options,
    )
    session.trust_env = False
    return session


class Unavailable(Exception):
    """A contender that cannot be built here (a feature not there yet); the message says why."""


def build_reqcc_dpop(env: Env) -> requests.Session:
    """reqcc with DPoP (RFC 9449): a proof signed per request. A row once reqcc has ``dpop=``."""
    try:
        return build_reqcc(env, dpop=True)
    except TypeError as exc:
        if "dpop" in str(exc):
            raise Unavailable("reqcc has no dpop= yet (issue 11)") from None
        raise


def build_reqcc_telemetry(env: Env) -> requests.Session:
    """reqcc with OpenTelemetry on (issue 12): an SDK meter and tracer provider with in-memory
    readers, given to the session. The warm path records nothing, so this row measures that."""
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        raise Unavailable("opentelemetry-sdk is not installed (pip install opentelemetry-sdk)") from None
    return build_reqcc(
        env,
        meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
        tracer_provider=TracerProvider(),
    )


# -- requests-oauthlib -------------------------------------------------------------------


def build_requests_oauthlib(env: Env) -> requests.Session:
    """``OAuth2Session`` + ``BackendApplicationClient``, as its "Backend Application Flow" page shows.

    ``fetch_token`` is called once (in :func:`warm`). requests-oauthlib has no renewal for
    this grant: ``auto_refresh_url`` uses a refresh token, which client-credentials
    responses do not carry, so once the token expires every request raises
    ``TokenExpiredError`` until the application fetches again itself.
    """
    from oauthlib.oauth2 import BackendApplicationClient
    from requests_oauthlib import OAuth2Session

    session = OAuth2Session(client=BackendApplicationClient(client_id=env.client_id))
    return _mount(session, env)


def _warm_requests_oauthlib(session: Any, env: Env) -> None:
    session.fetch_token(token_url=env.token_url, client_id=env.client_id, client_secret=CLIENT_SECRET)


# -- Authlib ----------------------------------------------------------------------------


def build_authlib(env: Env) -> requests.Session:
    """Authlib's requests ``OAuth2Session`` with ``token_endpoint`` and ``grant_type="client_credentials"``.

    With both set, Authlib fetches a new token by itself when the current one is within
    ``leeway`` (default 60 s) of expiring (its "Auto Update Token" docs).
    """
    from authlib.integrations.requests_client import OAuth2Session

    session = OAuth2Session(
        client_id=env.client_id,
        client_secret=CLIENT_SECRET,
        token_endpoint=env.token_url,
        grant_type="client_credentials",
        leeway=60.0 * env.margin_scale,  # Authlib's default leeway, 60 s
    )
    return _mount(session, env)


def _warm_authlib(session: Any, env: Env) -> None:
    session.fetch_token()


# -- requests-auth -----------------------------------------------------------------------


def build_requests_auth(env: Env) -> requests.Session:
    """A plain session with ``auth=OAuth2ClientCredentials(...)`` (requests-auth).

    Its tokens live in a process-wide cache (``OAuth2.token_cache``), cleared here so that
    each benchmark run starts cold.
    """
    from requests_auth import OAuth2, OAuth2ClientCredentials

    OAuth2.token_cache.clear()
    token_session = _mount(requests.Session(), env)
    session = _mount(requests.Session(), env)
    session.auth = OAuth2ClientCredentials(
        env.token_url,
        client_id=env.client_id,
        client_secret=CLIENT_SECRET,
        early_expiry=30.0 * env.margin_scale,  # requests-auth's default, 30 s
        session=token_session,
    )
    return session


# -- requests-oauth2client ---------------------------------------------------------------


def build_requests_oauth2client(env: Env, **options: Any) -> requests.Session:
    """A plain session with ``auth=OAuth2ClientCredentialsAuth(OAuth2Client(...))``.

    ``testing=True`` only lets its ``OAuth2Client`` accept the loopback ``http://`` token
    endpoint of the local runs (it insists on https otherwise); ``options`` are further
    keywords of that ``OAuth2Client`` (the DPoP row uses them).
    """
    from requests_oauth2client import OAuth2Client, OAuth2ClientCredentialsAuth

    token_session = _mount(requests.Session(), env)
    client = OAuth2Client(
        token_endpoint=env.token_url,
        client_id=env.client_id,
        client_secret=CLIENT_SECRET,
        session=token_session,
        testing=env.token_url.startswith("http://"),
        **options,
    )
    session = _mount(requests.Session(), env)
    session.auth = OAuth2ClientCredentialsAuth(client, leeway=20.0 * env.margin_scale)  # default 20 s
    return session


def build_requests_oauth2client_dpop(env: Env) -> requests.Session:
    """requests-oauth2client with DPoP: ``OAuth2Client(..., dpop_bound_access_tokens=True)``.

    As its DPoP docs show: the client generates an ES256 key (its default ``dpop_alg``) for the
    token request, the token comes back as a ``DPoPToken`` holding that key, and the same
    ``OAuth2ClientCredentialsAuth`` then signs a proof (with ``ath``) for every request.
    """
    return build_requests_oauth2client(env, dpop_bound_access_tokens=True)


# -- the table of contenders -------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """One library under test."""

    name: str
    module: str  # what must be importable
    build: Callable[[Env], requests.Session]
    warm_up: Callable[[Any, Env], None] | None = None
    renews: bool = True  # obtains a new token by itself when the old one runs out
    margin: float = 0.0  # its default early-expiry margin, seconds (scaled in the local runs)

    def available(self) -> bool:
        """Whether the library is installed."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:
            return False

    def warm(self, session: requests.Session, env: Env) -> None:
        """Obtain the first token and open the connection: one request, as the docs do."""
        if self.warm_up is not None:
            self.warm_up(session, env)
        response = session.get(env.api_url + "books/1")
        response.raise_for_status()


FLOOR = Contender("floor (static header)", "requests", build_floor, renews=False)
REQCC = Contender("reqcc", "reqcc", build_reqcc, margin=30.0)
#: reqcc configured otherwise, for the per-request overhead table only (benchmarks/overhead.py),
#: with the peer's DPoP row beside reqcc's so the two signing paths are compared side by side.
#: A row whose build raises :class:`Unavailable` is skipped with its message.
REQCC_VARIANTS: tuple[Contender, ...] = (
    Contender("reqcc + DPoP", "reqcc", build_reqcc_dpop, margin=30.0),
    Contender(
        "requests-oauth2client + DPoP", "requests_oauth2client", build_requests_oauth2client_dpop, margin=20.0
    ),
    Contender("reqcc + telemetry on", "reqcc", build_reqcc_telemetry, margin=30.0),
)
CONTENDERS: tuple[Contender, ...] = (
    FLOOR,
    REQCC,
    Contender(
        "requests-oauthlib", "requests_oauthlib", build_requests_oauthlib, _warm_requests_oauthlib,
        renews=False,
    ),
    Contender("Authlib", "authlib", build_authlib, _warm_authlib, margin=60.0),
    Contender("requests-auth", "requests_auth", build_requests_auth, margin=30.0),
    Contender("requests-oauth2client", "requests_oauth2client", build_requests_oauth2client, margin=20.0),
)


@contextlib.contextmanager
def built(contender: Contender, env: Env) -> Iterator[Any]:
    """A contender's session, warmed up (first token obtained), closed afterwards."""
    session = contender.build(env)
    try:
        contender.warm(session, env)
        yield session
    finally:
        session.close()
