"""The L2 bench runs small, prints its goal line in the agreed form and measures what it says."""

from __future__ import annotations

import math
import re

from agents.learner.model import OnlineLearner, build_model
from agents.router.policy import RouterSettings
from agents.simulation.stream import concept_sample
from bench import online_recovery
from bench.online_recovery import Checkpoint, Labeling, recover


def test_a_one_seed_run_prints_the_l2_line() -> None:
    rows, goals = online_recovery.run(seeds=(1,))
    assert [goal.goal_id for goal in goals] == ["L2"]
    line = goals[0].line()
    print(line)
    assert re.fullmatch(r"goal L2: after the drift .* \(goal: .*\) (holds|FAILS)", line)
    assert rows[0].name == "L2 labels to recover, product routing"
    assert rows[-1].name == "L2   bench wall time"


def test_the_product_side_learns_reviews_control_and_audits_with_the_agents_weights() -> None:
    events = online_recovery.stream(2)
    labeling = online_recovery.product_labels(events)
    assert set(labeling.routes) == {"low_confidence", "control", "audit"}
    assert labeling.total == sum(labeling.routes.values())
    # The drift made the monitor react: the control share went up from the default 0.05.
    start, _ = online_recovery.transition()
    assert labeling.responded_at is not None
    assert labeling.responded_at > start - 1_000
    after = sum(labeling.labeled[labeling.responded_at :]) / (len(events) - labeling.responded_at)
    before = sum(labeling.labeled[: start - 1_000]) / (start - 1_000)
    assert after > before
    # The learner's default weighs every human label alike.
    assert {weight for weight in labeling.weights if weight > 0.0} == {1.0}


def test_with_a_clip_above_one_control_and_audit_labels_weigh_one_over_their_inclusion_probability() -> None:
    events = online_recovery.stream(2)[:3_000]
    labeling = online_recovery.product_labels(events, max_weight=1_000.0)
    weights = {weight for weight in labeling.weights if weight > 0.0}
    assert 1.0 in weights
    assert 1 / RouterSettings().control_share in weights
    assert max(weights) > 1 / RouterSettings().control_share  # an audit drawn at under 5%


def test_reviews_only_is_the_routers_uncertain_events_at_weight_one() -> None:
    events = online_recovery.stream(3)[:2_000]
    labeling = online_recovery.product_labels(
        events, online_recovery.REVIEWS_ONLY, respond=False, routes=("low_confidence",)
    )
    assert 0 < labeling.total < len(events)
    assert set(labeling.routes) == {"low_confidence"}
    threshold = RouterSettings().accept_threshold
    for simulated, weight in zip(events, labeling.weights, strict=True):
        assert weight in (0.0, 1.0)
        assert (weight == 1.0) == (simulated.event.confidence < threshold)


def test_random_labels_come_as_many_and_at_the_same_times() -> None:
    # Labels only in the second half: the random side draws its labels there too.
    like = Labeling([0.0] * 5_000 + [1.0 if i % 2 else 0.0 for i in range(5_000)], {"low_confidence": 2_500})
    drawn = online_recovery.at_random(like, seed=1)
    assert abs(drawn.total - like.total) < 150
    assert sum(drawn.labeled[: 5_000 - online_recovery.WINDOW // 2]) == 0
    assert set(drawn.weights) == {0.0, 1.0}


def _points(accuracies: list[float], every: int = 100) -> list[Checkpoint]:
    return [Checkpoint(i * every, 10 * i, i, accuracy) for i, accuracy in enumerate(accuracies)]


def test_a_recovery_must_hold_for_a_window() -> None:
    window = online_recovery.WINDOW // 100
    # A lucky point at 2 that falls back does not count; the one at 4 holds for the window.
    points = _points([0.80, 0.85, 0.93, 0.88] + [0.93] * (window + 2))
    found = recover(points, 0.92)
    assert found.recovered_at == 400
    assert found.labels_to_recover == 40
    assert math.isclose(found.band_share, 4 / 40)
    assert math.isinf(recover(_points([0.8] * 20), 0.92).labels_to_recover)
    # A lower target is reached no later.
    assert recover(points, 0.84).recovered_at == 100


def test_the_holdout_scores_a_learner_on_a_concept_it_never_learned() -> None:
    settings = online_recovery.stream_settings(5)
    before, after = online_recovery.holdouts(5)
    assert len(before.truth) == len(after.truth) == online_recovery.HOLDOUT
    learner = OnlineLearner(build_model("linear"))
    for x, y in concept_sample(settings, after=False, size=3_000, seed=7):
        learner.observe(x, y)
    # Good on its concept; worse on the one after the drift (the band between 7 and 8 flipped).
    assert before.accuracy(learner) > 0.88
    assert after.accuracy(learner) < before.accuracy(learner) - 0.02


def test_both_sides_recover_after_the_drift_with_as_many_labels() -> None:
    result = online_recovery.one_run(2, reviews_only=False)
    start, _ = online_recovery.transition()
    for side in (result.product, result.random):
        assert 0.85 < side.trace.level < 1.0
        assert side.trace.lowest < side.trace.level
        assert side.trace.checkpoints[0].event == start
        assert all(point.labels % online_recovery.EVAL_EVERY == 0 for point in side.trace.checkpoints)
    assert abs(result.random.labeling.total - result.product.labeling.total) < 300


def test_a_run_that_never_holds_says_where_it_sits_and_for_how_long() -> None:
    points = _points([0.93, 0.93, 0.90, 0.93, 0.93, 0.93, 0.80])
    trace = online_recovery.Trace(0.94, points, [0.9] * 10, [0] * 10, 0)
    assert trace.longest_at(0.92) == 200
    side = online_recovery.Side(Labeling([0.0] * 10, {}), trace)
    assert math.isinf(side.recovery.labels_to_recover)
    assert side.miss(7) == (
        "seed 7 sits at a median 0.930 against its target 0.920, at most 200 events in a row"
    )
