"""Tokens sealed at rest: AES-256-GCM over each store entry, bound to the entry's key (contract item 39).

A shared store (a file on a shared volume, a Redis others can read) otherwise holds bearer
tokens in clear. With ``encryption_key=`` a store keeps, in place of each token's JSON, the
text ``reqcc-sealed-v1:`` followed by the base64url of a fresh 96-bit nonce and the AES-GCM
ciphertext of that JSON; the associated data is the entry's store key, so a sealed entry
copied under another key does not open. Leases are not sealed: they hold no secret.

Keys are 32 random bytes (``os.urandom(32)``, or ``secrets.token_bytes(32)``). Rotation: a
sequence of keys, the first seals and every one opens, so a fleet moves to a new key by
deploying ``[new, old]`` everywhere, then ``[new]``. An entry that no key opens (another key,
tampered, truncated, or written in clear) is a miss, logged as one WARNING per entry: the
process fetches its own token (and stores it sealed with its key). Needs the
``cryptography`` package: ``pip install 'reqcc[seal]'``, imported only when a key is given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from .._log import log
from ..errors import ConfigurationError

__all__ = ["KEY_SIZE", "SEALED_PREFIX", "EncryptionKey", "Sealer", "check_encryption_key"]

#: Bytes in a key: AES-256.
KEY_SIZE = 32
#: What a sealed entry starts with (the version names the format and the associated data).
SEALED_PREFIX = "reqcc-sealed-v1:"
#: One key, or a sequence of them (the first seals, all open).
EncryptionKey = bytes | Sequence[bytes]

_NONCE_SIZE = 12
_AAD_LABEL = b"reqcc token store entry v1\x00"
#: Entries already warned about, per sealer; forgotten all at once past this many.
_MAX_WARNED = 128


def check_encryption_key(encryption_key: Any) -> tuple[bytes, ...]:
    """Return the keys of ``encryption_key`` (one, or a non-empty sequence), checked.

    :raises ConfigurationError: not bytes, not exactly 32 bytes, or an empty sequence. The
        message gives lengths and types, never a key.
    """
    if isinstance(encryption_key, (bytes, bytearray, memoryview)):
        candidates: list[Any] = [encryption_key]
    elif isinstance(encryption_key, str):
        raise ConfigurationError(
            f"encryption_key must be {KEY_SIZE} raw bytes, not text (decode it first, e.g. base64)"
        )
    elif isinstance(encryption_key, Sequence) and len(encryption_key) > 0:
        candidates = list(encryption_key)
    else:
        raise ConfigurationError(
            f"encryption_key must be {KEY_SIZE} bytes or a non-empty sequence of them (the first seals, "
            f"all open), got {type(encryption_key).__name__}"
        )
    keys: list[bytes] = []
    for index, key in enumerate(candidates):
        where = "encryption_key" if len(candidates) == 1 else f"encryption_key[{index}]"
        if not isinstance(key, (bytes, bytearray, memoryview)):
            raise ConfigurationError(f"{where} must be {KEY_SIZE} raw bytes, got {type(key).__name__}")
        if len(bytes(key)) != KEY_SIZE:
            raise ConfigurationError(
                f"{where} must be exactly {KEY_SIZE} bytes (AES-256), got {len(bytes(key))}; make one "
                "with os.urandom(32)"
            )
        keys.append(bytes(key))
    return tuple(keys)


class Sealer:
    """Seals and opens one store's entries with its key(s).

    :param encryption_key: 32 bytes, or a sequence of them (the first seals, all open).
    :param where: how warnings name the store (its repr).
    """

    def __init__(self, encryption_key: EncryptionKey, *, where: str) -> None:
        keys = check_encryption_key(encryption_key)
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:  # pragma: no cover - exercised by simulating the missing package
            raise ConfigurationError(
                "encryption_key needs the 'cryptography' package: pip install 'reqcc[seal]'"
            ) from None
        self._ciphers = tuple(AESGCM(key) for key in keys)
        self._where = where
        self._warned: set[str] = set()

    def seal(self, key: str, data: Mapping[str, Any]) -> str:
        """Return ``data`` (a token's dict) sealed for the entry ``key``."""
        nonce = os.urandom(_NONCE_SIZE)
        plain = json.dumps(data, separators=(",", ":")).encode("utf-8")
        sealed = self._ciphers[0].encrypt(nonce, plain, _aad(key))
        return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, key: str, stored: object) -> Any:
        """Return what :meth:`seal` sealed under ``key``, or ``None`` (a miss, warned once per entry)."""
        if not isinstance(stored, str) or not stored.startswith(SEALED_PREFIX):
            self._warn(stored, key, "is not sealed (written by a process without encryption_key?)")
            return None
        data = self.unseal(key, stored)
        if data is None:
            self._warn(
                stored, key, "opens with none of this store's encryption keys (another key, or altered)"
            )
        return data

    def unseal(self, key: str, stored: str) -> Any:
        """Return what :meth:`seal` sealed under ``key``, or ``None`` if no key opens it; no warning."""
        if not stored.startswith(SEALED_PREFIX):
            return None
        try:
            raw = base64.urlsafe_b64decode(stored[len(SEALED_PREFIX) :].encode("ascii"))
        except (ValueError, binascii.Error):
            raw = b""
        if len(raw) > _NONCE_SIZE:
            from cryptography.exceptions import InvalidTag

            for cipher in self._ciphers:
                try:
                    plain = cipher.decrypt(raw[:_NONCE_SIZE], raw[_NONCE_SIZE:], _aad(key))
                except InvalidTag:
                    continue
                try:
                    return json.loads(plain)
                except (ValueError, RecursionError):
                    break
        return None

    def _warn(self, stored: object, key: str, problem: str) -> None:
        tag = hashlib.sha256(repr(stored).encode("utf-8", "replace")).hexdigest()
        if tag in self._warned:
            return
        if len(self._warned) >= _MAX_WARNED:
            self._warned.clear()
        self._warned.add(tag)
        log.warning(
            "token store %s: the entry for key %s… %s; not used: this process fetches its own token",
            self._where,
            key[:8],
            problem,
        )

    def __repr__(self) -> str:
        return f"Sealer({len(self._ciphers)} key{'s' if len(self._ciphers) != 1 else ''})"


def _aad(key: str) -> bytes:
    return _AAD_LABEL + key.encode("utf-8")
