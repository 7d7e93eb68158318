"""What a type checker sees: ``mypy --strict`` on small programs that use reqcc.

The session, the adapter and ``mount()`` type their pass-through keywords with
``Unpack[ManagerKeywords]``: a misspelt keyword, a scope that is not a string and an
``on_token_update`` of the wrong shape are errors on the lines marked ``# error``, and a
correct program has none. One mypy run over all the snippets (it takes some seconds);
skipped without mypy (``tox -e type`` installs it and runs this file).
"""

from __future__ import annotations

import re
import sysconfig
import textwrap
from pathlib import Path

import pytest

import reqcc

SNIPPETS = {
    "bad_session.py": """
        from reqcc import ClientCredentialsSession

        ClientCredentialsSession(token_url="https://as.example/t", client_id="app", client_secrt="s")  # error
        ClientCredentialsSession(token_url="https://as.example/t", client_id="app", scopes=[42])  # error
        ClientCredentialsSession(token_url="https://as.example/t", on_token_update=lambda: None)  # error
        ClientCredentialsSession(base_uri="https://api.example/", token_url="https://as.example/t")  # error
        ClientCredentialsSession(token_url="https://as.example/t", clock_skew="30")  # error
    """,
    "bad_mount.py": """
        import requests
        from reqcc import ClientCredentialsAdapter, ClientCredentialsManager, mount

        mount(requests.Session(), "https://api.example/", client_id="app", client_secrt="s")  # error
        mount(requests.Session(), "https://api.example/", scopes=[42])  # error
        mount(requests.Session(), "https://api.example/", on_token_update=lambda: None)  # error
        ClientCredentialsAdapter(client_secrt="s")  # error
        ClientCredentialsManager(client_secrt="s")  # error
    """,
    "good.py": """
        import requests
        from reqcc import (
            ClientCredentialsAdapter, ClientCredentialsManager, ClientCredentialsSession, OAuthScope,
            OAuthToken, mount,
        )

        def save(token: OAuthToken) -> None:
            print(token.fingerprint)

        session = ClientCredentialsSession(
            token_url="https://as.example/t", client_id="app", client_secret="s",
            scopes=[OAuthScope.BooksRead, "custom:scope"], on_token_update=save,
            base_url="https://api.example/", clock_skew=10, timeout=(2, 5),
        )
        manager: ClientCredentialsManager = session.manager
        adapter: ClientCredentialsAdapter = mount(requests.Session(), "https://api.example/", manager=manager)
        ClientCredentialsAdapter(None, token_url="https://as.example/t", client_id="app", scopes="a b")
        mount(requests.Session(), "https://api.example/", inner=adapter, token_url="https://as.example/t",
              client_id="app", token_params={"audience": "api"})
    """,
}


def test_mypy_strict_checks_the_pass_through_keywords(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api", reason="mypy is not installed (tox -e type runs this test)")
    for name, text in SNIPPETS.items():
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    # The reqcc being tested: this checkout's, unless it is the one installed (tox).
    root = Path(reqcc.__file__).resolve().parent.parent
    installed = root == Path(sysconfig.get_paths()["purelib"]).resolve()
    (tmp_path / "mypy.ini").write_text(
        "[mypy]\n" + ("" if installed else f"mypy_path = {root}\n"), encoding="utf-8"
    )
    stdout, stderr, _ = api.run([
        "--strict", "--follow-imports=silent", "--no-error-summary", "--hide-error-context",
        "--config-file", str(tmp_path / "mypy.ini"), "--cache-dir", str(tmp_path / "cache"),
        *(str(tmp_path / name) for name in SNIPPETS),
    ])
    found = {
        (Path(m.group(1)).name, int(m.group(2)))
        for m in re.finditer(r"^(.+?\.py):(\d+): error:", stdout, re.MULTILINE)
    }
    expected = {
        (name, number)
        for name in SNIPPETS
        for number, line in enumerate((tmp_path / name).read_text().splitlines(), 1)
        if line.endswith("# error")
    }
    assert len(expected) == 10
    assert found == expected, stdout + stderr
    assert "client_secrt" in stdout and 'did you mean "client_secret"' in stdout
