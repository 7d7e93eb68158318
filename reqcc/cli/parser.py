"""The ``reqcc`` command line's grammar: :func:`build_parser` and its help texts."""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .. import __version__
from .exit_codes import EXIT_CODES_HELP

__all__ = ["CACHE_MIN_SECONDS", "CLI_AUTH_METHODS", "ENVIRONMENT_HELP", "build_parser"]

ENVIRONMENT_HELP = """\
environment:
  REQCC_TOKEN_URL       the token endpoint (--token-url)
  REQCC_ISSUER          the authorization server's issuer, instead of a token endpoint (--issuer)
  REQCC_METADATA_URL    the authorization server's metadata document (--metadata-url)
  REQCC_CLIENT_ID       the client identifier (--client-id)
  REQCC_CLIENT_SECRET   the client secret (there is no flag for it: use this, --client-secret-file,
                        or answer the prompt)
  REQCC_SCOPES          scopes, separated by spaces or commas (--scope)
  REQCC_CLIENT_ASSERTION_FILE
                        the platform's JWT file, for workload identity (--client-assertion-file)
  REQCC_CACHE_KEY       reqcc token --cache: seal the saved token with this key (base64 of 32
                        random bytes; or --cache-key-file)
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

#: ``reqcc token --cache``: a saved token is printed only with at least this many seconds left
#: (or half its lifetime, for tokens that live less than twice as long).
CACHE_MIN_SECONDS = 300.0


_SECRET_ADVICE = (
    "a secret on the command line lands in the shell history and in ps. Set REQCC_CLIENT_SECRET, "
    "use --client-secret-file FILE, or answer the prompt."
)
_SECRET_WORDS = ("secret", "password", "passwd")
_SHOWABLE_FLAG = re.compile(r"-{1,2}[A-Za-z][A-Za-z_-]{0,40}")
# argparse's message for a flag whose value is missing, or starts with "-" (taken for a flag).
_EXPECTED_ONE = re.compile(r"argument (?:\S+/)?(-{1,2}[\w-]+): expected one argument")


def refused_secret_flag(args: Sequence[str]) -> str | None:
    """Return the message refusing a secret-like flag in ``args``, or ``None``.

    argparse echoes what it does not understand (``unrecognized arguments: --client_secret
    X``, ``invalid choice: 'X'`` when the flag stands before the command): any flag that
    names a secret (``--client_secret``, ``--secret``, ``--client-secret`` in any place),
    other than ``--client-secret-file``, is refused here first, naming the flag only.
    """
    for arg in args:
        if arg == "--":
            break
        if not arg.startswith("-"):
            continue
        name = arg.partition("=")[0]
        words = name.lstrip("-").lower().replace("_", "").replace("-", "")
        if name == "--client-secret-file" or not any(word in words for word in _SECRET_WORDS):
            continue
        shown = name if _SHOWABLE_FLAG.fullmatch(name) else "a flag naming a secret"
        hint = " (did you mean --client-secret-file?)" if "file" in words else ""
        return f"{shown} is not accepted{hint}, and its value is not shown: {_SECRET_ADVICE}"
    return None


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that refuses a secret-like flag before argparse can echo its value."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        argv = list(sys.argv[1:] if args is None else args)
        self._argv = argv
        message = refused_secret_flag(argv)
        if message is None:
            message = self._unknown_flag_before_command(argv)
        if message is not None:
            self.error(message)
        return super().parse_known_args(argv, namespace)

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """Parse ``args``; what is not understood is named without its values (:func:`unknown_arguments`)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(unknown_arguments(extras))
        return parsed

    def error(self, message: str) -> NoReturn:
        """Exit with ``message``; a value that argparse took for a flag gets the way to write it.

        ``--scope -x`` is ``expected one argument`` to argparse: ``-x`` looks like a flag. The
        message then says to write ``--scope=-x`` (the value shown only when it looks like a
        flag, as :func:`unknown_arguments` shows those; else ``--scope=VALUE``).
        """
        match = _EXPECTED_ONE.fullmatch(message)
        if match is not None:
            value = self._dash_value_after(match.group(1))
            if value is not None:
                flag = next(
                    (
                        option
                        for action in self._actions
                        if match.group(1) in action.option_strings
                        for option in action.option_strings
                        if option.startswith("--")
                    ),
                    match.group(1),
                )
                shown = value if _SHOWABLE_FLAG.fullmatch(value) else "VALUE"
                message += (
                    f" ({'it' if shown == 'VALUE' else shown} starts with '-' and was taken for a "
                    f"flag: write {flag}={shown} if it is the value)"
                )
        super().error(message)

    def _dash_value_after(self, flag: str) -> str | None:
        """The argument after ``flag`` (any of its spellings) when it starts with ``-`` and is
        not one of this parser's flags (then the value was more likely forgotten), else ``None``."""
        spellings = next((a.option_strings for a in self._actions if flag in a.option_strings), [flag])
        known = {option for action in self._actions for option in action.option_strings}
        argv: list[str] = getattr(self, "_argv", [])
        for arg, following in itertools.pairwise(argv):
            if arg == "--":
                break
            if (
                arg in spellings
                and following.startswith("-")
                and following != "--"
                and following.partition("=")[0] not in known
            ):
                return following
        return None

    def _unknown_flag_before_command(self, argv: Sequence[str]) -> str | None:
        """The refusal of ``reqcc --misspelt-flag VALUE token``, which argparse reports as
        ``invalid choice: 'VALUE'``; ``None`` when ``argv`` is not that."""
        commands = next(
            (a.choices for a in self._actions if isinstance(a, argparse._SubParsersAction)), None
        )
        if not commands:
            return None
        known = {option for action in self._actions for option in action.option_strings}
        unknown: list[str] = []
        for arg in argv:
            if arg == "--" or arg in commands:
                return None
            if arg.startswith("-") and arg.partition("=")[0] not in known:
                unknown.append(arg)
            elif not arg.startswith("-"):
                return unknown_arguments([*unknown, arg]) if unknown else None
        return None


def unknown_arguments(extras: Sequence[str]) -> str:
    """The message for arguments argparse did not understand, naming the flags only.

    argparse would print every one (``unrecognized arguments: --client-secre X``): a
    misspelt secret flag would show its secret. Values are counted, not shown.
    """
    flags: list[str] = []
    values = 0
    for arg in extras:
        name, equals, _ = arg.partition("=")
        if arg.startswith("-") and len(arg) > 1:
            flags.append(name if _SHOWABLE_FLAG.fullmatch(name) else "a flag")
            values += bool(equals)
        else:
            values += 1
    hidden = f"{values} value{'s' if values != 1 else ''} not shown" if values else ""
    if not flags:
        return f"unrecognized arguments ({hidden})"
    return f"unrecognized arguments: {', '.join(flags)}" + (f" ({hidden})" if hidden else "")


class _RefuseSecretFlag(argparse.Action):
    """``--client-secret``: refused with a pointer to the safe ways (the value is never echoed)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> NoReturn:
        parser.error(f"--client-secret is not accepted: {_SECRET_ADVICE}")


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("client configuration (flags override the environment)")
    group.add_argument("--token-url", metavar="URL", help="the token endpoint [REQCC_TOKEN_URL]")
    group.add_argument(
        "--issuer",
        metavar="URL",
        help="instead of --token-url: the authorization server's issuer; its token endpoint and a "
        "client authentication method it lists are read from its metadata (RFC 8414 / OpenID "
        "Connect Discovery) [REQCC_ISSUER]",
    )
    group.add_argument(
        "--metadata-url",
        metavar="URL",
        help="the authorization server's metadata document, read instead of the issuer's well-known "
        "URLs; with --issuer its issuer must match, alone the document's issuer is taken "
        "[REQCC_METADATA_URL]",
    )
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
        "scope string, as scopes= takes them; repeatable, and one value may hold several separated by "
        "spaces or commas [REQCC_SCOPES]",
    )
    group.add_argument(
        "--auth-method",
        choices=CLI_AUTH_METHODS,
        default=None,
        help="how the client authenticates (default: client_secret_basic; with --issuer, one the server "
        "lists, private_key_jwt with --private-key-file; the *_jwt methods need reqcc[jwt])",
    )
    group.add_argument(
        "--basic-auth-encoding",
        choices=("form", "raw"),
        default=None,
        help="how client_secret_basic encodes the id and secret: form (RFC 6749, the default) or raw, "
        "for the many servers that do not form-decode them (a secret with + %% : & = / or a space)",
    )
    group.add_argument(
        "--private-key-file",
        metavar="PEM",
        help="the client's private key, for --auth-method private_key_jwt",
    )
    group.add_argument(
        "--client-assertion-file",
        metavar="FILE",
        help="workload identity: authenticate with the JWT the platform writes to FILE and rotates "
        "(a Kubernetes projected service-account token, Entra's AZURE_FEDERATED_TOKEN_FILE), as "
        "private_key_jwt; read again when it changes [REQCC_CLIENT_ASSERTION_FILE]",
    )
    group.add_argument(
        "--dpop",
        action="store_true",
        help="ask for a DPoP-bound token (RFC 9449) and send API requests with DPoP proofs. Without "
        "--dpop-key-file the key is made for this run only and never printed: a token that "
        "'reqcc token --dpop' prints is then useless to anyone, yourself included (needs reqcc[dpop])",
    )
    group.add_argument(
        "--dpop-key-file",
        metavar="PEM",
        help="the DPoP private key (PEM: EC, RSA or Ed25519; implies --dpop), to use a printed token "
        "later with the same key",
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
    parser = _Parser(
        prog="reqcc",
        description="OAuth 2.0 client-credentials tokens for requests, from the command line.\n\n"
        "No authorization server at hand? 'reqcc demo --serve' runs one (a token endpoint and a\n"
        "bookstore API on 127.0.0.1) for 'reqcc token' and 'reqcc request' to talk to; 'reqcc demo'\n"
        "walks through what reqcc does against it.",
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
        "--cache-key-file",
        metavar="FILE",
        help="seal the token saved by --cache (AES-256-GCM) with the key in FILE: 32 raw bytes, or "
        "their base64 [REQCC_CACHE_KEY, base64]; needs reqcc[seal]",
    )
    token.add_argument(
        "--format",
        choices=("json", "header", "access-token"),
        default="json",
        help="json: the token response (default); header: the 'Authorization: Bearer ...' line "
        "('DPoP ...' with --dpop: each request also needs its own proof); access-token: the token alone",
    )

    request = commands.add_parser(
        "request",
        help="call an API with the token attached and print the response body",
        description="Call an API with 'Authorization: Bearer <token>' attached (the token is fetched "
        "first) and print the response body. Exits non-zero on HTTP >= 400, like curl --fail. On a "
        "terminal, a body that does not end with a newline gets one (so the prompt starts on its own "
        "line); piped or redirected, the body is written byte for byte.",
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
        help="run the guided tour against a local authorization server (--serve: only the server)",
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
