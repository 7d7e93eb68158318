"""reqcc.discovered: the endpoint of an ``issuer=`` manager, discovered once (contract item 25).

These drive :class:`~reqcc.discovered.DiscoveredEndpoint` directly, without a manager, so
its own lock is what keeps concurrent first calls to one metadata request (the manager's
single flight would hide a broken lock).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests_mock

from reqcc.client_auth import make_client_auth
from reqcc.discovered import DiscoveredEndpoint
from reqcc.discovery import MetadataError
from reqcc.token_endpoint import TokenEndpoint

from .conftest import CLIENT_ID, CLIENT_SECRET, token_session_for
from .threads import JOIN, Crowd, wait_until

ISSUER = "https://as.example.com"
METADATA_URL = ISSUER + "/.well-known/openid-configuration"
DOCUMENT = {"issuer": ISSUER, "token_endpoint": ISSUER + "/token"}


class _CountingLock:
    """A lock that counts the threads that asked for it (waiting or holding)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.asked = 0
        self._count = threading.Lock()

    def __enter__(self) -> None:
        with self._count:
            self.asked += 1
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _discovered(adapter: requests_mock.Adapter, built: list[str]) -> DiscoveredEndpoint:
    def make_endpoint(url: str, method: str) -> TokenEndpoint:
        built.append(url)
        return TokenEndpoint(url, make_client_auth(method, CLIENT_ID, CLIENT_SECRET))

    return DiscoveredEndpoint(
        ISSUER, make_endpoint, auth_method=None, has_client_secret=True, has_private_key=False,
        session=token_session_for(adapter), max_retries=0,
    )


def test_concurrent_first_calls_contend_on_its_own_lock_and_read_the_metadata_once() -> None:
    release = threading.Event()
    requests_seen: list[str] = []

    def held(request: Any, context: Any) -> dict[str, Any]:
        requests_seen.append(request.url)
        assert release.wait(JOIN)
        return DOCUMENT

    adapter = requests_mock.Adapter()
    adapter.register_uri("GET", METADATA_URL, json=held)
    built: list[str] = []
    discovered = _discovered(adapter, built)
    lock = _CountingLock()
    discovered._lock = lock  # type: ignore[assignment]
    crowd = Crowd(8, lambda i: discovered.resolve())
    # Every thread reached the lock: one holds it (its metadata request held), seven wait.
    assert wait_until(lambda: lock.asked == 8 and len(requests_seen) == 1)
    release.set()
    results = crowd.join()
    assert all(isinstance(r, TokenEndpoint) for r in results), results
    assert len({id(r) for r in results}) == 1
    assert requests_seen == [METADATA_URL] and built == [ISSUER + "/token"]
    assert discovered.endpoint is results[0] and discovered.metadata is not None


def test_a_failure_is_not_kept_and_the_next_call_reads_again() -> None:
    adapter = requests_mock.Adapter()
    adapter.register_uri("GET", METADATA_URL, [{"status_code": 503, "text": "busy"}, {"json": DOCUMENT}])
    built: list[str] = []
    discovered = _discovered(adapter, built)
    with pytest.raises(MetadataError, match="HTTP 503"):
        discovered.resolve()
    assert discovered.endpoint is None
    assert discovered.resolve().token_url == ISSUER + "/token"
    assert adapter.call_count == 2 and built == [ISSUER + "/token"]
