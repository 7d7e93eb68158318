"""The long-outage benchmark's figures: one row per run, the table, and reqcc's targets.

No side effects on import (outage.py, the script, sets an oauthlib variable for itself):
the tests import this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from outage_load import Outcome
from report import rst_table

#: Seconds after the server sent a token before a failure counts as "while usable": the
#: time a fleet needs to pass the token through its store.
GRACE = 0.05


@dataclass
class OutageRow:
    """One library (or reqcc fleet) through one outage."""

    name: str
    outage: float
    requests: int
    hits_per_s: float
    recovery: float | None  # None: some process never succeeded after the return
    failed_after: int
    failed_usable: int
    failed_total: int
    hung: int
    errors: dict[str, int]
    #: The first few failures while a token was usable: when, relative to the token's
    #: sending and to the return, and what (to tell a slow store from a real miss).
    usable_examples: list[str] = field(default_factory=list)


def summarize(name: str, down: float, up: float, per_process: Sequence[Sequence[Outcome]],
              stats: dict[str, Any], hung: int) -> OutageRow:
    """Reduce the outcomes of every process of one run, and the server's log, to one row."""
    issued = [(i + GRACE, e) for i, e in stats["issued"]]
    recoveries: list[float | None] = []
    failed_after = failed_usable = failed_total = requests = 0
    errors: dict[str, int] = {}
    examples: list[str] = []
    for process, outcomes in enumerate(per_process):
        first = next((t1 for _t0, t1, r in outcomes if r == "200" and t1 >= up), None)
        recoveries.append(None if first is None else first - up)
        for t0, t1, result in outcomes:
            requests += 1
            if result == "200":
                continue
            failed_total += 1
            errors[result] = errors.get(result, 0) + 1
            failed_after += t0 >= up
            sent = [i - GRACE for i, e in issued if i <= t0 and t1 < e]
            if sent:
                failed_usable += 1
                if len(examples) < 5:
                    examples.append(f"process {process}: {result}, started {t0 - max(sent):.3f} s after a "
                                    f"token was sent, {t0 - up:+.2f} s from the return")
    hits = sum(1 for received, _a, _ok in stats["token_hits"] if down <= received < up)
    return OutageRow(
        name=name, outage=up - down, requests=requests, hits_per_s=hits / (up - down),
        recovery=None if None in recoveries else max(r for r in recoveries if r is not None),
        failed_after=failed_after, failed_usable=failed_usable, failed_total=failed_total,
        hung=hung, errors=errors, usable_examples=examples,
    )


def table(rows: Sequence[OutageRow]) -> str:
    """The rows as an reST simple table."""
    return rst_table(
        ["library", "outage s", "requests", "token reqs/s in outage", "recovery s",
         "failed after return", "failed while usable", "failed in all"],
        [[r.name, f"{r.outage:.1f}", r.requests, f"{r.hits_per_s:.2f}",
          "never" if r.recovery is None else f"{r.recovery:.2f}", r.failed_after, r.failed_usable,
          r.failed_total] for r in rows],
    )


def targets(rows: Sequence[OutageRow]) -> list[tuple[bool, str]]:
    """reqcc's targets (issue 18) for its rows: recovery for every row; the endpoint's load
    and no failure while a usable token existed for reqcc alone and for fleets with a store.

    A fleet without a store cannot share: each process fetches its own token and probes on
    its own, so a usable token held by another process is no failure of reqcc there. Its
    row has recovery and "no thread hung" as targets.
    """
    out = []
    for r in rows:
        if not r.name.startswith("reqcc"):
            continue
        label = f"{r.name}, {r.outage:.1f} s outage"
        out.append((r.recovery is not None and r.recovery <= 1.5,
                    f"{label}: recovery within 1.5 s of the return: "
                    + ("never" if r.recovery is None else f"{r.recovery:.2f} s")))
        if "no store" in r.name:
            out.append((r.hung == 0, f"{label}: no thread hung: {r.hung}"))
            continue
        out.append((r.hits_per_s <= 1.5,
                    f"{label}: at most 1.5 token requests a second during the outage: "
                    f"{r.hits_per_s:.2f}"))
        out.append((r.failed_usable == 0 and r.hung == 0,
                    f"{label}: no failed request while a usable token existed: {r.failed_usable}"
                    + (f"; {r.hung} threads hung" if r.hung else "")))
    return out
