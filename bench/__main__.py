"""``make bench``: run every benchmark, print one table, write it as JSON and as docs/benchmarks.md."""

from __future__ import annotations

import sys
from dataclasses import replace
from types import ModuleType

from bench import (
    aggregation_cost,
    crowd_aggregation,
    drift_detection,
    explorer_bulk,
    explorer_index,
    ingestion,
    loop_latency,
    memory,
    metrics_cost,
    online_recovery,
    pool_surge,
    router_body,
    router_capacity,
    router_estimation,
    router_threshold,
    scale_out,
    snapshot_replay,
    throughput,
    toloka_cycle,
)
from bench import report as bench_report
from bench.harness import Goal, Row, report


def main() -> int:
    rows: list[Row] = []
    goals: list[Goal] = []
    body_rows = router_body.run()
    rows += _tagged(router_body, body_rows)
    for module in (
        router_estimation,
        router_threshold,
        router_capacity,
        crowd_aggregation,
        toloka_cycle,
        pool_surge,
        aggregation_cost,
        drift_detection,
        online_recovery,
        throughput,
        scale_out,
        loop_latency,
        memory,
        ingestion,
        snapshot_replay,
        explorer_bulk,
        explorer_index,
    ):
        more_rows, more_goals = module.run()
        rows += _tagged(module, more_rows)
        goals += more_goals
    goals.append(throughput.body_goal(body_rows))
    metric_rows, _ = metrics_cost.run(body_rows)
    rows += _tagged(metrics_cost, metric_rows)
    sys.stdout.write(report(rows, goals, suite=bench_report.SUITE) + "\n")
    run = bench_report.write()
    sys.stdout.write(f"wrote docs/benchmarks.md from bench/results/{run.path.name}\n")
    return 0


def _tagged(module: ModuleType, rows: list[Row]) -> list[Row]:
    """The rows with the module that measured them, so docs/benchmarks.md groups them by benchmark."""
    name = module.__name__.removeprefix("bench.")
    return [replace(row, bench=name) for row in rows]


if __name__ == "__main__":
    raise SystemExit(main())
