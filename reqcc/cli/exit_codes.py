"""The ``reqcc`` command's exit codes, and their description for ``--help``."""

from __future__ import annotations

__all__ = [
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
    "EXIT_CODES_HELP",
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
