"""``make bench``: run every benchmark and print one table (written as JSON under bench/results/)."""

from __future__ import annotations

import sys

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
from bench.harness import Goal, Row, report


def main() -> int:
    rows: list[Row] = []
    goals: list[Goal] = []
    body_rows = router_body.run()
    rows += body_rows
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
        rows += more_rows
        goals += more_goals
    goals.append(throughput.body_goal(body_rows))
    metric_rows, _ = metrics_cost.run(body_rows)
    rows += metric_rows
    sys.stdout.write(report(rows, goals) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
