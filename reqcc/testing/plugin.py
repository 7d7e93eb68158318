"""The pytest plugin: a real local token endpoint and bookstore API as fixtures.

Installed with reqcc (entry point ``pytest11``, the module :mod:`reqcc.pytest_plugin`, which
re-exports this one), so any test can ask for them::

    def test_my_client(reqcc_server):
        session = ClientCredentialsSession(**reqcc_server.credentials(), scopes=["books.read"])
        assert session.get(reqcc_server.api_url + "books").ok
        assert reqcc_server.token_requests == 1

Configure the server of one test with a marker (the keywords of
:class:`~reqcc.testing.LocalAuthorizationServer`)::

    @pytest.mark.reqcc_server(token_ttl=5, narrow_scopes=True)
    def test_short_tokens(reqcc_server): ...

    @pytest.mark.reqcc_server(clients={"my-service": ("its-secret", {"books.read"})})
    def test_my_service(reqcc_server):
        reqcc_server.credentials()   # my-service's: the only registered client

or start several, each configured its own way, with ``reqcc_server_factory(**kwargs)``.
Every server is stopped when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .server import LocalAuthorizationServer

__all__ = ["reqcc_server", "reqcc_server_factory"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``reqcc_server`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        "reqcc_server(**kwargs): keywords for the reqcc_server fixture's LocalAuthorizationServer",
    )


@pytest.fixture
def reqcc_server_factory() -> Iterator[Callable[..., LocalAuthorizationServer]]:
    """A function ``(**kwargs) -> LocalAuthorizationServer`` that starts servers for this test.

    The keywords are :class:`~reqcc.testing.LocalAuthorizationServer`'s. Every server it
    started is closed when the test ends.
    """
    servers: list[LocalAuthorizationServer] = []

    def start(**kwargs: Any) -> LocalAuthorizationServer:
        server = LocalAuthorizationServer(**kwargs)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def reqcc_server(
    request: pytest.FixtureRequest, reqcc_server_factory: Callable[..., LocalAuthorizationServer]
) -> LocalAuthorizationServer:
    """A running :class:`~reqcc.testing.LocalAuthorizationServer` on 127.0.0.1, fresh for each test.

    Its default clients are :data:`~reqcc.testing.DEFAULT_CLIENTS`; ``credentials()`` gives the
    keywords for a session (``credentials("client-id")`` for another client; with no argument,
    the only client when the marker registers just one). A
    ``@pytest.mark.reqcc_server(**kwargs)`` marker configures it.
    """
    marker = request.node.get_closest_marker("reqcc_server")
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    return reqcc_server_factory(**kwargs)
