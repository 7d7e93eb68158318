"""URL rules shared by the layers: what counts as loopback, what may carry a credential."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .errors import InsecureTransportError

#: A ``PreparedRequest`` with this attribute set to ``True`` is sent by the reqcc adapter
#: without a bearer token: redirect hops to another origin, and the token request itself
#: when the token session is one the adapter is mounted on.
NO_TOKEN_ATTRIBUTE = "_reqcc_no_token"


def is_loopback_host(host: str | None) -> bool:
    """Return whether ``host`` names this machine: ``localhost`` or a loopback address."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_secure_url(url: str) -> bool:
    """Return whether a credential may travel to ``url``: https, or http to a loopback host."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme == "https" or (scheme == "http" and is_loopback_host(parts.hostname))


def require_secure_url(url: str, what: str) -> None:
    """Raise :class:`InsecureTransportError` unless ``url`` may carry a credential."""
    if not is_secure_url(url):
        raise InsecureTransportError(
            f"{what} must use https (plain http is allowed only to a loopback host such as "
            f"127.0.0.1 or localhost); refusing {_origin(url)}"
        )


def origin(url: str) -> tuple[str, str, int | None]:
    """Return the (scheme, host, port) origin of ``url``, with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"https": 443, "http": 80}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def _origin(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")
