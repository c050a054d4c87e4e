"""The online learner: predict-then-learn accuracy, weights, metrics, and the three model kinds."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from agents.learner.model import (
    LOG_LOSS_EPS,
    LearnerSettings,
    ModelKind,
    OnlineLearner,
    build_model,
    features_of,
    importance_weight,
    macro_f1,
)
from schemas import PredictionInput
from tests import factories

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def separable(rng: random.Random) -> tuple[PredictionInput, str]:
    """Two features, the class is the side of a line; words that say the class for text models."""
    x0, x1 = rng.uniform(-1, 1), rng.uniform(-1, 1)
    positive = x0 + x1 > 0
    words = "great refund quick" if positive else "fraud stolen chargeback"
    return PredictionInput(text=words, features={"x0": x0, "x1": x1}), "yes" if positive else "no"


def test_the_first_observation_is_scored_before_it_is_learned() -> None:
    learner = OnlineLearner(build_model("linear"), window=10)
    x = {"x0": 1.0}
    assert learner.predict(x) is None
    assert learner.observe(x, "yes") is False
    assert (learner.seen, learner.accuracy, learner.rolling_accuracy) == (1, 0.0, 0.0)
    prediction = learner.predict(x)
    assert prediction is not None
    assert prediction[0] == "yes"
    assert learner.observe(x, "yes") is True
    assert learner.accuracy == 0.5


def test_an_empty_learner_reports_zero() -> None:
    learner = OnlineLearner(build_model("linear"))
    assert (learner.seen, learner.accuracy, learner.rolling_accuracy) == (0, 0.0, 0.0)


def test_it_learns_a_separable_problem() -> None:
    rng = random.Random(5)
    learner = OnlineLearner(build_model("linear"), window=200)
    for _ in range(1_000):
        model_input, y = separable(rng)
        learner.observe(features_of(model_input, "linear"), y)
    assert learner.rolling_accuracy > 0.9
    assert learner.seen == 1_000


def test_the_rolling_accuracy_forgets_beyond_its_window() -> None:
    learner = OnlineLearner(build_model("linear"), window=10)
    for _ in range(30):
        learner.observe({"x0": 1.0}, "yes")
    for index in range(10):  # a class it never saw cannot be predicted before it is learned
        assert learner.observe({"x0": 1.0}, f"new-{index}") is False
    assert learner.rolling_accuracy == 0.0
    assert learner.accuracy == pytest.approx(29 / 40)


@pytest.mark.parametrize("kind", ["linear", "tree", "text"])
def test_weights_are_accepted(kind: ModelKind) -> None:
    learner = OnlineLearner(build_model(kind))
    model_input, y = separable(random.Random(1))
    x = features_of(model_input, kind)
    learner.observe(x, y, weight=3.0)
    learner.observe(x, y, weight=0.5)
    assert learner.seen == 2
    prediction = learner.predict(x)
    assert prediction is not None
    assert prediction[0] == y


def test_a_heavier_weight_moves_the_linear_model_further() -> None:
    x = {"x0": 1.0, "x1": -1.0}

    def confidence_after(weight: float) -> float:
        learner = OnlineLearner(build_model("linear"))
        learner.observe({"x0": -1.0, "x1": 1.0}, "no")
        learner.observe(x, "yes", weight=weight)
        prediction = learner.predict(x)
        assert prediction is not None
        assert prediction[0] == "yes"
        return prediction[1]

    assert confidence_after(5.0) > confidence_after(1.0)


def test_metrics_are_an_online_model_metrics_record() -> None:
    learner = OnlineLearner(build_model("linear"), window=2)
    for y in ("yes", "yes", "yes"):
        learner.observe({"x0": 1.0}, y)
    metrics = learner.metrics("online-default", "payments", WHEN)
    assert (metrics.model_name, metrics.kind, metrics.task, metrics.computed_at) == (
        "online-default",
        "online",
        "payments",
        WHEN,
    )
    assert set(metrics.metrics) == {
        f"{window}_{name}"
        for window in ("prequential", "rolling")
        for name in ("accuracy", "macro_f1", "log_loss")
    }
    prequential, rolling = metrics.metrics["prequential_accuracy"], metrics.metrics["rolling_accuracy"]
    assert prequential.value == pytest.approx(2 / 3)
    assert prequential.n == 3
    assert (rolling.value, rolling.n) == (1.0, 2)
    # The first label was predicted by a model that knew no class: wrong, and p(truth) = 0.
    assert metrics.metrics["prequential_macro_f1"].value == pytest.approx(0.8)  # yes: 2*2 / (3 + 2)
    assert metrics.metrics["rolling_macro_f1"].value == 1.0
    # Then it knew one class, and gave it all the probability: no surprise left.
    assert metrics.metrics["prequential_log_loss"].value > metrics.metrics["rolling_log_loss"].value == 0.0
    assert type(metrics).from_json_bytes(metrics.to_json_bytes()) == metrics


def test_macro_f1_weighs_every_class_alike_and_log_loss_is_the_mean_surprise_before_learning() -> None:
    # Three in four are "a": always guessing "a" has 0.75 accuracy but a macro F1 of (6/7 + 0) / 2.
    assert macro_f1([(("a", "a"), 3), (("b", "a"), 1)]) == pytest.approx((6 / 7) / 2)
    assert macro_f1([]) == 0.0
    learner = OnlineLearner(build_model("linear"), window=1000)
    rng = random.Random(3)
    losses = []
    for _ in range(400):
        model_input, y = separable(rng)
        x = features_of(model_input, "linear")
        before = learner.model.predict_proba_one(x).get(y, 0.0)
        losses.append(-math.log(min(max(before, LOG_LOSS_EPS), 1.0)))
        learner.observe(x, y)
    assert learner.log_loss == pytest.approx(sum(losses) / len(losses))
    assert learner.rolling_log_loss == pytest.approx(learner.log_loss)  # the window holds them all
    assert learner.rolling_macro_f1 > 0.9


@pytest.mark.parametrize("kind", ["linear", "tree"])
def test_each_label_s_log_loss_is_the_clipped_surprise_bit_for_bit(kind: ModelKind) -> None:
    """Every label's loss is -log(min(max(p, LOG_LOSS_EPS), 1)), exactly: a class never seen
    (p = 0) costs -log(LOG_LOSS_EPS), a sure right guess 0, on the one-pass step and River's path."""
    learner = OnlineLearner(build_model(kind), window=1000)
    rng = random.Random(5)
    expected = []
    for index in range(300):
        model_input, y = separable(rng)
        if index in (0, 150):
            y = f"new-{index}"  # a class the model has not seen yet
        x = features_of(model_input, "linear")
        before = learner.model.predict_proba_one(x).get(y, 0.0)
        expected.append(-math.log(min(max(before, LOG_LOSS_EPS), 1.0)))
        learner.observe(x, y)
    assert [loss for _, _, loss in learner._outcomes] == expected
    assert expected[0] == expected[150] == -math.log(LOG_LOSS_EPS)


@pytest.mark.parametrize(("kind", "minimum_accuracy"), [("linear", 0.9), ("tree", 0.85), ("text", 0.9)])
def test_every_model_kind_learns_from_its_features(kind: ModelKind, minimum_accuracy: float) -> None:
    rng = random.Random(9)
    learner = OnlineLearner(build_model(kind), window=100)
    for _ in range(600):
        model_input, y = separable(rng)
        learner.observe(features_of(model_input, kind), y)
    assert learner.rolling_accuracy >= minimum_accuracy
    prediction = learner.predict(features_of(separable(rng)[0], kind))
    assert prediction is not None
    assert prediction[0] in {"yes", "no"}
    assert 0.0 <= prediction[1] <= 1.0


@pytest.mark.parametrize(
    ("model_input", "kind", "x"),
    [
        (PredictionInput(text="hi", features={"a": 1.0}), "text", {"text": "hi"}),
        (PredictionInput(features={"a": 1.0}), "text", {"text": ""}),
        (PredictionInput(text="hi", features={"a": 1.0}), "linear", {"a": 1.0}),
        (PredictionInput(text="hi"), "tree", {}),
    ],
)
def test_features_of_picks_what_the_model_reads(
    model_input: PredictionInput, kind: ModelKind, x: dict[str, Any]
) -> None:
    assert features_of(model_input, kind) == x


def test_features_of_returns_a_copy() -> None:
    model_input = PredictionInput(features={"a": 1.0})
    x = features_of(model_input, "linear")
    x["a"] = 2.0
    assert model_input.features == {"a": 1.0}


def test_by_default_every_first_human_label_weighs_the_same() -> None:
    # A control label at share 0.05 and an audit at 0.002 teach as much as a review: heavy
    # weights cost the SGD model more in variance than they repay (see LearnerSettings).
    default = LearnerSettings().max_weight
    labels = [
        factories.human_label("low_confidence"),
        factories.human_label("control", inclusion_probability=0.05),
        factories.human_label("audit", revision=2, inclusion_probability=0.002),
    ]
    assert [importance_weight(label, default) for label in labels] == [1.0, 1.0, 1.0]
    # The clip is still a setting: above 1 the labels weigh 1 / their inclusion probability.
    clipped = LearnerSettings(max_weight=30.0).max_weight
    assert [importance_weight(label, clipped) for label in labels] == pytest.approx([1.0, 20.0, 30.0])


def test_the_linear_model_follows_a_boundary_that_moves_under_the_reviewed_events() -> None:
    # Reviews straddle the production model's boundary, so the scaled features are centred on
    # it and a shifted boundary is mostly a shifted intercept: it must learn as fast as the weights.
    # After 2,000 steady labels the step has decayed to a tenth; the shift's errors restart it.
    def accuracy_after_shift(restart: bool) -> tuple[float, int]:
        rng = random.Random(3)

        def reviewed(threshold: float) -> tuple[dict[str, float], str]:
            while True:
                x = {"x0": rng.uniform(0, 10), "x1": rng.uniform(0, 10)}
                if abs(x["x0"] + x["x1"] - 8.0) < 2.5:
                    return x, "positive" if x["x0"] + x["x1"] <= threshold else "negative"

        learner = OnlineLearner(build_model("linear"))
        if not restart:
            learner.restart = None
        for _ in range(2_000):
            learner.observe(*reviewed(8.0))
        for _ in range(300):
            learner.observe(*reviewed(6.5))
        test = [reviewed(6.5) for _ in range(2_000)]
        right = 0
        for x, y in test:
            guess = learner.predict(x)
            right += guess is not None and guess[0] == y
        return right / len(test), learner.restart.restarts if learner.restart else 0

    assert accuracy_after_shift(restart=True) == (pytest.approx(0.959, abs=0.01), 1)
    # Without the restart the decayed step has not moved the boundary half way yet.
    assert accuracy_after_shift(restart=False)[0] < 0.9
