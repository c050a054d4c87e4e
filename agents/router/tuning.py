"""Auto-tuning the acceptance threshold to a target precision, from the labels humans give anyway.

Humans label every reviewed event (below the threshold, inclusion 1) and a
uniform control share of the accepted ones (above it, inclusion = share).
Weighting each label by 1 / inclusion probability gives, for any candidate
threshold t, an unbiased estimate of the precision the model would have on
events with confidence >= t (``estimator="direct"``). The tuner picks the
lowest t whose estimate, ``z`` standard errors down, reaches the target: the
fewest events sent to humans for that precision.

The direct estimate of a threshold near the top rests on the control group
alone, a few percent of the accepted events, so its margin is wide and the
threshold lands higher than it needs to. ``estimator="calibrated"`` (the
default) borrows strength from every human label: a Platt-scaled calibration
curve P(right | c) = σ(a + b·logit c), fitted by weighted (1/π) logistic
regression to all labels, is averaged over the confidences of *every* routed
event at or above t (the router counts them all, labeled or not). Its margin
comes from the sandwich covariance of (a, b) by the delta method. A curve
that does not fit is caught: where the calibrated estimate falls outside the
direct estimate's ``check_z`` interval, the tuner uses the direct estimate
for that threshold.

References
----------
Horvitz, D. G. & Thompson, D. J. (1952). A generalization of sampling without
replacement from a finite universe. JASA 47(260).

Platt, J. (1999). Probabilistic outputs for support vector machines and
comparisons to regularized likelihood methods. Advances in Large Margin
Classifiers, 61–74.

Binder, D. A. (1983). On the variances of asymptotically normal estimators
from complex surveys. International Statistical Review 51(3), 279–292 (the
weighted-likelihood sandwich variance).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.router.proportions import wilson_interval

#: Confidences are clipped this far from 0 and 1 before the logit.
_EDGE = 1e-6


class TuningSettings(BaseModel):
    """Threshold auto-tuning (``LABELLOOP_ROUTER__TUNING__*``); off unless ``target_precision`` is set."""

    model_config = ConfigDict(frozen=True)

    target_precision: float | None = Field(default=None, gt=0.0, lt=1.0)
    #: Human labels between two re-tunings.
    every: int = Field(default=200, ge=10)
    #: Confidence bins (thresholds are bin edges).
    bins: int = Field(default=500, ge=10, le=1_000)
    #: Standard errors below the estimate that must still reach the target (1 ≈ 84 % one-sided).
    z: float = Field(default=1.0, ge=0.0)
    #: Labels above a candidate threshold needed before it may be chosen.
    min_effective_n: float = Field(default=30.0, ge=1.0)
    lowest: float = Field(default=0.5, ge=0.0, le=1.0)
    #: How precision above a threshold is estimated (see the module docstring).
    estimator: Literal["calibrated", "direct"] = "calibrated"
    #: The calibrated estimate is used where it lies inside the direct one's interval at this z.
    check_z: float = Field(default=2.0, gt=0.0)


class _Bins:
    """Per-confidence-bin sums: labels (weights, weighted rights, squares) and every routed event."""

    def __init__(self, bins: int) -> None:
        self.weight = [0.0] * bins
        self.weight_right = [0.0] * bins
        self.weight_squared = [0.0] * bins
        self.weight_squared_right = [0.0] * bins
        self.weight_confidence = [0.0] * bins
        self.events = [0] * bins
        self.event_confidence = [0.0] * bins


class ThresholdTuner:
    """Choose the lowest threshold whose estimated precision reaches the target.

    Examples
    --------
    >>> import random
    >>> tuner = ThresholdTuner(TuningSettings(target_precision=0.9))
    >>> rng = random.Random(1)
    >>> for _ in range(20_000):           # a calibrated model: right with probability = confidence
    ...     confidence = rng.uniform(0.5, 1.0)
    ...     tuner.observe_event(confidence)
    ...     tuner.observe(confidence, rng.random() < confidence, 1.0)
    >>> 0.78 < tuner.threshold() < 0.86   # precision of [t, 1] is (1 + t) / 2 >= 0.9 from t = 0.8
    True
    """

    def __init__(self, settings: TuningSettings) -> None:
        self.settings = settings
        self._bins = _Bins(settings.bins)
        self.observed = 0

    def _index(self, confidence: float) -> int:
        return min(self.settings.bins - 1, max(0, int(confidence * self.settings.bins)))

    def observe_event(self, confidence: float) -> None:
        """Count one routed event, labeled or not (the population the calibrated estimate averages over)."""
        index = self._index(confidence)
        self._bins.events[index] += 1
        self._bins.event_confidence[index] += confidence

    def observe(self, confidence: float, model_was_right: bool, inclusion_probability: float) -> None:
        """One human label of an event the model gave ``confidence`` (weighted by 1 / π)."""
        bins, index = self._bins, self._index(confidence)
        weight = 1.0 / inclusion_probability
        bins.weight[index] += weight
        bins.weight_squared[index] += weight * weight
        bins.weight_confidence[index] += weight * confidence
        if model_was_right:
            bins.weight_right[index] += weight
            bins.weight_squared_right[index] += weight * weight
        self.observed += 1

    def due(self) -> bool:
        """True every ``every`` observations (time to re-tune)."""
        return self.settings.target_precision is not None and self.observed % self.settings.every == 0

    def calibration(self) -> tuple[float, float, list[list[float]]] | None:
        """The fitted Platt curve (a, b) and its sandwich covariance; None without enough labels."""
        bins = self._bins
        points = [
            (_logit(bins.weight_confidence[i] / bins.weight[i]), i)
            for i in range(self.settings.bins)
            if bins.weight[i] > 0.0
        ]
        if len(points) < 3:
            return None
        a, b = 0.0, 1.0
        for _ in range(25):  # Newton–Raphson on the weighted log-likelihood (a 2x2 system)
            g0 = g1 = h00 = h01 = h11 = 0.0
            for x, i in points:
                p = _sigmoid(a + b * x)
                residual = bins.weight_right[i] - bins.weight[i] * p
                curvature = bins.weight[i] * p * (1.0 - p)
                g0 += residual
                g1 += residual * x
                h00 += curvature
                h01 += curvature * x
                h11 += curvature * x * x
            inverse = _inverse(h00, h01, h11)
            if inverse is None:
                return None
            step_a = inverse[0][0] * g0 + inverse[0][1] * g1
            step_b = inverse[1][0] * g0 + inverse[1][1] * g1
            a, b = a + step_a, b + step_b
            if abs(step_a) + abs(step_b) < 1e-9:
                break
        # Sandwich: H⁻¹ M H⁻¹ with M = Σ w² (y - p)² x xᵀ (labels with unequal 1/π weights).
        m00 = m01 = m11 = h00 = h01 = h11 = 0.0
        for x, i in points:
            p = _sigmoid(a + b * x)
            curvature = bins.weight[i] * p * (1.0 - p)
            h00 += curvature
            h01 += curvature * x
            h11 += curvature * x * x
            right, total = bins.weight_squared_right[i], bins.weight_squared[i]
            meat = right * (1.0 - p) ** 2 + (total - right) * p * p
            m00 += meat
            m01 += meat * x
            m11 += meat * x * x
        inverse = _inverse(h00, h01, h11)
        if inverse is None:
            return None
        meat_matrix = [[m00, m01], [m01, m11]]
        covariance = _product(_product(inverse, meat_matrix), inverse)
        return a, b, covariance

    def threshold(self) -> float | None:
        """The lowest bin edge whose precision reaches the target (None: no data or unreachable)."""
        target = self.settings.target_precision
        if target is None:
            return None
        settings, bins = self.settings, self._bins
        curve = self.calibration() if settings.estimator == "calibrated" else None
        weight = weight_right = weight_squared = 0.0
        events = 0
        expected = gradient_a = gradient_b = 0.0
        best: float | None = None
        for index in range(settings.bins - 1, -1, -1):
            weight += bins.weight[index]
            weight_right += bins.weight_right[index]
            weight_squared += bins.weight_squared[index]
            if curve is not None and bins.events[index]:
                a, b, _ = curve
                x = _logit(bins.event_confidence[index] / bins.events[index])
                p = _sigmoid(a + b * x)
                events += bins.events[index]
                expected += bins.events[index] * p
                gradient_a += bins.events[index] * p * (1.0 - p)
                gradient_b += bins.events[index] * p * (1.0 - p) * x
            edge = index / settings.bins
            if edge < settings.lowest or weight <= 0.0:
                continue
            effective_n = weight * weight / weight_squared
            if effective_n < settings.min_effective_n:
                continue
            share = weight_right / weight
            direct_lower, direct_upper = wilson_interval(share * effective_n, effective_n, z=settings.check_z)
            lower = (
                wilson_interval(share * effective_n, effective_n, z=settings.z)[0] if settings.z else share
            )
            if curve is not None and events:
                covariance = curve[2]
                ga, gb = gradient_a / events, gradient_b / events
                variance = (
                    ga * ga * covariance[0][0] + 2 * ga * gb * covariance[0][1] + gb * gb * covariance[1][1]
                )
                calibrated = expected / events
                if direct_lower <= calibrated <= direct_upper:
                    lower = calibrated - settings.z * math.sqrt(max(variance, 0.0))
            if lower >= target:
                best = edge
        return best


def _logit(confidence: float) -> float:
    c = min(max(confidence, _EDGE), 1.0 - _EDGE)
    return math.log(c / (1.0 - c))


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _inverse(h00: float, h01: float, h11: float) -> list[list[float]] | None:
    """The inverse of the symmetric 2x2 matrix [[h00, h01], [h01, h11]] (None when singular)."""
    determinant = h00 * h11 - h01 * h01
    if not determinant > 1e-12 * max(1.0, h00 * h11):
        return None
    return [[h11 / determinant, -h01 / determinant], [-h01 / determinant, h00 / determinant]]


def _product(left: list[list[float]], right: list[list[float]]) -> list[list[float]]:
    return [[sum(left[i][k] * right[k][j] for k in range(2)) for j in range(2)] for i in range(2)]
