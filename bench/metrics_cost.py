"""What the worker's Prometheus metrics cost per routed event, against the router's body per event.

Per event the worker counts the predictions record in, the decision, the record out
(a Label or a LabelRequest) and, for an accepted event, the label's source and time
to label: the same calls the agents make, on the same kind of registry.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from agents.router.policy import Router, RouterSettings, model_label
from agents.simulation.stream import StreamSettings, simulate
from bench import router_body
from bench.harness import Goal, Row, per_call_s, report
from schemas import Label
from streams.metrics import LoopMetrics

PREFIX = "bench."


def run(body_rows: list[Row] | None = None) -> tuple[list[Row], list[Goal]]:
    """One row: the metric calls of one routed event, against the router body (same run)."""
    body_rows = body_rows if body_rows is not None else router_body.run()
    body = next(row for row in body_rows if row.name.startswith("router body per event"))
    events = [simulated.event for simulated in simulate(StreamSettings(events=500, train_size=200))]
    policy = Router(RouterSettings(accept_threshold=0.7), clock=lambda: 0.0)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    decisions = [policy.decide(event, now) for event in events]
    labels: list[Label | None] = [
        model_label(event, decision, now) if decision.action == "accept" else None
        for event, decision in zip(events, decisions, strict=True)
    ]
    metrics = LoopMetrics(PREFIX, process=True)
    index = iter(range(10**9))

    def count_one() -> None:
        i = next(index) % len(events)
        decision, label = decisions[i], labels[i]
        metrics.consumed("router", PREFIX + "predictions")
        if label is not None:
            metrics.decided("accept", decision.route, audit=decision.audit is not None)
            metrics.produced(PREFIX + "labels")
            metrics.observe_label(label)
        else:
            metrics.decided("review", decision.route)
            metrics.produced(PREFIX + "label-requests")

    cost_us = per_call_s(count_one) * 1e6
    return [Row("metrics per routed event", cost_us, body.figure, "us", "router body per event")], []


if __name__ == "__main__":
    rows, goals = run()
    sys.stdout.write(report(rows, goals) + "\n")
