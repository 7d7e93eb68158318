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

from .responses import Answer, json_answer, text_of
from .state import ServerState

__all__ = ["API_ROUTES", "BOOKS", "BookstoreApi", "bearer_error"]

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
        ``missing_token``. Where the request's authorization scheme is checked: Bearer
        today, through oauthlib; another scheme (sender-constrained tokens) goes here.
        """
        valid, request = self._resource.verify_request(
            uri, method, text_of(body) or None, headers, scopes=[scope]
        )
        if valid:
            return None
        problem: str = getattr(request, "reqcc_problem", None) or "missing_token"
        return problem

    def handle(self, path: str, method: str, uri: str, headers: dict[str, str], body: bytes) -> Answer:
        """Answer ``method path`` (a route of :data:`API_ROUTES`) for the request's token."""
        scope = API_ROUTES[path][method]
        with self._state.lock:
            self._state.counters.api_requests += 1
        problem = self.authorize(method, uri, headers, body, scope)
        if problem is not None:
            with self._state.lock:
                if problem == "insufficient_scope":
                    self._state.counters.api_403s += 1
                else:
                    self._state.counters.api_401s += 1
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
