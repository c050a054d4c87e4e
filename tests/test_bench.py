"""The benchmarks stay importable and print goal lines in the agreed form (figures live in `make bench`)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from bench.harness import Goal, Row, report


@pytest.mark.parametrize(
    "module",
    [
        "bench.router_body",
        "bench.router_estimation",
        "bench.router_threshold",
        "bench.router_capacity",
        "bench.crowd_aggregation",
        "bench.toloka_cycle",
        "bench.pool_surge",
        "bench.aggregation_cost",
        "bench.snapshot_replay",
        "bench.drift_detection",
        "bench.online_recovery",
        "bench.metrics_cost",
        "bench.throughput",
        "bench.scale_out",
        "bench.loop_latency",
        "bench.memory",
        "bench.ingestion",
    ],
)
def test_every_benchmark_module_imports_and_has_a_run(module: str) -> None:
    assert callable(importlib.import_module(module).run)


def test_the_drift_tuning_rule_picks_the_most_sensitive_quiet_configuration() -> None:
    from bench import drift_detection, drift_tuning

    # The tuning seeds are not the ones the L1 bench measures.
    assert not set(drift_tuning.TUNING_SEEDS) & set(range(1, drift_detection.RUNS + 1))
    assert drift_tuning.QUIET_SEED != drift_detection.FIRST_SEED - 1
    case = drift_detection.CASES["sea"]

    def scored(found: int, false_alarms: int) -> list[drift_detection.CaseResult]:
        runs = [drift_detection.DriftRun(100.0 if i < found else 5_000.0, 0, 0.05, 0.1) for i in range(10)]
        return [drift_detection.CaseResult(case, runs, false_alarms, 1_000_000)]

    candidates = {
        (0.002, 32): scored(7, 0),
        (0.02, 1): scored(9, 3),  # 9 of 10 found, 3 false alarms in 1.05M events: quiet enough
        (0.03, 32): scored(9, 4),  # as sensitive, more false alarms
        (0.05, 32): scored(10, 20),  # the most sensitive, but ~1.9 false alarms per 100k
    }
    assert drift_tuning.choose(candidates) == (0.02, 1)


def test_goal_lines_say_holds_or_fails() -> None:
    assert Goal("R9", "0.5", "<= 0.6", True).line() == "goal R9: 0.5 (goal: <= 0.6) holds"
    assert Goal("R9", "0.7", "<= 0.6", False).line() == "goal R9: 0.7 (goal: <= 0.6) FAILS"


def test_the_report_prints_ratios_against_same_run_baselines(tmp_path: Path) -> None:
    # Into tmp_path: a test must not leave a JSON in bench/results/ for bench.report to pick up.
    text = report(
        [Row("thing", 2.0, 4.0, "us", "the other thing")],
        [Goal("R9", "x", "y", True)],
        results=tmp_path,
    )
    assert "0.50x" in text
    assert text.splitlines()[-1] == "goal R9: x (goal: y) holds"


def test_the_crowd_aggregation_bench_runs_small_and_prints_c2_and_c3() -> None:
    from bench import crowd_aggregation

    rows, goals = crowd_aggregation.run(tasks=60, seeds=(1,))
    assert [goal.goal_id for goal in goals] == ["C2", "C3"]
    assert all(row.figure >= 0.0 for row in rows)
    assert any("uniform draw" in row.name for row in rows)
    assert any(row.name.startswith("C3 bans per run: fixed 3") for row in rows)


def test_the_aggregation_cost_bench_runs_small_and_prints_f4() -> None:
    from bench import aggregation_cost

    rows, goals = aggregation_cost.run(tasks=200)
    assert [goal.goal_id for goal in goals] == ["F4"]
    assert goals[0].line().startswith("goal F4: Dawid-Skene over 1,000 answers")
    assert all(row.figure > 0.0 for row in rows)
