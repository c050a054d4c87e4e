"""How well routing works, from the human labels of its samples: auto-accept precision and recall.

The control group (a uniform share of would-be-accepted events, labeled by
humans) gives the precision of auto-accept; the recall audit (accepted events
sampled with probability rising with the audited score, labeled after the
fact) gives the recall of the accepted stream and the volume of its false
negatives. Every human label carries its inclusion probability π, and is
weighted by 1/π, so estimates stay unbiased when the share or the audit's
weights change over time. State is a handful of sums per class: small, and
two workers' estimators add up with ``merge``.

References
----------
Horvitz, D. G. & Thompson, D. J. (1952). A generalization of sampling without
replacement from a finite universe. JASA 47(260), 663–685.

Hájek, J. (1971). Comment on "An essay on the logical foundations of survey
sampling" by D. Basu. In Foundations of Statistical Inference, p. 236
(the weighted proportion Σ y/π / Σ 1/π).

Särndal, C.-E., Swensson, B. & Wretman, J. (1992). Model Assisted Survey
Sampling. Springer: ch. 3 (Poisson sampling) and ch. 5 (ratios, Taylor
linearisation of their variance).

Holt, D. & Smith, T. M. F. (1979). Post stratification. JRSS A 142(1),
33–46 (estimating domain totals from known domain sizes).

Kish, L. (1992). Weighting for unequal P_i. Journal of Official Statistics
8(2), 183–200 (effective sample size (Σw)² / Σw²).

Wilson, E. B. (1927). Probable inference, the law of succession, and
statistical inference. JASA 22(158), 209–212.

Korn, E. L. & Graubard, B. I. (1998). Confidence intervals for proportions
with small expected number of positive counts estimated from survey data.
Survey Methodology 24(2), 193–201 (binomial intervals on an effective sample
size p(1 - p) / V̂, with t quantiles for the degrees of freedom).

Abramowitz, M. & Stegun, I. A. (1964). Handbook of Mathematical Functions,
26.7.5 (Cornish–Fisher expansion of Student's t quantile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from agents.router.proportions import WeightedProportion, poisson_variance, t_quantile, wilson_interval
from schemas import Estimate


class PrecisionEstimator:
    """Precision of auto-accept, from the control group's human labels.

    Each control label says whether the model was right on an event it would
    have accepted, drawn with probability π (the control share when it was
    drawn). The estimate is the Hájek weighted proportion Σ y/π / Σ 1/π,
    unbiased (to first order) when the share changes over time, e.g. when a
    drift alert raises it; the unweighted share of right answers would then
    over-represent the period with the larger share. The 95% interval is
    Wilson's on Kish's effective sample size n_eff = (Σw)² / Σw², which is the
    label count when the share is constant and shrinks as the weights spread.
    Kish's n_eff, unlike a design-based p̂(1 - p̂)/V̂, stays defined when
    every control label agrees (p̂ = 1), which is common for a good model.

    Examples
    --------
    >>> precision = PrecisionEstimator()
    >>> precision.estimate() is None
    True
    >>> for i in range(200):
    ...     precision.observe("ok" if i % 4 else "fraud", model_was_right=i % 10 != 0,
    ...                       inclusion_probability=0.05 if i < 100 else 0.2)
    >>> overall = precision.estimate()
    >>> round(overall.value, 3), round(overall.lower, 3), round(overall.upper, 3), overall.n
    (0.9, 0.841, 0.939, 200)
    >>> sorted(precision.per_class())
    ['fraud', 'ok']
    """

    def __init__(self) -> None:
        self.by_class: dict[str, WeightedProportion] = {}

    def observe(self, predicted_label: str, model_was_right: bool, inclusion_probability: float) -> None:
        """Count one control label: the model's prediction, whether humans agreed, and π."""
        self.by_class.setdefault(predicted_label, WeightedProportion()).add(
            model_was_right, inclusion_probability
        )

    def revise(
        self, predicted_label: str, was_right: bool, model_was_right: bool, inclusion_probability: float
    ) -> None:
        """A later revision of a counted control label (an expert verdict, a healed label) replaces it."""
        if was_right == model_was_right:
            return
        sums = self.by_class.setdefault(predicted_label, WeightedProportion())
        sums.remove(was_right, inclusion_probability)
        sums.add(model_was_right, inclusion_probability)

    def estimate(self, level: float = 0.95) -> Estimate | None:
        """Precision over every predicted class, with a ``level`` interval (None before the first label)."""
        total = WeightedProportion()
        for sums in self.by_class.values():
            total.merge(sums)
        return total.estimate(level)

    def per_class(self, level: float = 0.95) -> dict[str, Estimate]:
        """Precision of auto-accept per predicted class."""
        estimates = {label: sums.estimate(level) for label, sums in sorted(self.by_class.items())}
        return {label: estimate for label, estimate in estimates.items() if estimate is not None}

    def merge(self, other: PrecisionEstimator) -> None:
        """Add another worker's control labels into this estimator."""
        for label, sums in other.by_class.items():
            self.by_class.setdefault(label, WeightedProportion()).merge(sums)


@dataclass(slots=True)
class _Domain:
    """One predicted class's audit labels: HT sums over all of them and over each true class."""

    accepted: int = 0
    labels: WeightedProportion = field(default_factory=WeightedProportion)
    by_truth: dict[str, WeightedProportion] = field(default_factory=dict)

    def merge(self, other: _Domain) -> None:
        self.accepted += other.accepted
        self.labels.merge(other.labels)
        for truth, sums in other.by_truth.items():
            self.by_truth.setdefault(truth, WeightedProportion()).merge(sums)

    def total(self, truth: str) -> tuple[float, float]:
        """Estimated count of accepted events of ``truth`` in this domain, and its variance.

        With the domain's accepted count M known, the post-stratified
        M · Σ_truth w / Σ w with residuals y - ȳ; without it, the HT total Σ_truth w.
        """
        found = self.by_truth.get(truth)
        if found is None or found.labels == 0:
            # Nothing of this class found here: estimate 0; an HT or post-stratified
            # residual of 0 everywhere (or -ȳ = 0) adds no variance either.
            return 0.0, 0.0
        found_var = poisson_variance(found)
        if self.accepted == 0:
            return found.weight, found_var
        scale = self.accepted / self.labels.weight
        share = found.weight / self.labels.weight
        # Σ (1-π)/π² (y - ȳ)² over the domain, from sums: y is 0/1.
        residual_var = found_var * (1.0 - 2.0 * share) + share**2 * poisson_variance(self.labels)
        return scale * found.weight, scale**2 * max(residual_var, 0.0)


class RecallEstimator:
    """Recall of the accepted stream per class, from the recall audit's labels.

    Every accepted event has a known π > 0 of being audited, so each audit
    label counts, weighted by w = 1/π, towards the class humans gave it: a
    true positive when the model predicted that class, a false negative
    otherwise (whichever class the audit was aimed at). The recall of class
    ``c`` is R = TP / (TP + FN), where TP counts accepted events of ``c`` the
    model called ``c`` and FN those it called something else.

    The totals are estimated per predicted class k (a domain). When the
    router's count M_k of accepted events predicted k is given
    (:meth:`observe_accepted`), the domain's total of class ``c`` is the
    post-stratified M_k · Σ_c w / Σ w; otherwise the Horvitz–Thompson Σ_c w.
    Post-stratifying uses what the router knows exactly (how many events it
    accepted of each predicted class) and removes the noise of the sample
    size: an audit that samples sure predictions lightly, as
    :class:`~agents.router.sampling.AuditSampler` does, would otherwise pay
    for it in the true-positive total. The variance under Poisson sampling is
    Taylor-linearised:

        V̂ = [(1 - R̂)² V̂(TP̂) + R̂² Σ_k≠c V̂(T̂_kc)] / (TP̂ + FN̂)²,

    with V̂(T̂) = s² Σ (1 - π)/π² (y - r)² (s = M_k / Σ w and r the domain's
    share of ``c`` when post-stratified; s = 1, r = 0 for HT), all from a few
    sums per (predicted, true) pair. The 95% interval is Wilson's on the
    effective sample size R̂(1 - R̂)/V̂, with Student's t quantile on (labels
    of the class - 1) degrees of freedom in place of 1.96 (Korn & Graubard,
    1998): V̂ rests on the few labels of the class the audit found, and the
    normal quantile under-covers there (93% on the bench's stream, 96% with
    t), while capping the effective size at that label count, as they also
    suggest, ignores how much the design gains and over-covers (99%). When
    R̂ is 0 or 1 (V̂ = 0) the effective size is the label count. Wilson's
    bounds stay in [0, 1] and are asymmetric near 1, where a symmetric
    interval clipped to [0, 1] under-covers.

    Examples
    --------
    >>> recall = RecallEstimator()
    >>> recall.estimate("fraud") is None
    True
    >>> for i in range(40):   # audited fraud predictions, drawn at π = 0.01
    ...     recall.observe("fraud", "fraud" if i < 38 else "ok", "fraud", inclusion_probability=0.01)
    >>> for i in range(30):   # audited "ok" predictions with a high fraud score, π = 0.05
    ...     recall.observe("fraud", "fraud" if i < 10 else "ok", "ok", inclusion_probability=0.05)
    >>> fraud = recall.estimate("fraud")   # Horvitz–Thompson: TP̂ = 3800, FN̂ = 200
    >>> round(fraud.value, 3), round(fraud.lower, 3), round(fraud.upper, 3), fraud.n
    (0.95, 0.905, 0.974, 48)
    >>> recall.observe_accepted("fraud", 4200)   # what the router accepted
    >>> recall.observe_accepted("ok", 540)
    >>> round(recall.estimate("fraud").value, 3)   # post-stratified: TP̂ = 3990, FN̂ = 180
    0.957
    >>> round(recall.false_negatives("fraud").value, 6)
    180.0
    >>> recall.classes()
    ['fraud', 'ok']
    """

    def __init__(self) -> None:
        self.domains: dict[str, _Domain] = {}
        self.audited: set[str] = set()

    def observe(
        self, audited_class: str, true_label: str, predicted_label: str, inclusion_probability: float
    ) -> None:
        """Count one audit label: the class the audit aimed at, the human label, the model's, and π."""
        domain = self.domains.setdefault(predicted_label, _Domain())
        domain.labels.add(True, inclusion_probability)
        domain.by_truth.setdefault(true_label, WeightedProportion()).add(True, inclusion_probability)
        self.audited.add(audited_class)

    def revise(
        self,
        audited_class: str,
        was: str,
        true_label: str,
        predicted_label: str,
        inclusion_probability: float,
    ) -> None:
        """A later revision of a counted audit label replaces its true class (same event, same π)."""
        if was == true_label:
            return
        domain = self.domains.setdefault(predicted_label, _Domain())
        domain.by_truth.setdefault(was, WeightedProportion()).remove(True, inclusion_probability)
        domain.by_truth.setdefault(true_label, WeightedProportion()).add(True, inclusion_probability)
        self.audited.add(audited_class)

    def observe_accepted(self, predicted_label: str, count: int = 1) -> None:
        """Count accepted events the audit could have drawn (all of them, or never any)."""
        if count < 0:
            raise ValueError(f"accepted count must be >= 0, got {count!r}")
        self.domains.setdefault(predicted_label, _Domain()).accepted += count

    def classes(self) -> list[str]:
        """Every class audited or found by the audit, sorted."""
        found = {truth for domain in self.domains.values() for truth in domain.by_truth}
        return sorted(found | self.audited)

    def estimate(self, audited_class: str, level: float = 0.95) -> Estimate | None:
        """Recall of ``audited_class`` on the accepted stream.

        None until the audit has found an event of the class, and, with
        accepted counts given, until it has audited an event predicted as it.
        """
        labels = self._labels_of(audited_class)
        own = self.domains.get(audited_class)
        if own is not None and own.accepted > 0 and own.labels.labels == 0:
            return None  # events were accepted as this class, none audited yet: TP unknown, not 0
        tp, tp_var = self._domain_total(audited_class, audited_class)
        fn, fn_var = self._missed(audited_class)
        total = tp + fn
        if labels == 0 or total <= 0:
            return None
        value = tp / total
        variance = ((1.0 - value) ** 2 * tp_var + value**2 * fn_var) / total**2
        if variance == 0.0 and 0.0 < value < 1.0:
            return Estimate(value=value, lower=value, upper=value, n=labels)  # a census: nothing unseen
        n_eff = value * (1.0 - value) / variance if variance > 0 else float(labels)
        lower, upper = wilson_interval(value * n_eff, n_eff, t_quantile(level, labels - 1))
        return Estimate(value=value, lower=lower, upper=upper, n=labels)

    def false_negatives(self, audited_class: str, level: float = 0.95) -> Estimate:
        """How many accepted events of ``audited_class`` the model missed, with a ``level`` interval.

        The lower bound is never below the misses the audit actually found;
        the upper bound is None (unknown) while the audit has found none.
        """
        found = sum(
            domain.by_truth[audited_class].labels
            for predicted, domain in self.domains.items()
            if predicted != audited_class and audited_class in domain.by_truth
        )
        if found == 0:
            return Estimate(value=0.0, lower=0.0, upper=None, n=0)
        value, variance = self._missed(audited_class)
        half_width = t_quantile(level, found - 1) * math.sqrt(variance)
        lower = min(max(value - half_width, float(found)), value)
        return Estimate(value=value, lower=lower, upper=value + half_width, n=found)

    def merge(self, other: RecallEstimator) -> None:
        """Add another worker's audit labels and accepted counts into this estimator."""
        for predicted, domain in other.domains.items():
            self.domains.setdefault(predicted, _Domain()).merge(domain)
        self.audited |= other.audited

    def _labels_of(self, truth: str) -> int:
        return sum(
            domain.by_truth[truth].labels for domain in self.domains.values() if truth in domain.by_truth
        )

    def _domain_total(self, predicted: str, truth: str) -> tuple[float, float]:
        domain = self.domains.get(predicted)
        return domain.total(truth) if domain is not None else (0.0, 0.0)

    def _missed(self, truth: str) -> tuple[float, float]:
        """FN̂ of ``truth`` and its variance: its totals over every other predicted class."""
        value = variance = 0.0
        for predicted, domain in self.domains.items():
            if predicted != truth:
                total, total_var = domain.total(truth)
                value += total
                variance += total_var
        return value, variance
