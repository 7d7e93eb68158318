"""The package's one logger and the helpers that keep secrets out of what it writes."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable

#: The only logger reqcc writes to.
log = logging.getLogger("reqcc")

# The patterns are kept as text and compiled where used (re keeps the compiled ones): nothing
# is compiled by ``import reqcc``, and they are secret-free, so re's cache holds no secret.
_SENSITIVE_JSON_FIELD = (
    r'("(?:access_token|refresh_token|id_token|client_secret|client_assertion|assertion|password)"'
    # The string as an "unrolled loop": linear time and constant memory on a hostile body
    # (the alternation form took ~170 bytes of regex stack per character of an unterminated
    # string). An unterminated string (a cut body) is hidden up to the end.
    r'\s*:\s*)"[^"\\]*(?:\\.[^"\\]*)*"?'
)
_SENSITIVE_FORM_FIELD = (
    r"((?:access_token|refresh_token|id_token|client_secret|client_assertion|assertion|password)=)[^&\s]*"
)
# Only at the start of a run of base64url characters: "eyJeyJeyJ…" would be quadratic otherwise.
_JWT = r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"


def fingerprint(secret: str) -> str:
    """Return a short, stable, non-reversible tag for ``secret`` (8 hex digits of SHA-256)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:8]


#: One character of text as a server may have escaped it: a percent-encoded UTF-8 sequence,
#: a JSON escape (a surrogate pair as one), an HTML character reference. Secret-free, so the
#: patterns may stay in re's cache (a pattern built from a secret would stay there too).
_PERCENT_CHAR = (
    r"%[0-7][0-9a-f]|%[c-d][0-9a-f]%[89ab][0-9a-f]|%e[0-9a-f](?:%[89ab][0-9a-f]){2}"
    r"|%f[0-7](?:%[89ab][0-9a-f]){3}"
)
_JSON_CHAR = r"\\ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2}|\\u[0-9a-f]{4}|\\[\"\\/bfnrt]"
_HTML_CHAR = r"&#0*[0-9]{1,7};|&#x0*[0-9a-f]{1,6};|&(?:amp|lt|gt|quot|apos);"
#: The readings of a text: every escape at once (an echo escaped twice over, or in a mix),
#: and each escape alone (a backslash before "n" in an HTML page is no JSON escape).
_READINGS = tuple(
    "|".join((*parts, "."))
    for parts in ((_PERCENT_CHAR, _JSON_CHAR, _HTML_CHAR), (_PERCENT_CHAR,), (_JSON_CHAR,), (_HTML_CHAR,))
)
_JSON_SHORT = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HTML_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def _unescape_one(token: str) -> str:
    """The character ``token`` (one match of a reading in :data:`_READINGS`) stands for, or ``token``."""
    if len(token) == 1:
        return token
    try:
        if token[0] == "%":
            return bytes.fromhex(token.replace("%", "")).decode("utf-8")
        if token[0] == "\\":
            if token[1] != "u":
                return _JSON_SHORT[token[1]]
            if len(token) == 12:  # a surrogate pair
                high, low = int(token[2:6], 16), int(token[8:12], 16)
                return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
            return chr(int(token[2:6], 16))
        if token[1] == "#":
            return chr(int(token[3:-1], 16) if token[2] in "xX" else int(token[2:-1]))
        return _HTML_NAMED[token[1:-1].lower()]
    except (ValueError, KeyError, OverflowError):
        return token


def _hide(text: str, secret: str) -> str:
    r"""Return ``text`` with every echo of ``secret`` replaced by ``***``.

    Each character of the echo may be raw, percent-encoded (any hex case, every byte or only
    some, ``+`` for a space: JavaScript's ``encodeURIComponent``, PHP's ``urlencode``, Java's
    ``URLEncoder``), JSON-escaped (``\uXXXX`` in any case, ``\"``, ``\/`` as PHP writes it,
    ``\u003c`` as Go writes it) or HTML-escaped (named, decimal or hex references), in any
    mix: the text is unescaped one character at a time and searched, in linear time.
    """
    text = text.replace(secret, "***")  # raw (a secret holding "%41" or "&amp;" unescapes to another)
    spans: list[tuple[int, int]] = []
    for reading in _READINGS:
        spans += _find(text, secret, re.compile(reading, re.IGNORECASE | re.DOTALL))
    if not spans:
        return text
    out: list[str] = []
    done = 0
    for begin, end in sorted(spans):
        if end <= done:
            continue
        out.append(text[done:max(begin, done)])
        out.append("***")
        done = end
    out.append(text[done:])
    return "".join(out)


def _find(text: str, secret: str, reading: re.Pattern[str]) -> list[tuple[int, int]]:
    """The spans of ``text`` that unescape, one character at a time by ``reading``, to ``secret``."""
    starts: list[int] = []
    chars: list[str] = []
    for match in reading.finditer(text):
        token = match.group()
        char = _unescape_one(token)
        if len(char) != 1:  # not one character after all: its characters one by one
            starts.extend(range(match.start(), match.end()))
            chars.extend(token)
        else:
            starts.append(match.start())
            chars.append(char)
    starts.append(len(text))
    views = ["".join(chars)]
    if " " in secret:  # "+" for a space, as a form body writes it (only where "+" was raw)
        views.append("".join(" " if c == "+" and text[starts[i]] == "+" else c for i, c in enumerate(chars)))
    spans: list[tuple[int, int]] = []
    for view in views:
        at = view.find(secret)
        while at != -1:
            spans.append((starts[at], starts[at + len(secret)]))
            at = view.find(secret, at + len(secret))
    return spans


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with known secrets and token-like values replaced by ``***``.

    A secret is found raw and in every form a server may echo it in (see :func:`_hide`).
    """
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = _hide(text, secret)
    text = re.sub(_SENSITIVE_JSON_FIELD, r'\1"***"', text, flags=re.IGNORECASE)
    text = re.sub(_SENSITIVE_FORM_FIELD, r"\1***", text, flags=re.IGNORECASE)
    return re.sub(_JWT, "***", text)


def excerpt(text: str, secrets: Iterable[str | None] = (), limit: int = 200) -> str:
    """Return a redacted, single-line excerpt of at most ``limit`` characters of ``text``.

    Only the start of the text is unescaped and searched (a 1 MiB body costs no more than
    a short one): the raw secrets are replaced in all of it, whitespace runs are made single
    spaces, and the part shown, with room for an escaped secret across its end, is redacted.
    """
    known = [s for s in secrets if s and len(s) >= 3]
    for secret in known:
        text = text.replace(secret, "***")
    flat = " ".join(text.split())
    longest = max((len(s) for s in known), default=0)
    window = flat[: limit + 16 * longest + 16]
    # a secret with whitespace runs of its own is found flattened too
    flat = " ".join(redact(window, [*known, *(" ".join(s.split()) for s in known)]).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
