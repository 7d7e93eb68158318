"""The local authorization server: :class:`LocalAuthorizationServer`, what tests and the demo drive.

It puts together the pieces of this package: the shared state (:mod:`.state`), oauthlib's
server with its validator (:mod:`.validator`), the authorization endpoints
(:mod:`.authorization`), the bookstore API (:mod:`.api`) and the HTTP plumbing
(:mod:`.httpd`); it owns the route table (:meth:`LocalAuthorizationServer._register_routes`)
and the knobs tests turn.
"""

from __future__ import annotations

import functools
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from oauthlib.oauth2 import BackendApplicationServer

from .._log import log
from .._urls import is_loopback_host
from .api import API_ROUTES, BookstoreApi
from .authorization import AuthorizationEndpoints
from .clients import (
    BOOKSTORE_SCOPES,
    DEFAULT_CLIENT_ID,
    ClientSpec,
    RegisteredClient,
    UnknownClientError,
    normalize_clients,
)
from .dpop import VerifiedProof
from .dpop_policy import DPoPPolicy
from .failures import Injection, check_times, default_status
from .httpd import ThreadedWSGIServer
from .metadata import AUTH_METHODS_SUPPORTED, WELL_KNOWN_DOCUMENTS, MetadataEndpoint, check_issuer_path
from .records import Counters, RecordedTokenRequest
from .responses import Answer, headers_of, json_answer, phrase
from .state import ServerState
from .validator import RedactedToken, Validator

__all__ = ["LocalAuthorizationServer"]

# An endpoint: (method, uri, headers, body) -> (status, headers, body).
_Handler = Callable[[str, str, dict[str, str], bytes], Answer]


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
    :param clock: the server's clock in seconds (default ``time.time``), for token expiry
        and DPoP proof ``iat`` checks.
    :param require_dpop: every token request must carry a DPoP proof (RFC 9449); without it
        only clients registered with ``RegisteredClient(..., dpop=True)`` must. A token request
        with a valid proof always gets a DPoP-bound token (``token_type`` ``DPoP``), which the
        API accepts only as ``Authorization: DPoP`` with a proof by the same key.
    :param token_dpop_nonce: the token endpoint demands a server nonce in proofs (``400
        use_dpop_nonce`` with a ``DPoP-Nonce`` header until the client sends it). Settable later.
    :param api_dpop_nonce: the API demands a server nonce in proofs (``401`` with
        ``WWW-Authenticate: DPoP error="use_dpop_nonce"``). Settable later.
    :param ignore_dpop: behave as a server without DPoP support: proofs are ignored and Bearer
        tokens issued (a DPoP client must refuse them). Settable later.
    :param issuer_path: a path after the origin in the server's issuer identifier, such as
        ``"/tenant-a"`` (default: none, the issuer is the origin). See :attr:`issuer`.
    :param well_known: the metadata documents published (default both):
        ``"openid-configuration"`` and ``"oauth-authorization-server"``.
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
        require_dpop: bool = False,
        token_dpop_nonce: bool = False,
        api_dpop_nonce: bool = False,
        ignore_dpop: bool = False,
        issuer_path: str = "",
        well_known: Iterable[str] = WELL_KNOWN_DOCUMENTS,
    ) -> None:
        issuer_path = check_issuer_path(issuer_path)
        if (
            host.strip("[]") != "127.0.0.1"
            and host.lower() != "localhost"
            and not (is_loopback_host(host) and ":" not in host)
        ):
            raise ValueError(f"host must name 127.0.0.1 (such as '127.0.0.1' or 'localhost'), got {host!r}")
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError("ssl_context must be an ssl.SSLContext")
        self._state = ServerState(
            normalize_clients(clients),
            token_ttl=token_ttl,
            narrow_scopes=narrow_scopes,
            token_delay=token_delay,
            clock=clock,
            dpop=DPoPPolicy(
                require_dpop=require_dpop,
                token_nonce=token_dpop_nonce,
                api_nonce=api_dpop_nonce,
                ignore_dpop=ignore_dpop,
                clock=clock,
            ),
        )
        self._oauth = BackendApplicationServer(
            Validator(self._state), token_expires_in=self._state.expires_in
        )
        self._oauth.credentials_grant.register_token_modifier(RedactedToken)
        self._routes: dict[str, dict[str, _Handler]] = {}
        self._httpd = ThreadedWSGIServer(self.wsgi_app, ssl_context, port)
        self.port: int = self._httpd.server_address[1]
        scheme = "https" if ssl_context is not None else "http"
        self.host = host
        self.base_url = f"{scheme}://{host}:{self.port}/"
        self._metadata = MetadataEndpoint(
            f"{scheme}://{host}:{self.port}{issuer_path}", self._metadata_document, served=well_known
        )
        self._register_routes()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- settings (settable while serving) -------------------------------------------

    @property
    def token_ttl(self) -> float | None:
        """The ``expires_in`` of tokens issued from now on (``None``: they never expire)."""
        return self._state.token_ttl

    @token_ttl.setter
    def token_ttl(self, value: float | None) -> None:
        self._state.token_ttl = value

    @property
    def narrow_scopes(self) -> bool:
        """Whether a request for scopes beyond the client's gets the allowed part of them."""
        return self._state.narrow_scopes

    @narrow_scopes.setter
    def narrow_scopes(self, value: bool) -> None:
        self._state.narrow_scopes = value

    @property
    def token_delay(self) -> float:
        """Seconds every token request waits before it is answered."""
        return self._state.token_delay

    @token_delay.setter
    def token_delay(self, value: float) -> None:
        self._state.token_delay = value

    @property
    def require_dpop(self) -> bool:
        """Whether every token request must carry a DPoP proof."""
        return self._state.dpop.require_dpop

    @require_dpop.setter
    def require_dpop(self, value: bool) -> None:
        self._state.dpop.require_dpop = value

    @property
    def token_dpop_nonce(self) -> bool:
        """Whether the token endpoint demands a DPoP nonce."""
        return self._state.dpop.token_nonce

    @token_dpop_nonce.setter
    def token_dpop_nonce(self, value: bool) -> None:
        self._state.dpop.token_nonce = value

    @property
    def api_dpop_nonce(self) -> bool:
        """Whether the API demands a DPoP nonce."""
        return self._state.dpop.api_nonce

    @api_dpop_nonce.setter
    def api_dpop_nonce(self, value: bool) -> None:
        self._state.dpop.api_nonce = value

    @property
    def ignore_dpop(self) -> bool:
        """Whether the server ignores DPoP proofs and issues Bearer tokens."""
        return self._state.dpop.ignore_dpop

    @ignore_dpop.setter
    def ignore_dpop(self, value: bool) -> None:
        self._state.dpop.ignore_dpop = value

    @property
    def dpop_nonce(self) -> str:
        """The DPoP nonce the server hands out now (shared by the token endpoint and the API)."""
        return self._state.dpop.nonces.current()

    def rotate_dpop_nonce(self) -> str:
        """Replace the DPoP nonce (the previous one stays valid one more round); return the new one."""
        return self._state.dpop.nonces.rotate()

    @property
    def dpop_proofs(self) -> list[VerifiedProof]:
        """Every DPoP proof the server accepted (token endpoint and API), oldest first (a copy)."""
        return self._state.dpop.verified()

    def token_binding(self, token: Any) -> str | None:
        """The DPoP key thumbprint (``cnf.jkt``) ``token`` is bound to, or ``None`` for a Bearer token."""
        return self._state.bound_key(str(getattr(token, "access_token", token)))

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

    @property
    def issuer(self) -> str:
        """The issuer identifier: ``base_url`` without its trailing ``/``, plus ``issuer_path``.

        Give it to reqcc as ``issuer=``: the server publishes its metadata at
        :attr:`metadata_urls`.
        """
        return self._metadata.issuer

    @property
    def metadata_urls(self) -> dict[str, str]:
        """The URL of each published metadata document, by its well-known name."""
        origin = self.base_url.rstrip("/")
        return {name: origin + path for name, path in self._metadata.paths().items()}

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
        with self._state.lock:
            return dict(self._state.clients)

    def register_client(
        self, client_id: str, secret: str | None, scopes: Iterable[str], *, dpop: bool = False
    ) -> RegisteredClient:
        """Register (or replace) a client; ``secret=None`` makes it public. Returns it.

        ``dpop=True``: the client must send DPoP proofs with its token requests.
        """
        client = RegisteredClient(client_id, secret, frozenset(scopes), dpop)
        with self._state.lock:
            self._state.clients[client_id] = client
        return client

    def credentials(self, client_id: str | None = None, *, discover: bool = False) -> dict[str, Any]:
        """Return keywords for :class:`~reqcc.ClientCredentialsSession` for a registered client.

        ``token_url`` (with ``discover=True``: ``issuer`` instead), ``client_id``,
        ``base_url``, and ``client_secret`` (or ``auth_method="none"`` for a public
        client; nothing more for a client with only federated credentials: add its
        ``client_assertion_file=`` or ``client_assertion=``). Add ``scopes=`` yourself.

        :param client_id: the registered client. Default: :data:`DEFAULT_CLIENT_ID` when it is
            registered, else the only registered client (a server started with one custom
            client needs no ``client_id``).
        :raises UnknownClientError: (a :class:`KeyError`) ``client_id`` is not registered, or it
            was not given and several clients but not :data:`DEFAULT_CLIENT_ID` are; the
            message names the registered ids.
        """
        with self._state.lock:
            clients = dict(self._state.clients)
        registered = ", ".join(repr(c) for c in clients)
        if not clients:
            raise UnknownClientError("credentials(): no client is registered (see register_client())")
        if client_id is None:
            if DEFAULT_CLIENT_ID in clients:
                client_id = DEFAULT_CLIENT_ID
            elif len(clients) == 1:
                (client_id,) = clients
            else:
                raise UnknownClientError(
                    f"credentials(): which client? {len(clients)} are registered ({registered}) and "
                    f"none is {DEFAULT_CLIENT_ID!r}: pass client_id="
                )
        client = clients.get(client_id)
        if client is None:
            raise UnknownClientError(f"no registered client {client_id!r} (registered: {registered})")
        where = {"issuer": self.issuer} if discover else {"token_url": self.token_url}
        out: dict[str, Any] = {**where, "client_id": client_id, "base_url": self.api_url}
        if client.is_public:
            out["auth_method"] = "none"
        elif client.secret is not None:
            out["client_secret"] = client.secret
        return out

    # -- tokens ----------------------------------------------------------------------

    def revoke(self, token: Any = None) -> int:
        """Revoke one access token (a string or anything with ``.access_token``), or all.

        Returns how many tokens were newly revoked. The API answers 401 ``invalid_token``
        for them from now on.
        """
        value = getattr(token, "access_token", token)
        return self._state.revoke(None if value is None else str(value))

    def revoke_all(self) -> int:
        """Revoke every token issued so far. Returns how many were newly revoked."""
        return self.revoke(None)

    def is_active(self, token: Any) -> bool:
        """Return whether the API would accept ``token`` (a string or ``.access_token``) now."""
        value = getattr(token, "access_token", token)
        return self._state.check(str(value), []) is None

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
            status = default_status(error)
        self._state.failures.add(
            Injection(
                remaining=check_times(times),
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
        self._state.failures.add(Injection(remaining=check_times(times), delay=float(seconds)))

    def hold_token_requests(self, times: int | None = 1, *, timeout: float = 60.0) -> threading.Event:
        """Make the next ``times`` token requests wait until the returned event is set.

        Deterministic where a delay is not: a test can see a fetch in flight
        (``token_requests`` went up), act meanwhile, then ``event.set()`` to let it answer
        normally. A held request gives up waiting after ``timeout`` seconds.
        """
        gate = threading.Event()
        self._state.failures.add(Injection(remaining=check_times(times), gate=gate, delay=float(timeout)))
        return gate

    def set_metadata(self, **fields: Any) -> None:
        """Publish these fields in the metadata document over its own (``None`` removes one).

        ``server.set_metadata(issuer="https://other.example")`` makes the server speak for
        another issuer, which reqcc must refuse.
        """
        self._metadata.set_fields(fields)

    def fail_metadata_requests(self, times: int = 1, *, status: int = 503) -> None:
        """Make the next ``times`` metadata requests answer ``status`` (plain text)."""
        self._metadata.fail(check_times(times) or 0, status)

    def clear_failures(self) -> None:
        """Forget every injected failure, delay and hold not used yet (held requests are released)."""
        self._state.failures.clear()

    # -- what happened ---------------------------------------------------------------

    @property
    def token_requests(self) -> int:
        """Requests the token endpoint received (answered or failed)."""
        return self._state.counters.token_requests

    @property
    def tokens_issued(self) -> int:
        """Tokens the token endpoint issued."""
        return self._state.counters.tokens_issued

    @property
    def token_errors(self) -> int:
        """Token requests answered with an error (injected or real)."""
        return self._state.counters.token_errors

    @property
    def metadata_requests(self) -> int:
        """Requests for a published metadata document (answered or failed; not the 404s)."""
        return self._metadata.requests

    @property
    def api_requests(self) -> int:
        """Requests to the bookstore API (``/books``, ``/orders``)."""
        return self._state.counters.api_requests

    @property
    def api_401s(self) -> int:
        """API requests answered 401 (missing, unknown, expired or revoked token)."""
        return self._state.counters.api_401s

    @property
    def api_403s(self) -> int:
        """API requests answered 403 ``insufficient_scope``."""
        return self._state.counters.api_403s

    def stats(self) -> dict[str, int]:
        """Return a consistent snapshot of every counter."""
        with self._state.lock:
            return dict(vars(self._state.counters))

    def reset_counters(self) -> None:
        """Set every counter to zero and forget the recorded token requests."""
        with self._state.lock:
            self._state.counters = Counters()
            self._state.records.clear()
        self._state.dpop.forget_verified()

    @property
    def token_request_log(self) -> list[RecordedTokenRequest]:
        """Every token request received so far, oldest first (a copy)."""
        with self._state.lock:
            return list(self._state.records)

    @property
    def last_token_request(self) -> RecordedTokenRequest | None:
        """The most recent token request, or ``None``."""
        with self._state.lock:
            return self._state.records[-1] if self._state.records else None

    @property
    def orders(self) -> list[dict[str, Any]]:
        """The orders created through ``POST /orders`` (a copy)."""
        with self._state.lock:
            return [dict(o) for o in self._state.orders]

    # -- the WSGI application --------------------------------------------------------

    def _register_routes(self) -> None:
        """Every endpoint the server serves; a new endpoint is one more ``_add_route``."""
        endpoints = AuthorizationEndpoints(self._state, self._oauth)
        self._add_route("/token", "POST", endpoints.token)
        self._add_route("/revoke", "POST", endpoints.revoke)
        self._add_route("/introspect", "POST", endpoints.introspect)
        for path in self._metadata.paths().values():
            self._add_route(path, "GET", self._metadata.handle)
        api = BookstoreApi(self._state, self._oauth)
        for path, methods in API_ROUTES.items():
            for method in methods:
                self._add_route(path, method, functools.partial(api.handle, path))
        self._add_route("/", "GET", self._index)

    def _add_route(self, path: str, method: str, handler: _Handler) -> None:
        self._routes.setdefault(path, {})[method] = handler

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """The WSGI application that serves every endpoint (usable in any WSGI server)."""
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO") or "/"
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = headers_of(environ)
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
        start_response(f"{status} {phrase(status)}", list(response_headers.items()))
        return [payload]

    def _route(self, method: str, path: str, uri: str, headers: dict[str, str], body: bytes) -> Answer:
        handlers = self._routes.get(path.rstrip("/") or "/")
        if handlers is None:
            return json_answer(404, {"error": "not_found", "path": path})
        handler = handlers.get(method)
        if handler is None:
            status, response_headers, payload = json_answer(405, {"error": "method_not_allowed"})
            response_headers["Allow"] = ", ".join(handlers)
            return status, response_headers, payload
        return handler(method, uri, headers, body)

    def _metadata_document(self) -> dict[str, Any]:
        """The RFC 8414 §2 document of this server (what :meth:`set_metadata` overrides)."""
        scopes = set(BOOKSTORE_SCOPES)
        for client in self.clients.values():
            scopes |= client.scopes
        methods = list(AUTH_METHODS_SUPPORTED)
        if any(client.federated for client in self.clients.values()):
            methods.insert(-1, "private_key_jwt")  # a platform's JWT (federated credentials)
        return {
            "issuer": self.issuer,
            "token_endpoint": self.token_url,
            "token_endpoint_auth_methods_supported": methods,
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": [],
            "scopes_supported": sorted(scopes),
            "revocation_endpoint": self.revocation_url,
            "revocation_endpoint_auth_methods_supported": methods,
            "introspection_endpoint": self.introspection_url,
            "introspection_endpoint_auth_methods_supported": list(methods),
        }

    def _index(self, method: str, uri: str, headers: dict[str, str], body: bytes) -> Answer:
        return json_answer(
            200,
            {
                "token_endpoint": self.token_url,
                "revocation_endpoint": self.revocation_url,
                "introspection_endpoint": self.introspection_url,
                "api": {
                    f"{method} {path}": scope
                    for path, scopes in API_ROUTES.items()
                    for method, scope in scopes.items()
                },
            },
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._thread is not None else "not started")
        return f"<LocalAuthorizationServer {self.base_url} {state}>"
