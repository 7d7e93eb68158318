"""``reqcc demo``: the tour passes, says so, exits 0, fails loudly when a step misbehaves, prints no token."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import threading
import time

import pytest
import requests

from reqcc import cli, demo
from reqcc.testing import LocalAuthorizationServer

from .threads import join_all, start_daemon

# oauthlib's token generator: 30 characters of [A-Za-z0-9]. None may appear in the output.
TOKEN_LIKE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{30}(?![A-Za-z0-9])")


@pytest.fixture(scope="module")
def tour() -> subprocess.CompletedProcess[str]:
    """One run of ``python -m reqcc demo`` shared by the tests that read its output (about 1-2 s)."""
    return subprocess.run(
        [sys.executable, "-m", "reqcc", "demo"], capture_output=True, text=True, timeout=60
    )


def test_without_the_dpop_extra_the_dpop_step_is_skipped_not_counted_as_ok() -> None:
    # A plain `pip install .` has no PyJWT/cryptography: the tour still passes, and says the
    # DPoP step was skipped (and why) instead of counting it as a step that behaved.
    code = (
        "import sys\n"
        "for name in ('jwt', 'cryptography'): sys.modules[name] = None\n"
        "from reqcc.cli import main\n"
        "sys.exit(main(['demo']))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^  skip 8\. DPoP", run.stdout, re.MULTILINE)
    assert "pip install 'reqcc[dpop]'" in run.stdout
    assert "8/8 steps ok, 1 skipped: every step behaved as stated" in run.stdout
    assert "(injected outage)" in run.stdout  # no DPoP nonce failure claimed


def test_without_httpx_the_async_step_is_skipped_with_the_extra_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['httpx'] = None\n"
        "from reqcc.cli import main\n"
        "sys.exit(main(['demo']))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^  skip 9\. async httpx", run.stdout, re.MULTILINE)
    assert "pip install 'reqcc[httpx]'" in run.stdout
    assert "8/8 steps ok, 1 skipped: every step behaved as stated" in run.stdout


def test_demo_passes_in_a_subprocess_and_prints_no_token(tour: subprocess.CompletedProcess[str]) -> None:
    assert tour.returncode == 0, tour.stdout + tour.stderr
    assert tour.stderr == ""
    out = tour.stdout
    steps = re.findall(r"^  (ok  |FAIL) (\d)\. ", out, re.MULTILINE)
    assert [s[0] for s in steps] == ["ok  "] * 9
    assert "9/9 steps ok: every step behaved as stated" in out
    for row in ("API requests", "token requests", "retries", "failures", "errors seen by callers"):
        assert re.search(rf"^  {row}\s+\d+", out, re.MULTILINE), row
    assert not TOKEN_LIKE.search(out)
    assert "bookstore-secret" not in out and "reader-secret" not in out
    fingerprints = set(re.findall(r"\b[0-9a-f]{8}\b", out))
    # the tour's six tokens: first, renewed ahead, after the revocation, after the outage, DPoP,
    # the async httpx client's
    assert len(fingerprints) == 6, fingerprints


def test_demo_counts_are_exact(tour: subprocess.CompletedProcess[str]) -> None:
    text = tour.stdout
    # 1 + 40 + 5 (renewal) + 1 (403) + 1 (201) + 2 (401 and its replay) + 21 (outage)
    # + 3 (DPoP) + 1 (the API's use_dpop_nonce 401 before the first DPoP GET's replay)
    # + 20 (async httpx) = 95
    assert re.search(r"^  API requests\s+95\s+2 x 401, 1 x 403$", text, re.MULTILINE), text
    retries = r"^  retries\s+3\s+1 token-request retry, 2 replays after 401$"
    assert re.search(retries, text, re.MULTILINE), text
    # issued: first, renewal, writer, after revocation, after the outage, DPoP, async httpx;
    # failed: 1 attempt + 1 retry (outage), the DPoP request without the nonce
    assert re.search(r"^  token requests\s+10\s+7 tokens issued$", text, re.MULTILINE), text
    assert re.search(r"^  failures\s+3\s", text, re.MULTILINE), text
    assert re.search(r"^  errors seen by callers\s+0\s+none$", text, re.MULTILINE), text


def test_demo_fails_when_a_step_misbehaves(monkeypatch: pytest.MonkeyPatch) -> None:
    # A server that "forgets" to revoke: step 6 sees no 401, so it must report FAIL and exit 8.
    monkeypatch.setattr(LocalAuthorizationServer, "revoke", lambda self, token=None: 0)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["demo"], stdout=out, stderr=err)
    assert code == cli.EXIT_DEMO
    text = out.getvalue()
    assert re.search(r"^  FAIL 6\. ", text, re.MULTILINE), text
    assert "8/9 steps ok: 1 step(s) did NOT behave" in text


def test_demo_verbose_shows_the_log_without_tokens() -> None:
    out = io.StringIO()
    assert demo.run_demo(out=out, verbose=True)
    text = out.getvalue()
    assert "log info: 401 for token" in text and "background token renewal failed" in text
    assert not TOKEN_LIKE.search(text)


def test_serve_prints_how_to_use_it_and_serves_until_stopped() -> None:
    out = io.StringIO()
    stop = threading.Event()
    thread = start_daemon(demo.serve, out=out, stop=stop)
    try:
        deadline = time.monotonic() + 10
        while "clients:" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        text = out.getvalue()
        token_url = re.search(r"export REQCC_TOKEN_URL=(\S+)", text)
        assert token_url is not None, text
        assert token_url.group(1).startswith("http://127.0.0.1:")
        answer = requests.post(
            token_url.group(1),
            data={"grant_type": "client_credentials"},
            auth=("bookstore-app", "bookstore-secret"),
            timeout=5,
        )
        assert answer.status_code == 200
    finally:
        stop.set()
        join_all([thread], 10)
    with pytest.raises(requests.ConnectionError):
        requests.post(token_url.group(1), timeout=5)


def test_serve_on_a_busy_port_is_a_configuration_error() -> None:
    with LocalAuthorizationServer() as busy:
        err = io.StringIO()
        code = cli.main(["demo", "--serve", "--port", str(busy.port)], stdout=io.StringIO(), stderr=err)
    assert code == cli.EXIT_CONFIG
    assert f"127.0.0.1:{busy.port}" in err.getvalue()
