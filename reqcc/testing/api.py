"""The bookstore API the local server protects: routes, scopes, and the RFC 6750 answers.

``GET /books`` needs ``books.read``, ``GET /orders`` needs ``orders.read``, ``POST /orders``
needs ``orders.write``. A missing, unknown, expired or revoked token gets ``401`` with
``WWW-Authenticate: Bearer error="invalid_token"``; a token without the scope gets ``403``
with ``error="insufficient_scope"`` (RFC 6750 §3.1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from .dpop import dpop_challenge
from .dpop_policy import DPOP_PROBLEMS, header_values
from .responses import Answer, json_answer, text_of
from .state import ServerState

__all__ = ["API_ROUTES", "BOOKS", "BookstoreApi", "bearer_error", "dpop_error"]

BOOKS = (
    {"id": 1, "title": "A Pattern Language", "author": "Christopher Alexander"},
    {"id": 2, "title": "The Mythical Man-Month", "author": "Frederick P. Brooks Jr."},
    {"id": 3, "title": "Structure and Interpretation of Computer Programs", "author": "Abelson, Sussman"},
)

#: The API's routes: path -> {method: the scope it needs}.
API_ROUTES: Mapping[str, Mapping[str, str]] = {
    "/books": {"GET": "books.read"},
    "/orders": {"GET": "orders.read", "POST": "orders.write"},
}


class ResourceServer(Protocol):
    """What the API needs of oauthlib's server: ``ResourceEndpoint.verify_request``."""

    def verify_request(
        self, uri: str, http_method: str, body: str | None, headers: Mapping[str, str], scopes: list[str]
    ) -> tuple[bool, Any]: ...


class BookstoreApi:
    """Serves the bookstore routes to requests whose access token allows them.

    :param state: the server's state (tokens, orders, counters).
    :param resource: checks a request's access token (oauthlib's ``ResourceEndpoint``).
    """

    def __init__(self, state: ServerState, resource: ResourceServer) -> None:
        self._state = state
        self._resource = resource

    def authorize(
        self, method: str, uri: str, headers: dict[str, str], body: bytes, scope: str
    ) -> str | None:
        """Check the request's access token for ``scope``: ``None`` if it may pass, else the problem.

        The problem is an RFC 6750 error code (``invalid_token``, ``insufficient_scope``) or
        ``missing_token``, or for a ``DPoP`` token an RFC 9449 code (``invalid_dpop_proof``,
        ``use_dpop_nonce``). Where the request's authorization scheme is checked: Bearer
        through oauthlib; DPoP (a bound token and its proof) through the server's
        :class:`~.dpop_policy.DPoPPolicy`.
        """
        scheme, _, credentials = _authorization(headers).partition(" ")
        access_token = credentials.strip()
        if scheme.lower() == "dpop":  # RFC 9449 §7: the token, then its proof, then the scope
            problem = self._state.check(access_token, [])
            if problem is None:
                problem = self._state.dpop.api_problem(
                    method, uri, headers, access_token, self._state.bound_key(access_token)
                )
            return problem or self._state.check(access_token, [scope])
        valid, request = self._resource.verify_request(
            uri, method, text_of(body) or None, headers, scopes=[scope]
        )
        if valid:
            # RFC 9449 §7.2: a DPoP-bound token presented as a Bearer token is refused.
            return "invalid_token" if self._state.bound_key(access_token) is not None else None
        problem = getattr(request, "reqcc_problem", None) or "missing_token"
        return problem

    def handle(self, path: str, method: str, uri: str, headers: dict[str, str], body: bytes) -> Answer:
        """Answer ``method path`` (a route of :data:`API_ROUTES`) for the request's token."""
        scope = API_ROUTES[path][method]
        with self._state.lock:
            self._state.counters.api_requests += 1
        status, response_headers, payload = self._answer(path, method, uri, headers, body, scope)
        response_headers.update(self._state.dpop.nonce_headers(at_api=True))
        return status, response_headers, payload

    def _answer(
        self, path: str, method: str, uri: str, headers: dict[str, str], body: bytes, scope: str
    ) -> Answer:
        problem = self.authorize(method, uri, headers, body, scope)
        if problem is not None:
            with self._state.lock:
                if problem == "insufficient_scope":
                    self._state.counters.api_403s += 1
                else:
                    self._state.counters.api_401s += 1
            if problem in DPOP_PROBLEMS or _authorization(headers).partition(" ")[0].lower() == "dpop":
                return dpop_error(problem, scope)
            return bearer_error(problem, scope)
        if path == "/books":
            return json_answer(200, {"books": list(BOOKS)})
        if method == "GET":
            with self._state.lock:
                orders = [dict(o) for o in self._state.orders]
            return json_answer(200, {"orders": orders})
        try:
            item = json.loads(body or b"{}")
        except ValueError:
            return json_answer(400, {"error": "invalid_json"})
        if not isinstance(item, dict):
            return json_answer(400, {"error": "an order is a JSON object"})
        with self._state.lock:
            order = {**item, "id": next(self._state.order_ids)}
            self._state.orders.append(order)
        return json_answer(201, {"order": order})


def _authorization(headers: Mapping[str, str]) -> str:
    values = header_values(headers, "Authorization")
    return values[0] if values else ""


_DPOP_DESCRIPTIONS = {
    "invalid_token": "the access token is unknown, expired, revoked or not DPoP-bound",
    "invalid_dpop_proof": "the DPoP proof is missing or invalid",
    "use_dpop_nonce": "the DPoP proof must carry the nonce of the DPoP-Nonce header",
}


def dpop_error(problem: str, scope: str) -> Answer:
    """The RFC 9449 §7.1 answer for ``problem`` to a request that used the DPoP scheme."""
    if problem == "insufficient_scope":
        status, headers, payload = bearer_error(problem, scope)
        headers["WWW-Authenticate"] = dpop_challenge(problem, f"this request needs the scope {scope}")
        return status, headers, payload
    description = _DPOP_DESCRIPTIONS.get(problem, "a DPoP token and proof are required")
    error = problem if problem in _DPOP_DESCRIPTIONS else None
    body = {"error": error or "unauthorized", "error_description": description}
    status, headers, payload = json_answer(401, body)
    headers["WWW-Authenticate"] = dpop_challenge(error, description)
    return status, headers, payload


def bearer_error(problem: str, scope: str) -> Answer:
    """The RFC 6750 §3 answer for ``problem`` on a route that needs ``scope``."""
    if problem == "missing_token":
        # RFC 6750 §3.1: a request without credentials gets no error code.
        status, headers, payload = json_answer(401, {"error": "unauthorized"})
        headers["WWW-Authenticate"] = 'Bearer realm="bookstore"'
        return status, headers, payload
    if problem == "insufficient_scope":
        description = f"this request needs the scope {scope}"
        status, headers, payload = json_answer(
            403, {"error": problem, "error_description": description, "scope": scope}
        )
        headers["WWW-Authenticate"] = (
            f'Bearer realm="bookstore", error="insufficient_scope", '
            f'error_description="{description}", scope="{scope}"'
        )
        return status, headers, payload
    description = "the access token is unknown, expired or revoked"
    status, headers, payload = json_answer(401, {"error": "invalid_token", "error_description": description})
    headers["WWW-Authenticate"] = (
        f'Bearer realm="bookstore", error="invalid_token", error_description="{description}"'
    )
    return status, headers, payload
