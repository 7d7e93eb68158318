"""The client configuration of ``reqcc token`` / ``reqcc request``: flags, else the environment.

:func:`manager_config` turns the parsed flags and the environment into the keywords of
:class:`~reqcc.ClientCredentialsManager`; the secret is read from the environment, a file
or a prompt, never from a flag.
"""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Mapping, Sequence
from typing import TextIO, cast

from ..config import ManagerKeywords, normalize_scopes
from .exit_codes import EXIT_CONFIG
from .messages import CliError

__all__ = ["cache_key", "manager_config"]

_SECRET_METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt")


def _scopes(values: Sequence[str] | None, environ: Mapping[str, str]) -> tuple[str, ...]:
    """The scopes of ``--scope`` (repeatable), else of ``REQCC_SCOPES``, read as ``scopes=`` is."""
    return normalize_scopes(" ".join(values) if values else environ.get("REQCC_SCOPES", ""))


def _token_params(values: Sequence[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for value in values or ():
        name, sep, field_value = value.partition("=")
        if not sep or not name:
            raise CliError(f"--token-param expects NAME=VALUE, got {value[:40]!r}", EXIT_CONFIG)
        params[name] = field_value
    return params


def _read_secret(args: argparse.Namespace, environ: Mapping[str, str], stdin: TextIO, client_id: str) -> str:
    path = args.client_secret_file
    if path:
        try:
            if path == "-":
                text = stdin.read()
            else:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
        except OSError as exc:
            raise CliError(
                f"--client-secret-file: cannot read {path!r} ({exc.strerror or type(exc).__name__})",
                EXIT_CONFIG,
            ) from None
        from_file = text.rstrip("\r\n")
        if not from_file:
            raise CliError(f"--client-secret-file: {path!r} is empty", EXIT_CONFIG)
        args.secrets_seen.append(from_file)
        return from_file
    from_env = environ.get("REQCC_CLIENT_SECRET")
    if from_env:
        return from_env
    if stdin.isatty():
        try:
            secret = getpass.getpass(f"client secret for {client_id}: ")
        except EOFError:
            secret = ""
        if secret:
            args.secrets_seen.append(secret)
            return secret
    raise CliError(
        f"no client secret for --auth-method {args.auth_method or 'client_secret_basic'}: "
        "set REQCC_CLIENT_SECRET, use "
        "--client-secret-file FILE, run in a terminal to be prompted, or use --auth-method none",
        EXIT_CONFIG,
    )


def _endpoint(args: argparse.Namespace, environ: Mapping[str, str]) -> ManagerKeywords:
    """``{"token_url": …}``, or ``{"issuer": …}`` and/or ``{"metadata_url": …}``.

    The flags win over the environment: when any of ``--token-url``, ``--issuer`` and
    ``--metadata-url`` is given, none of ``REQCC_TOKEN_URL``, ``REQCC_ISSUER`` and
    ``REQCC_METADATA_URL`` is read.
    """
    flags = {"token_url": args.token_url, "issuer": args.issuer, "metadata_url": args.metadata_url}
    names = {"token_url": "--token-url", "issuer": "--issuer", "metadata_url": "--metadata-url"}
    if not any(flags.values()):
        flags = {key: environ.get(f"REQCC_{key.upper()}") for key in flags}
        names = {key: f"REQCC_{key.upper()}" for key in flags}
    endpoint = {key: value for key, value in flags.items() if value}
    if "token_url" in endpoint and len(endpoint) > 1:
        other = names["issuer" if "issuer" in endpoint else "metadata_url"]
        if names["token_url"].startswith("--"):
            raise CliError(f"give --token-url or {other}, not both", EXIT_CONFIG)
        raise CliError(f"REQCC_TOKEN_URL and {other} are both set: unset one", EXIT_CONFIG)
    if endpoint:
        return cast("ManagerKeywords", endpoint)  # its keys are among the three above
    raise CliError(
        "missing --token-url or --issuer (or REQCC_TOKEN_URL / REQCC_ISSUER; or --metadata-url / "
        "REQCC_METADATA_URL)",
        EXIT_CONFIG,
    )


def _assertion_file(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    """``--client-assertion-file``, else ``REQCC_CLIENT_ASSERTION_FILE`` unless a flag names
    another credential (flags override the environment)."""
    if args.client_assertion_file:
        if args.private_key_file or args.client_secret_file:
            raise CliError(
                "--client-assertion-file is the client's credential: drop --private-key-file / "
                "--client-secret-file",
                EXIT_CONFIG,
            )
        if args.auth_method not in (None, "private_key_jwt"):
            raise CliError(
                "--client-assertion-file authenticates as private_key_jwt, not --auth-method "
                f"{args.auth_method}",
                EXIT_CONFIG,
            )
        return str(args.client_assertion_file)
    if args.private_key_file or args.client_secret_file or args.auth_method not in (None, "private_key_jwt"):
        return None
    return environ.get("REQCC_CLIENT_ASSERTION_FILE") or None


def manager_config(args: argparse.Namespace, environ: Mapping[str, str], stdin: TextIO) -> ManagerKeywords:
    """The manager's keywords that the flags and the environment set (a type checker checks each name)."""
    endpoint = _endpoint(args, environ)
    discover = "token_url" not in endpoint
    assertion_file = _assertion_file(args, environ)
    auth_method = (
        args.auth_method if args.auth_method or discover or assertion_file else "client_secret_basic"
    )
    # With --issuer and no --auth-method (None here): a key makes it private_key_jwt, else
    # the manager picks one of the secret methods the server lists.
    method = auth_method or (
        "private_key_jwt" if args.private_key_file or assertion_file else "client_secret_basic"
    )
    client_id = args.client_id or environ.get("REQCC_CLIENT_ID")
    if not client_id:
        raise CliError("missing --client-id (or REQCC_CLIENT_ID)", EXIT_CONFIG)
    if not args.timeout > 0:
        raise CliError(f"--timeout must be > 0, got {args.timeout}", EXIT_CONFIG)
    config: ManagerKeywords = {
        **endpoint,
        "client_id": client_id,
        "scopes": _scopes(args.scope, environ),
        "auth_method": auth_method,
        "token_params": _token_params(args.token_param),
        "timeout": args.timeout,
    }
    if method in _SECRET_METHODS:
        config["client_secret"] = _read_secret(args, environ, stdin, client_id)
    if args.basic_auth_encoding:
        if method != "client_secret_basic":
            raise CliError(
                "--basic-auth-encoding is used only with --auth-method client_secret_basic", EXIT_CONFIG
            )
        config["basic_auth_encoding"] = args.basic_auth_encoding
    if assertion_file:
        config["client_assertion_file"] = assertion_file
    elif method == "private_key_jwt":
        if not args.private_key_file:
            raise CliError(
                "--auth-method private_key_jwt needs --private-key-file PEM (or --client-assertion-file)",
                EXIT_CONFIG,
            )
        try:
            with open(args.private_key_file, "rb") as handle:
                config["private_key"] = handle.read()
        except OSError as exc:
            raise CliError(
                f"--private-key-file: cannot read {args.private_key_file!r} "
                f"({exc.strerror or type(exc).__name__})",
                EXIT_CONFIG,
            ) from None
    elif args.private_key_file:
        raise CliError("--private-key-file is used only with --auth-method private_key_jwt", EXIT_CONFIG)
    if args.dpop_key_file:
        try:
            with open(args.dpop_key_file, "rb") as handle:
                config["dpop_key"] = handle.read()
        except OSError as exc:
            raise CliError(
                f"--dpop-key-file: cannot read {args.dpop_key_file!r} ({exc.strerror or type(exc).__name__})",
                EXIT_CONFIG,
            ) from None
    elif args.dpop:
        config["dpop"] = True
    return config


#: How to make a key, for a refused one (hex, the other habit, is 64 characters: not a key here).
_MAKE_A_KEY = "; make one with 'openssl rand -base64 32' (not -hex) or 'head -c 32 /dev/urandom > FILE'"


def cache_key(args: argparse.Namespace, environ: Mapping[str, str]) -> bytes | None:
    """The key sealing ``reqcc token --cache``: ``--cache-key-file``, else ``REQCC_CACHE_KEY``.

    The file holds 32 raw bytes or their base64; the variable their base64. Never a flag's
    value (it would show in ``ps`` and the shell history). ``None``: no sealing.
    """
    path = getattr(args, "cache_key_file", None)
    if path:
        try:
            with open(path, "rb") as handle:
                raw = handle.read(4096)
        except OSError as exc:
            raise CliError(
                f"--cache-key-file: cannot read {path!r} ({exc.strerror or type(exc).__name__})", EXIT_CONFIG
            ) from None
        key = raw if len(raw) == 32 else _base64_key(raw.strip())
        if key is None:
            raise CliError(
                f"--cache-key-file: {path!r} holds neither 32 bytes nor their base64{_MAKE_A_KEY}",
                EXIT_CONFIG,
            )
        return key
    text = environ.get("REQCC_CACHE_KEY")
    if not text:
        return None
    key = _base64_key(text.strip().encode("ascii", "replace"))
    if key is None:
        raise CliError(
            f"REQCC_CACHE_KEY must be the base64 of 32 random bytes (its value is not shown){_MAKE_A_KEY}",
            EXIT_CONFIG,
        )
    return key


def _base64_key(text: bytes) -> bytes | None:
    import base64
    import binascii

    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            key = decode(text + b"=" * (-len(text) % 4))
        except (ValueError, binascii.Error):
            continue
        if len(key) == 32:
            return key
    return None
