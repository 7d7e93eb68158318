"""reqcc.to_server.send: the one send path to the authorization server (issue 20).

Token and metadata requests both go through it; these tests drive it directly: credential
stripping, ``verify`` pinned, no redirect followed, the timeout cut to the deadline and no
request after it, the capped read and its refusals, the cleartext-proxy check.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
import requests
import requests_mock

from reqcc._urls import NO_TOKEN_ATTRIBUTE
from reqcc.client_auth import ClientSecretBasic
from reqcc.dpop import DPoPKey, DPoPProver
from reqcc.errors import InsecureTransportError, OAuthProviderError, TokenDeadlineError, TokenResponseError
from reqcc.telemetry import Telemetry
from reqcc.to_server import MAX_ANSWER_BYTES, clip_timeout, send
from reqcc.token_endpoint import TokenEndpoint

from .hostile_server import HostileServer, Reply

URL = "https://as.example/token"


class Refused(Exception):
    """What the test's refusals return, naming the case."""


class Refusals:
    """Records which refusal :func:`send` asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int | None, int | None]] = []

    def expired(self, url: str, response: requests.Response | None, received: int | None) -> Exception:
        self.calls.append(("expired", url, None if response is None else response.status_code, received))
        return Refused("expired")

    def too_large(self, url: str, response: requests.Response) -> Exception:
        self.calls.append(("too_large", url, response.status_code, None))
        return Refused("too large")


def mocked(**response: object) -> tuple[requests.Session, requests_mock.Adapter]:
    session = requests.Session()
    transport = requests_mock.Adapter()
    transport.register_uri(requests_mock.ANY, requests_mock.ANY, **response)
    session.mount("https://", transport)
    session.mount("http://", transport)
    return session, transport


def counting_clock(start: float = 0.0) -> Callable[[], float]:
    """A monotonic clock one second further on each read."""
    ticks = itertools.count()
    return lambda: start + next(ticks)


# -- credentials ------------------------------------------------------------------------------


def test_no_credential_of_the_session_reaches_the_server() -> None:
    session, transport = mocked(json={})
    session.auth = ("user", "session-password")
    session.headers["Authorization"] = "Bearer session-token"
    send(session, "GET", URL, headers={"Accept": "application/json"}, refusals=Refusals(), timeout=5)
    sent = transport.request_history[0]
    assert "Authorization" not in sent.headers
    assert sent.headers["Accept"] == "application/json"


def test_only_the_given_credential_headers_are_sent_and_the_request_is_marked() -> None:
    session, transport = mocked(json={})
    session.auth = ("user", "session-password")
    send(
        session, "POST", URL, headers={}, data=b"grant_type=client_credentials",
        auth_headers={"Authorization": "Basic Y2xpZW50OnMzY3JldA=="}, refusals=Refusals(), timeout=5,
    )
    sent = transport.request_history[0]
    assert sent.headers["Authorization"] == "Basic Y2xpZW50OnMzY3JldA=="
    assert sent.body == b"grant_type=client_credentials"
    # A reqcc adapter mounted on the same session passes it through (no token, no wait on itself).
    assert getattr(sent._request, NO_TOKEN_ATTRIBUTE, False) is True


def test_the_sessions_verify_wins_over_the_environments_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/environment/ca.pem")
    session, transport = mocked(json={})
    session.verify = "/pinned/ca.pem"
    send(session, "GET", URL, headers={}, refusals=Refusals(), timeout=5)
    assert transport.request_history[0].verify == "/pinned/ca.pem"


def test_plain_http_with_credentials_through_a_proxy_is_refused_before_sending() -> None:
    session, transport = mocked(json={})
    session.proxies = {"http": "http://proxy.example:3128"}
    with pytest.raises(InsecureTransportError, match=r"the token request .* cleartext through the proxy"):
        send(
            session, "POST", "http://127.0.0.1:9/token", headers={}, refusals=Refusals(), timeout=5,
            credentials="the token request (client credentials)",
        )
    assert transport.call_count == 0
    # Without credentials (a metadata GET) there is nothing to protect: it is sent.
    send(session, "GET", "http://127.0.0.1:9/.well-known/openid-configuration", headers={},
         refusals=Refusals(), timeout=5)
    assert transport.call_count == 1


# -- timeout and deadline ---------------------------------------------------------------------


def test_the_timeout_is_cut_to_what_is_left_of_the_deadline() -> None:
    session, transport = mocked(json={})
    send(session, "GET", URL, headers={}, refusals=Refusals(), timeout=(5.0, 15.0),
         deadline=110.0, monotonic=lambda: 100.0)
    send(session, "GET", URL, headers={}, refusals=Refusals(), timeout=(5.0, 15.0))
    send(session, "GET", URL, headers={}, refusals=Refusals(), timeout=30.0,
         deadline=107.5, monotonic=lambda: 100.0)
    assert [r.timeout for r in transport.request_history] == [(5.0, 10.0), (5.0, 15.0), 7.5]


@pytest.mark.parametrize("now", [100.0, 100.5])
def test_no_request_is_started_once_the_deadline_has_passed(now: float) -> None:
    session, transport = mocked(json={})
    refusals = Refusals()
    with pytest.raises(Refused, match="expired"):
        send(session, "GET", URL, headers={}, refusals=refusals, timeout=5,
             deadline=100.0, monotonic=lambda: now)
    assert transport.call_count == 0
    assert refusals.calls == [("expired", URL, None, None)]


def test_clip_timeout() -> None:
    assert clip_timeout((5.0, 15.0), None, 1e9) == (5.0, 15.0)
    assert clip_timeout((5.0, 15.0), 103.0, 100.0) == (3.0, 3.0)
    assert clip_timeout(2.0, 103.0, 100.0) == 2.0
    assert clip_timeout(2.0, 100.0, 100.0) is None


# -- the answer -------------------------------------------------------------------------------


def test_the_answer_is_status_headers_and_body_and_no_redirect_is_followed() -> None:
    with HostileServer(
        Reply(302, headers={"Location": "/elsewhere", "X-Seen": "1"}, body=b"moved"), Reply(200, body=b"{}")
    ) as server:
        answer = send(requests.Session(), "GET", server.url + "/token", headers={},
                      refusals=Refusals(), timeout=5)
        assert (answer.status, answer.headers["x-seen"], answer.body) == (302, "1", b"moved")
        assert answer.response.status_code == 302 and answer.response.content == b"moved"
        assert server.token_requests == 1


def test_a_body_larger_than_the_cap_is_abandoned_and_refused() -> None:
    refusals = Refusals()
    seen: list[int] = []
    with HostileServer(Reply(200, body=b"x" * 65536, repeat=64, framing="close")) as server:
        with pytest.raises(Refused, match="too large"):
            send(requests.Session(), "POST", server.url + "/token", headers={}, refusals=refusals,
                 timeout=5, on_headers=lambda r: seen.append(r.status_code))
        assert server.bytes_sent < 4 * MAX_ANSWER_BYTES  # abandoned, not drained
    assert refusals.calls == [("too_large", server.url + "/token", 200, None)]
    assert seen == [200]  # the headers were seen before the body was refused


def test_a_body_still_arriving_at_the_deadline_is_abandoned() -> None:
    refusals = Refusals()
    with HostileServer(Reply(200, body=b"x" * 16384, repeat=64, framing="close")) as server:
        with pytest.raises(Refused, match="expired"):
            # Clock reads: 0 for the timeout, then one a body read: the third read is at the deadline.
            send(requests.Session(), "GET", server.url + "/", headers={}, refusals=refusals,
                 timeout=5, deadline=3.0, monotonic=counting_clock())
    assert len(refusals.calls) == 1
    kind, _, status, received = refusals.calls[0]
    assert (kind, status) == ("expired", 200)
    assert received is not None and 0 < received < 64 * 16384


def test_a_skipped_body_is_not_read() -> None:
    with HostileServer(Reply(404, body=b"x" * 65536, repeat=64, framing="close")) as server:
        answer = send(requests.Session(), "GET", server.url + "/", headers={}, refusals=Refusals(),
                      timeout=5, skip_body=lambda r: r.status_code == 404)
    assert (answer.status, answer.body) == (404, b"")
    assert server.bytes_sent < 4 * MAX_ANSWER_BYTES


def test_a_connection_broken_mid_body_is_a_requests_error() -> None:
    with HostileServer(Reply(200, body=b"{", framing="declared", declared_length=1000, reset=True)) as server:
        with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
            send(requests.Session(), "GET", server.url + "/", headers={}, refusals=Refusals(), timeout=5)


# -- the token endpoint on the send path ------------------------------------------------------


class SlowTelemetry(Telemetry):
    """Counts the token requests the endpoint reports; each one ends ``took`` seconds later."""

    def __init__(self, now: list[float], took: float) -> None:
        self.requests = 0
        self._now, self._took = now, took

    @contextlib.contextmanager
    def _request(self) -> Iterator[None]:
        self.requests += 1
        try:
            yield
        finally:
            self._now[0] += self._took

    def token_request(self, url: str | None = None) -> AbstractContextManager[None]:
        return self._request()


def test_no_dpop_nonce_replay_is_started_after_the_deadline() -> None:
    now = [100.0]
    session, transport = mocked(
        status_code=400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": "nonce-A"}
    )
    telemetry = SlowTelemetry(now, took=11.0)  # the first exchange ends past the deadline
    endpoint = TokenEndpoint(
        URL, ClientSecretBasic("client", "s3cret"), session=session, max_retries=0,
        dpop=DPoPProver(DPoPKey.generate()), monotonic=lambda: now[0], telemetry=telemetry,
    )
    with pytest.raises(TokenDeadlineError, match="within the token deadline") as caught:
        endpoint.request_token(deadline=110.0)
    assert transport.call_count == 1 and telemetry.requests == 1
    assert isinstance(caught.value.__cause__, OAuthProviderError)
    # Within the deadline the replay is sent (and counted): one more HTTP request.
    now[0] = 100.0
    telemetry.requests, telemetry._took = 0, 1.0
    with pytest.raises(OAuthProviderError, match="use_dpop_nonce"):
        endpoint.request_token(deadline=110.0)
    assert transport.call_count == 3 and telemetry.requests == 2


def test_what_a_response_hook_returns_is_read_capped_too() -> None:
    session, transport = mocked(json={"access_token": "tok", "token_type": "Bearer"})

    def bloat(response: requests.Response) -> requests.Response:
        response._content = b'{"access_token": "' + b"x" * MAX_ANSWER_BYTES + b'", "token_type": "Bearer"}'
        return response

    session.compliance_hook = {"access_token_response": [bloat]}  # type: ignore[attr-defined]
    endpoint = TokenEndpoint(URL, ClientSecretBasic("client", "s3cret"), session=session, max_retries=0)
    with pytest.raises(TokenResponseError, match=f"larger than {MAX_ANSWER_BYTES} bytes"):
        endpoint.request_token()
    session.compliance_hook = {"access_token_response": [lambda r: r]}  # type: ignore[attr-defined]
    assert endpoint.request_token().access_token == "tok"
    assert transport.call_count == 2
