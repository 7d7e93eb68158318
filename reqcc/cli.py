"""The ``reqcc`` command: get a token or call an API from a shell, or run the demo.

    reqcc token   [options] [--format json|header|access-token]
    reqcc request [options] [-X METHOD] URL [-H 'Name: value'] [-d DATA | --json JSON] [-i]
    reqcc demo    [--serve [--port N]]

Configuration comes from flags, else from the environment (``REQCC_TOKEN_URL``,
``REQCC_CLIENT_ID``, ``REQCC_CLIENT_SECRET``, ``REQCC_SCOPES``). The client secret is read
from ``REQCC_CLIENT_SECRET``, ``--client-secret-file`` or an interactive prompt, never from a
plain flag (it would land in the shell history and in ``ps``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TextIO
from urllib.parse import urlsplit

import requests

from . import __version__
from ._log import log, redact
from .errors import ConfigurationError, OAuthProviderError, ReqccError, TokenRequestError
from .manager import ClientCredentialsManager
from .oauth_token import OAuthToken
from .scopes import OAuthScope
from .session import ClientCredentialsSession

__all__ = [
    "main",
    "build_parser",
    "EXIT_OK",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "EXIT_CONFIG",
    "EXIT_OAUTH",
    "EXIT_TOKEN_RESPONSE",
    "EXIT_NETWORK",
    "EXIT_HTTP",
    "EXIT_DEMO",
    "EXIT_INTERRUPTED",
]

#: Success.
EXIT_OK = 0
#: An unexpected internal error (run again with ``--debug`` for the traceback).
EXIT_ERROR = 1
#: The command line is wrong (argparse's own code).
EXIT_USAGE = 2
#: The configuration is missing or wrong (the message names the flag or variable).
EXIT_CONFIG = 3
#: The token endpoint refused the request with an OAuth error (``invalid_client``, ...).
EXIT_OAUTH = 4
#: The token endpoint's answer was not a usable token (HTTP error, not JSON, no token, ...).
EXIT_TOKEN_RESPONSE = 5
#: A network failure: connection refused, DNS, TLS, timeout.
EXIT_NETWORK = 6
#: ``reqcc request``: the API answered HTTP 400 or above (like ``curl --fail``).
EXIT_HTTP = 7
#: ``reqcc demo``: a step did not behave as stated.
EXIT_DEMO = 8
#: Interrupted (Ctrl-C).
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = f"""\
exit codes:
  {EXIT_OK}    success
  {EXIT_ERROR}    unexpected internal error (run with --debug for the traceback)
  {EXIT_USAGE}    command-line usage error
  {EXIT_CONFIG}    configuration error (missing or wrong flag / environment variable)
  {EXIT_OAUTH}    the token endpoint refused: an OAuth error such as invalid_client, invalid_scope
  {EXIT_TOKEN_RESPONSE}    the token endpoint's answer was not a usable token (HTTP error, not JSON, ...)
  {EXIT_NETWORK}    network error (connection refused, DNS, TLS, timeout)
  {EXIT_HTTP}    reqcc request: the API answered HTTP >= 400 (the body is still printed)
  {EXIT_DEMO}    reqcc demo: a step did not behave as stated
  {EXIT_INTERRUPTED}  interrupted
"""

ENVIRONMENT_HELP = """\
environment:
  REQCC_TOKEN_URL       the token endpoint (--token-url)
  REQCC_CLIENT_ID       the client identifier (--client-id)
  REQCC_CLIENT_SECRET   the client secret (there is no flag for it: use this, --client-secret-file,
                        or answer the prompt)
  REQCC_SCOPES          scopes, separated by spaces or commas (--scope)
"""

#: The ``--auth-method`` choices: the methods a command line can configure (the mutual-TLS
#: methods need a certificate on a token session, which the library API gives).
CLI_AUTH_METHODS = (
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    "none",
)
_SECRET_METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt")

#: ``reqcc token --cache``: a saved token is printed only with at least this many seconds left
#: (or half its lifetime, for tokens that live less than twice as long).
CACHE_MIN_SECONDS = 300.0

_FLAG_OF_KEYWORD = {
    "private_key": "--private-key-file",
    "token_url": "--token-url",
    "client_id": "--client-id",
    "client_secret": "REQCC_CLIENT_SECRET / --client-secret-file",
    "scopes": "--scope",
    "auth_method": "--auth-method",
    "token_params": "--token-param",
    "timeout": "--timeout",
    "base_url": "URL",
}


class _CliError(Exception):
    """A problem to report on one line with an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _RefuseSecretFlag(argparse.Action):
    """``--client-secret``: refused with a pointer to the safe ways (the value is never echoed)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> NoReturn:
        parser.error(
            "--client-secret is not accepted: a secret on the command line lands in the shell "
            "history and in ps. Set REQCC_CLIENT_SECRET, use --client-secret-file FILE, or answer the prompt."
        )


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("client configuration (flags override the environment)")
    group.add_argument("--token-url", metavar="URL", help="the token endpoint [REQCC_TOKEN_URL]")
    group.add_argument("--client-id", metavar="ID", help="the client identifier [REQCC_CLIENT_ID]")
    group.add_argument(
        "--client-secret-file",
        metavar="FILE",
        help="read the client secret from FILE ('-' for stdin); else REQCC_CLIENT_SECRET, else a prompt",
    )
    group.add_argument("--client-secret", nargs="?", action=_RefuseSecretFlag, help=argparse.SUPPRESS)
    group.add_argument(
        "--scope",
        action="append",
        metavar="SCOPE",
        help="a scope to request: an OAuthScope name (BooksRead, OrdersRead, OrdersWrite) or a raw "
        "scope string; repeatable [REQCC_SCOPES]",
    )
    group.add_argument(
        "--auth-method",
        choices=CLI_AUTH_METHODS,
        default="client_secret_basic",
        help="how the client authenticates (default: %(default)s; the *_jwt methods need reqcc[jwt])",
    )
    group.add_argument(
        "--private-key-file",
        metavar="PEM",
        help="the client's private key, for --auth-method private_key_jwt",
    )
    group.add_argument(
        "--token-param",
        action="append",
        metavar="NAME=VALUE",
        help="an extra form field of the token request, such as audience=...; repeatable",
    )
    group.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="per request (default: %(default)s)"
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log reqcc's steps to stderr and show tracebacks",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the ``reqcc`` argument parser (``allow_abbrev=False`` everywhere)."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="reqcc",
        description="OAuth 2.0 client-credentials tokens for requests, from the command line.",
        epilog=ENVIRONMENT_HELP + "\n" + EXIT_CODES_HELP,
        formatter_class=formatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"reqcc {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="log reqcc's steps to stderr and show tracebacks"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    token = commands.add_parser(
        "token",
        help="fetch a token and print it",
        description="Fetch a token from the token endpoint and print it.",
        epilog=ENVIRONMENT_HELP + "\n" + EXIT_CODES_HELP,
        formatter_class=formatter,
        allow_abbrev=False,
    )
    _add_client_options(token)
    token.add_argument(
        "--cache",
        metavar="FILE",
        help="reuse a token across invocations: print the one saved in FILE while it has at least "
        f"{CACHE_MIN_SECONDS // 60:.0f} minutes (or half its lifetime) left, else fetch one and save it "
        "there (a reqcc FileTokenStore: mode 0600, safe for concurrent invocations, shared with "
        "services that use the same file and client configuration)",
    )
    token.add_argument(
        "--format",
        choices=("json", "header", "access-token"),
        default="json",
        help="json: the token response (default); header: the 'Authorization: Bearer ...' line; "
        "access-token: the token alone",
    )

    request = commands.add_parser(
        "request",
        help="call an API with the token attached and print the response body",
        description="Call an API with 'Authorization: Bearer <token>' attached (the token is fetched "
        "first) and print the response body. Exits non-zero on HTTP >= 400, like curl --fail.",
        epilog=ENVIRONMENT_HELP + "\n" + EXIT_CODES_HELP,
        formatter_class=formatter,
        allow_abbrev=False,
    )
    _add_client_options(request)
    request.add_argument("url", metavar="URL", help="the URL to call (https, or http to a loopback host)")
    request.add_argument(
        "-X",
        "--request",
        dest="method",
        metavar="METHOD",
        help="HTTP method (default: GET, or POST with a body)",
    )
    request.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header; repeatable",
    )
    body = request.add_mutually_exclusive_group()
    body.add_argument(
        "-d",
        "--data",
        metavar="DATA",
        help="request body; '@FILE' reads a file, '@-' stdin (form-encoded by default)",
    )
    body.add_argument("--json", metavar="JSON", help="a JSON request body (sets Content-Type and Accept)")
    request.add_argument(
        "-i", "--include", action="store_true", help="print the status line and response headers first"
    )

    demo = commands.add_parser(
        "demo",
        help="run the guided tour against a local authorization server",
        description="Start a local authorization server and bookstore API on 127.0.0.1 and walk through "
        "what reqcc does: fetch, reuse, background renewal, on_token_update, scopes, revocation and "
        "recovery, token endpoint outage. Exits 0 when every step behaved as stated. With --serve, "
        "only start the server and keep it running for 'reqcc token' / 'reqcc request'.",
        epilog=EXIT_CODES_HELP,
        formatter_class=formatter,
        allow_abbrev=False,
    )
    demo.add_argument("--serve", action="store_true", help="only run the server until interrupted")
    demo.add_argument("--port", type=int, default=0, help="port for --serve (default: a free one)")
    demo.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="log reqcc's steps to stderr"
    )
    return parser


# -- configuration -------------------------------------------------------------------------


def _scopes(values: Sequence[str] | None, environ: Mapping[str, str]) -> list[OAuthScope | str]:
    raw: list[str] = []
    if values:
        for value in values:
            raw.extend(value.replace(",", " ").split())
    else:
        raw = environ.get("REQCC_SCOPES", "").replace(",", " ").split()
    members = OAuthScope.__members__
    return [members[item] if item in members else item for item in raw]


def _token_params(values: Sequence[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for value in values or ():
        name, sep, field_value = value.partition("=")
        if not sep or not name:
            raise _CliError(f"--token-param expects NAME=VALUE, got {value[:40]!r}", EXIT_CONFIG)
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
            raise _CliError(
                f"--client-secret-file: cannot read {path!r} ({exc.strerror or type(exc).__name__})",
                EXIT_CONFIG,
            ) from None
        from_file = text.rstrip("\r\n")
        if not from_file:
            raise _CliError(f"--client-secret-file: {path!r} is empty", EXIT_CONFIG)
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
    raise _CliError(
        f"no client secret for --auth-method {args.auth_method}: set REQCC_CLIENT_SECRET, use "
        "--client-secret-file FILE, run in a terminal to be prompted, or use --auth-method none",
        EXIT_CONFIG,
    )


def _manager_config(args: argparse.Namespace, environ: Mapping[str, str], stdin: TextIO) -> dict[str, Any]:
    token_url = args.token_url or environ.get("REQCC_TOKEN_URL")
    if not token_url:
        raise _CliError("missing --token-url (or REQCC_TOKEN_URL)", EXIT_CONFIG)
    client_id = args.client_id or environ.get("REQCC_CLIENT_ID")
    if not client_id:
        raise _CliError("missing --client-id (or REQCC_CLIENT_ID)", EXIT_CONFIG)
    if not args.timeout > 0:
        raise _CliError(f"--timeout must be > 0, got {args.timeout}", EXIT_CONFIG)
    config: dict[str, Any] = {
        "token_url": token_url,
        "client_id": client_id,
        "scopes": _scopes(args.scope, environ),
        "auth_method": args.auth_method,
        "token_params": _token_params(args.token_param),
        "timeout": args.timeout,
    }
    if args.auth_method in _SECRET_METHODS:
        config["client_secret"] = _read_secret(args, environ, stdin, client_id)
    if args.auth_method == "private_key_jwt":
        if not args.private_key_file:
            raise _CliError("--auth-method private_key_jwt needs --private-key-file PEM", EXIT_CONFIG)
        try:
            with open(args.private_key_file, "rb") as handle:
                config["private_key"] = handle.read()
        except OSError as exc:
            raise _CliError(
                f"--private-key-file: cannot read {args.private_key_file!r} "
                f"({exc.strerror or type(exc).__name__})",
                EXIT_CONFIG,
            ) from None
    elif args.private_key_file:
        raise _CliError("--private-key-file is used only with --auth-method private_key_jwt", EXIT_CONFIG)
    return config


# -- commands ------------------------------------------------------------------------------


def _token_document(token: OAuthToken) -> dict[str, Any]:
    document = token.to_dict()
    document["token_type"] = "Bearer"
    return document


def _cmd_token(args: argparse.Namespace, environ: Mapping[str, str], stdin: TextIO, stdout: TextIO) -> int:
    config = _manager_config(args, environ, stdin)
    if args.cache:
        # Through the store: a saved token is reused, a new one is fetched under the store's
        # lease and saved. The larger skew keeps a token about to expire from being printed
        # (the skew is capped at half the lifetime, so short-lived tokens are reused too).
        from .stores import FileTokenStore

        config.update(token_store=FileTokenStore(args.cache), clock_skew=CACHE_MIN_SECONDS)
    manager = ClientCredentialsManager(**config)
    try:
        token = manager.get_token() if args.cache else manager.fetch_token()
    finally:
        manager.close()
    if args.format == "header":
        stdout.write(f"Authorization: Bearer {token.access_token}\n")
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
            raise _CliError(
                "-H expects 'Name: value' (a header name without spaces, then a colon)", EXIT_CONFIG
            )
        headers[name.strip()] = header_value.strip()
    return headers


def _shown(url: str) -> str:
    """``url`` without its query, fragment or user info (they may carry credentials), for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    shown = f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else url[:80]
    return shown + ("?…" if parts.query else "")


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
        raise _CliError(
            f"-d: cannot read {path!r} ({exc.strerror or type(exc).__name__})", EXIT_CONFIG
        ) from None


def _cmd_request(args: argparse.Namespace, environ: Mapping[str, str], stdin: TextIO, stdout: TextIO) -> int:
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _CliError(f"URL must be an http(s) URL with a host, got {_shown(args.url)!r}", EXIT_CONFIG)
    if args.data == "@-" and args.client_secret_file == "-":
        raise _CliError("-d @- and --client-secret-file - cannot both read stdin", EXIT_CONFIG)
    headers = _headers(args.header)
    data: bytes | None = None
    lowered = {name.lower() for name in headers}
    if args.json is not None:
        try:
            json.loads(args.json)
        except ValueError as exc:
            raise _CliError(f"--json: not valid JSON ({exc})", EXIT_CONFIG) from None
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
    config = _manager_config(args, environ, stdin)
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
        stdout.write("\n")
    if response.status_code >= 400:
        raise _CliError(
            f"HTTP {response.status_code} {response.reason or ''} from {method} {_shown(args.url)}".rstrip(),
            EXIT_HTTP,
        )
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace, environ: Mapping[str, str], stdin: TextIO, stdout: TextIO) -> int:
    from .demo import run_demo, serve

    if args.serve:
        return serve(port=args.port, out=stdout)
    if args.port:
        raise _CliError("--port is used with --serve only", EXIT_CONFIG)
    return EXIT_OK if run_demo(out=stdout, verbose=bool(getattr(args, "debug", False))) else EXIT_DEMO


_COMMANDS: dict[str, Callable[[argparse.Namespace, Mapping[str, str], TextIO, TextIO], int]] = {
    "token": _cmd_token,
    "request": _cmd_request,
    "demo": _cmd_demo,
}


# -- errors --------------------------------------------------------------------------------

_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def _network_reason(exc: BaseException) -> str:
    if isinstance(exc, requests.exceptions.SSLError):
        kind = "TLS error"
    elif isinstance(exc, requests.Timeout):
        kind = "timed out"
    else:
        kind = "connection failed"
    text = str(exc)
    match = _ERRNO.search(text)
    if match:
        return f"{kind}: {match.group(1).strip()}"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"{kind}: certificate verify failed"
    return f"{kind} ({type(exc).__name__})"


def _describe(exc: BaseException, url: str | None) -> tuple[str, int]:
    """Return the one-line message and exit code for ``exc``."""
    if isinstance(exc, _CliError):
        return str(exc), exc.code
    if isinstance(exc, ConfigurationError):
        message = str(exc)
        keyword = message.split(" ", 1)[0].rstrip(":,")
        flag = _FLAG_OF_KEYWORD.get(keyword)
        hint = f" (check {flag})" if flag else ""
        return f"configuration error: {message}{hint}", EXIT_CONFIG
    if isinstance(exc, OAuthProviderError):
        return f"{type(exc).__name__}: {exc}", EXIT_OAUTH
    if isinstance(exc, TokenRequestError):
        return f"{type(exc).__name__}: {exc}", EXIT_TOKEN_RESPONSE
    if isinstance(exc, ReqccError):
        return f"{type(exc).__name__}: {exc}", EXIT_TOKEN_RESPONSE
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        request = getattr(exc, "request", None)
        target = getattr(request, "url", None) or url or "the server"
        parts = urlsplit(target)
        where = _shown(f"{parts.scheme}://{parts.netloc}") if parts.netloc else target
        return f"network error talking to {where}: {_network_reason(exc)}", EXIT_NETWORK
    if isinstance(exc, requests.RequestException):
        return f"request failed: {type(exc).__name__}", EXIT_NETWORK
    return f"unexpected error: {type(exc).__name__} (run with --debug for the traceback)", EXIT_ERROR


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the ``reqcc`` command line and return its exit code (see ``reqcc --help``)."""
    environ = os.environ if environ is None else environ
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    debug = bool(getattr(args, "debug", False))
    # Without --debug the command's own one-line error is all that reaches stderr (no
    # retry warnings from the library); with it, reqcc's log (never a secret) is shown.
    handler: logging.Handler = logging.NullHandler()
    previous_level = log.level
    if debug and args.command != "demo":
        handler = logging.StreamHandler(stderr)
        handler.setFormatter(logging.Formatter("reqcc: %(levelname)s %(message)s"))
        log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    args.secrets_seen = [environ.get("REQCC_CLIENT_SECRET")]
    try:
        return _COMMANDS[args.command](args, environ, stdin, stdout)
    except KeyboardInterrupt:
        stderr.write("reqcc: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (| head): nothing more to say
        if stdout is sys.stdout:
            try:  # or the interpreter's final flush reports the broken pipe again
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):
                pass
        return EXIT_ERROR
    except Exception as exc:
        message, code = _describe(exc, getattr(args, "url", None))
        stderr.write(f"reqcc: {redact(message, args.secrets_seen)}\n")
        if debug:
            stderr.write(redact("".join(traceback.format_exception(exc)), args.secrets_seen))
        return code
    finally:
        log.removeHandler(handler)
        log.setLevel(previous_level)
