"""The threshold tuner: the Platt calibration, its fallback, and the thresholds it picks."""

from __future__ import annotations

import math
import random

import pytest

from agents.router.tuning import ThresholdTuner, TuningSettings


def _feed(
    tuner: ThresholdTuner, rng: random.Random, events: int, right: float, control: float = 0.05
) -> None:
    """A router's view: every event counted; below 0.9 reviewed (π=1), above it a control share."""
    for _ in range(events):
        confidence = 0.5 + 0.5 * rng.betavariate(4.0, 1.0)
        tuner.observe_event(confidence)
        was_right = rng.random() < confidence**right
        if confidence < 0.9:
            tuner.observe(confidence, was_right, 1.0)
        elif rng.random() < control:
            tuner.observe(confidence, was_right, control)


def _true_precision(threshold: float, right: float, draws: int = 200_000) -> float:
    rng = random.Random(0)
    confidences = [0.5 + 0.5 * rng.betavariate(4.0, 1.0) for _ in range(draws)]
    above = [c**right for c in confidences if c >= threshold]
    return sum(above) / len(above)


def test_platt_fit_recovers_a_known_curve() -> None:
    tuner = ThresholdTuner(TuningSettings(target_precision=0.95))
    rng = random.Random(3)
    a, b = -0.4, 1.1
    for _ in range(40_000):
        confidence = rng.uniform(0.5, 0.999)
        x = math.log(confidence / (1 - confidence))
        tuner.observe(confidence, rng.random() < 1 / (1 + math.exp(-(a + b * x))), 1.0)
    curve = tuner.calibration()
    assert curve is not None
    fitted_a, fitted_b, covariance = curve
    assert fitted_a == pytest.approx(a, abs=4 * math.sqrt(covariance[0][0]))
    assert fitted_b == pytest.approx(b, abs=4 * math.sqrt(covariance[1][1]))
    assert 0 < covariance[0][0] < 0.01


@pytest.mark.parametrize("estimator", ["calibrated", "direct"])
def test_threshold_reaches_the_target_on_an_overconfident_model(estimator: str) -> None:
    settings = TuningSettings(target_precision=0.95, estimator=estimator)  # type: ignore[arg-type]
    tuner = ThresholdTuner(settings)
    _feed(tuner, random.Random(5), 30_000, right=1.2)
    threshold = tuner.threshold()
    assert threshold is not None
    # The safety margin keeps it on the safe side of the true 95 % point (~0.91), not far above it.
    assert _true_precision(threshold, 1.2) >= 0.95 - 0.003
    assert threshold < 0.95


def test_calibrated_margin_is_tighter_than_the_control_group_alone() -> None:
    rng_seed = 9
    thresholds = {}
    for estimator in ("calibrated", "direct"):
        tuner = ThresholdTuner(TuningSettings(target_precision=0.95, estimator=estimator, z=2.0))  # type: ignore[arg-type]
        _feed(tuner, random.Random(rng_seed), 20_000, right=1.2)
        thresholds[estimator] = tuner.threshold()
    assert thresholds["calibrated"] is not None
    assert thresholds["direct"] is not None
    assert thresholds["calibrated"] < thresholds["direct"]


def test_a_curve_that_does_not_fit_falls_back_to_the_direct_estimate() -> None:
    """Right below 0.9 and wrong at the very top: no Platt curve fits; the direct check catches it."""
    tuner = ThresholdTuner(TuningSettings(target_precision=0.9, z=1.0))
    rng = random.Random(2)
    for _ in range(20_000):
        confidence = rng.uniform(0.5, 1.0)
        tuner.observe_event(confidence)
        if confidence < 0.9:
            tuner.observe(confidence, rng.random() < 0.97, 1.0)
        elif rng.random() < 0.2:
            tuner.observe(confidence, rng.random() < 0.5, 0.2)
    # Every threshold above 0.9 holds only the 50 % region: nothing may reach 90 %.
    threshold = tuner.threshold()
    assert threshold is None or threshold < 0.9
    direct = ThresholdTuner(TuningSettings(target_precision=0.9, z=1.0, estimator="direct"))
    direct._bins = tuner._bins
    assert threshold == direct.threshold()


def test_no_labels_no_threshold() -> None:
    tuner = ThresholdTuner(TuningSettings(target_precision=0.9))
    assert tuner.threshold() is None
    assert tuner.calibration() is None
    assert ThresholdTuner(TuningSettings()).threshold() is None
