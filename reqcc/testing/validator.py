"""The oauthlib ``RequestValidator`` of the local server: its answers come from a :class:`ServerState`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oauthlib.oauth2 import RequestValidator
from oauthlib.oauth2.rfc6749 import errors as oauth_errors

from .clients import client_credentials
from .federation import check_federated_assertion
from .state import ServerState

__all__ = ["RedactedToken", "Validator"]


class RedactedToken(dict[str, Any]):
    """The issued token dict, whose ``repr`` (oauthlib logs it at DEBUG) hides the token."""

    def __repr__(self) -> str:
        shown = {k: ("<hidden>" if k in ("access_token", "refresh_token") else v) for k, v in self.items()}
        return repr(shown)


def _form_of(oauth_request: Any) -> dict[str, list[str]]:
    names = ("client_id", "client_secret", "client_assertion_type", "client_assertion")
    return {k: [v] for k, v in (oauth_request.decoded_body or []) if k in names}


class Validator(RequestValidator):  # type: ignore[misc]
    """oauthlib's questions about clients, scopes and tokens, answered from the server's state."""

    def __init__(self, state: ServerState) -> None:
        super().__init__()
        self._state = state

    # -- clients ---------------------------------------------------------------------

    def client_authentication_required(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        return True

    def authenticate_client(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        try:
            client_id, secret, method = client_credentials(request.headers, _form_of(request))
        except ValueError as exc:
            raise oauth_errors.InvalidClientError(description=str(exc), request=request) from None
        client = self._state.client(client_id)
        if client is None or method is None:
            return False
        if method == "private_key_jwt":
            assert secret is not None  # the assertion
            problem = check_federated_assertion(client.federated, secret, self._state.clock)
            if problem is not None:
                raise oauth_errors.InvalidClientError(description=problem, request=request)
            ok = True
        elif client.is_public:
            ok = method == "none"
        else:
            ok = method != "none" and secret == client.secret
        if ok:
            request.client = client
            request.client_id = client.client_id
        return ok

    def authenticate_client_id(self, client_id: str, request: Any, *args: Any, **kwargs: Any) -> bool:
        client = self._state.client(client_id)
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
        client = self._state.client(client_id)
        return sorted(client.scopes) if client is not None else []

    def validate_scopes(
        self, client_id: str, scopes: list[str], client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        allowed: frozenset[str] = client.scopes
        if set(scopes) <= allowed:
            return True
        if not self._state.narrow_scopes:
            return False
        request.scopes = [s for s in scopes if s in allowed]
        return bool(request.scopes)

    # -- tokens ----------------------------------------------------------------------

    def save_bearer_token(self, token: Mapping[str, Any], request: Any, *args: Any, **kwargs: Any) -> None:
        self._state.save(token, request.client.client_id, request.scopes or [])

    def validate_bearer_token(self, token: str | None, scopes: list[str], request: Any) -> bool:
        problem = self._state.check(token, scopes or [])
        request.reqcc_problem = problem
        return problem is None

    def revoke_token(
        self, token: str, token_type_hint: str | None, request: Any, *args: Any, **kwargs: Any
    ) -> None:
        self._state.revoke_for(token, request.client.client_id)

    def introspect_token(
        self, token: str, token_type_hint: str | None, request: Any, *args: Any, **kwargs: Any
    ) -> dict[str, Any] | None:
        return self._state.introspect(token, request.client.client_id)
