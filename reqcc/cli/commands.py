"""The ``reqcc`` subcommands: ``token``, ``request`` and ``demo``.

Each takes ``(args, environ, stdin, stdout)`` and returns an exit code, or raises: the
caller (:func:`reqcc.cli.main`) turns exceptions into one line and a code.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO
from urllib.parse import urlsplit

from ..manager import ClientCredentialsManager
from ..oauth_token import OAuthToken
from ..session import ClientCredentialsSession
from .config import cache_key, manager_config
from .exit_codes import EXIT_CONFIG, EXIT_DEMO, EXIT_HTTP, EXIT_OK
from .messages import CliError, shown_url
from .parser import CACHE_MIN_SECONDS

__all__ = ["COMMANDS"]

def _token_document(token: OAuthToken) -> dict[str, Any]:
    document = token.to_dict()
    document["token_type"] = token.token_type
    return document


def _cmd_token(args: argparse.Namespace, environ: Mapping[str, str], stdin: TextIO, stdout: TextIO) -> int:
    config = manager_config(args, environ, stdin)
    if getattr(args, "cache_key_file", None) and not args.cache:
        raise CliError(
            "--cache-key-file seals the token saved by --cache: give --cache FILE too", EXIT_CONFIG
        )
    if args.cache and config.get("dpop"):
        raise CliError(
            "--cache with --dpop needs --dpop-key-file: a token bound to a key made for one run "
            "is useless to the next",
            EXIT_CONFIG,
        )
    if args.cache:
        # Through the store: a saved token is reused, a new one is fetched under the store's
        # lease and saved. The larger skew keeps a token about to expire from being printed
        # (the skew is capped at half the lifetime, so short-lived tokens are reused too).
        from ..stores import FileTokenStore

        store = FileTokenStore(args.cache, encryption_key=cache_key(args, environ))
        config["token_store"] = store
        config["clock_skew"] = CACHE_MIN_SECONDS
    manager = ClientCredentialsManager(**config)
    try:
        token = manager.get_token() if args.cache else manager.fetch_token()
    finally:
        manager.close()
    if args.format == "header":
        stdout.write(f"Authorization: {token.token_type} {token.access_token}\n")
    elif args.format == "access-token":
        stdout.write(token.access_token + "\n")
    else:
        stdout.write(json.dumps(_token_document(token), indent=2, sort_keys=True) + "\n")
    return EXIT_OK


def _headers(values: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, header_value = value.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            # The value is not echoed: it may well be a credential.
            raise CliError(
                "-H expects 'Name: value' (a header name without spaces, then a colon)", EXIT_CONFIG
            )
        headers[name.strip()] = header_value.strip()
    return headers


def _read_data(value: str, stdin: TextIO) -> bytes:
    if not value.startswith("@"):
        return value.encode("utf-8")
    path = value[1:]
    try:
        if path == "-":
            return stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode("utf-8")
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise CliError(
            f"-d: cannot read {path!r} ({exc.strerror or type(exc).__name__})", EXIT_CONFIG
        ) from None


def _cmd_request(args: argparse.Namespace, environ: Mapping[str, str], stdin: TextIO, stdout: TextIO) -> int:
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"URL must be an http(s) URL with a host, got {shown_url(args.url)!r}", EXIT_CONFIG)
    if args.data == "@-" and args.client_secret_file == "-":
        raise CliError("-d @- and --client-secret-file - cannot both read stdin", EXIT_CONFIG)
    headers = _headers(args.header)
    data: bytes | None = None
    lowered = {name.lower() for name in headers}
    if args.json is not None:
        try:
            json.loads(args.json)
        except ValueError as exc:
            raise CliError(f"--json: not valid JSON ({exc})", EXIT_CONFIG) from None
        data = args.json.encode("utf-8")
        if "content-type" not in lowered:
            headers["Content-Type"] = "application/json"
        if "accept" not in lowered:
            headers["Accept"] = "application/json"
    elif args.data is not None:
        data = _read_data(args.data, stdin)
        if "content-type" not in lowered:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
    method = (args.method or ("POST" if data is not None else "GET")).upper()
    config = manager_config(args, environ, stdin)
    base_url = f"{parts.scheme}://{parts.netloc}/"
    with ClientCredentialsSession(base_url=base_url, **config) as session:
        response = session.request(method, args.url, headers=headers, data=data, timeout=args.timeout)
        body = response.content
    out = stdout.buffer if hasattr(stdout, "buffer") else None
    if args.include:
        reason = response.reason or ""
        head = [f"HTTP/1.1 {response.status_code} {reason}".rstrip()]
        head += [f"{name}: {value}" for name, value in response.headers.items()]
        stdout.write("\n".join(head) + "\n\n")
    stdout.flush()
    if out is not None:
        out.write(body)
        out.flush()
    else:
        stdout.write(body.decode("utf-8", errors="replace"))
    if body and not body.endswith(b"\n") and stdout.isatty():
        # For the eyes only: a terminal's prompt then starts on its own line. Piped or
        # redirected output stays the body byte for byte (text or binary alike).
        stdout.write("\n")
    if response.status_code >= 400:
        raise CliError(
            f"HTTP {response.status_code} {response.reason or ''} "
            f"from {method} {shown_url(args.url)}".rstrip(),
            EXIT_HTTP,
        )
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace, environ: Mapping[str, str], stdin: TextIO, stdout: TextIO) -> int:
    from ..demo import run_demo, serve

    if args.serve:
        return serve(port=args.port, out=stdout)
    if args.port:
        raise CliError("--port is used with --serve only", EXIT_CONFIG)
    return EXIT_OK if run_demo(out=stdout, verbose=bool(getattr(args, "debug", False))) else EXIT_DEMO


COMMANDS: dict[str, Callable[[argparse.Namespace, Mapping[str, str], TextIO, TextIO], int]] = {
    "token": _cmd_token,
    "request": _cmd_request,
    "demo": _cmd_demo,
}
