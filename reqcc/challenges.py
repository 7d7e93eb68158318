"""``WWW-Authenticate`` challenges, read within bounds (RFC 9110 §11.6.1; contract item 34).

The API's 401s carry challenges that reqcc reads to decide what to do (the token is bad:
``error="invalid_token"``; a DPoP nonce is wanted: ``error="use_dpop_nonce"``). A server can
send many long ``WWW-Authenticate`` lines (requests joins them with ``", "``): only the
first :data:`MAX_LENGTH` characters are read, and at most :data:`MAX_CHALLENGES`
challenges of at most :data:`MAX_PARAMS` parameters each, so a hostile header costs
microseconds and a few KiB, not seconds and hundreds of MiB. Pure functions, no I/O, for
every front end.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

__all__ = ["MAX_CHALLENGES", "MAX_LENGTH", "MAX_PARAMS", "error_code", "parse_www_authenticate"]

#: The most characters of a ``WWW-Authenticate`` value read (the rest is ignored).
MAX_LENGTH = 8 * 1024
#: The most challenges read from one value.
MAX_CHALLENGES = 16
#: The most parameters read from one challenge.
MAX_PARAMS = 16

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"


class _Patterns(NamedTuple):
    scheme: re.Pattern[str]
    param: re.Pattern[str]
    token68: re.Pattern[str]
    separators: re.Pattern[str]
    escape: re.Pattern[str]
    error: re.Pattern[str]


@functools.cache
def _patterns() -> _Patterns:
    """The compiled patterns, compiled at the first challenge read (not at ``import reqcc``)."""
    return _Patterns(
        scheme=re.compile(rf"({_TOKEN})(?=[ \t]|,|$)"),
        param=re.compile(rf'({_TOKEN})[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|{_TOKEN})[ \t]*(?=,|$)'),
        token68=re.compile(r"([A-Za-z0-9._~+/-]+=*)[ \t]*(?=,|$)"),
        separators=re.compile(r"[ \t,]*"),
        escape=re.compile(r"\\(.)"),
        error=re.compile(r'\berror\s*=\s*"?([A-Za-z0-9_.-]+)"?', re.IGNORECASE),
    )


def parse_www_authenticate(value: str) -> list[tuple[str, dict[str, str]]]:
    """Return the challenges of a ``WWW-Authenticate`` value (RFC 9110 §11.6.1) in order.

    Each challenge is ``(scheme in lower case, {param name in lower case: value})``; quoted
    values are unquoted, a ``token68`` is returned under the name ``""``. One header may
    carry several challenges (``Bearer realm="api", DPoP algs="ES256"``, RFC 9449 §7.1).
    Parsing stops at the first malformed part and returns what came before it; it reads
    at most :data:`MAX_LENGTH` characters, :data:`MAX_CHALLENGES` challenges and
    :data:`MAX_PARAMS` parameters per challenge (a challenge cut there ends the result).
    """
    value = value[:MAX_LENGTH]
    patterns = _patterns()
    challenges: list[tuple[str, dict[str, str]]] = []
    params: dict[str, str] | None = None
    pos, end = 0, len(value)
    while True:
        sep = patterns.separators.match(value, pos)
        pos = sep.end() if sep else pos
        if pos >= end:
            break
        if params is not None:
            param = patterns.param.match(value, pos)
            if param:
                if len(params) >= MAX_PARAMS:
                    break
                raw = param.group(2)
                params.setdefault(param.group(1).lower(),
                                  patterns.escape.sub(r"\1", raw[1:-1]) if raw.startswith('"') else raw)
                pos = param.end()
                continue
        scheme = patterns.scheme.match(value, pos)
        if not scheme or len(challenges) >= MAX_CHALLENGES:
            break
        params = {}
        challenges.append((scheme.group(1).lower(), params))
        pos = scheme.end()
        while pos < end and value[pos] in " \t":
            pos += 1
        if not patterns.param.match(value, pos):
            token68 = patterns.token68.match(value, pos)
            if token68:
                params[""] = token68.group(1)
                pos = token68.end()
                params = None  # a token68 ends its challenge
    return challenges


def error_code(value: str) -> str | None:
    """Return the first ``error=`` code in a ``WWW-Authenticate`` value, lower case, or ``None``.

    Lenient, as RFC 6750 servers are (an unquoted value, a missing comma): any challenge's
    ``error`` counts. Only the first :data:`MAX_LENGTH` characters are read.
    """
    match = _patterns().error.search(value, 0, MAX_LENGTH)
    return match.group(1).lower() if match is not None else None
