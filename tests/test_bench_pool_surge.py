"""The P1 surge bench runs small and prints its goal line in the agreed form."""

from __future__ import annotations

from bench import pool_surge


def test_a_short_surge_prints_the_p1_line() -> None:
    rows, goals = pool_surge.run(seeds=(1, 2), warm_s=60.0, surge_s=60.0, after_s=120.0)
    assert [goal.goal_id for goal in goals] == ["P1"]
    line = goals[0].line()
    print(line)
    assert line.startswith("goal P1: 10x surge for 60s")
    assert line.endswith(("holds", "FAILS"))
    assert "oracle" in line
    assert "fixed" in line
    assert "seeds 1,2" in line
    assert "worst" in line
    assert {row.name for row in rows} >= {
        f"P1 seed {seed} {figure}"
        for seed in (1, 2)
        for figure in (
            "p95, autoscaled",
            "p95 in the surge, autoscaled",
            "p95, fixed",
            "unfinished at the end, autoscaled",
            "worker-minutes, autoscaled",
        )
    }
