"""The linear pipeline's one-pass prequential step computes what River's two calls compute."""

from __future__ import annotations

import itertools
import pickle
from typing import Any

import pytest
from river import compose, datasets, linear_model, multiclass, optim, preprocessing

from agents.learner.linear import LinearStep
from agents.learner.model import OnlineLearner, build_model


def agrawal(count: int, seed: int = 3) -> list[tuple[dict[str, Any], str]]:
    """A River synthetic stream with a concept drift half-way, as string classes."""
    stream = datasets.synth.ConceptDriftStream(
        stream=datasets.synth.Agrawal(classification_function=0, seed=seed),
        drift_stream=datasets.synth.Agrawal(classification_function=2, seed=seed),
        position=count // 2,
        width=500,
        seed=seed,
    )
    return [(dict(x), f"class-{y}") for x, y in itertools.islice(stream, count)]


def sea(count: int, seed: int = 8) -> list[tuple[dict[str, Any], str]]:
    """River's SEA stream (a linear concept), its threshold moving half-way."""
    stream = datasets.synth.ConceptDriftStream(
        stream=datasets.synth.SEA(variant=0, seed=seed),
        drift_stream=datasets.synth.SEA(variant=2, seed=seed),
        position=count // 2,
        width=500,
        seed=seed,
    )
    return [(dict(x), str(y)) for x, y in itertools.islice(stream, count)]


def three_classes(count: int, seed: int = 5) -> list[tuple[dict[str, Any], str]]:
    """A three-class stream whose third class first appears after 200 examples."""
    stream = datasets.synth.RandomRBF(seed_model=seed, seed_sample=seed, n_classes=3, n_features=4)
    examples = [(dict(x), f"c{y}") for x, y in itertools.islice(stream, count)]
    return [(x, y) for x, y in examples[:200] if y != "c2"] + examples[200:]


def weight_of(index: int) -> float:
    """Reviews at 1, every 7th label a control label at 5, every 31st an audit at 40."""
    return 40.0 if index % 31 == 0 else 5.0 if index % 7 == 0 else 1.0


def river_step(model: Any, x: dict[str, Any], y: str, weight: float) -> dict[Any, float]:
    """What the learner did before the fused step: predict_proba_one, then learn_one."""
    probabilities = model.predict_proba_one(x)
    if weight == 1.0:
        model.learn_one(x, y)
    else:
        model.learn_one(x, y, w=weight)
    return dict(probabilities)


def state_of(model: Any) -> tuple[Any, ...]:
    """Everything the linear pipeline learns."""
    scaler, ovr = model.steps.values()
    return (
        dict(scaler.counts),
        dict(scaler.means),
        dict(scaler.vars),
        {
            label: (clf.weights, clf.intercept, clf.optimizer.n_iterations)
            for label, clf in ovr.classifiers.items()
        },
    )


Stream = list[tuple[dict[str, Any], str]]


@pytest.mark.parametrize("stream", [agrawal(3_000), three_classes(1_500)], ids=["agrawal", "three_classes"])
def test_the_fused_step_predicts_and_learns_exactly_as_river(stream: Stream) -> None:
    fused, generic = build_model("linear"), build_model("linear")
    step = LinearStep.of(fused)
    assert step is not None
    for index, (x, y) in enumerate(stream):
        weight = weight_of(index)
        guess = step.observe(x, y, weight)
        probabilities = river_step(generic, x, y, weight)
        if not probabilities:
            assert guess is None
            continue
        expected = max(probabilities, key=lambda name: probabilities[name])
        assert guess == (expected, probabilities[expected], probabilities.get(y, 0.0))
    # Bit for bit: the same floating-point operations in the same order.
    assert state_of(fused) == state_of(generic)


def test_the_fused_learner_learns_a_drifting_stream_as_well_as_river() -> None:
    stream = sea(6_000)
    fused = OnlineLearner(build_model("linear"), window=500)
    generic = OnlineLearner(build_model("linear"), window=500)
    generic._linear = None  # River's two calls
    for x, y in stream:
        assert fused.observe(x, y) == generic.observe(x, y)
    assert fused.accuracy == generic.accuracy > 0.8
    assert fused.rolling_accuracy == generic.rolling_accuracy


def test_a_checkpoint_resumes_on_either_path() -> None:
    """The state is the River pipeline either way: a checkpoint of one path resumes on the other."""
    stream = agrawal(2_000, seed=4)
    generic = OnlineLearner(build_model("linear"))
    generic._linear = None
    for x, y in stream[:1_000]:
        generic.observe(x, y)
    # As the checkpoint store writes and reads it (pickle of the learner's state).
    resumed = OnlineLearner.from_state(pickle.loads(pickle.dumps(generic.state())))
    assert resumed._linear is not None
    for x, y in stream[1_000:]:
        assert resumed.observe(x, y) == generic.observe(x, y)
    assert state_of(resumed.model) == state_of(generic.model)
    back = OnlineLearner.from_state(pickle.loads(pickle.dumps(resumed.state())))
    back._linear = None
    x, y = stream[0]
    assert back.observe(x, y) == generic.observe(x, y)


@pytest.mark.parametrize(
    "model",
    [
        build_model("tree"),
        build_model("text"),
        preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        preprocessing.StandardScaler()
        | multiclass.OneVsRestClassifier(linear_model.LogisticRegression(l2=0.01)),
        preprocessing.StandardScaler()
        | multiclass.OneVsRestClassifier(linear_model.LogisticRegression(optimizer=optim.Adam())),
        preprocessing.StandardScaler(window_size=50)
        | multiclass.OneVsRestClassifier(linear_model.LogisticRegression()),
        preprocessing.MinMaxScaler() | multiclass.OneVsRestClassifier(linear_model.LogisticRegression()),
    ],
    ids=["tree", "text", "binary", "l2", "adam", "windowed_scaler", "minmax"],
)
def test_other_models_keep_rivers_path(model: Any) -> None:
    assert LinearStep.of(model) is None
    assert OnlineLearner(model)._linear is None


def test_learning_during_predict_keeps_rivers_path() -> None:
    stream = agrawal(300, seed=6)
    fused, generic = build_model("linear"), build_model("linear")
    step = LinearStep.of(fused)
    assert step is not None
    with compose.learn_during_predict():
        for x, y in stream:
            guess = step.observe(x, y)
            probabilities = river_step(generic, x, y, 1.0)
            if probabilities:
                assert guess is not None
                assert guess[1] == max(probabilities.values())
    assert state_of(fused) == state_of(generic)


def test_a_replaced_model_is_learned_through_river() -> None:
    learner = OnlineLearner(build_model("linear"))
    learner.model = build_model("tree")
    for x, y in agrawal(50):
        learner.observe(x, y)
    assert learner.seen == 50
    assert learner.model.predict_proba_one(agrawal(1)[0][0])


def test_extreme_logits_and_clipped_gradients_match_river() -> None:
    """Large steps drive the logits past the loss's and the sigmoid's cut-offs (18 and 30)."""

    def model(clip: float) -> Any:
        return preprocessing.StandardScaler() | multiclass.OneVsRestClassifier(
            linear_model.LogisticRegression(
                optimizer=optim.SGD(5.0),
                intercept_lr=2.0,
                clip_gradient=clip,
                loss=optim.losses.Log(2.0, 0.5),
            )
        )

    for clip in (0.3, 1e12):
        fused, generic = model(clip), model(clip)
        step = LinearStep.of(fused)
        assert step is not None
        largest_logit = 0.0
        for index, (x, y) in enumerate(three_classes(600)):
            weight = weight_of(index)
            scaled = generic["StandardScaler"].transform_one(x)
            for clf in generic["OneVsRestClassifier"].classifiers.values():
                largest_logit = max(largest_logit, abs(clf._raw_dot_one(scaled)))
            guess = step.observe(x, y, weight)
            probabilities = river_step(generic, x, y, weight)
            if probabilities:
                expected = max(probabilities, key=lambda name: probabilities[name])
                assert guess == (expected, probabilities[expected], probabilities.get(y, 0.0))
        assert state_of(fused) == state_of(generic)
        assert largest_logit > 30
