"""The router's production metrics: its estimators' figures as one ``ModelMetrics`` snapshot per task."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from agents.router.estimators import PrecisionEstimator, RecallEstimator
from schemas import Estimate, ModelMetrics


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
