"""The short fault drill inside `make test`: the poison burst at small size, nothing lost, nothing doubled.

`make drill` runs all seven fault classes with 20,000 events each; here 400
events of the poison burst keep the run to about a minute on the session's
broker, so `make test` stays near ten minutes. A SIGKILLed worker is tested in
test_loop.py; the broker restart, the crowd outage, stray answers, clock skew
and the full disk under the model store run in `make drill`.
"""

from __future__ import annotations

import os

import pytest

from bench.drill import DrillSettings, run_fault
from bench.drill_ledger import goal, table

pytestmark = pytest.mark.kafka

SHORT = ("poison",)
EVENTS = 400


@pytest.mark.timeout(600)
def test_the_short_drill_loses_and_doubles_nothing(kafka_bootstrap: str, tmp_path: os.PathLike[str]) -> None:
    faults = list(SHORT)
    settings = DrillSettings(events=EVENTS, rate_per_s=300.0, drain_s=240.0, settle_s=5.0, workdir=tmp_path)
    rows = [run_fault(fault, settings, kafka_bootstrap) for fault in faults]
    print(table(rows))
    verdict = goal(rows)
    assert verdict.holds, f"{verdict.line()}\n{table(rows)}\n" + "\n".join(
        f"{row.fault}: {'; '.join(row.examples)}" for row in rows if not row.holds
    )
    poison = next(row for row in rows if row.fault == "poison")
    assert poison.dlq >= 60, "the poison burst did not reach the DLQ"
    assert all(row.labels_out == row.events_in == EVENTS for row in rows)
