"""The L2 bench runs small, prints its goal line in the agreed form and measures what it says."""

from __future__ import annotations

import math
import re

from bench import online_recovery


def test_a_one_seed_run_prints_the_l2_line() -> None:
    rows, goals = online_recovery.run(seeds=(1,))
    assert [goal.goal_id for goal in goals] == ["L2"]
    line = goals[0].line()
    print(line)
    assert re.fullmatch(r"goal L2: after the drift .* \(goal: .*\) (holds|FAILS)", line)
    assert rows[0].name == "L2 labels to recover, uncertainty routing"
    assert rows[-1].name == "L2   bench wall time"


def test_both_strategies_get_the_same_number_of_labels_and_recover_after_the_drift() -> None:
    result = online_recovery.one_run(2)
    _start, end = online_recovery.transition()
    for trace, recovery in (
        (result.uncertainty_trace, result.uncertainty),
        (result.random_trace, result.random),
    ):
        assert 0.85 < trace.level < 1.0
        assert trace.lowest < trace.level
        assert not math.isinf(recovery.recovered_at)
        assert recovery.recovered_at >= end + online_recovery.WINDOW
        assert 0 < recovery.labels_to_recover < trace.labels_total
        assert 0.0 <= recovery.band_share < 1.0
        # A lower target is reached no later.
        assert online_recovery.recover(trace, result.shared_target).recovered_at <= recovery.recovered_at
    # Random labels are drawn with the router's review share: about as many (binomial noise).
    assert abs(result.random_trace.labels_total - result.uncertainty_trace.labels_total) < 300


def test_a_target_never_reached_costs_infinitely_many_labels() -> None:
    trace = online_recovery.learn(online_recovery.stream(4), [False] * online_recovery.EVENTS)
    assert trace.labels_total == 0
    assert math.isinf(online_recovery.recover(trace, 0.5).labels_to_recover)


def test_the_router_reviews_only_the_uncertain_events() -> None:
    events = online_recovery.stream(3)[:2_000]
    sent = online_recovery.reviewed(events)
    assert 0 < sum(sent) < len(sent)
    assert all(
        simulated.event.confidence < 0.8 for simulated, review in zip(events, sent, strict=True) if review
    )
