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

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from statistics import NormalDist

from schemas import Estimate, ModelMetrics

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
        w = 1.0 / _checked(inclusion_probability)
        self.labels += 1
        self.weight += w
        self.weight_sq += w * w
        if success:
            self.weight_success += w

    def remove(self, success: bool, inclusion_probability: float) -> None:
        """Take back one label :meth:`add` counted (a later revision replaced it)."""
        w = 1.0 / _checked(inclusion_probability)
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
        lower, upper = wilson_interval(value * n_eff, n_eff, _normal_quantile(level))
        return Estimate(value=value, lower=lower, upper=upper, n=self.labels)


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
        found_var = _poisson_variance(found)
        if self.accepted == 0:
            return found.weight, found_var
        scale = self.accepted / self.labels.weight
        share = found.weight / self.labels.weight
        # Σ (1-π)/π² (y - ȳ)² over the domain, from sums: y is 0/1.
        residual_var = found_var * (1.0 - 2.0 * share) + share**2 * _poisson_variance(self.labels)
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
        lower, upper = wilson_interval(value * n_eff, n_eff, _t_quantile(level, labels - 1))
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
        half_width = _t_quantile(level, found - 1) * math.sqrt(variance)
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


def production_metrics(
    model_name: str,
    task: str,
    now: datetime,
    precision: PrecisionEstimator,
    recall: RecallEstimator,
) -> ModelMetrics:
    """A ``kind="production"`` snapshot: auto-accept precision (overall, per class), recall and misses.

    Metric names are ``auto_accept_precision``, ``auto_accept_precision.<class>``,
    ``recall.<class>`` and ``false_negatives.<class>``, with class names made
    safe for the metric alphabet by :func:`metric_class_name`. Estimates
    without data are left out; past the 256 metrics a snapshot holds, the
    classes with the fewest labels are left out.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> precision, recall = PrecisionEstimator(), RecallEstimator()
    >>> precision.observe("Fraud", model_was_right=True, inclusion_probability=0.05)
    >>> recall.observe("Fraud", "Fraud", "ok", inclusion_probability=0.1)
    >>> snapshot = production_metrics("fraud-model", "payments", datetime(2026, 1, 1, tzinfo=UTC),
    ...                               precision, recall)
    >>> sorted(snapshot.metrics)  # doctest: +NORMALIZE_WHITESPACE
    ['auto_accept_precision', 'auto_accept_precision.fraud-423c40',
     'false_negatives.fraud-423c40', 'recall.fraud-423c40']
    """
    metrics: dict[str, Estimate] = {}
    overall = precision.estimate()
    if overall is not None:
        metrics["auto_accept_precision"] = overall
    per_class: list[tuple[int, str, dict[str, Estimate]]] = []
    precision_by_class = precision.per_class()
    for label in sorted(set(precision_by_class) | set(recall.classes())):
        name = metric_class_name(label)
        estimates: dict[str, Estimate] = {}
        if label in precision_by_class:
            estimates[f"auto_accept_precision.{name}"] = precision_by_class[label]
        recall_estimate = recall.estimate(label)
        if recall_estimate is not None:
            estimates[f"recall.{name}"] = recall_estimate
            estimates[f"false_negatives.{name}"] = recall.false_negatives(label)
        labels = sum(estimate.n for estimate in estimates.values())
        per_class.append((labels, label, estimates))
    # Most-labeled classes first; ties by name, so the cut is deterministic.
    for _, _, estimates in sorted(per_class, key=lambda item: (-item[0], item[1])):
        if len(metrics) + len(estimates) > _MAX_METRICS:
            break
        metrics.update(estimates)
    return ModelMetrics(model_name=model_name, kind="production", task=task, computed_at=now, metrics=metrics)


#: ModelMetrics holds at most this many metrics.
_MAX_METRICS = 256
#: Room left for a class name in a 128-character metric name after the longest prefix.
_MAX_CLASS_NAME = 96
_UNSAFE = re.compile(r"[^a-z0-9_.:-]")


def metric_class_name(label: str) -> str:
    """A class label in the metric alphabet ``[a-z0-9_.:-]``, distinct for distinct labels.

    A label already in the alphabet is kept as is; any other is lower-cased,
    its other characters replaced by ``_``, and a short hash of the original
    appended, so ``"Fraud"`` and ``"fraud"`` never share a metric.

    Examples
    --------
    >>> metric_class_name("fraud"), metric_class_name("Fraud"), metric_class_name("card not present")
    ('fraud', 'fraud-423c40', 'card_not_present-abd3b7')
    """
    if len(label) <= _MAX_CLASS_NAME and not _UNSAFE.search(label):
        return label
    digest = hashlib.blake2b(label.encode("utf-8"), digest_size=3).hexdigest()
    return f"{_UNSAFE.sub('_', label.lower())[: _MAX_CLASS_NAME - 7]}-{digest}"


def _normal_quantile(level: float) -> float:
    """The two-sided ``level`` quantile of the standard normal (1.96 at 0.95)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level!r}")
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def _t_quantile(level: float, df: int) -> float:
    """The two-sided ``level`` quantile of Student's t with ``df`` (at least 1) degrees of freedom.

    Exact for 1 and 2 degrees of freedom; otherwise the Cornish–Fisher
    expansion around the normal quantile (Abramowitz & Stegun 26.7.5), within
    0.2% from 3 degrees of freedom on.
    """
    z = _normal_quantile(level)
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


def _poisson_variance(sums: WeightedProportion) -> float:
    """Σ (1 - π)/π² = Σ (w² - w): the Poisson-sampling variance of an HT total of ones."""
    return max(sums.weight_sq - sums.weight, 0.0)


def _checked(inclusion_probability: float) -> float:
    """π itself, refused unless 0 < π <= 1 (a weight of 1/0 or a NaN would poison every sum)."""
    if not 0.0 < inclusion_probability <= 1.0:
        raise ValueError(f"inclusion probability must be in (0, 1], got {inclusion_probability!r}")
    return inclusion_probability
