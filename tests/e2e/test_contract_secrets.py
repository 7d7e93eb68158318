"""contract item 20 checked from outside: the client secret is never echoed back.

Not in a token endpoint's error when the server echoes it escaped as the common server
stacks escape it (JSON, HTML, percent-encoding; against a raw-socket server on 127.0.0.1),
and not by the command line when a secret flag is misspelt (a real subprocess).
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest

import reqcc

from ..hostile_server import HostileServer, Reply

SECRET = "Sx9p@ss/wo\"rd<&>é+ =Zq't~!*()"


# -- item 20: the secret in the forms common server stacks echo it in ----------------------


def _js_encode_uri_component(s: str) -> str:
    return quote(s, safe="-_.!~*'()")


def _php_urlencode(s: str) -> str:
    return quote_plus(s, safe="-_.").replace("~", "%7E")


def _java_url_encoder(s: str) -> str:
    return quote_plus(s, safe="-_.*")


def _percent_every_byte(s: str) -> str:
    return "".join(f"%{b:02X}" for b in s.encode())


def _php_htmlspecialchars(s: str) -> str:
    return html.escape(s).replace("&#x27;", "&#039;")


def _html5_apos(s: str) -> str:
    return html.escape(s).replace("&#x27;", "&apos;")


def _go_json(s: str) -> str:  # Go's encoding/json escapes <, > and & as \u003c, \u003e, \u0026
    return json.dumps(s, ensure_ascii=False)[1:-1].replace("<", "\\u003c").replace(">", "\\u003e").replace(
        "&", "\\u0026"
    )


def _php_json_encode(s: str) -> str:  # PHP's json_encode escapes "/" as "\/" by default
    return json.dumps(s)[1:-1].replace("/", "\\/")


ECHOES = [
    _js_encode_uri_component,
    _php_urlencode,
    _java_url_encoder,
    _percent_every_byte,
    _php_htmlspecialchars,
    _html5_apos,
    _go_json,
    _php_json_encode,
]


@pytest.mark.parametrize("encode", ECHOES, ids=[f.__name__.lstrip("_") for f in ECHOES])
@pytest.mark.parametrize("where", ["error_description", "error_uri", "html_body"])
def test_a_secret_echoed_as_common_server_stacks_escape_it_is_redacted(
    serve: Callable[..., HostileServer], encode: Callable[[str], str], where: str
) -> None:
    """Item 20: redaction covers the secret JSON-escaped, HTML-escaped and percent-encoded.

    Not only as Python's own json/html/urllib write it: as the JavaScript, PHP, Java and Go
    standard encoders do (encodeURIComponent keeps ``'()*!~``, PHP's json_encode writes
    ``\\/``, Go's writes ``\\u003c``, htmlspecialchars writes ``&#039;``, ...).
    """
    echoed = encode(SECRET)
    assert echoed != SECRET
    if where == "html_body":
        reply = Reply(status=500, headers={"Content-Type": "text/html"}, body=f"<p>{echoed}</p>".encode())
    else:
        value = "bad " + echoed if where == "error_description" else "https://e.example/?s=" + echoed
        body = json.dumps({"error": "invalid_client", where: value}, ensure_ascii=False).encode()
        reply = Reply(status=400, headers={"Content-Type": "application/json"}, body=body)
    server = serve(reply)
    manager = reqcc.ClientCredentialsManager(
        token_url=server.url + "/token", client_id="c", client_secret=SECRET, max_retries=0
    )
    with pytest.raises(reqcc.ReqccError) as caught:
        manager.get_token()
    exc = caught.value
    shown = " ".join([str(exc), repr(exc), *(str(getattr(exc, a, "")) for a in ("description", "uri"))])
    assert echoed not in shown


# -- item 20: a misspelt secret flag on the command line --------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["token", "--client-secre", "XSECRETX"],
        ["token", "--client-secert", "XSECRETX"],
        ["token", "--sec=XSECRETX"],
        ["--client-secre", "XSECRETX", "token"],
        ["token", "--clientsecrt", "XSECRETX"],
    ],
)
def test_a_misspelt_secret_flag_is_refused_without_echoing_its_value(argv: list[str]) -> None:
    """Item 20: argparse's "unrecognized arguments" / "invalid choice" must not show the value."""
    done = subprocess.run(
        [sys.executable, "-m", "reqcc", *argv],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        env={"PATH": "", "REQCC_CLIENT_SECRET": "x"},
    )
    assert done.returncode == 2
    assert b"XSECRETX" not in done.stdout + done.stderr
    assert done.stderr.strip()  # still says what is wrong


def test_an_unknown_flag_is_still_named() -> None:
    """The refusal stays useful: the unknown flag itself is named (only values are hidden)."""
    done = subprocess.run(
        [sys.executable, "-m", "reqcc", "token", "--no-such-flag", "XVALUEX"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        env={"PATH": "", "REQCC_CLIENT_SECRET": "x"},
    )
    assert done.returncode == 2
    assert b"--no-such-flag" in done.stderr
    assert b"XVALUEX" not in done.stderr
