"""The local server's authorization endpoints: token (client credentials), revocation, introspection.

Built on oauthlib's server side (``BackendApplicationServer`` with :class:`~.validator.Validator`).
The token endpoint also records every request, applies the test's injected failures and
delays, and counts what it answered.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs

from oauthlib.oauth2 import BackendApplicationServer

from .._log import fingerprint, log
from .clients import client_credentials
from .failures import injected_answer
from .records import RecordedTokenRequest
from .responses import Answer, json_answer, oauth_answer, text_of
from .state import ServerState

__all__ = ["AuthorizationEndpoints"]


class AuthorizationEndpoints:
    """``POST /token``, ``POST /revoke`` (RFC 7009) and ``POST /introspect`` (RFC 7662).

    :param state: the server's state.
    :param oauth: oauthlib's server, whose validator answers from ``state``.
    """

    def __init__(self, state: ServerState, oauth: BackendApplicationServer) -> None:
        self._state = state
        self._oauth = oauth

    def token(self, method: str, uri: str, headers: dict[str, str], body: bytes) -> Answer:
        """The client-credentials token endpoint."""
        state = self._state
        text = text_of(body)
        form = parse_qs(text, keep_blank_values=True)
        try:
            client_id, _, auth_method = client_credentials(headers, form)
        except ValueError:
            client_id, auth_method = None, None
        with state.lock:
            state.counters.token_requests += 1
            injection = state.failures.take()
            record = RecordedTokenRequest(form, dict(headers), client_id, auth_method)
            state.records.append(record)
        if injection is not None and injection.gate is not None:
            injection.gate.wait(injection.delay)
            delay = state.token_delay
        else:
            delay = state.token_delay + (injection.delay if injection is not None else 0.0)
        if delay > 0:
            time.sleep(delay)
        if injection is not None and injection.status is not None:
            status, response_headers, payload = injected_answer(injection)
            injected = True
        else:
            injected = False
            # Checks of the request beyond client authentication (a proof of possession, say)
            # belong here, before oauthlib issues the token.
            client = state.client(client_id)
            jkt, refusal = state.dpop.token_request(uri, headers, client is not None and client.dpop)
            if refusal is not None:
                status, response_headers, payload = refusal
            else:
                try:
                    status, response_headers, payload = oauth_answer(
                        *self._oauth.create_token_response(uri, "POST", text, headers)
                    )
                except ValueError:  # oauthlib refuses a body that is not form-urlencoded
                    status, response_headers, payload = json_answer(
                        400,
                        {"error": "invalid_request", "error_description": "the body is not form-urlencoded"},
                    )
                if status == 200:
                    payload = _finish_token(payload, state, jkt)
            response_headers.update(state.dpop.nonce_headers(at_api=False))
        with state.lock:
            # Found by identity (reset_counters() may have run meanwhile), newest first.
            for index in range(len(state.records) - 1, -1, -1):
                if state.records[index] is record:
                    state.records[index] = RecordedTokenRequest(
                        record.form, record.headers, client_id, auth_method, status, injected
                    )
                    break
            if status == 200:
                state.counters.tokens_issued += 1
            else:
                state.counters.token_errors += 1
                if injected:
                    state.counters.injected_failures += 1
        return status, response_headers, payload

    def revoke(self, method: str, uri: str, headers: dict[str, str], body: bytes) -> Answer:
        """The RFC 7009 revocation endpoint (a client revokes its own tokens)."""
        with self._state.lock:
            self._state.counters.revocations += 1
        return oauth_answer(*self._oauth.create_revocation_response(uri, "POST", text_of(body), headers))

    def introspect(self, method: str, uri: str, headers: dict[str, str], body: bytes) -> Answer:
        """The RFC 7662 introspection endpoint."""
        return oauth_answer(*self._oauth.create_introspect_response(uri, "POST", text_of(body), headers))


def _finish_token(payload: bytes, state: ServerState, jkt: str | None) -> bytes:
    data: dict[str, Any] = json.loads(payload)
    if data.get("expires_in") is None:
        data.pop("expires_in", None)
    if jkt is not None:  # RFC 9449 §5: a token bound to the proof's key
        state.bind(data["access_token"], jkt)
        data["token_type"] = "DPoP"
    log.debug("local authorization server issued token %s", fingerprint(data["access_token"]))
    return json.dumps(data).encode()


