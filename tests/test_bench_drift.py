"""The L1 drift bench runs small, prints its goal line in the agreed form and catches an obvious drift."""

from __future__ import annotations

import math
import re

from bench import drift_detection


def test_a_small_run_prints_the_l1_line() -> None:
    rows, goals = drift_detection.run(runs=1, no_drift_events=500)
    assert [goal.goal_id for goal in goals] == ["L1"]
    line = goals[0].line()
    print(line)
    assert re.fullmatch(r"goal L1: found within 1,000 events .* \(goal: .*\) (holds|FAILS)", line)
    for name in ("sea", "agrawal", "sine", "gradual SEA"):
        assert name in line
    # One run per stream watches too few no-drift events to claim the goal: the line says why.
    assert line.endswith("FAILS")
    assert "no-drift events watched" in line
    found = {row.name: row.figure for row in rows if "found <=" in row.name}
    assert len(found) == 3
    # Agrawal's and Sine's drifts are obvious (error ~5% -> ~50%, ~2% -> ~27%): found within 1,000.
    assert [figure for name, figure in found.items() if "SEA" not in name] == [100.0, 100.0]
    assert any(row.name.startswith("L1 gradual SEA") for row in rows)
    assert rows[-1].name == "L1   bench wall time"


def test_an_obvious_drift_is_found_quickly_and_not_before() -> None:
    case = drift_detection.CASES["sine"]
    model = drift_detection.train(case)
    for seed in (1, 2):
        run = drift_detection.drift_run(case, model, seed)
        # The frozen model's error jumps from ~2% to ~27%: found within a few hundred events.
        assert run.error_before < 0.05 < 0.2 < run.error_after
        assert run.false_alarms == 0
        assert not math.isinf(run.delay)
        assert 0 < run.delay <= 300


def test_no_drift_means_no_delay() -> None:
    case = drift_detection.CASES["sea"]
    model = drift_detection.train(case)
    quiet = drift_detection.monitor_stream(model, case.concept(0, 7), 5_000, 5_000)
    assert quiet.alarms == ()
    assert drift_detection.percentile([1.0, math.inf], 0.95) == math.inf
