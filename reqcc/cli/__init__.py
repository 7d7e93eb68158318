"""The ``reqcc`` command: get a token or call an API from a shell, or run the demo.

    reqcc token   [options] [--format json|header|access-token]
    reqcc request [options] [-X METHOD] URL [-H 'Name: value'] [-d DATA | --json JSON] [-i]
    reqcc demo    [--serve [--port N]]

Configuration comes from flags, else from the environment (``REQCC_TOKEN_URL``,
``REQCC_CLIENT_ID``, ``REQCC_CLIENT_SECRET``, ``REQCC_SCOPES``). The client secret is read
from ``REQCC_CLIENT_SECRET``, ``--client-secret-file`` or an interactive prompt, never from a
plain flag (it would land in the shell history and in ``ps``).

``reqcc request`` writes the response body as received. Only when stdout is a terminal and
the body does not end with a newline does it add one, so the shell prompt starts on its own
line; piped or redirected output (``| jq``, ``> image.png``, a checksum) is the body byte for
byte, whether it is text or binary.
"""

from __future__ import annotations

import getpass as getpass  # the secret prompt; tests replace reqcc.cli.getpass.getpass
import logging
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import TextIO

from .._log import log, redact
from .commands import COMMANDS
from .exit_codes import EXIT_CODES_HELP as EXIT_CODES_HELP
from .exit_codes import (
    EXIT_CONFIG,
    EXIT_DEMO,
    EXIT_ERROR,
    EXIT_HTTP,
    EXIT_INTERRUPTED,
    EXIT_NETWORK,
    EXIT_OAUTH,
    EXIT_OK,
    EXIT_TOKEN_RESPONSE,
    EXIT_USAGE,
)
from .messages import describe
from .parser import CACHE_MIN_SECONDS as CACHE_MIN_SECONDS
from .parser import CLI_AUTH_METHODS as CLI_AUTH_METHODS
from .parser import ENVIRONMENT_HELP as ENVIRONMENT_HELP
from .parser import build_parser

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
        return COMMANDS[args.command](args, environ, stdin, stdout)
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
        message, code = describe(exc, getattr(args, "url", None))
        one_line = " ".join(message.splitlines())  # a server's text may hold line breaks
        stderr.write(f"reqcc: {redact(one_line, args.secrets_seen)}\n")
        if debug:
            stderr.write(redact("".join(traceback.format_exception(exc)), args.secrets_seen))
        return code
    finally:
        log.removeHandler(handler)
        log.setLevel(previous_level)
