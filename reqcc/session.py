"""A ``requests.Session`` with client-credentials tokens, and ``mount`` for existing sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter

from ._keywords import passes_keywords
from ._untokened import LOOPBACK_PREFIXES, UntokenedNotice
from ._urls import origin, require_secure_url
from .adapter import NO_TOKEN_ATTRIBUTE, ClientCredentialsAdapter
from .errors import ConfigurationError
from .manager import ClientCredentialsManager

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

    from .config import ManagerKeywords

__all__ = ["ClientCredentialsSession", "mount"]


#: ``requests.Session.prepare_request``, called directly: cheaper than ``super()`` per request.
_prepare_request = requests.Session.prepare_request


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """An auth hook that adds nothing (it stops requests from reading ``.netrc``)."""
    return request


def _normalize_prefix(prefix: str, keyword: str) -> str:
    if not isinstance(prefix, str):
        raise ConfigurationError(f"{keyword} must be a URL string")
    parts = urlsplit(prefix)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{keyword} must be an http(s) URL with a host, such as 'https://api.example.com/'; "
            f"got {prefix!r}"
        )
    require_secure_url(prefix, keyword)
    # Without a path, 'https://api.example.com' would also match 'https://api.example.com.evil/'.
    return prefix if parts.path else prefix + "/"


@passes_keywords(ClientCredentialsManager)
def mount(
    session: requests.Session,
    prefix: str,
    *,
    inner: BaseAdapter | None = None,
    manager: ClientCredentialsManager | None = None,
    **manager_kwargs: Unpack[ManagerKeywords],
) -> ClientCredentialsAdapter:
    """Attach client-credentials tokens to ``session``'s requests under ``prefix``.

    The adapter that served ``prefix`` until now becomes the inner transport, so its
    connection pool, retries and TLS settings are kept. Returns the mounted adapter.

    :param session: the ``requests.Session`` to attach tokens to.
    :param prefix: the URL prefix whose requests get a token, e.g. the API's root.
    :param inner: the adapter that really sends (default: the one that served ``prefix``).
    :param manager: a :class:`~reqcc.ClientCredentialsManager` to share; otherwise the
        manager's keywords (``token_url``, ``client_id``, …) configure a new one.
    :raises ConfigurationError: ``prefix`` is not an http(s) URL with a host.
    :raises TypeError: an unknown keyword (the message names the closest valid ones).
    """
    prefix = _normalize_prefix(prefix, "prefix")
    inner = inner or session.get_adapter(prefix)
    adapter = ClientCredentialsAdapter(inner, manager=manager, **manager_kwargs)
    session.mount(prefix, adapter)
    return adapter


class ClientCredentialsSession(requests.Session):
    """A ``requests.Session`` that fetches, reuses, renews and attaches client-credentials tokens.

    :param base_url: the URL prefix whose requests get a token (e.g. the API's root). Without
        it, every https request of this session gets the token, and so does plain http to
        ``localhost``, ``127.0.0.1`` and ``[::1]``; any other plain-http request goes without
        it and a WARNING per origin says so. Redirect hops to another origin are sent
        without it.
    :param adapter: the inner transport adapter (default: a new ``HTTPAdapter``).
    :param manager: a :class:`~reqcc.ClientCredentialsManager` to share between sessions;
        otherwise the remaining keywords (``token_url``, ``client_id``, ``client_secret``,
        ``scopes``, …) configure a new one.
    """

    @passes_keywords(ClientCredentialsManager)
    def __init__(
        self,
        *,
        base_url: str | None = None,
        adapter: BaseAdapter | None = None,
        manager: ClientCredentialsManager | None = None,
        **manager_kwargs: Unpack[ManagerKeywords],
    ) -> None:
        super().__init__()
        self.base_url = _normalize_prefix(base_url, "base_url") if base_url is not None else None
        prefix = self.base_url or "https://"
        inner = adapter if adapter is not None else self.get_adapter(prefix)
        self.token_adapter = ClientCredentialsAdapter(inner, manager=manager, **manager_kwargs)
        self.mount(prefix, self.token_adapter)
        prefixes: tuple[str, ...] = (prefix,)
        if self.base_url is None:
            # Plain http to this machine gets the token too (as the token request may go
            # there); any other plain-http request is sent without one, never silently.
            self.mount("http://", UntokenedNotice(self.get_adapter("http://"), tokened=self.token_adapter))
            prefixes += LOOPBACK_PREFIXES
        self._token_prefixes = tuple(p.lower() for p in prefixes)

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        """Prepare ``request`` as ``requests.Session`` does, minus ``.netrc`` under the token prefix.

        requests adds ``Authorization: Basic`` from ``~/.netrc`` to a request without auth;
        the adapter would take that header for the caller's explicit choice and send no
        bearer token. Requests to the token prefix therefore skip the ``.netrc`` lookup.
        """
        if (
            self.trust_env
            and request.auth is None
            and self.auth is None
            and isinstance(request.url, str)
            and request.url.lower().startswith(self._token_prefixes)
        ):
            request.auth = _no_auth
        return _prepare_request(self, request)

    @property
    def manager(self) -> ClientCredentialsManager:
        """The token manager of this session."""
        return self.token_adapter.manager

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        """Strip credentials from a redirect hop to another origin, the bearer token included."""
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]
        previous = response.request.url if response.request is not None else None
        if previous is None or origin(previous) != origin(prepared_request.url or ""):
            setattr(prepared_request, NO_TOKEN_ATTRIBUTE, True)

    def __repr__(self) -> str:
        return f"<ClientCredentialsSession base_url={self.base_url!r} manager={self.manager!r}>"
