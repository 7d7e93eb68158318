"""A real OAuth 2.0 authorization server and bookstore API on 127.0.0.1, for tests and demos.

:class:`LocalAuthorizationServer` starts, in a thread, an HTTP (or https) server on a free
loopback port that serves:

- ``POST /token``: the client-credentials token endpoint, built on oauthlib's server side
  (``BackendApplicationServer`` and a ``RequestValidator``). Clients authenticate with
  ``client_secret_basic`` (RFC 6749 §2.3.1: the id and secret form-urlencoded, then
  Base64), ``client_secret_post`` or, for public clients, ``none``.
- ``POST /revoke`` (RFC 7009) and ``POST /introspect`` (RFC 7662), with client authentication.
- The protected bookstore API, checked by oauthlib's ``ResourceEndpoint``:
  ``GET /books`` needs ``books.read``, ``GET /orders`` needs ``orders.read``,
  ``POST /orders`` needs ``orders.write``. A missing, unknown, expired or revoked token gets
  ``401`` with ``WWW-Authenticate: Bearer error="invalid_token"``; a token without the
  scope gets ``403`` with ``error="insufficient_scope"`` (RFC 6750 §3.1).

Knobs for tests: registered clients and their allowed scopes, the access-token lifetime,
narrowing requested scopes to the allowed ones, revoking one token or all, failure
injection on the token endpoint (the next N requests answer 503, 429 with ``Retry-After``,
a §5.2 error, or wait first), a record of every token request's form fields and headers,
and thread-safe counters.

    from reqcc import ClientCredentialsSession
    from reqcc.testing import LocalAuthorizationServer

    with LocalAuthorizationServer(token_ttl=60) as server:
        session = ClientCredentialsSession(**server.credentials(), scopes=["books.read"])
        session.get(server.api_url + "books").json()
        server.token_requests   # 1

Only the standard library and oauthlib are used; the server binds 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import binascii
import http
import itertools
import json
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

from oauthlib.oauth2 import BackendApplicationServer, RequestValidator
from oauthlib.oauth2.rfc6749 import errors as oauth_errors

from ._log import fingerprint, log
from ._urls import is_loopback_host

__all__ = [
    "LocalAuthorizationServer",
    "RegisteredClient",
    "RecordedTokenRequest",
    "DEFAULT_CLIENTS",
    "DEFAULT_CLIENT_ID",
    "BOOKSTORE_SCOPES",
]

#: The bookstore API's scopes.
BOOKSTORE_SCOPES: frozenset[str] = frozenset({"books.read", "orders.read", "orders.write"})

#: The client :meth:`LocalAuthorizationServer.credentials` uses when none is named.
DEFAULT_CLIENT_ID = "bookstore-app"

_WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_SENSITIVE_FIELDS = frozenset({"client_secret", "client_assertion", "assertion", "password", "token"})

_BOOKS = (
    {"id": 1, "title": "A Pattern Language", "author": "Christopher Alexander"},
    {"id": 2, "title": "The Mythical Man-Month", "author": "Frederick P. Brooks Jr."},
    {"id": 3, "title": "Structure and Interpretation of Computer Programs", "author": "Abelson, Sussman"},
)


@dataclass(frozen=True)
class RegisteredClient:
    """A client the server knows.

    :param client_id: the client identifier.
    :param secret: its secret, or ``None`` for a public client (``auth_method="none"``).
    :param scopes: the scopes it may be granted. A request without ``scope`` gets all of them.
    """

    client_id: str
    secret: str | None
    scopes: frozenset[str] = BOOKSTORE_SCOPES

    def __post_init__(self) -> None:
        if isinstance(self.scopes, str):
            object.__setattr__(self, "scopes", frozenset(self.scopes.split()))
        elif not isinstance(self.scopes, frozenset):
            object.__setattr__(self, "scopes", frozenset(self.scopes))

    @property
    def is_public(self) -> bool:
        """Whether the client has no secret (it authenticates with its ``client_id`` only)."""
        return self.secret is None

    def __repr__(self) -> str:
        secret = "None" if self.secret is None else "<hidden>"
        return (
            f"RegisteredClient(client_id={self.client_id!r}, secret={secret}, scopes={sorted(self.scopes)!r})"
        )


#: The clients registered when ``clients`` is not given: one with every scope, one that may
#: only read, and a public client that may read books.
DEFAULT_CLIENTS: Mapping[str, RegisteredClient] = {
    c.client_id: c
    for c in (
        RegisteredClient(DEFAULT_CLIENT_ID, "bookstore-secret", BOOKSTORE_SCOPES),
        RegisteredClient("bookstore-reader", "reader-secret", frozenset({"books.read", "orders.read"})),
        RegisteredClient("bookstore-public", None, frozenset({"books.read"})),
    )
}

ClientSpec = RegisteredClient | tuple[str | None, Iterable[str]]


@dataclass(frozen=True, repr=False)
class RecordedTokenRequest:
    """One request the token endpoint received, as it arrived.

    :ivar form: the form fields (each name maps to the list of its values).
    :ivar headers: the request headers (names as sent; values unmodified).
    :ivar client_id: the client identifier found in the request, or ``None``.
    :ivar auth_method: ``"client_secret_basic"``, ``"client_secret_post"``, ``"none"``, or
        ``None`` when the request carried no client identification.
    :ivar status: the HTTP status the server answered.
    :ivar injected: whether a failure injected by the test answered it.

    The ``repr`` hides the ``Authorization`` header and secret-bearing fields.
    """

    form: dict[str, list[str]]
    headers: dict[str, str]
    client_id: str | None
    auth_method: str | None
    status: int = 0
    injected: bool = False

    def field(self, name: str) -> str | None:
        """Return the first value of form field ``name``, or ``None``."""
        values = self.form.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        """Return the value of header ``name`` (case-insensitive), or ``None``."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def __repr__(self) -> str:
        form = {k: (["<hidden>"] if k in _SENSITIVE_FIELDS else v) for k, v in self.form.items()}
        headers = {k: ("<hidden>" if k.lower() in _SENSITIVE_HEADERS else v) for k, v in self.headers.items()}
        return (
            f"RecordedTokenRequest(status={self.status}, client_id={self.client_id!r}, "
            f"auth_method={self.auth_method!r}, form={form!r}, headers={headers!r}, "
            f"injected={self.injected})"
        )


@dataclass
class _Injection:
    remaining: int | None  # None: until clear_failures()
    status: int | None = None
    error: str | None = None
    description: str | None = None
    retry_after: str | None = None
    delay: float = 0.0
    gate: threading.Event | None = None


@dataclass
class _IssuedToken:
    client_id: str
    scopes: frozenset[str]
    expires_at: float | None
    revoked: bool = False


@dataclass
class _Counters:
    token_requests: int = 0
    tokens_issued: int = 0
    token_errors: int = 0
    injected_failures: int = 0
    api_requests: int = 0
    api_401s: int = 0
    api_403s: int = 0
    revocations: int = 0
    tokens_revoked: int = 0


class _RedactedToken(dict[str, Any]):
    """The issued token dict, whose ``repr`` (oauthlib logs it at DEBUG) hides the token."""

    def __repr__(self) -> str:
        shown = {k: ("<hidden>" if k in ("access_token", "refresh_token") else v) for k, v in self.items()}
        return repr(shown)


def _client_credentials(
    headers: Mapping[str, str], form: Mapping[str, list[str]]
) -> tuple[str | None, str | None, str | None]:
    """Return ``(client_id, secret, auth_method)`` as the request presents them.

    :raises ValueError: a malformed Basic header, or credentials in both header and body.
    """
    authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    body_id = next(iter(form.get("client_id") or ()), None)
    body_secret = next(iter(form.get("client_secret") or ()), None)
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise ValueError("unsupported Authorization scheme at the token endpoint")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError("malformed Basic credentials") from None
        user, colon, password = decoded.partition(":")
        if not colon:
            raise ValueError("malformed Basic credentials")
        if body_secret is not None:
            raise ValueError("more than one client authentication method")
        # RFC 6749 §2.3.1: both were form-urlencoded before Base64.
        client_id, secret = unquote_plus(user), unquote_plus(password)
        if body_id is not None and body_id != client_id:
            raise ValueError("client_id in the body differs from the Basic credentials")
        return client_id, secret, "client_secret_basic"
    if body_secret is not None:
        return body_id, body_secret, "client_secret_post"
    if body_id is not None:
        return body_id, None, "none"
    return None, None, None


def _form_of(oauth_request: Any) -> dict[str, list[str]]:
    return {k: [v] for k, v in (oauth_request.decoded_body or []) if k in ("client_id", "client_secret")}


class _Validator(RequestValidator):  # type: ignore[misc]
    """oauthlib's questions about clients, scopes and tokens, answered from the server's state."""

    def __init__(self, server: LocalAuthorizationServer) -> None:
        super().__init__()
        self._server = server

    # -- clients ---------------------------------------------------------------------

    def client_authentication_required(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        return True

    def authenticate_client(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        try:
            client_id, secret, method = _client_credentials(request.headers, _form_of(request))
        except ValueError as exc:
            raise oauth_errors.InvalidClientError(description=str(exc), request=request) from None
        client = self._server._client(client_id)
        if client is None or method is None:
            return False
        if client.is_public:
            ok = method == "none"
        else:
            ok = method != "none" and secret == client.secret
        if ok:
            request.client = client
            request.client_id = client.client_id
        return ok

    def authenticate_client_id(self, client_id: str, request: Any, *args: Any, **kwargs: Any) -> bool:
        client = self._server._client(client_id)
        if client is None or not client.is_public:
            return False
        request.client = client
        return True

    def validate_grant_type(
        self, client_id: str, grant_type: str, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        return grant_type == "client_credentials"

    # -- scopes ----------------------------------------------------------------------

    def get_default_scopes(self, client_id: str, request: Any, *args: Any, **kwargs: Any) -> list[str]:
        client = self._server._client(client_id)
        return sorted(client.scopes) if client is not None else []

    def validate_scopes(
        self, client_id: str, scopes: list[str], client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        allowed: frozenset[str] = client.scopes
        if set(scopes) <= allowed:
            return True
        if not self._server.narrow_scopes:
            return False
        request.scopes = [s for s in scopes if s in allowed]
        return bool(request.scopes)

    # -- tokens ----------------------------------------------------------------------

    def save_bearer_token(self, token: Mapping[str, Any], request: Any, *args: Any, **kwargs: Any) -> None:
        self._server._save(token, request.client.client_id, request.scopes or [])

    def validate_bearer_token(self, token: str | None, scopes: list[str], request: Any) -> bool:
        problem = self._server._check(token, scopes or [])
        request.reqcc_problem = problem
        return problem is None

    def revoke_token(
        self, token: str, token_type_hint: str | None, request: Any, *args: Any, **kwargs: Any
    ) -> None:
        self._server._revoke_for(token, request.client.client_id)

    def introspect_token(
        self, token: str, token_type_hint: str | None, request: Any, *args: Any, **kwargs: Any
    ) -> dict[str, Any] | None:
        return self._server._introspect(token, request.client.client_id)


class _Server(ThreadingHTTPServer):
    """Threaded HTTP server that runs a WSGI app, wraps TLS per connection, and can drop them all."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, app: _WSGIApp, ssl_context: ssl.SSLContext | None, port: int = 0) -> None:
        self.app = app
        self.ssl_context = ssl_context
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        sock: socket.socket = request
        if self.ssl_context is not None:
            try:
                sock.settimeout(10)
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
                sock.settimeout(None)
            except (OSError, ssl.SSLError) as exc:
                log.debug("TLS handshake with the local server failed: %s", type(exc).__name__)
                request.close()
                return
        with self.connections_lock:
            self.connections.add(sock)
        try:
            super().finish_request(sock, client_address)
        finally:
            with self.connections_lock:
                self.connections.discard(sock)
            if sock is not request:
                try:
                    sock.close()
                except OSError:
                    pass

    def drop_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("local authorization server: connection error", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 (keep-alive) bridge from ``http.server`` to a WSGI app."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _run_wsgi(self) -> None:
        parts = urlsplit(self.path)
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = self._read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": parts.path,
            "QUERY_STRING": parts.query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.server.ssl_context is not None else "http",
            "wsgi.input": BytesIO(body),
            "wsgi.errors": BytesIO(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if "Content-Type" in self.headers:
            environ["CONTENT_TYPE"] = self.headers["Content-Type"]
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        status_line: list[str] = []
        response_headers: list[tuple[str, str]] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            status_line[:] = [status]
            response_headers[:] = headers

        chunks = self.server.app(environ, start_response)
        payload = b"".join(chunks)
        code, _, reason = status_line[0].partition(" ")
        self.send_response(int(code), reason)
        for name, value in response_headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():  # trailer fields, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _run_wsgi


def _normalize_clients(
    clients: Mapping[str, ClientSpec] | Iterable[RegisteredClient] | None,
) -> dict[str, RegisteredClient]:
    if clients is None:
        return dict(DEFAULT_CLIENTS)
    out: dict[str, RegisteredClient] = {}
    if isinstance(clients, Mapping):
        for client_id, spec in clients.items():
            if isinstance(spec, RegisteredClient):
                out[client_id] = spec
            else:
                secret, scopes = spec
                out[client_id] = RegisteredClient(client_id, secret, frozenset(scopes))
    else:
        for client in clients:
            out[client.client_id] = client
    return out


class LocalAuthorizationServer:
    """A client-credentials authorization server and bookstore API on ``127.0.0.1``, in a thread.

    Use it as a context manager (or call :meth:`start` and :meth:`close`). The port is
    chosen and bound at construction, so the URLs are known before it starts.

    :param clients: the registered clients: a mapping of ``client_id`` to
        ``(secret_or_None, scopes)`` or to a :class:`RegisteredClient`, or an iterable of
        :class:`RegisteredClient`. Default: :data:`DEFAULT_CLIENTS`.
    :param token_ttl: the ``expires_in`` of issued tokens, in seconds; ``None`` issues tokens
        without ``expires_in`` that never expire. Settable later (``server.token_ttl = 5``).
    :param narrow_scopes: grant the allowed part of a request asking for scopes beyond the
        client's (the token's ``scope`` says what was granted) instead of answering
        ``invalid_scope``. Settable later.
    :param ssl_context: an ``ssl.SSLContext`` with the server certificate loaded, to serve
        https; URLs then start with ``https://``.
    :param host: the host name used in URLs (``"127.0.0.1"`` or ``"localhost"``, as the
        certificate says). The server always listens on 127.0.0.1 only.
    :param port: the port to listen on (default 0: a free one, chosen by the system).
    :param token_delay: seconds every token request waits before it is answered (widens races).
    :param clock: the server's clock in seconds (default ``time.time``), for token expiry.
    """

    def __init__(
        self,
        clients: Mapping[str, ClientSpec] | Iterable[RegisteredClient] | None = None,
        *,
        token_ttl: float | None = 3600,
        narrow_scopes: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token_delay: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (
            host.strip("[]") != "127.0.0.1"
            and host.lower() != "localhost"
            and not (is_loopback_host(host) and ":" not in host)
        ):
            raise ValueError(f"host must name 127.0.0.1 (such as '127.0.0.1' or 'localhost'), got {host!r}")
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError("ssl_context must be an ssl.SSLContext")
        self.token_ttl = token_ttl
        self.narrow_scopes = narrow_scopes
        self.token_delay = token_delay
        self._clock = clock
        self._lock = threading.Lock()
        self._clients = _normalize_clients(clients)
        self._tokens: dict[str, _IssuedToken] = {}
        self._injections: deque[_Injection] = deque()
        self._records: list[RecordedTokenRequest] = []
        self._counters = _Counters()
        self._orders: list[dict[str, Any]] = []
        self._order_ids = itertools.count(1)
        self._oauth = BackendApplicationServer(_Validator(self), token_expires_in=self._expires_in)
        self._oauth.credentials_grant.register_token_modifier(_RedactedToken)
        self._httpd = _Server(self.wsgi_app, ssl_context, port)
        self.port: int = self._httpd.server_address[1]
        scheme = "https" if ssl_context is not None else "http"
        self.host = host
        self.base_url = f"{scheme}://{host}:{self.port}/"
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- URLs ------------------------------------------------------------------------

    @property
    def token_url(self) -> str:
        """The token endpoint (``POST``)."""
        return self.base_url + "token"

    @property
    def api_url(self) -> str:
        """The root of the bookstore API (``api_url + "books"``, ``api_url + "orders"``)."""
        return self.base_url

    @property
    def revocation_url(self) -> str:
        """The RFC 7009 revocation endpoint (``POST token=…``, with client authentication)."""
        return self.base_url + "revoke"

    @property
    def introspection_url(self) -> str:
        """The RFC 7662 introspection endpoint (``POST token=…``, with client authentication)."""
        return self.base_url + "introspect"

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> LocalAuthorizationServer:
        """Start serving in a daemon thread (once). Returns the server."""
        if self._closed:
            raise RuntimeError("this LocalAuthorizationServer is closed")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"reqcc-local-server-{self.port}",
                daemon=True,
            )
            self._thread.start()
            log.debug("local authorization server listening at %s", self.base_url)
        return self

    def close(self) -> None:
        """Stop serving, drop open connections and release the port."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
        self._httpd.drop_connections()
        self._httpd.server_close()

    def __enter__(self) -> LocalAuthorizationServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- clients ---------------------------------------------------------------------

    @property
    def clients(self) -> dict[str, RegisteredClient]:
        """The registered clients (a copy)."""
        with self._lock:
            return dict(self._clients)

    def register_client(self, client_id: str, secret: str | None, scopes: Iterable[str]) -> RegisteredClient:
        """Register (or replace) a client; ``secret=None`` makes it public. Returns it."""
        client = RegisteredClient(client_id, secret, frozenset(scopes))
        with self._lock:
            self._clients[client_id] = client
        return client

    def credentials(self, client_id: str = DEFAULT_CLIENT_ID) -> dict[str, Any]:
        """Return keywords for :class:`~reqcc.ClientCredentialsSession` for a registered client.

        ``token_url``, ``client_id``, ``base_url``, and ``client_secret`` (or
        ``auth_method="none"`` for a public client). Add ``scopes=`` yourself.
        """
        client = self._client(client_id)
        if client is None:
            raise KeyError(f"no registered client {client_id!r}")
        out: dict[str, Any] = {"token_url": self.token_url, "client_id": client_id, "base_url": self.api_url}
        if client.secret is None:
            out["auth_method"] = "none"
        else:
            out["client_secret"] = client.secret
        return out

    # -- tokens ----------------------------------------------------------------------

    def revoke(self, token: Any = None) -> int:
        """Revoke one access token (a string or anything with ``.access_token``), or all.

        Returns how many tokens were newly revoked. The API answers 401 ``invalid_token``
        for them from now on.
        """
        value = getattr(token, "access_token", token)
        with self._lock:
            if value is None:
                targets = [t for t in self._tokens.values() if not t.revoked]
            else:
                issued = self._tokens.get(str(value))
                targets = [issued] if issued is not None and not issued.revoked else []
            for issued in targets:
                issued.revoked = True
            self._counters.tokens_revoked += len(targets)
        return len(targets)

    def revoke_all(self) -> int:
        """Revoke every token issued so far. Returns how many were newly revoked."""
        return self.revoke(None)

    def is_active(self, token: Any) -> bool:
        """Return whether the API would accept ``token`` (a string or ``.access_token``) now."""
        value = getattr(token, "access_token", token)
        return self._check(str(value), []) is None

    # -- failure injection -----------------------------------------------------------

    def fail_token_requests(
        self,
        times: int | None = 1,
        *,
        status: int | None = None,
        error: str | None = None,
        description: str | None = None,
        retry_after: float | str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make the next ``times`` token requests fail (``None``: all, until :meth:`clear_failures`).

        Without ``error`` the answer is ``status`` (default 503) with a plain-text body; with
        ``error`` it is a §5.2 JSON error body (``status`` defaults to 401 for
        ``invalid_client``, 500 for ``server_error``, 503 for ``temporarily_unavailable``,
        else 400). ``retry_after`` adds a ``Retry-After`` header; ``delay`` waits first.
        Calls queue up: the next requests take them in order.
        """
        if status is None:
            status = (
                503
                if error is None
                else {
                    "invalid_client": 401,
                    "server_error": 500,
                    "temporarily_unavailable": 503,
                }.get(error, 400)
            )
        self._inject(
            _Injection(
                remaining=self._times(times),
                status=status,
                error=error,
                description=description,
                retry_after=None if retry_after is None else str(retry_after),
                delay=float(delay),
            )
        )

    def throttle_token_requests(self, times: int | None = 1, *, retry_after: float | str = 1) -> None:
        """Make the next ``times`` token requests answer 429 with ``Retry-After: retry_after``."""
        self.fail_token_requests(times, status=429, retry_after=retry_after)

    def delay_token_requests(self, seconds: float, times: int | None = 1) -> None:
        """Make the next ``times`` token requests wait ``seconds`` before a normal answer."""
        self._inject(_Injection(remaining=self._times(times), delay=float(seconds)))

    def hold_token_requests(self, times: int | None = 1, *, timeout: float = 60.0) -> threading.Event:
        """Make the next ``times`` token requests wait until the returned event is set.

        Deterministic where a delay is not: a test can see a fetch in flight
        (``token_requests`` went up), act meanwhile, then ``event.set()`` to let it answer
        normally. A held request gives up waiting after ``timeout`` seconds.
        """
        gate = threading.Event()
        self._inject(_Injection(remaining=self._times(times), gate=gate, delay=float(timeout)))
        return gate

    def clear_failures(self) -> None:
        """Forget every injected failure, delay and hold not used yet (held requests are released)."""
        with self._lock:
            for injection in self._injections:
                if injection.gate is not None:
                    injection.gate.set()
            self._injections.clear()

    @staticmethod
    def _times(times: int | None) -> int | None:
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise ValueError(f"times must be a positive integer or None, got {times!r}")
        return times

    def _inject(self, injection: _Injection) -> None:
        with self._lock:
            self._injections.append(injection)

    def _next_injection(self) -> _Injection | None:
        # Called with the lock held.
        if not self._injections:
            return None
        injection = self._injections[0]
        if injection.remaining is not None:
            injection.remaining -= 1
            if injection.remaining <= 0:
                self._injections.popleft()
        return injection

    # -- what happened ---------------------------------------------------------------

    @property
    def token_requests(self) -> int:
        """Requests the token endpoint received (answered or failed)."""
        return self._counters.token_requests

    @property
    def tokens_issued(self) -> int:
        """Tokens the token endpoint issued."""
        return self._counters.tokens_issued

    @property
    def token_errors(self) -> int:
        """Token requests answered with an error (injected or real)."""
        return self._counters.token_errors

    @property
    def api_requests(self) -> int:
        """Requests to the bookstore API (``/books``, ``/orders``)."""
        return self._counters.api_requests

    @property
    def api_401s(self) -> int:
        """API requests answered 401 (missing, unknown, expired or revoked token)."""
        return self._counters.api_401s

    @property
    def api_403s(self) -> int:
        """API requests answered 403 ``insufficient_scope``."""
        return self._counters.api_403s

    def stats(self) -> dict[str, int]:
        """Return a consistent snapshot of every counter."""
        with self._lock:
            return dict(vars(self._counters))

    def reset_counters(self) -> None:
        """Set every counter to zero and forget the recorded token requests."""
        with self._lock:
            self._counters = _Counters()
            self._records.clear()

    @property
    def token_request_log(self) -> list[RecordedTokenRequest]:
        """Every token request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._records)

    @property
    def last_token_request(self) -> RecordedTokenRequest | None:
        """The most recent token request, or ``None``."""
        with self._lock:
            return self._records[-1] if self._records else None

    @property
    def orders(self) -> list[dict[str, Any]]:
        """The orders created through ``POST /orders`` (a copy)."""
        with self._lock:
            return [dict(o) for o in self._orders]

    # -- the WSGI application --------------------------------------------------------

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """The WSGI application that serves every endpoint (usable in any WSGI server)."""
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO") or "/"
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = _headers_of(environ)
        uri = f"{environ['wsgi.url_scheme']}://{self.host}:{self.port}{path}"
        if environ.get("QUERY_STRING"):
            uri += "?" + environ["QUERY_STRING"]
        try:
            status, response_headers, payload = self._route(method, path, uri, headers, body)
        except Exception:
            log.exception("local authorization server: unexpected error serving %s %s", method, path)
            status, response_headers, payload = (
                500,
                {"Content-Type": "application/json"},
                b'{"error": "server_error"}',
            )
        phrase = _phrase(status)
        start_response(f"{status} {phrase}", list(response_headers.items()))
        return [payload]

    def _route(
        self, method: str, path: str, uri: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        routes: dict[str, dict[str, str | None]] = {
            "/token": {"POST": None},
            "/revoke": {"POST": None},
            "/introspect": {"POST": None},
            "/books": {"GET": "books.read"},
            "/orders": {"GET": "orders.read", "POST": "orders.write"},
            "/": {"GET": None},
        }
        allowed = routes.get(path.rstrip("/") or "/")
        if allowed is None:
            return _json(404, {"error": "not_found", "path": path})
        key = path.rstrip("/") or "/"
        if method not in allowed:
            status, response_headers, payload = _json(405, {"error": "method_not_allowed"})
            response_headers["Allow"] = ", ".join(allowed)
            return status, response_headers, payload
        if key == "/token":
            return self._token_endpoint(uri, headers, body)
        if key == "/revoke":
            with self._lock:
                self._counters.revocations += 1
            return self._oauth_answer(
                *self._oauth.create_revocation_response(uri, "POST", _text(body), headers)
            )
        if key == "/introspect":
            return self._oauth_answer(
                *self._oauth.create_introspect_response(uri, "POST", _text(body), headers)
            )
        if key == "/":
            return _json(
                200,
                {
                    "token_endpoint": self.token_url,
                    "revocation_endpoint": self.revocation_url,
                    "introspection_endpoint": self.introspection_url,
                    "api": {
                        "GET /books": "books.read",
                        "GET /orders": "orders.read",
                        "POST /orders": "orders.write",
                    },
                },
            )
        scope = allowed[method]
        assert scope is not None
        return self._api(key, method, scope, uri, headers, body)

    def _token_endpoint(
        self, uri: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        text = _text(body)
        form = parse_qs(text, keep_blank_values=True)
        try:
            client_id, _, method = _client_credentials(headers, form)
        except ValueError:
            client_id, method = None, None
        with self._lock:
            self._counters.token_requests += 1
            injection = self._next_injection()
            record = RecordedTokenRequest(form, dict(headers), client_id, method)
            self._records.append(record)
        if injection is not None and injection.gate is not None:
            injection.gate.wait(injection.delay)
            delay = self.token_delay
        else:
            delay = self.token_delay + (injection.delay if injection is not None else 0.0)
        if delay > 0:
            time.sleep(delay)
        if injection is not None and injection.status is not None:
            status, response_headers, payload = _injected_answer(injection)
            injected = True
        else:
            injected = False
            try:
                status, response_headers, payload = self._oauth_answer(
                    *self._oauth.create_token_response(uri, "POST", text, headers)
                )
            except ValueError:  # oauthlib refuses a body that is not form-urlencoded
                status, response_headers, payload = _json(
                    400, {"error": "invalid_request", "error_description": "the body is not form-urlencoded"}
                )
            if status == 200:
                payload = self._finish_token(payload)
        with self._lock:
            # Found by identity (reset_counters() may have run meanwhile), newest first.
            for index in range(len(self._records) - 1, -1, -1):
                if self._records[index] is record:
                    self._records[index] = RecordedTokenRequest(
                        record.form, record.headers, client_id, method, status, injected
                    )
                    break
            if status == 200:
                self._counters.tokens_issued += 1
            else:
                self._counters.token_errors += 1
                if injected:
                    self._counters.injected_failures += 1
        return status, response_headers, payload

    def _finish_token(self, payload: bytes) -> bytes:
        data = json.loads(payload)
        if data.get("expires_in") is None:
            data.pop("expires_in", None)
        log.debug("local authorization server issued token %s", fingerprint(data["access_token"]))
        return json.dumps(data).encode()

    def _api(
        self, path: str, method: str, scope: str, uri: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self._counters.api_requests += 1
        valid, request = self._oauth.verify_request(uri, method, _text(body) or None, headers, scopes=[scope])
        if not valid:
            problem = getattr(request, "reqcc_problem", None) or "missing_token"
            with self._lock:
                if problem == "insufficient_scope":
                    self._counters.api_403s += 1
                else:
                    self._counters.api_401s += 1
            return _bearer_error(problem, scope)
        if path == "/books":
            return _json(200, {"books": list(_BOOKS)})
        if method == "GET":
            return _json(200, {"orders": self.orders})
        try:
            item = json.loads(body or b"{}")
        except ValueError:
            return _json(400, {"error": "invalid_json"})
        if not isinstance(item, dict):
            return _json(400, {"error": "an order is a JSON object"})
        with self._lock:
            order = {**item, "id": next(self._order_ids)}
            self._orders.append(order)
        return _json(201, {"order": order})

    @staticmethod
    def _oauth_answer(
        headers: Mapping[str, str], body: str | None, status: int
    ) -> tuple[int, dict[str, str], bytes]:
        out = dict(headers or {})
        payload = (body or "").encode("utf-8")
        if payload and not any(k.lower() == "content-type" for k in out):
            out["Content-Type"] = "application/json"
        return status, out, payload

    # -- state used by the validator -------------------------------------------------

    def _expires_in(self, request: Any) -> float | None:
        return self.token_ttl

    def _client(self, client_id: str | None) -> RegisteredClient | None:
        if client_id is None:
            return None
        with self._lock:
            return self._clients.get(client_id)

    def _save(self, token: Mapping[str, Any], client_id: str, scopes: Iterable[str]) -> None:
        expires_in = token.get("expires_in")
        expires_at = None if expires_in is None else self._clock() + float(expires_in)
        with self._lock:
            self._tokens[token["access_token"]] = _IssuedToken(client_id, frozenset(scopes), expires_at)

    def _check(self, token: str | None, scopes: Iterable[str]) -> str | None:
        """Return ``None`` if ``token`` is good for ``scopes``, else the RFC 6750 error code."""
        if not token:
            return "missing_token"
        with self._lock:
            issued = self._tokens.get(token)
        if issued is None or issued.revoked:
            return "invalid_token"
        if issued.expires_at is not None and self._clock() >= issued.expires_at:
            return "invalid_token"
        if not set(scopes) <= issued.scopes:
            return "insufficient_scope"
        return None

    def _revoke_for(self, token: str, client_id: str) -> None:
        with self._lock:
            issued = self._tokens.get(token)
            # RFC 7009 §2.1: a client revokes only its own tokens; anything else is ignored.
            if issued is not None and issued.client_id == client_id and not issued.revoked:
                issued.revoked = True
                self._counters.tokens_revoked += 1

    def _introspect(self, token: str, client_id: str) -> dict[str, Any] | None:
        with self._lock:
            issued = self._tokens.get(token)
        if issued is None or self._check(token, []) is not None:
            return None
        claims: dict[str, Any] = {
            "client_id": issued.client_id,
            "scope": " ".join(sorted(issued.scopes)),
            "token_type": "Bearer",
        }
        if issued.expires_at is not None:
            claims["exp"] = int(issued.expires_at)
        return claims

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._thread is not None else "not started")
        return f"<LocalAuthorizationServer {self.base_url} {state}>"


def _headers_of(environ: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").title()] = value
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    return headers


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def _json(status: int, data: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(data).encode()


def _bearer_error(problem: str, scope: str) -> tuple[int, dict[str, str], bytes]:
    if problem == "missing_token":
        # RFC 6750 §3.1: a request without credentials gets no error code.
        status, headers, payload = _json(401, {"error": "unauthorized"})
        headers["WWW-Authenticate"] = 'Bearer realm="bookstore"'
        return status, headers, payload
    if problem == "insufficient_scope":
        description = f"this request needs the scope {scope}"
        status, headers, payload = _json(
            403, {"error": problem, "error_description": description, "scope": scope}
        )
        headers["WWW-Authenticate"] = (
            f'Bearer realm="bookstore", error="insufficient_scope", '
            f'error_description="{description}", scope="{scope}"'
        )
        return status, headers, payload
    description = "the access token is unknown, expired or revoked"
    status, headers, payload = _json(401, {"error": "invalid_token", "error_description": description})
    headers["WWW-Authenticate"] = (
        f'Bearer realm="bookstore", error="invalid_token", error_description="{description}"'
    )
    return status, headers, payload


def _injected_answer(injection: _Injection) -> tuple[int, dict[str, str], bytes]:
    assert injection.status is not None
    headers: dict[str, str] = {"Cache-Control": "no-store"}
    if injection.retry_after is not None:
        headers["Retry-After"] = injection.retry_after
    if injection.error is not None:
        data: dict[str, str] = {"error": injection.error}
        if injection.description is not None:
            data["error_description"] = injection.description
        headers["Content-Type"] = "application/json"
        return injection.status, headers, json.dumps(data).encode()
    headers["Content-Type"] = "text/plain; charset=utf-8"
    text = f"{injection.status} {_phrase(injection.status)} (injected by the test)\n"
    return injection.status, headers, text.encode()


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
