"""Precision and recall estimators of routing: intervals, unbiasedness by simulation, the metrics snapshot."""

from __future__ import annotations

import functools
import math
import random
import re
import statistics
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.router.estimators import PrecisionEstimator, RecallEstimator
from agents.router.production_metrics import metric_class_name, production_metrics
from agents.router.proportions import WeightedProportion, t_quantile, wilson_interval
from schemas import Estimate, ModelMetrics

NOW = datetime(2026, 1, 1, tzinfo=UTC)
METRIC_NAME = re.compile(r"^[a-z0-9_.:-]+$")

# --- wilson_interval --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "n", "lower", "upper"),
    [
        # Newcombe (1998), Statistics in Medicine 17, table II, method 3 (score interval).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (29, 29, 0.8830, 1.0),
    ],
)
def test_wilson_known_values(successes: int, n: int, lower: float, upper: float) -> None:
    assert wilson_interval(successes, n) == pytest.approx((lower, upper), abs=5e-5)


def test_wilson_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 10)[1] == pytest.approx(1.959964**2 / (10 + 1.959964**2))
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(-1, 10)


@given(n=st.floats(min_value=0.5, max_value=1e6), p=st.floats(min_value=0.0, max_value=1.0))
def test_wilson_contains_the_proportion_and_stays_in_unit_interval(n: float, p: float) -> None:
    successes = p * n
    lower, upper = wilson_interval(successes, n)
    # The proportion the interval is for is successes / n, which can differ from p in its last
    # bit (hypothesis found p = 6.83e-118 at n = 49107.07).
    proportion = min(successes / n, 1.0)
    assert 0.0 <= lower <= proportion <= upper <= 1.0


@given(n=st.integers(min_value=1, max_value=500), data=st.data())
def test_wilson_bounds_rise_with_successes(n: int, data: st.DataObject) -> None:
    successes = data.draw(st.integers(min_value=0, max_value=n - 1))
    lower, upper = wilson_interval(successes, n)
    next_lower, next_upper = wilson_interval(successes + 1, n)
    assert lower < next_lower
    assert upper < next_upper


@given(p=st.floats(min_value=0.0, max_value=1.0), n=st.integers(min_value=1, max_value=10_000))
def test_wilson_narrows_with_more_data(p: float, n: int) -> None:
    lower, upper = wilson_interval(p * n, n)
    wider_lower, wider_upper = wilson_interval(p * n / 2, n / 2)
    assert upper - lower <= wider_upper - wider_lower + 1e-12
    assert wilson_interval(p * n, n, z=2.576)[1] >= upper - 1e-12


def test_wilson_level_is_95_percent_by_coverage() -> None:
    rng = random.Random(7)
    covered = 0
    for _ in range(2_000):
        successes = sum(rng.random() < 0.9 for _ in range(150))
        lower, upper = wilson_interval(successes, 150)
        covered += lower <= 0.9 <= upper
    assert 0.93 <= covered / 2_000 <= 0.97


@pytest.mark.parametrize(
    ("df", "quantile"), [(1, 12.7062), (2, 4.3027), (3, 3.1824), (10, 2.2281), (30, 2.0423)]
)
def test_t_quantile_matches_tables(df: int, quantile: float) -> None:
    assert t_quantile(0.95, df) == pytest.approx(quantile, rel=2e-3)


# --- PrecisionEstimator -----------------------------------------------------------------------


def test_precision_is_none_without_labels() -> None:
    precision = PrecisionEstimator()
    assert precision.estimate() is None
    assert precision.per_class() == {}


def test_precision_with_a_constant_share_is_the_plain_proportion_and_wilson() -> None:
    precision = PrecisionEstimator()
    for i in range(200):
        precision.observe("ok", model_was_right=i < 180, inclusion_probability=0.05)
    estimate = precision.estimate()
    assert estimate is not None
    assert estimate.value == pytest.approx(0.9)
    assert (estimate.lower, estimate.upper) == pytest.approx(wilson_interval(180, 200))
    assert estimate.n == 200


def test_precision_per_class_split() -> None:
    precision = PrecisionEstimator()
    for i in range(100):
        precision.observe("ok", model_was_right=i % 10 != 0, inclusion_probability=0.1)
        precision.observe("fraud", model_was_right=i % 2 == 0, inclusion_probability=0.1)
    per_class = precision.per_class()
    assert sorted(per_class) == ["fraud", "ok"]
    assert per_class["ok"].value == pytest.approx(0.9)
    assert per_class["fraud"].value == pytest.approx(0.5)
    overall = precision.estimate()
    assert overall is not None
    assert overall.value == pytest.approx(0.7)
    assert overall.n == 200


def test_precision_weights_make_a_changing_share_unbiased() -> None:
    # First half: the model is right 95% of the time, share 5%; second half 80%, share 40%.
    truth = (0.95 + 0.80) / 2
    weighted, unweighted = [], []
    for seed in range(150):
        rng = random.Random(seed)
        precision, plain = PrecisionEstimator(), PrecisionEstimator()
        for right_rate, share in [(0.95, 0.05), (0.80, 0.40)]:
            for _ in range(2_000):
                if rng.random() < share:
                    right = rng.random() < right_rate
                    precision.observe("ok", right, share)
                    plain.observe("ok", right, 1.0)
        weighted_estimate, plain_estimate = precision.estimate(), plain.estimate()
        assert weighted_estimate is not None
        assert plain_estimate is not None
        weighted.append(weighted_estimate.value)
        unweighted.append(plain_estimate.value)
    assert statistics.fmean(weighted) == pytest.approx(truth, abs=0.004)
    assert statistics.fmean(unweighted) < truth - 0.03  # over-represents the second half


def test_precision_interval_shrinks_to_kish_effective_size() -> None:
    precision = PrecisionEstimator()
    for i in range(100):
        precision.observe("ok", model_was_right=i % 10 != 0, inclusion_probability=0.05 if i < 50 else 0.5)
    estimate = precision.estimate()
    assert estimate is not None
    weights = [20.0] * 50 + [2.0] * 50
    n_eff = sum(weights) ** 2 / sum(w * w for w in weights)
    assert (estimate.lower, estimate.upper) == pytest.approx(wilson_interval(estimate.value * n_eff, n_eff))


def test_precision_merge_equals_one_estimator() -> None:
    whole, left, right = PrecisionEstimator(), PrecisionEstimator(), PrecisionEstimator()
    rng = random.Random(1)
    for i in range(300):
        label, right_answer, share = rng.choice(["ok", "fraud"]), rng.random() < 0.9, rng.choice([0.05, 0.2])
        whole.observe(label, right_answer, share)
        (left if i % 3 else right).observe(label, right_answer, share)
    left.merge(right)
    merged, single = left.estimate(), whole.estimate()
    assert merged is not None
    assert single is not None
    assert merged.model_dump() == pytest.approx(single.model_dump())
    assert left.per_class().keys() == whole.per_class().keys()


@pytest.mark.parametrize("pi", [0.0, -0.1, 1.5, float("nan")])
def test_estimators_refuse_bad_inclusion_probabilities(pi: float) -> None:
    with pytest.raises(ValueError, match="inclusion probability"):
        PrecisionEstimator().observe("ok", True, pi)
    with pytest.raises(ValueError, match="inclusion probability"):
        RecallEstimator().observe("fraud", "fraud", "ok", pi)


# --- RecallEstimator --------------------------------------------------------------------------


class Population:
    """A fixed set of accepted events: true and predicted labels, and the audit's π of each."""

    def __init__(self, size: int = 1_500, seed: int = 11, rate: float = 0.15) -> None:
        rng = random.Random(seed)
        self.events: list[tuple[str, str, float]] = []  # (true, predicted, pi)
        for _ in range(size):
            if rng.random() < 0.2:  # predicted fraud with a high score: mostly right, audited at the floor
                predicted, fraud_score, audited_score = "fraud", 0.8 + 0.2 * rng.random(), 0.0
            else:  # predicted ok: fraud score near 0, a few in the grey zone
                predicted, fraud_score = "ok", 0.2 * rng.random() ** 3
                audited_score = fraud_score
            truth = "fraud" if rng.random() < fraud_score else "ok"
            self.events.append((truth, predicted, 0.1 + math.sqrt(audited_score)))
        mean_g = statistics.fmean(g for _, _, g in self.events)
        self.events = [(t, p, min(rate * g / mean_g, 1.0)) for t, p, g in self.events]
        fraud = [(t, p) for t, p, _ in self.events if t == "fraud"]
        self.recall = sum(p == "fraud" for _, p in fraud) / len(fraud)
        self.false_negatives = sum(p != "fraud" for _, p in fraud)

    def audit(self, seed: int, *, stratified: bool) -> RecallEstimator:
        rng = random.Random(seed)
        recall = RecallEstimator()
        for truth, predicted, pi in self.events:
            if stratified:
                recall.observe_accepted(predicted)
            if rng.random() < pi:
                recall.observe("fraud", truth, predicted, pi)
        return recall


POPULATION = Population()
AUDITS = 200


@functools.cache
def audited(stratified: bool) -> list[tuple[Estimate, Estimate]]:
    """Recall and false-negative estimates of ``AUDITS`` seeded audits of the population (computed once)."""
    estimates = []
    for seed in range(AUDITS):
        recall = POPULATION.audit(seed, stratified=stratified)
        estimate = recall.estimate("fraud")
        assert estimate is not None
        estimates.append((estimate, recall.false_negatives("fraud")))
    return estimates


def test_recall_is_none_without_labels() -> None:
    recall = RecallEstimator()
    assert recall.estimate("fraud") is None
    assert recall.classes() == []
    missed = recall.false_negatives("fraud")
    assert (missed.value, missed.upper, missed.n) == (0.0, None, 0)


def test_recall_is_none_while_the_predicted_class_is_unaudited() -> None:
    recall = RecallEstimator()
    recall.observe_accepted("fraud", 100)
    recall.observe_accepted("ok", 900)
    recall.observe("fraud", "fraud", "ok", 0.1)
    assert recall.estimate("fraud") is None
    recall.observe("fraud", "fraud", "fraud", 0.01)
    assert recall.estimate("fraud") is not None


@pytest.mark.parametrize("stratified", [False, True])
def test_recall_and_false_negatives_are_unbiased_by_simulation(stratified: bool) -> None:
    recalls = [estimate.value for estimate, _ in audited(stratified)]
    misses = [missed.value for _, missed in audited(stratified)]
    tolerance = 3 / math.sqrt(AUDITS)
    assert abs(statistics.fmean(recalls) - POPULATION.recall) < tolerance * statistics.stdev(recalls) + 0.005
    assert abs(statistics.fmean(misses) - POPULATION.false_negatives) < tolerance * statistics.stdev(misses)


def test_recall_interval_matches_the_spread_of_estimates() -> None:
    recalls = [estimate.value for estimate, _ in audited(True)]
    widths = [_width(estimate) for estimate, _ in audited(True)]
    covered = sum(_covers(estimate, POPULATION.recall) for estimate, _ in audited(True))
    # A 95% interval is about 2 x 1.96 standard deviations wide, and covers about 95% of the time.
    assert statistics.fmean(widths) == pytest.approx(2 * 1.96 * statistics.stdev(recalls), rel=0.3)
    assert 0.91 <= covered / AUDITS <= 0.99


def test_stratifying_on_accepted_counts_reduces_variance() -> None:
    plain = [estimate.value for estimate, _ in audited(False)]
    stratified = [estimate.value for estimate, _ in audited(True)]
    assert statistics.variance(stratified) < statistics.variance(plain)


def _width(estimate: Estimate) -> float:
    assert estimate.lower is not None
    assert estimate.upper is not None
    return estimate.upper - estimate.lower


def _covers(estimate: Estimate, truth: float) -> bool:
    assert estimate.lower is not None
    assert estimate.upper is not None
    return estimate.lower <= truth <= estimate.upper


def test_recall_counts_each_label_for_its_true_class() -> None:
    recall = RecallEstimator()
    recall.observe("fraud", "fraud", "fraud", 0.5)  # a true positive of fraud
    recall.observe("fraud", "fraud", "ok", 0.5)  # a false negative of fraud
    recall.observe("fraud", "ok", "ok", 0.5)  # a true positive of ok, found by the fraud audit
    recall.observe("fraud", "spam", "ok", 0.25)  # a false negative of spam
    assert recall.classes() == ["fraud", "ok", "spam"]
    fraud, ok, spam = (recall.estimate(label) for label in ("fraud", "ok", "spam"))
    assert fraud is not None
    assert ok is not None
    assert spam is not None
    assert (fraud.value, fraud.n) == (0.5, 2)
    assert (ok.value, ok.n) == (1.0, 1)
    assert (spam.value, spam.n) == (0.0, 1)
    assert recall.false_negatives("spam").value == 4.0
    assert recall.false_negatives("ok").value == 0.0


def test_audited_class_without_labels_is_listed_but_has_no_estimate() -> None:
    recall = RecallEstimator()
    recall.observe("fraud", "ok", "ok", 0.1)
    assert recall.classes() == ["fraud", "ok"]
    assert recall.estimate("fraud") is None


def test_false_negative_interval_never_below_what_was_found() -> None:
    recall = RecallEstimator()
    for _ in range(3):
        recall.observe("fraud", "fraud", "ok", 0.9)
    missed = recall.false_negatives("fraud")
    assert missed.lower is not None
    assert missed.upper is not None
    assert 3.0 <= missed.lower <= missed.value <= missed.upper
    assert missed.n == 3


def test_a_census_has_no_uncertainty() -> None:
    recall = RecallEstimator()
    for truth, predicted in [("fraud", "fraud")] * 3 + [("fraud", "ok")]:
        recall.observe("fraud", truth, predicted, 1.0)
    estimate = recall.estimate("fraud")
    assert estimate is not None
    assert (estimate.lower, estimate.value, estimate.upper) == (0.75, 0.75, 0.75)


def test_recall_merge_equals_one_estimator() -> None:
    whole, left, right = RecallEstimator(), RecallEstimator(), RecallEstimator()
    for i, (truth, predicted, pi) in enumerate(POPULATION.events[:1_000]):
        for estimator in (whole, left if i % 2 else right):
            estimator.observe_accepted(predicted)
            if i % 7 == 0:
                estimator.observe("fraud", truth, predicted, pi)
    left.merge(right)
    for label in whole.classes():
        merged, single = left.estimate(label), whole.estimate(label)
        assert merged is not None
        assert single is not None
        assert merged.model_dump() == pytest.approx(single.model_dump())
        assert left.false_negatives(label).model_dump() == pytest.approx(
            whole.false_negatives(label).model_dump()
        )


def test_observe_accepted_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="count"):
        RecallEstimator().observe_accepted("ok", -1)


# --- production_metrics -----------------------------------------------------------------------


def test_production_metrics_names_and_snapshot() -> None:
    precision, recall = PrecisionEstimator(), RecallEstimator()
    for i in range(50):
        precision.observe("ok" if i % 2 else "fraud", i % 10 != 0, 0.05)
        recall.observe("fraud", "fraud" if i % 5 == 0 else "ok", "ok" if i % 3 else "fraud", 0.02)
    snapshot = production_metrics("fraud-model", "payments", NOW, precision, recall)
    assert snapshot.kind == "production"
    assert set(snapshot.metrics) == {
        "auto_accept_precision",
        "auto_accept_precision.fraud",
        "auto_accept_precision.ok",
        "recall.fraud",
        "recall.ok",
        "false_negatives.fraud",
        "false_negatives.ok",
    }
    assert ModelMetrics.from_json_bytes(snapshot.to_json_bytes()) == snapshot


def test_production_metrics_without_data_is_an_empty_snapshot() -> None:
    snapshot = production_metrics("m", "default", NOW, PrecisionEstimator(), RecallEstimator())
    assert snapshot.metrics == {}


@given(labels=st.lists(st.text(min_size=1, max_size=150), min_size=1, max_size=5, unique=True))
def test_any_class_label_gives_valid_distinct_metric_names(labels: list[str]) -> None:
    precision, recall = PrecisionEstimator(), RecallEstimator()
    for label in labels:
        precision.observe(label, True, 0.5)
        recall.observe(label, label, "__other__", 0.5)
    snapshot = production_metrics("m", "default", NOW, precision, recall)  # validates every name
    assert all(METRIC_NAME.match(name) and len(name) <= 128 for name in snapshot.metrics)
    assert len({metric_class_name(label) for label in labels}) == len(labels)


def test_metric_class_name_keeps_safe_names_and_tags_changed_ones() -> None:
    assert metric_class_name("fraud") == "fraud"
    assert metric_class_name("Fraud") != metric_class_name("fraud")
    assert metric_class_name("Fraud").startswith("fraud-")
    assert metric_class_name("card not present").startswith("card_not_present-")


def test_production_metrics_keeps_the_most_labeled_classes_within_the_limit() -> None:
    precision = PrecisionEstimator()
    for k in range(300):
        for _ in range(1 + k % 5):
            precision.observe(f"class-{k}", True, 0.5)
    snapshot = production_metrics("m", "default", NOW, precision, RecallEstimator())
    assert len(snapshot.metrics) == 256
    # 60 classes each have 1..5 labels: all with 2 or more fit, then 15 of those with 1.
    kept = {name.removeprefix("auto_accept_precision.") for name in snapshot.metrics}
    assert {f"class-{k}" for k in range(300) if k % 5 != 0} <= kept


def test_revising_a_control_label_moves_its_weight_and_keeps_the_count() -> None:
    estimator = PrecisionEstimator()
    for right in (True, True, False):
        estimator.observe("ok", right, 0.1)
    estimator.revise("ok", False, True, 0.1)  # an expert found the model right after all
    estimate = estimator.estimate()
    assert estimate is not None
    assert (estimate.value, estimate.n) == (1.0, 3)
    estimator.revise("ok", True, True, 0.1)  # the same verdict again: nothing moves
    assert estimator.estimate() == estimate


def test_taking_back_a_label_that_was_never_counted_is_an_error() -> None:
    with pytest.raises(ValueError, match="no label"):
        WeightedProportion().remove(True, 0.5)
