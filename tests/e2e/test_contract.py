"""The behaviour contract (docs/contract.rst) checked from outside, through the public API only.

The token request follows no redirect (items 6 and 10), a token a failing token endpoint
echoes is not in the error (item 13), ``token_deadline`` bounds the discovering thread's
metadata read (items 14 and 25, against a raw-socket server that drips), and reqcc's errors
stay ``requests`` exceptions (item 7). A deviation found this way is marked
``xfail(strict=True)`` with the item it breaks, so that the fix turns it into a failure that
asks for the mark to be removed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest
import requests
import requests_mock

import reqcc
from reqcc import ClientCredentialsSession

from ..hostile_server import HostileServer, Reply
from ..threads import run_threads

TOKEN_URL = "https://auth.example.com/token"
API = "https://api.example.com/"
SECRET = "qa-s3cret-Value-42"
TOKEN = "QaAccessToken0123456789abcdef"


def _session(inner: requests_mock.Adapter, **kwargs: object) -> ClientCredentialsSession:
    token_session = requests.Session()
    token_session.mount("https://", inner)
    token_session.mount("http://", inner)
    kwargs.setdefault("client_secret", SECRET)
    return ClientCredentialsSession(
        token_url=TOKEN_URL,
        client_id="qa-client",
        base_url=API,
        token_session=token_session,
        adapter=inner,
        max_retries=0,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
@pytest.mark.parametrize(
    "target", ["https://evil.example.com/token", "http://auth.example.com/token"]
)
def test_token_endpoint_redirect_is_not_followed(code: int, auth_method: str, target: str) -> None:
    """Items 6 and 10: the client credential goes to token_url only, never to a redirect target.

    A 307/308 would re-send a client_secret_post body as it is, to another host or over
    plain http; the token request must not follow redirects at all.
    """
    inner = requests_mock.Adapter()
    inner.register_uri("POST", TOKEN_URL, status_code=code, headers={"Location": target})
    inner.register_uri(requests_mock.ANY, target, json={"access_token": TOKEN, "token_type": "Bearer"})
    inner.register_uri("GET", API + "books", json={})
    session = _session(inner, auth_method=auth_method)

    with pytest.raises(reqcc.TokenResponseError) as caught:
        session.get(API + "books")

    assert caught.value.status_code == code
    assert [r.url for r in inner.request_history] == [TOKEN_URL]


def test_current_token_echoed_by_a_failing_token_endpoint_is_not_in_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = iter(
        [
            {"json": {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600}},
            {"status_code": 500, "text": f"<html>the token {TOKEN} was refused</html>"},
        ]
    )
    inner = requests_mock.Adapter()
    inner.register_uri("POST", TOKEN_URL, [next(answers), next(answers)])
    inner.register_uri("GET", API + "books", json={})
    session = _session(inner)
    session.get(API + "books")
    assert session.manager.token is not None and session.manager.token.access_token == TOKEN

    caplog.set_level(logging.DEBUG, logger="reqcc")
    with pytest.raises(reqcc.TokenResponseError) as caught:
        session.manager.fetch_token()

    assert caught.value.status_code == 500
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value)
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


# -- items 14 and 25: token_deadline bounds the leader's metadata read ---------------------


def test_a_dripping_metadata_endpoint_releases_the_discovering_thread_by_the_deadline(
    serve: Callable[..., HostileServer],
) -> None:
    """Item 14: one fetch ends within token_deadline for every thread, discovery included.

    The metadata document drips one byte every 0.2 s (well under the per-read timeout), so
    only the deadline can end it. The waiters were released on time already; the thread
    that reads the metadata must be too, with a ReqccError, and no token request is sent.
    """
    server = serve(
        Reply(headers={"Content-Type": "application/json"}, body=b" ", repeat=100, drip=0.2), lifetime=30
    )
    manager = reqcc.ClientCredentialsManager(
        issuer=server.url, client_id="c", client_secret="s", token_deadline=1.0, timeout=(2, 2)
    )
    started = time.monotonic()
    results = run_threads(lambda i: manager.get_token(), 3, timeout=10)
    elapsed = time.monotonic() - started

    assert all(isinstance(r, reqcc.ReqccError) for r in results), results
    assert any(isinstance(r, reqcc.TokenDeadlineError) for r in results), results
    assert elapsed < 6, f"the discovering thread took {elapsed:.1f}s with token_deadline=1"
    assert all(method == "GET" for method, *_ in server.requests)  # no token request


# -- item 7: the exceptions' classes ----------------------------------------------------


def test_requests_exceptions_stay_requests_exceptions() -> None:
    """Item 7 (kept): every reqcc error is still a requests RequestException."""
    assert issubclass(reqcc.TokenDeadlineError, requests.RequestException)
