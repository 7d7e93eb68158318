"""The soak's parts (benchmarks/soak.py, soak_server.py), checked without running a soak.

The flapping token endpoint in each of its modes, the schedule of outages and Redis
restarts, and the analysis that turns outcomes and the server's log into the soak's
checks: recoveries, failures while a usable token existed, flat resources, hangs.
"""

from __future__ import annotations

import importlib
import io
import itertools
import json
import types
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def soak(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module("soak")


@pytest.fixture
def soak_server(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module("soak_server")


def _token_request(server: object) -> requests.Response:
    credentials = server.credentials()  # type: ignore[attr-defined]
    return requests.post(
        credentials["token_url"], timeout=5,
        data={"grant_type": "client_credentials", "scope": "books.read"},
        auth=(credentials["client_id"], credentials["client_secret"]),
    )


def test_flapping_server_in_each_mode(soak_server: types.ModuleType) -> None:
    with soak_server.FlappingServer(token_ttl=8, slow_delay=0.2) as server:
        response = _token_request(server)
        assert response.status_code == 200
        token = response.json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        books = requests.get(server.api_url + "books", headers=bearer, timeout=5)
        assert books.status_code == 200  # the rest of the server is the local server's
        (issued,) = server.issued
        assert issued.asked <= issued.sent and issued.expires == pytest.approx(issued.asked + 8)

        server.set_mode("503")
        response = _token_request(server)
        assert response.status_code == 503 and response.json()["error"] == "temporarily_unavailable"
        server.set_mode("reset")
        with pytest.raises(requests.ConnectionError):
            _token_request(server)
        server.set_mode("slow")
        assert _token_request(server).status_code == 503
        server.set_mode("up")
        assert _token_request(server).status_code == 200

        assert [h.status for h in server.hits] == [200, 503, 0, 503, 200]
        slow = server.hits[3]
        assert slow.answered - slow.received >= 0.2  # the answer really was held back
        assert len(server.issued) == 2  # failures issue nothing
        assert token not in repr(server.hits) + repr(server.issued)
        with pytest.raises(ValueError, match="mode"):
            server.set_mode("down")


def test_schedule_has_both_extremes_and_restarts_in_healthy_spells(soak: types.ModuleType) -> None:
    for seconds in (180.0, 600.0):
        outages, restarts = soak.schedule(seconds, 18)
        assert [o.length for o in outages[:2]] == [0.5, 40.0]
        assert all(0.5 <= o.length <= 40.0 for o in outages)
        assert {o.mode for o in outages} == {"503", "reset", "slow"}
        assert outages[-1].at + outages[-1].length <= seconds - 15.0
        for before, after in itertools.pairwise(outages):
            assert after.at - (before.at + before.length) >= 8.0
        assert len(restarts) == 2 and restarts[0] < restarts[1] < seconds
        for at in restarts:  # well inside a healthy spell: not during an outage or a recovery
            assert all(at >= o.at + o.length + 5.0 or at <= o.at - 5.0 for o in outages)


class _Server:
    def __init__(self, soak_server: types.ModuleType, hits: list[tuple[float, float, int]],
                 issued: list[tuple[float, float, float]]) -> None:
        self.hits = [soak_server.TokenHit(*h) for h in hits]
        self.issued = [soak_server.Issued(*i) for i in issued]


def test_analysis_counts_failures_while_usable_and_the_slowest_recovery(
    soak: types.ModuleType, soak_server: types.ModuleType
) -> None:
    outage = soak.Outage(at=0.0, length=10.0, mode="slow", down=100.0, up=110.0)
    report = soak.Report(60.0, 2, 1, [outage], [])
    # One token usable from 90.0 (+50 ms) to 104.0; during the outage three hits, the last
    # answered slowly after the switch back (at 111.0): the return counts from there.
    server = _Server(soak_server, [(101.0, 101.0, 503), (105.0, 105.0, 503), (109.5, 111.0, 503)],
                     [(89.9, 90.0, 104.0)])
    first = [(95.0, 95.1, "200"), (103.0, 103.2, "TemporarilyUnavailable"),  # usable: counts
             (106.0, 106.0, "TemporarilyUnavailable"), (111.5, 111.6, "200")]
    second = [(90.02, 90.03, "ConnectionError"),  # within 50 ms of the token's answer: not yet
              (103.9, 104.1, "TemporarilyUnavailable"),  # ended after the expiry
              (112.0, 112.3, "200")]
    soak.analyse(report, server, [first, second], end=130.0)
    assert report.failed == 4 and report.failed_usable == 1
    assert report.errors == {"TemporarilyUnavailable": 3, "ConnectionError": 1}
    assert outage.returned == 111.0 and outage.hits == 3
    assert outage.recovery == pytest.approx(1.3)  # the slower process: 112.3 - 111.0
    assert (outage.failed, outage.failed_usable) == (3, 1)  # the failure at 90.02 came before it
    assert report.usable_examples == [  # the run started at 130 - 60 s
        "process 0: TemporarilyUnavailable at 33.00 s, 13.000 s after a token was sent"]

    results = dict((text.split(":")[0], met) for met, text in soak.checks(report, 1.5))
    assert results["requests failed while a usable token existed in the fleet"] is False
    assert results["recovery within 1.5 s of the return in every process, after each of 1 outages"]


def test_analysis_says_never_when_a_process_does_not_recover(
    soak: types.ModuleType, soak_server: types.ModuleType
) -> None:
    outage = soak.Outage(at=0.0, length=5.0, mode="503", down=10.0, up=15.0)
    report = soak.Report(30.0, 2, 1, [outage], [])
    soak.analyse(report, _Server(soak_server, [], []),
                 [[(16.0, 16.1, "200")], [(16.0, 16.1, "TemporarilyUnavailable")]], end=40.0)
    assert outage.recovery is None
    (met, text), *_ = soak.checks(report, 1.5)
    assert not met and "never" in text


def test_resources_and_hangs_are_checked(soak: types.ModuleType) -> None:
    first = soak.Sample(pid=1, rss_kib=40_000, threads=8, fds=20)
    assert soak.flat(first, soak.Sample(1, 40_000 + 8 * 1024, 10, 28))
    assert not soak.flat(first, soak.Sample(1, 40_000 * 1.1 + 8 * 1024 + 1, 8, 20))
    assert not soak.flat(first, soak.Sample(1, 40_000, 11, 20))
    assert not soak.flat(first, soak.Sample(1, 40_000, 8, 29))
    report = soak.Report(30.0, 1, 1, [], [], first=[first], last=[first], hung=["process 1 exited with 3"])
    results = soak.checks(report, 1.5)
    assert [met for met, _ in results] == [False, True, True, True, True, False]
    assert "no outage ran" in results[0][1] and "exited with 3" in results[-1][1]
    assert json.dumps([t for _, t in results])  # plain text, printable and JSON-able


def test_the_report_goes_into_the_docs_page_as_clean_rst(soak: types.ModuleType, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import docutils.core

    page = tmp_path / "reliability.rst"
    original = (ROOT / "docs" / "reliability.rst").read_text()
    page.write_text(original)
    outage = soak.Outage(at=15.0, length=40.0, mode="reset", down=100.0, up=140.0, returned=140.0,
                         hits=41, recovery=0.4)
    report = soak.Report(600.0, 4, 4, [outage], [60.0, 400.0], requests=10, load=[1.0, 2.0, 3.0])
    assert soak._print(report, [(True, "no hang")], None, page) == 0
    printed = capsys.readouterr().out
    assert "40.0  reset    41    1.02        0.40" in printed and "[met] no hang" in printed
    written = page.read_text()
    start, end = written.index(soak.SOAK_BLOCK[0]), written.index(soak.SOAK_BLOCK[1])
    assert written[:start] == original[: original.index(soak.SOAK_BLOCK[0])]  # only the block
    figures = written[written.index("\n", start) + 1 : end]
    assert "--minutes 10" in figures and "[met] no hang" in figures
    warnings = io.StringIO()
    docutils.core.publish_doctree(
        figures, settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": warnings}
    )
    assert warnings.getvalue() == ""
    assert soak._print(report, [(True, "no hang"), (False, "no outage ran")], None, None) == 1
