"""The linear model's step schedule: it decays, and restarts only when the learner's error rises."""

from __future__ import annotations

import pickle
import random

import pytest
from river import drift, linear_model, optim

from agents.learner.model import OnlineLearner, build_model
from agents.learner.schedule import RESTART_DELTA, DecayingStep, StepRestart, decays, optimizers


def test_the_step_halves_after_half_at_steps_and_keeps_falling_like_one_over_t() -> None:
    step = DecayingStep(0.1, half_at=200)
    assert step.get(0) == 0.1
    assert step.get(200) == pytest.approx(0.05)
    assert step.get(1_800) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="must be positive"):
        DecayingStep(0.1, half_at=0)


def test_it_finds_every_one_vs_rest_member_s_optimizer_in_the_pipeline() -> None:
    model = build_model("linear")
    for i in range(20):
        model.learn_one({"x0": float(i)}, "a" if i % 2 else "b")
    found = list(optimizers(model))
    assert len(found) == 3  # the template and one member per class
    assert all(isinstance(optimizer.lr, DecayingStep) for optimizer in found)
    assert decays(model)
    assert not decays(build_model("tree"))
    assert not decays(build_model("text"))
    assert not decays(linear_model.LogisticRegression(optimizer=optim.SGD(0.1)))


def test_only_a_decaying_linear_model_gets_a_restart() -> None:
    assert isinstance(OnlineLearner(build_model("linear")).restart, StepRestart)
    assert OnlineLearner(build_model("tree")).restart is None
    constant = linear_model.LogisticRegression(optimizer=optim.SGD(0.1))
    assert OnlineLearner(constant).restart is None


def settled() -> linear_model.LogisticRegression:
    model = linear_model.LogisticRegression(optimizer=optim.SGD(DecayingStep(0.1, 200)))
    model.optimizer.n_iterations = 5_000
    return model


def test_a_steady_or_falling_error_never_restarts_the_step() -> None:
    rng = random.Random(1)
    model, restart = settled(), StepRestart()
    for _ in range(3_000):  # steady at 10%
        assert not restart.update(rng.random() > 0.1, model)
    for _ in range(3_000):  # falling to 2%: ADWIN sees a change, but not a rise
        assert not restart.update(rng.random() > 0.02, model)
    assert (restart.restarts, model.optimizer.n_iterations) == (0, 5_000)


def test_a_rising_error_restarts_the_step_from_the_top_once() -> None:
    rng = random.Random(2)
    model, restart = settled(), StepRestart()
    for _ in range(2_000):
        restart.update(rng.random() > 0.05, model)
    fired_at = [i for i in range(400) if restart.update(rng.random() > 0.3, model)]
    assert len(fired_at) == 1
    assert fired_at[0] < 100
    assert model.optimizer.n_iterations == 0
    assert model.optimizer.learning_rate == 0.1


def test_the_restart_survives_a_checkpoint_round_trip() -> None:
    learner = OnlineLearner(build_model("linear"), window=50)
    rng = random.Random(3)
    for _ in range(500):
        x = {"x0": rng.uniform(0, 1)}
        learner.observe(x, "yes" if x["x0"] > 0.5 else "no")
    restored = OnlineLearner.from_state(pickle.loads(pickle.dumps(learner.state())), window=50)
    assert restored.restart is not None
    assert learner.restart is not None
    assert restored.restart.detector.width == learner.restart.detector.width
    assert restored.restart.detector.estimation == learner.restart.detector.estimation
    # A checkpoint written before the restart existed restores with the model's default.
    older = {key: value for key, value in learner.state().items() if key != "restart"}
    assert isinstance(OnlineLearner.from_state(older).restart, StepRestart)


def test_the_restart_fires_where_adwins_public_estimate_says_the_error_rose() -> None:
    """The restart reads ADWIN's window through ``adwin_step``: it fires on the updates where River's
    public ``estimation`` rose across a detected drift, and nowhere else."""
    rng = random.Random(4)
    rates = [0.05, 0.3, 0.02, 0.4, 0.1, 0.5]
    stream = [rng.random() > rates[i // 1_500] for i in range(1_500 * len(rates))]
    model, restart = settled(), StepRestart()
    reference = drift.ADWIN(delta=RESTART_DELTA)
    expected, fired = [], []
    for index, right in enumerate(stream):
        before = reference.estimation
        reference.update(0.0 if right else 1.0)
        if reference.drift_detected and reference.estimation > before:
            expected.append(index)
        if restart.update(right, model):
            fired.append(index)
    assert fired == expected
    assert len(fired) >= 2
    assert restart.restarts == len(fired)
