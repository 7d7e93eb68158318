"""A real OAuth 2.0 authorization server and bookstore API on 127.0.0.1, for tests and demos.

:class:`LocalAuthorizationServer` starts, in a thread, an HTTP (or https) server on a free
loopback port that serves:

- ``POST /token``: the client-credentials token endpoint, built on oauthlib's server side
  (``BackendApplicationServer`` and a ``RequestValidator``). Clients authenticate with
  ``client_secret_basic`` (RFC 6749 §2.3.1: the id and secret form-urlencoded, then
  Base64), ``client_secret_post``, ``private_key_jwt`` with a platform's JWT trusted as a
  :class:`FederatedCredential` (workload identity, as Entra does it) or, for public
  clients, ``none``.
- ``POST /revoke`` (RFC 7009) and ``POST /introspect`` (RFC 7662), with client authentication.
- ``GET`` of its metadata (RFC 8414 / OpenID Connect Discovery) at both well-known URLs of
  its ``issuer`` (which may have a path: ``issuer_path=``), for clients given ``issuer=``.
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

The package, one job per module: :mod:`.server` (the class above and its route table),
:mod:`.authorization` (token, revocation and introspection endpoints), :mod:`.metadata`
(the metadata documents), :mod:`.api` (the
bookstore API), :mod:`.validator` (oauthlib's ``RequestValidator``), :mod:`.state` (what the
endpoints share), :mod:`.clients` (registered clients and client authentication),
:mod:`.federation` (federated credentials: a platform's JWTs as a client's credential),
:mod:`.failures` (failure injection), :mod:`.records` (the request log and counters),
:mod:`.httpd` (HTTP and TLS plumbing), :mod:`.responses` (answer helpers) and
:mod:`.plugin` (the pytest fixtures). :class:`FakeClock` (:mod:`.clock`) is a hand-moved
wall and monotonic clock for a manager.
"""

from __future__ import annotations

# ClientSpec and UnknownClientError are not in __all__ but importable from reqcc.testing.
from .clients import BOOKSTORE_SCOPES, DEFAULT_CLIENT_ID, DEFAULT_CLIENTS, RegisteredClient
from .clients import ClientSpec as ClientSpec
from .clients import UnknownClientError as UnknownClientError
from .clock import FakeClock
from .dpop import VerifiedProof
from .federation import FederatedCredential
from .records import RecordedTokenRequest
from .server import LocalAuthorizationServer

__all__ = [
    "LocalAuthorizationServer",
    "FakeClock",
    "RegisteredClient",
    "RecordedTokenRequest",
    "VerifiedProof",
    "FederatedCredential",
    "DEFAULT_CLIENTS",
    "DEFAULT_CLIENT_ID",
    "BOOKSTORE_SCOPES",
]

