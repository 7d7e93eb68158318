"""contract item 31: an exception raised while sending carries the caller's request, never the copy.

The adapter sends a copy of the caller's request holding ``Authorization`` (and the DPoP
proof). On 0.2 a transport failure raised by the inner adapter carried that copy as
``exc.request``, and error reporters that dump ``exc.request.headers`` printed the live
token: 4 of 4 transport failures, Bearer and DPoP. Real loopback servers fail each way.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from reqcc import ClientCredentialsAdapter, ClientCredentialsManager, OAuthToken

from ..hostile_server import HostileServer, Reply

LIVE = "live-token-ABC123"
FRESH = "fresh-token-XYZ789"


def _manager(token_type: str, *, fresh: bool = False) -> ClientCredentialsManager:
    """A manager holding a live token; its provider hands out another one after a 401."""

    def provider(last: OAuthToken | None, manager: ClientCredentialsManager) -> OAuthToken:
        return OAuthToken(FRESH, token_type=token_type, expires_in=3600)

    return ClientCredentialsManager(
        token_url="https://auth.example.com/t", client_id="c", client_secret="s",
        token=OAuthToken(LIVE, token_type=token_type, expires_in=3600),
        token_provider=provider if fresh else None,
        dpop=token_type == "DPoP",
    )


def _session(
    manager: ClientCredentialsManager, inner: requests.adapters.BaseAdapter | None = None
) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment for loopback
    adapter = ClientCredentialsAdapter(inner, manager=manager)
    session.mount("http://", adapter)
    return session


def _refused_url() -> str:
    with socket.socket() as sock:  # a port nobody listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/orders"


def _assert_no_secret(exc: requests.RequestException, prepared: requests.PreparedRequest) -> None:
    assert exc.request is prepared
    assert "Authorization" not in prepared.headers and "DPoP" not in prepared.headers
    if exc.response is not None:
        assert exc.response.request is prepared
    shown = f"{exc!s} {exc!r} {exc.request.headers!r} {exc.request.__dict__!r}"
    assert LIVE not in shown and FRESH not in shown


FAILURES: dict[str, tuple[list[Reply] | None, type[Exception]]] = {
    "read-timeout": ([Reply(stall=True)], requests.exceptions.ReadTimeout),
    "reset": ([Reply(reset_at_once=True)], requests.exceptions.ConnectionError),
    "refused": (None, requests.exceptions.ConnectionError),
    "timeout-on-replay": (
        [Reply(status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}), Reply(stall=True)],
        requests.exceptions.ReadTimeout,
    ),
}


@pytest.mark.parametrize("token_type", ["Bearer", "DPoP"])
@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_transport_failure_carries_the_callers_request(
    serve: Callable[..., HostileServer], token_type: str, failure: str
) -> None:
    replies, expected = FAILURES[failure]
    url = _refused_url() if replies is None else serve(*replies, lifetime=5).url + "/orders"
    session = _session(_manager(token_type, fresh=failure == "timeout-on-replay"))
    prepared = session.prepare_request(requests.Request("GET", url))
    with pytest.raises(expected) as caught:
        session.send(prepared, timeout=(2, 0.3))
    _assert_no_secret(caught.value, prepared)


class _RaisingForStatus(HTTPAdapter):
    """An inner adapter that raises for an error status (``HTTPError`` with the response)."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().send(request, *args, **kwargs)
        response.raise_for_status()
        return response


@pytest.mark.parametrize("token_type", ["Bearer", "DPoP"])
def test_an_exception_with_a_response_carries_the_callers_request_there_too(
    serve: Callable[..., HostileServer], token_type: str
) -> None:
    server = serve(Reply(status=500, body=b"{}"), lifetime=5)
    session = _session(_manager(token_type), _RaisingForStatus())
    prepared = session.prepare_request(requests.Request("POST", server.url + "/orders", data=b"x"))
    with pytest.raises(requests.HTTPError) as caught:
        session.send(prepared, timeout=(2, 2))
    assert caught.value.response is not None
    _assert_no_secret(caught.value, prepared)
    # The token did go out: the server saw it (the check above is not vacuous).
    assert server.requests[0][2]["authorization"].endswith(LIVE)


@pytest.mark.parametrize("token_type", ["Bearer", "DPoP"])
def test_a_returned_response_carries_the_callers_request(
    serve: Callable[..., HostileServer], token_type: str
) -> None:
    server = serve(Reply(status=200, body=b"{}"), lifetime=5)
    session = _session(_manager(token_type))
    prepared = session.prepare_request(requests.Request("GET", server.url + "/orders"))
    response = session.send(prepared, timeout=(2, 2))
    assert response.request is prepared
    assert "Authorization" not in response.request.headers


def test_a_timeout_on_the_dpop_nonce_replay_carries_the_callers_request(
    serve: Callable[..., HostileServer],
) -> None:
    nonce_401 = Reply(
        status=401,
        headers={"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "n-1"},
    )
    server = serve(nonce_401, Reply(stall=True), lifetime=5)
    session = _session(_manager("DPoP"))
    prepared = session.prepare_request(requests.Request("GET", server.url + "/orders"))
    with pytest.raises(requests.exceptions.ReadTimeout) as caught:
        session.send(prepared, timeout=(2, 0.3))
    _assert_no_secret(caught.value, prepared)
    assert len(server.requests) == 2  # the replay with the nonce is what timed out
