"""URL rules shared by the layers: what counts as loopback, what may carry a credential."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from requests.utils import select_proxy

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
    if host == "localhost":
        # Not "*.localhost": RFC 6761 asks resolvers to keep those on this machine, but many
        # (glibc's among them) send them to DNS, which may answer with a remote address.
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


def require_no_cleartext_proxy(url: str, proxies: Mapping[str, str] | None, what: str) -> None:
    """Raise :class:`InsecureTransportError` if ``url`` is plain http and a proxy applies to it.

    "http to a loopback host" is allowed because such a request never leaves the machine;
    through a proxy (``HTTP_PROXY`` without a matching ``NO_PROXY``, or the session's
    ``proxies``) it would reach the proxy, and maybe the network, in cleartext. ``proxies``
    is what the request will be sent with (requests' environment merged in); the proxy is
    chosen as requests' ``HTTPAdapter`` chooses it. https through a proxy is a CONNECT
    tunnel: nothing to check.
    """
    if not proxies or url[:5].lower() != "http:":
        return
    proxy = select_proxy(url, dict(proxies))
    if proxy:
        shown = _origin(proxy if "://" in proxy else "http://" + proxy)  # never its user:password
        raise InsecureTransportError(
            f"{what} would travel in cleartext through the proxy {shown} (plain http is "
            f"allowed only to a loopback host and only without a proxy); refusing {_origin(url)}: "
            "exempt loopback from the proxy (NO_PROXY=127.0.0.1,localhost) or use https"
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
