"""Authlib's ``AuthorizationServer`` (client-credentials grant) as a real server on 127.0.0.1.

A Flask app served by werkzeug in a thread, with:

- ``POST /token``: Authlib's ``ClientCredentialsGrant``; client authentication by
  ``client_secret_basic``, ``client_secret_post``, ``client_secret_jwt`` and
  ``private_key_jwt`` (Authlib's RFC 7523 ``JWTBearerClientAssertion``, verified with
  joserfc), and ``tls_client_auth`` (RFC 8705 §2.1.2: the TLS peer certificate's subject
  must match the client's registration);
- ``POST /revoke``: Authlib's RFC 7009 ``RevocationEndpoint``;
- ``GET /api/<name>``: protected by Authlib's ``ResourceProtector`` with a Bearer validator
  that needs the scope ``books.read`` and honours expiry and revocation;
- ``GET /.well-known/oauth-authorization-server``: RFC 8414 metadata built and validated
  with Authlib's own ``authlib.oauth2.rfc8414.AuthorizationServerMetadata`` (its
  ``validate()`` wants an https issuer: serve with ``ssl_context`` for it). Nothing at the
  OpenID Connect path: Flask answers 404 there.

The server judges expiry on an injectable clock, so tests advance time instead of sleeping.
Every token request's form is recorded (secrets and assertions included: the tests check
what reached the server).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector, current_token
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata, get_well_known_url
from cryptography import x509
from cryptography.x509.oid import NameOID
from flask import Flask, jsonify, request
from joserfc import jws
from joserfc.jwk import OctKey, RSAKey
from werkzeug.serving import make_server

ALL_SCOPES = ("books.read", "orders.read", "orders.write")


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    """A registered client: its credentials, allowed methods and scopes."""

    client_id: str
    client_secret: str | None = None
    auth_methods: tuple[str, ...] = ("client_secret_basic",)
    allowed_scopes: tuple[str, ...] = ALL_SCOPES
    public_jwk: dict[str, Any] | None = None  # for private_key_jwt
    tls_subject_cn: str | None = None  # for tls_client_auth (RFC 8705 tls_client_auth_subject_dn, CN only)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        # The server narrows the request to what this client may have (and grants all of it
        # when no scope was asked for).
        if not scope:
            return " ".join(self.allowed_scopes)
        return " ".join(s for s in scope_to_list(scope) if s in self.allowed_scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and client_secret == self.client_secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


@dataclass
class Token(TokenMixin):  # type: ignore[misc]
    """An issued access token, judged on the server's clock."""

    access_token: str
    client_id: str
    scope: str
    expires_in: int | None
    issued_at: float
    clock: Callable[[], float]
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in or 0

    def is_expired(self) -> bool:
        return self.expires_in is not None and self.issued_at + self.expires_in <= self.clock()

    def is_revoked(self) -> bool:
        return self.revoked


class _ClientCredentials(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
        "tls_client_auth",
    ]


class _JWTAssertion(JWTBearerClientAssertion):  # type: ignore[misc]
    """Authlib's RFC 7523 client authentication for one of the two JWT methods."""

    def __init__(self, server: AuthlibServer, method: str) -> None:
        super().__init__()  # Authlib's default leeway: 60 s for exp, nbf and iat
        self.CLIENT_AUTH_METHOD = method
        self._server = server

    def __call__(self, query_client: Any, req: Any) -> Any:
        # Both methods are registered; each takes only the assertions of its own family, so
        # the first one tried does not refuse the other's client.
        assertion = req.form.get("client_assertion")
        if not assertion:
            return None
        try:
            alg = jws.extract_compact(assertion.encode()).headers().get("alg", "")
        except Exception:
            alg = ""
        if alg.startswith("HS") != (self.CLIENT_AUTH_METHOD == "client_secret_jwt"):
            return None
        return super().__call__(query_client, req)

    def get_audiences(self) -> list[str]:
        # The token endpoint (what reqcc sends by default) or the server's base URL (an
        # issuer-style audience, reachable with assertion_audience=).
        return [self._server.token_url, self._server.base_url]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        with self._server.lock:
            if jti in self._server.seen_jti:
                return False
            self._server.seen_jti.add(jti)
            return True

    def resolve_client_public_key(self, client: Client) -> Any:
        if self.CLIENT_AUTH_METHOD == "client_secret_jwt":
            return OctKey.import_key(client.client_secret or "")
        return RSAKey.import_key(client.public_jwk or {})


@dataclass
class AuthlibServer:
    """Authlib authorization server + protected API on 127.0.0.1, in a thread.

    :param clients: the registered clients.
    :param expires_in: lifetime of issued tokens in seconds (``None``: no ``expires_in``).
    :param clock: the server's clock for expiry.
    :param ssl_context: serve https with this context (``None``: http).
    """

    clients: dict[str, Client] = field(default_factory=dict)
    expires_in: int | None = 3600
    clock: Callable[[], float] = time.time
    ssl_context: ssl.SSLContext | None = None
    host: str = "127.0.0.1"
    lock: threading.Lock = field(default_factory=threading.Lock)
    tokens: dict[str, Token] = field(default_factory=dict)
    token_forms: list[dict[str, str]] = field(default_factory=list)
    token_headers: list[dict[str, str]] = field(default_factory=list)
    token_statuses: list[int] = field(default_factory=list)
    api_statuses: list[int] = field(default_factory=list)
    seen_jti: set[str] = field(default_factory=set)
    base_url: str = ""
    #: Fields published over the metadata's own (``issuer`` of another server, say).
    metadata_overrides: dict[str, Any] = field(default_factory=dict)
    metadata_requests: int = 0

    def __post_init__(self) -> None:
        self.app = self._build_app()
        self._httpd: Any = None
        self._thread: threading.Thread | None = None

    # -- the app -----------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("authlib-test-server")
        app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"client_credentials": self.expires_in or 0}
        app.config["OAUTH2_SCOPES_SUPPORTED"] = list(ALL_SCOPES)
        server = AuthorizationServer(app, query_client=self.clients.get, save_token=self._save_token)
        server.register_grant(_ClientCredentials)
        server.register_client_auth_method("client_secret_jwt", _JWTAssertion(self, "client_secret_jwt"))
        server.register_client_auth_method("private_key_jwt", _JWTAssertion(self, "private_key_jwt"))
        server.register_client_auth_method("tls_client_auth", self._tls_client_auth)
        owner = self

        class Revocation(RevocationEndpoint):  # type: ignore[misc]
            CLIENT_AUTH_METHODS: ClassVar[list[str]] = _ClientCredentials.TOKEN_ENDPOINT_AUTH_METHODS

            def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
                return owner.tokens.get(token_string)

            def revoke_token(self, token: Token, req: Any) -> None:
                token.revoked = True

        server.register_endpoint(Revocation)

        class Validator(BearerTokenValidator):  # type: ignore[misc]
            def authenticate_token(self, token_string: str) -> Token | None:
                return owner.tokens.get(token_string)

        require_oauth = ResourceProtector()
        require_oauth.register_token_validator(Validator())

        @app.post("/token")
        def token() -> Any:
            with self.lock:
                self.token_forms.append(request.form.to_dict())
                self.token_headers.append(dict(request.headers))
            response = server.create_token_response()
            with self.lock:
                self.token_statuses.append(response.status_code)
            return response

        @app.post("/revoke")
        def revoke() -> Any:
            return server.create_endpoint_response(Revocation.ENDPOINT_NAME)

        @app.get("/api/<path:name>")
        def api(name: str) -> Any:
            @require_oauth("books.read")
            def protected() -> Any:
                return jsonify(name=name, client_id=current_token.client_id, scope=current_token.scope)

            return protected()

        @app.get(get_well_known_url("https://placeholder.invalid"))
        def metadata() -> Any:
            with self.lock:
                self.metadata_requests += 1
            return jsonify(self.metadata())

        @app.after_request
        def record(response: Any) -> Any:
            if request.path.startswith("/api/"):
                with self.lock:
                    self.api_statuses.append(response.status_code)
            return response

        return app

    def _save_token(self, token: dict[str, Any], req: Any) -> None:
        with self.lock:
            self.tokens[token["access_token"]] = Token(
                access_token=token["access_token"],
                client_id=req.client.client_id,
                scope=token.get("scope", ""),
                expires_in=token.get("expires_in"),
                issued_at=self.clock(),
                clock=self.clock,
            )

    def _tls_client_auth(self, query_client: Any, req: Any) -> Client | None:
        """RFC 8705 §2.1: the client is the one whose registered subject the peer certificate has."""
        client_id = req.form.get("client_id")
        pem = request.environ.get("SSL_CLIENT_CERT")
        if not client_id or not pem:
            return None
        client = query_client(client_id)
        if client is None or client.tls_subject_cn is None:
            return None
        cert = x509.load_pem_x509_certificate(pem.encode())
        names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        return client if client.tls_subject_cn in names else None

    def metadata(self) -> dict[str, Any]:
        """This server's RFC 8414 metadata, validated by Authlib, with the overrides applied."""
        document = AuthorizationServerMetadata(
            {
                "issuer": self.issuer,
                "token_endpoint": self.token_url,
                "token_endpoint_auth_methods_supported": _ClientCredentials.TOKEN_ENDPOINT_AUTH_METHODS,
                "token_endpoint_auth_signing_alg_values_supported": ["HS256", "RS256"],
                "grant_types_supported": ["client_credentials"],
                "response_types_supported": ["none"],  # required by RFC 8414; no authorization endpoint
                "scopes_supported": list(ALL_SCOPES),
                "revocation_endpoint": self.revoke_url,
                "revocation_endpoint_auth_methods_supported": _ClientCredentials.TOKEN_ENDPOINT_AUTH_METHODS,
                "revocation_endpoint_auth_signing_alg_values_supported": ["HS256", "RS256"],
            }
        )
        if self.ssl_context is not None:
            document.validate()
        document.update(self.metadata_overrides)
        return dict(document)

    # -- running -----------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        """The issuer identifier (the base URL: its metadata is at the RFC 8414 well-known path)."""
        return self.base_url

    @property
    def token_url(self) -> str:
        """The token endpoint."""
        return self.base_url + "/token"

    @property
    def revoke_url(self) -> str:
        """The RFC 7009 revocation endpoint."""
        return self.base_url + "/revoke"

    @property
    def api_url(self) -> str:
        """The protected API's root (``/api/``)."""
        return self.base_url + "/api/"

    @property
    def token_requests(self) -> int:
        """How many token requests reached the server."""
        with self.lock:
            return len(self.token_forms)

    def start(self) -> AuthlibServer:
        """Serve on a free port of ``host`` in a daemon thread."""
        self._httpd = make_server(self.host, 0, self.app, threaded=True, ssl_context=self.ssl_context)
        scheme = "https" if self.ssl_context is not None else "http"
        self.base_url = f"{scheme}://{self.host}:{self._httpd.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="authlib-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
