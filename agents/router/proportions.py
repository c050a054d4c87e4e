"""The statistics under the router's estimators: 1/π-weighted proportions and their intervals.

A :class:`WeightedProportion` keeps the sums of a Hájek proportion (Σw, Σw², Σw over the
successes, w = 1/π); :func:`wilson_interval` bounds it on Kish's effective sample size;
:func:`t_quantile` widens small samples' intervals (:mod:`agents.router.estimators`).

References
----------
Hájek, J. (1971). Comment on "An essay on the logical foundations of survey
sampling" by D. Basu. In Foundations of Statistical Inference, p. 236
(the weighted proportion Σ y/π / Σ 1/π).

Kish, L. (1992). Weighting for unequal P_i. Journal of Official Statistics
8(2), 183–200 (effective sample size (Σw)² / Σw²).

Wilson, E. B. (1927). Probable inference, the law of succession, and
statistical inference. JASA 22(158), 209–212.

Abramowitz, M. & Stegun, I. A. (1964). Handbook of Mathematical Functions,
26.7.5 (Cornish–Fisher expansion of Student's t quantile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from schemas import Estimate

#: The 97.5% quantile of the standard normal: two-sided 95% intervals.
Z_95 = 1.959964


def wilson_interval(successes: float, n: float, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (n may be an effective, fractional size).

    Unlike the Wald interval p̂ ± z·sqrt(p̂(1 - p̂)/n), it never leaves [0, 1],
    is not empty at p̂ = 0 or 1, and keeps near-nominal coverage for small n
    and p near the edges, where auto-accept precision lives. With no data it
    is [0, 1].

    Examples
    --------
    >>> [round(bound, 4) for bound in wilson_interval(81, 263)]
    [0.2553, 0.3662]
    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    """
    if n < 0 or successes < 0 or successes > n * (1 + 1e-12):
        raise ValueError(f"need 0 <= successes <= n, got {successes!r} of {n!r}")
    if n == 0:
        return 0.0, 1.0
    p = min(successes / n, 1.0)
    z2 = z * z
    denominator = 1.0 + z2 / n
    center = (p + z2 / (2.0 * n)) / denominator
    half_width = z / denominator * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    # At p = 0 (or 1) the bound is 0 (or 1) exactly; rounding must not move it inside.
    lower = 0.0 if p == 0.0 else max(center - half_width, 0.0)
    upper = 1.0 if p == 1.0 else min(center + half_width, 1.0)
    return min(lower, p), max(upper, p)


@dataclass(slots=True)
class WeightedProportion:
    """Sums behind a 1/π-weighted proportion: labels, Σw, Σw² and Σw over the successes."""

    labels: int = 0
    weight: float = 0.0
    weight_sq: float = 0.0
    weight_success: float = 0.0

    def add(self, success: bool, inclusion_probability: float) -> None:
        """Count one label drawn with probability ``inclusion_probability``."""
        w = 1.0 / checked_probability(inclusion_probability)
        self.labels += 1
        self.weight += w
        self.weight_sq += w * w
        if success:
            self.weight_success += w

    def remove(self, success: bool, inclusion_probability: float) -> None:
        """Take back one label :meth:`add` counted (a later revision replaced it)."""
        w = 1.0 / checked_probability(inclusion_probability)
        if self.labels <= 0:
            raise ValueError("no label to take back")
        self.labels -= 1
        self.weight = max(self.weight - w, 0.0)
        self.weight_sq = max(self.weight_sq - w * w, 0.0)
        if success:
            self.weight_success = max(self.weight_success - w, 0.0)

    def merge(self, other: WeightedProportion) -> None:
        """Add another set of sums into this one."""
        self.labels += other.labels
        self.weight += other.weight
        self.weight_sq += other.weight_sq
        self.weight_success += other.weight_success

    def estimate(self, level: float = 0.95) -> Estimate | None:
        """Hájek proportion, Wilson interval on Kish's effective sample size (None with no labels)."""
        if self.labels == 0:
            return None
        value = min(self.weight_success / self.weight, 1.0)
        n_eff = self.weight**2 / self.weight_sq
        lower, upper = wilson_interval(value * n_eff, n_eff, normal_quantile(level))
        return Estimate(value=value, lower=lower, upper=upper, n=self.labels)


def normal_quantile(level: float) -> float:
    """The two-sided ``level`` quantile of the standard normal (1.96 at 0.95)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level!r}")
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def t_quantile(level: float, df: int) -> float:
    """The two-sided ``level`` quantile of Student's t with ``df`` (at least 1) degrees of freedom.

    Exact for 1 and 2 degrees of freedom; otherwise the Cornish–Fisher
    expansion around the normal quantile (Abramowitz & Stegun 26.7.5), within
    0.2% from 3 degrees of freedom on.
    """
    z = normal_quantile(level)
    p = 0.5 + level / 2.0
    v = float(max(df, 1))
    if v == 1.0:
        return math.tan(math.pi * (p - 0.5))
    if v == 2.0:
        return (2.0 * p - 1.0) / math.sqrt(2.0 * p * (1.0 - p))
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * v**4)
    )


def poisson_variance(sums: WeightedProportion) -> float:
    """Σ (1 - π)/π² = Σ (w² - w): the Poisson-sampling variance of an HT total of ones."""
    return max(sums.weight_sq - sums.weight, 0.0)


def checked_probability(inclusion_probability: float) -> float:
    """π itself, refused unless 0 < π <= 1 (a weight of 1/0 or a NaN would poison every sum)."""
    if not 0.0 < inclusion_probability <= 1.0:
        raise ValueError(f"inclusion probability must be in (0, 1], got {inclusion_probability!r}")
    return inclusion_probability
