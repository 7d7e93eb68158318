"""Token stores: one token per client configuration for many processes and many hosts.

Give a store to a manager (or session, or adapter) with ``token_store=``; every process
configured with the same token URL, client id, secret, authentication method, scopes and
token parameters then shares one token, fetched once and renewed once for the fleet:

- :class:`FileTokenStore` — a JSON file, for the processes of one host (gunicorn or Celery
  workers); needs nothing but reqcc.
- :class:`RedisTokenStore` — Redis, for many hosts; ``pip install 'reqcc[redis]'``.
- :class:`TokenStore` — the protocol to implement for any other backend (and
  :class:`OutageStore`, optional, for the fleet's :class:`Outage` record: DESIGN item 29).
"""

from __future__ import annotations

from .base import DEFAULT_LEASE_TIMEOUT, Outage, OutageStore, TokenStore, check_token_store, token_store_key
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
