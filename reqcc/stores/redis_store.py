"""A token store in Redis, shared by every process on every host that reaches it.

Needs redis-py: ``pip install 'reqcc[redis]'``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .._log import log
from ..errors import ConfigurationError
from ..oauth_token import OAuthToken
from .base import DEFAULT_LEASE_TIMEOUT, DEFAULT_POLL_INTERVAL, OUTAGE_RECORD_TTL, Outage
from .sealing import EncryptionKey, Sealer

__all__ = ["MAX_VALUE_SIZE", "RedisTokenStore"]

#: The most bytes of a stored value read (the file store's limit): a larger one is ignored.
MAX_VALUE_SIZE = 1 << 20
#: The most bytes of an outage record read: it holds two times and a short, redacted error.
_MAX_OUTAGE_SIZE = 4096

# Delete the lease only if it is still ours: an expired lease may have been taken by another.
_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

# Take over a lease that would last longer than a lease may (no expiry, or more than
# lease_timeout left: set by something else than reqcc with these settings), only if it
# still does; ARGV: the new holder, lease_timeout in milliseconds.
_TAKE_OVER_SCRIPT = """
local left = redis.call('pttl', KEYS[1])
if left == -1 or left > tonumber(ARGV[2]) then
    redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""


def _seconds(value: Any, keyword: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"{keyword} must be a number of seconds > 0, got {value!r}")
    return float(value)


class RedisTokenStore:
    """Shares tokens through Redis: one token per client configuration for the whole fleet.

    A token is stored as JSON under ``PREFIX + "token:" + key`` with a time to live equal
    to its remaining lifetime; the lease is ``PREFIX + "lease:" + key``, taken with
    ``SET NX PX`` (it expires by itself after ``lease_timeout``) and released by a Lua
    script that deletes it only if the releasing holder still owns it. Each operation
    touches one key, so a Redis Cluster client works as well as a plain or Sentinel one.
    A token is read with ``GETRANGE``, at most :data:`MAX_VALUE_SIZE` (1 MiB, as the file
    store) plus one byte: a larger value is ignored (a WARNING) without being read whole.

    Give either ``client`` (any redis-py client: ``redis.Redis``, ``RedisCluster``,
    ``Sentinel.master_for(…)``) or ``url`` (``redis://[:password@]host:port/db``,
    ``rediss://…``, ``unix://…``): a client is then made with short socket timeouts and one
    retry, so an unreachable Redis costs a request at most a few seconds, once per backoff.

    A ``client`` without socket timeouts (``socket_timeout=None``, the default before
    redis-py 8) would hang every request that needs a token on a Redis that accepts the
    connection and never answers. For a ``redis.Redis`` on a standard connection pool, reqcc
    then uses a client of its own with the same settings plus ``socket_timeout`` (and one
    retry), and logs a WARNING saying so; for other clients (cluster, Sentinel) it logs a
    WARNING asking for ``socket_timeout``.

    :param client: a redis-py client to use.
    :param url: a Redis URL to connect to (instead of ``client``).
    :param prefix: prepended to every key reqcc writes (default ``"reqcc:"``).
    :param lease_timeout: seconds a lease lasts if its holder never releases it (default 10).
    :param poll_interval: seconds between two reads while another process fetches.
    :param socket_timeout: connect and read timeout of a client made from ``url`` (default 2 s).
    :param clock: the wall clock in Unix seconds, for the stored token's time to live.
    :param encryption_key: seal each token at rest (AES-256-GCM, :mod:`reqcc.stores.sealing`):
        32 bytes, or a sequence of them for rotation (the first seals, all open). Needs
        ``reqcc[seal]``.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        url: str | None = None,
        prefix: str = "reqcc:",
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        socket_timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
        encryption_key: EncryptionKey | None = None,
    ) -> None:
        if (client is None) == (url is None):
            raise ConfigurationError("RedisTokenStore needs exactly one of client= or url=")
        if not isinstance(prefix, str):
            raise ConfigurationError("prefix must be a string")
        self.lease_timeout = _seconds(lease_timeout, "lease_timeout")
        self.poll_interval = _seconds(poll_interval, "poll_interval")
        socket_timeout = _seconds(socket_timeout, "socket_timeout")
        self.prefix = prefix
        self._clock = clock
        if url is not None:
            if not isinstance(url, str):
                raise ConfigurationError("url must be a Redis URL string")
            client = _client_from_url(url, socket_timeout)
            parts = urlsplit(url)
            self._where = f"{parts.scheme}://{parts.hostname or ''}:{parts.port or ''}{parts.path}"
        else:
            self._where = type(client).__name__
            client = _bounded(client, socket_timeout)
        self.client: Any = client
        self._release = client.register_script(_RELEASE_SCRIPT)
        self._sealer = None if encryption_key is None else Sealer(encryption_key, where=repr(self))
        self._take_over = client.register_script(_TAKE_OVER_SCRIPT)

    def _token_key(self, key: str) -> str:
        return f"{self.prefix}token:{key}"

    def _lease_key(self, key: str) -> str:
        return f"{self.prefix}lease:{key}"

    def _outage_key(self, key: str) -> str:
        return f"{self.prefix}outage:{key}"

    def read(self, key: str) -> OAuthToken | None:
        """Return the token stored under ``key``, or ``None``."""
        try:  # one byte past the cap, never more: a huge value is not read (contract item 32)
            raw = self.client.getrange(self._token_key(key), 0, MAX_VALUE_SIZE)
        except UnicodeDecodeError:  # decode_responses=True: the cut fell inside a character,
            # or the value is no UTF-8 at all (however short)
            log.warning("token store %r: the entry for key %s… is over %d bytes or not UTF-8; ignored",
                        self, key[:8], MAX_VALUE_SIZE)
            return None
        if raw is not None and len(raw) > MAX_VALUE_SIZE:
            log.warning("token store %r: the entry for key %s… is over %d bytes; ignored",
                        self, key[:8], MAX_VALUE_SIZE)
            return None
        if not raw:  # GETRANGE answers "" for a missing key
            return None
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            data = json.loads(text) if self._sealer is None else self._sealer.open(key, text)
            return None if data is None else OAuthToken.from_dict(data)
        except (ValueError, RecursionError) as exc:  # RecursionError: deep nesting within the cap
            log.warning("token store %r: the entry for key %s… is not a token (%s); ignored",
                        self, key[:8], type(exc).__name__)
            return None

    def write(self, key: str, token: OAuthToken) -> None:
        """Store ``token`` under ``key``, expiring when the token does; the outage record goes."""
        value = (
            json.dumps(token.to_dict(), separators=(",", ":"))
            if self._sealer is None
            else self._sealer.seal(key, token.to_dict())
        )
        if token.expiry is None:
            self.client.set(self._token_key(key), value)
        else:
            remaining_ms = int((token.expiry - self._clock()) * 1000)
            if remaining_ms > 0:
                self.client.set(self._token_key(key), value, px=remaining_ms)
        self.client.delete(self._outage_key(key))  # a token was obtained: the outage is over

    def read_outage(self, key: str) -> Outage | None:
        """Return the token endpoint's outage recorded under ``key`` (contract item 29), or ``None``."""
        try:  # capped like the token's value: a huge one is not read (contract item 32)
            raw = self.client.getrange(self._outage_key(key), 0, _MAX_OUTAGE_SIZE)
        except UnicodeDecodeError:  # decode_responses=True, and the cut fell inside a character
            return None
        if not raw or len(raw) > _MAX_OUTAGE_SIZE:  # GETRANGE answers "" for a missing key
            return None
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            return Outage.from_dict(json.loads(text))
        except ValueError:
            return None

    def write_outage(self, key: str, outage: Outage) -> None:
        """Record the token endpoint's outage under ``key``; it expires a while after its next probe."""
        value = json.dumps(outage.to_dict(), separators=(",", ":"))
        ttl_ms = int((max(0.0, outage.next_probe - self._clock()) + OUTAGE_RECORD_TTL) * 1000)
        self.client.set(self._outage_key(key), value, px=ttl_ms)

    def acquire_lease(self, key: str) -> str | None:
        """Take the lease on ``key`` (``SET NX PX``) unless another holder has a live one.

        A lease found with no expiry, or with more than ``lease_timeout`` left, is taken
        over (atomically, in Lua): a lease never lasts past ``lease_timeout`` from now.
        """
        holder = uuid.uuid4().hex
        lease_ms = int(self.lease_timeout * 1000)
        if self.client.set(self._lease_key(key), holder, nx=True, px=lease_ms):
            return holder
        if self._take_over(keys=[self._lease_key(key)], args=[holder, lease_ms]):
            log.warning("token store %r: a lease without a bounded expiry was taken over", self)
            return holder
        return None

    def release_lease(self, key: str, holder: str) -> None:
        """Delete the lease on ``key`` if ``holder`` still holds it (atomically, in Lua)."""
        self._release(keys=[self._lease_key(key)], args=[holder])

    def __repr__(self) -> str:
        return f"RedisTokenStore({self._where!r}, prefix={self.prefix!r})"


def _bounded(client: Any, socket_timeout: float) -> Any:
    """Return ``client``, or a copy with socket timeouts when it has none (see the class doc)."""
    pool: Any = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        return client  # a cluster client: its nodes' settings are its own business
    if kwargs.get("socket_timeout") is not None and kwargs.get("socket_connect_timeout") is not None:
        return client
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        if type(client) is not redis.Redis or type(pool) not in (
            redis.ConnectionPool, redis.BlockingConnectionPool
        ):
            raise TypeError(type(pool).__name__)
        bounded = {
            **kwargs,
            "socket_timeout": kwargs.get("socket_timeout") or socket_timeout,
            "socket_connect_timeout": kwargs.get("socket_connect_timeout") or socket_timeout,
            "retry": Retry(NoBackoff(), 1),
        }
        for name in ("orig_socket_timeout", "orig_socket_connect_timeout"):  # redis-py 6+
            if name in kwargs:
                bounded[name] = bounded[name.replace("orig_", "")]
        copy = redis.Redis(connection_pool=type(pool)(
            connection_class=pool.connection_class, max_connections=pool.max_connections, **bounded
        ))
    except Exception as exc:  # an unusual client or redis-py version: warn, do not guess
        log.warning(
            "RedisTokenStore: the given Redis client has no socket_timeout, so a Redis that stops "
            "answering would hang every request that needs a token; create it with "
            "socket_timeout= and socket_connect_timeout= (%s)", type(exc).__name__,
        )
        return client
    log.warning(
        "RedisTokenStore: the given Redis client has no socket_timeout (a Redis that stops answering "
        "would hang every request that needs a token); reqcc uses its own connections with the "
        "same settings and socket_timeout=%gs. Create the client with socket_timeout= to silence this",
        socket_timeout,
    )
    return copy


def _client_from_url(url: str, socket_timeout: float) -> Any:
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise ConfigurationError(
            "RedisTokenStore needs redis-py: pip install 'reqcc[redis]'"
        ) from None
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 1),
    )
