"""Auto-tuning the acceptance threshold to a target precision, from the labels humans give anyway.

Humans label every reviewed event (below the threshold, inclusion 1) and a
uniform control share of the accepted ones (above it, inclusion = share).
Weighting each label by 1 / inclusion probability gives, for any candidate
threshold t, an unbiased estimate of the precision the model would have on
events with confidence >= t. The tuner picks the lowest t whose estimate
(its Wilson lower bound at ``z``, on the Kish effective sample size) reaches
the target: the fewest events sent to humans for that precision.

References
----------
Horvitz, D. G. & Thompson, D. J. (1952). A generalization of sampling without
replacement from a finite universe. JASA 47(260).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agents.router.estimators import wilson_interval


class TuningSettings(BaseModel):
    """Threshold auto-tuning (``LABELLOOP_ROUTER__TUNING__*``); off unless ``target_precision`` is set."""

    model_config = ConfigDict(frozen=True)

    target_precision: float | None = Field(default=None, gt=0.0, lt=1.0)
    #: Human labels between two re-tunings.
    every: int = Field(default=200, ge=10)
    #: Confidence bins (thresholds are bin edges).
    bins: int = Field(default=100, ge=10, le=1_000)
    #: Standard deviations below the estimate that must still reach the target (1 ≈ 84 % one-sided).
    z: float = Field(default=1.0, ge=0.0)
    #: Labels above a candidate threshold needed before it may be chosen.
    min_effective_n: float = Field(default=30.0, ge=1.0)
    lowest: float = Field(default=0.5, ge=0.0, le=1.0)


class ThresholdTuner:
    """Choose the lowest threshold whose estimated precision reaches the target.

    Examples
    --------
    >>> import random
    >>> tuner = ThresholdTuner(TuningSettings(target_precision=0.9))
    >>> rng = random.Random(1)
    >>> for _ in range(20_000):           # a calibrated model: right with probability = confidence
    ...     confidence = rng.uniform(0.5, 1.0)
    ...     tuner.observe(confidence, rng.random() < confidence, 1.0)
    >>> 0.78 < tuner.threshold() < 0.86   # precision of [t, 1] is (1 + t) / 2 >= 0.9 from t = 0.8
    True
    """

    def __init__(self, settings: TuningSettings) -> None:
        self.settings = settings
        self._weight = [0.0] * settings.bins
        self._weight_right = [0.0] * settings.bins
        self._weight_squared = [0.0] * settings.bins
        self.observed = 0

    def observe(self, confidence: float, model_was_right: bool, inclusion_probability: float) -> None:
        """One human label of an event the model gave ``confidence`` (weighted by 1 / π)."""
        index = min(self.settings.bins - 1, max(0, int(confidence * self.settings.bins)))
        weight = 1.0 / inclusion_probability
        self._weight[index] += weight
        self._weight_squared[index] += weight * weight
        if model_was_right:
            self._weight_right[index] += weight
        self.observed += 1

    def due(self) -> bool:
        """True every ``every`` observations (time to re-tune)."""
        return self.settings.target_precision is not None and self.observed % self.settings.every == 0

    def threshold(self) -> float | None:
        """The lowest bin edge whose precision reaches the target (None: no data or unreachable)."""
        target = self.settings.target_precision
        if target is None:
            return None
        weight = weight_right = weight_squared = 0.0
        best: float | None = None
        for index in range(self.settings.bins - 1, -1, -1):
            weight += self._weight[index]
            weight_right += self._weight_right[index]
            weight_squared += self._weight_squared[index]
            edge = index / self.settings.bins
            if edge < self.settings.lowest or weight <= 0.0:
                continue
            effective_n = weight * weight / weight_squared
            if effective_n < self.settings.min_effective_n:
                continue
            share = weight_right / weight
            lower = (
                wilson_interval(share * effective_n, effective_n, z=self.settings.z)[0]
                if self.settings.z > 0
                else share
            )
            if lower >= target:
                best = edge
        return best
