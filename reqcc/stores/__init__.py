"""Token stores: one token per client configuration for many processes and many hosts.

Give a store to a manager (or session, or adapter) with ``token_store=``; every process
configured with the same token URL, client id, secret, authentication method, scopes and
token parameters then shares one token, fetched once and renewed once for the fleet:

- :class:`FileTokenStore` — a JSON file, for the processes of one host (gunicorn or Celery
  workers); needs nothing but reqcc.
- :class:`RedisTokenStore` — Redis, for many hosts; ``pip install 'reqcc[redis]'``.
- :class:`TokenStore` — the protocol to implement for any other backend (and
  :class:`OutageStore`, optional, for the fleet's :class:`Outage` record: contract item 29).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import DEFAULT_LEASE_TIMEOUT, Outage, OutageStore, TokenStore, check_token_store, token_store_key

if TYPE_CHECKING:
    from .file_store import FileTokenStore
    from .redis_store import RedisTokenStore

__all__ = [
    "DEFAULT_LEASE_TIMEOUT",
    "FileTokenStore",
    "Outage",
    "OutageStore",
    "RedisTokenStore",
    "TokenStore",
    "check_token_store",
    "token_store_key",
]

#: The stores imported on first use (``import reqcc`` needs neither): name -> module.
_LAZY = {"FileTokenStore": ".file_store", "RedisTokenStore": ".redis_store"}


def __getattr__(name: str) -> Any:
    """Import :class:`FileTokenStore` or :class:`RedisTokenStore` when first asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
