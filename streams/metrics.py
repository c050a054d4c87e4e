"""The loop's Prometheus metrics: one registry per worker that every stage counts into.

Names follow the Prometheus conventions: a ``labelloop_`` prefix, base units in
the name (``_seconds``, ``_tasks``, ``_ratio``, ``_records``), ``_total`` on
counters, and only bounded label sets: stage, topic (without the deployment's
prefix), pool, tier, source, route, signal, task, class, partition. Never an
event id or a worker id: those grow without bound.

The worker serves the registry on ``/metrics`` and its dashboard samples the
same registry (:meth:`LoopMetrics.snapshot`), so a plot and a scrape never
disagree. This module never imports faust; the agents call its ``observe_*``
methods with schema objects.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter as Tally
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import Metric
from prometheus_client.process_collector import ProcessCollector

from schemas import CrowdAnswer, DriftAlert, Label, ModelMetrics, PoolStatus

#: Prometheus' text exposition format (version 0.0.4), what ``/metrics`` answers with.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds from a prediction's creation to its first trusted label: machines in milliseconds,
#: the crowd in seconds, experts in minutes to hours.
TIME_TO_LABEL_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 14400)
ANSWERS_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20)
#: Drift alerts kept for the dashboard's time axis.
RECENT_ALERTS = 200


@dataclass(frozen=True)
class AlertMark:
    """A drift alert as the dashboard marks it on the time axis."""

    at: datetime
    signal: str
    detector: str
    task: str
    message: str


class LoopMetrics:
    """Every metric family of a worker, in a registry of its own.

    Parameters
    ----------
    topic_prefix
        The deployment's topic prefix, left out of the ``topic`` label so that
        dashboards work for any prefix.
    process
        Also export the process' CPU, memory and file descriptors (``process_*``).

    Examples
    --------
    >>> metrics = LoopMetrics("prod.")
    >>> metrics.consumed("router", "prod.predictions")
    >>> metrics.dead_lettered("router", "invalid_json")
    >>> metrics.value("labelloop_records_consumed_total", stage="router", topic="predictions")
    1.0
    >>> metrics.value("labelloop_dlq_records_total", stage="router", reason="invalid_json")
    1.0
    >>> b"labelloop_records_consumed_total" in metrics.exposition()
    True
    """

    def __init__(self, topic_prefix: str = "", *, process: bool = False) -> None:
        self.topic_prefix = topic_prefix
        # No ``*_created`` series beside every counter and histogram: they double the scrape for
        # nothing Prometheus' rate() needs (a process-wide switch of prometheus-client).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        if process:
            ProcessCollector(registry=self.registry)
        registry = self.registry
        self.records_consumed = Counter(
            "labelloop_records_consumed",
            "Records a stage read from a topic (each record once per stage that reads it).",
            ["stage", "topic"],
            registry=registry,
        )
        self.records_produced = Counter(
            "labelloop_records_produced",
            "Records the worker's stages sent to a topic.",
            ["topic"],
            registry=registry,
        )
        self.dlq_records = Counter(
            "labelloop_dlq_records",
            "Records a stage sent to the DLQ, by the error kind in its headers.",
            ["stage", "reason"],
            registry=registry,
        )
        self.decisions = Counter(
            "labelloop_router_decisions",
            "Routing decisions: action accept or review, reason the route (or shed_by_capacity).",
            ["action", "reason"],
            registry=registry,
        )
        self.audits = Counter(
            "labelloop_router_audits",
            "Accepted events also drawn into the recall audit.",
            registry=registry,
        )
        self.duplicates = Counter(
            "labelloop_router_duplicates",
            "Predictions the router had routed already (redelivered or republished).",
            registry=registry,
        )
        self.target_backlog = Gauge(
            "labelloop_router_target_backlog_tasks",
            "The backlog the router's capacity gate steers to.",
            registry=registry,
        )
        self.labels_published = Counter(
            "labelloop_labels_published",
            "Trusted labels published, by source and whether it is a later revision.",
            ["source", "revision"],
            registry=registry,
        )
        self.time_to_label = Histogram(
            "labelloop_time_to_label_seconds",
            "From the prediction's creation to its first trusted label.",
            ["source"],
            buckets=TIME_TO_LABEL_BUCKETS_S,
            registry=registry,
        )
        self.answers_per_label = Histogram(
            "labelloop_answers_per_label",
            "Human answers behind each human label (dynamic overlap).",
            ["source"],
            buckets=ANSWERS_BUCKETS,
            registry=registry,
        )
        self.crowd_answers = Counter(
            "labelloop_crowd_answers",
            "Answers the pools gave (golden answers included).",
            ["pool", "tier"],
            registry=registry,
        )
        self.workers_flagged = Counter(
            "labelloop_workers_flagged",
            "Labelers flagged unreliable (and banned from new tasks).",
            registry=registry,
        )
        pool = ["pool", "tier"]
        self.pool_workers = Gauge("labelloop_pool_workers", "Workers in the pool.", pool, registry=registry)
        self.pool_active = Gauge(
            "labelloop_pool_active", "1 while the pool takes tasks, 0 when paused.", pool, registry=registry
        )
        self.pool_backlog = Gauge(
            "labelloop_pool_backlog_tasks", "Tasks waiting for a worker.", pool, registry=registry
        )
        self.pool_in_progress = Gauge(
            "labelloop_pool_in_progress_tasks", "Tasks a worker holds now.", pool, registry=registry
        )
        self.pool_queue_rate = Gauge(
            "labelloop_pool_queue_rate_tasks_per_second",
            "Tasks arriving at the pool (the queue rate), measured by the pool.",
            pool,
            registry=registry,
        )
        self.pool_capacity = Gauge(
            "labelloop_pool_capacity_tasks_per_second",
            "Tasks the active workers can finish (labels per second over overlap).",
            pool,
            registry=registry,
        )
        self.pool_cost = Gauge(
            "labelloop_pool_cost_per_hour",
            "What the pool spends per hour at its current load (in the unit of cost_per_label).",
            pool,
            registry=registry,
        )
        self.precision = Gauge(
            "labelloop_auto_accept_precision_ratio",
            "Estimated precision of auto-accept (control group, 1/pi weighted) and its interval bounds.",
            ["task", "bound"],
            registry=registry,
        )
        self.recall = Gauge(
            "labelloop_recall_ratio",
            "Estimated recall per class (Horvitz-Thompson over the recall audit) and its interval bounds.",
            ["task", "class", "bound"],
            registry=registry,
        )
        self.estimate_labels = Gauge(
            "labelloop_estimate_labels",
            "Human labels behind an estimate (precision: overall; recall.<class>).",
            ["task", "metric"],
            registry=registry,
        )
        self.online_accuracy = Gauge(
            "labelloop_online_model_accuracy_ratio",
            "The online River model's accuracy on human labels (prequential, or over the rolling window).",
            ["task", "window"],
            registry=registry,
        )
        self.online_macro_f1 = Gauge(
            "labelloop_online_model_macro_f1_ratio",
            "The online River model's macro F1 on human labels (prequential, or over the rolling window).",
            ["task", "window"],
            registry=registry,
        )
        self.online_log_loss = Gauge(
            "labelloop_online_model_log_loss",
            "The online River model's log loss on human labels (prequential, or over the rolling window).",
            ["task", "window"],
            registry=registry,
        )
        self.online_labels = Gauge(
            "labelloop_online_model_labels",
            "Human labels the online model has learned.",
            ["task"],
            registry=registry,
        )
        self.drift_alerts = Counter(
            "labelloop_drift_alerts",
            "Drift alerts published, by the signal that drifted.",
            ["signal", "detector_kind"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "labelloop_consumer_lag_records",
            "Records not yet committed by the worker's consumer group, per partition it owns.",
            ["topic", "partition"],
            registry=registry,
        )
        self.recent_alerts: deque[AlertMark] = deque(maxlen=RECENT_ALERTS)
        # Children of the families counted on every record, by label values: prometheus-client's
        # labels() validates and locks on each call, a dict lookup does not.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, family: Any, *values: str) -> Any:
        key = (id(family), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*values)
        return child

    # -- plumbing (streams/runtime.py, agents/loop.py) -----------------------------------

    def topic(self, name: str) -> str:
        """The topic's name without the deployment's prefix (the ``topic`` label)."""
        return name.removeprefix(self.topic_prefix)

    def consumed(self, stage: str, topic: str, count: int = 1) -> None:
        """A stage read ``count`` records of ``topic``."""
        self._child(self.records_consumed, stage, topic.removeprefix(self.topic_prefix)).inc(count)

    def produced(self, topic: str, count: int = 1) -> None:
        """``count`` records were sent to ``topic``."""
        self._child(self.records_produced, topic.removeprefix(self.topic_prefix)).inc(count)

    def dead_lettered(self, stage: str, reason: str) -> None:
        """A stage sent a record to the DLQ; ``reason`` is the error kind of its headers."""
        self.dlq_records.labels(stage=stage, reason=reason).inc()

    # -- the stages ----------------------------------------------------------------------

    def decided(self, action: str, reason: str, *, audit: bool = False, count: int = 1) -> None:
        """``count`` routing decisions alike (``audit``: the accepted events are also audited)."""
        self._child(self.decisions, action, reason).inc(count)
        if audit:
            self.audits.inc(count)

    def observe_label(self, label: Label) -> None:
        """A trusted label was published: its source, and for a first revision its time to label."""
        first = label.revision == 1
        self._child(self.labels_published, label.source, "first" if first else "later").inc()
        if first:
            waited_s = (label.decided_at - label.prediction_created_at).total_seconds()
            self._child(self.time_to_label, label.source).observe(max(0.0, waited_s))
            if label.is_human:
                self._child(self.answers_per_label, label.source).observe(label.provenance.n_answers)

    def observe_first_labels(self, source: str, waits_s: Sequence[float]) -> None:
        """First revisions of ``source`` published together (a committed batch's), with their times to label.

        The same samples as :meth:`observe_label` for each (machine labels: no answers), with one
        increment per bucket touched: prometheus-client's ``observe`` takes two locks per value,
        and the router publishes a Label for most predictions. Reads the histogram child's bucket
        bounds and values (``_upper_bounds``, ``_buckets``, ``_sum``, prometheus-client 0.2x;
        ``tests/streams/test_metrics.py`` holds it to ``observe``).
        """
        if not waits_s:
            return
        self._child(self.labels_published, source, "first").inc(len(waits_s))
        histogram = self._child(self.time_to_label, source)
        bounds = histogram._upper_bounds  # the last is +Inf: every wait has a bucket
        clipped = [max(0.0, waited_s) for waited_s in waits_s]
        for index, count in Tally(bisect_left(bounds, waited_s) for waited_s in clipped).items():
            histogram._buckets[index].inc(count)
        histogram._sum.inc(math.fsum(clipped))

    def observe_answer(self, answer: CrowdAnswer) -> None:
        """A pool reported one answer."""
        self._child(self.crowd_answers, answer.pool, answer.tier).inc()

    def observe_pool(self, status: PoolStatus) -> None:
        """A pool's latest status report (its cost per hour as ``labelloop pools status`` shows it)."""
        from streams.operator import cost_per_hour

        labels = {"pool": status.pool, "tier": status.tier}
        self.pool_workers.labels(**labels).set(status.workers)
        self.pool_active.labels(**labels).set(1.0 if status.active else 0.0)
        self.pool_backlog.labels(**labels).set(status.backlog)
        self.pool_in_progress.labels(**labels).set(status.in_progress)
        self.pool_queue_rate.labels(**labels).set(status.arrival_rate_per_min / 60.0)
        self.pool_capacity.labels(**labels).set(status.event_capacity_per_min / 60.0)
        self.pool_cost.labels(**labels).set(cost_per_hour(status))

    def observe_model_metrics(self, snapshot: ModelMetrics) -> None:
        """A ``model-metrics`` snapshot: precision and recall (production), or the online model's figures."""
        task = snapshot.task
        for name, estimate in snapshot.metrics.items():
            bounds = {"estimate": estimate.value, "lower": estimate.lower, "upper": estimate.upper}
            if name == "auto_accept_precision":
                for bound, value in bounds.items():
                    if value is not None:
                        self.precision.labels(task=task, bound=bound).set(value)
                self.estimate_labels.labels(task=task, metric=name).set(estimate.n)
            elif name.startswith("recall."):
                klass = name.removeprefix("recall.")
                for bound, value in bounds.items():
                    if value is not None:
                        self.recall.labels(task=task, **{"class": klass}, bound=bound).set(value)
                self.estimate_labels.labels(task=task, metric=name).set(estimate.n)
            elif name in ("prequential_accuracy", "rolling_accuracy"):
                window = name.removesuffix("_accuracy")
                self.online_accuracy.labels(task=task, window=window).set(estimate.value)
                if window == "prequential":
                    self.online_labels.labels(task=task).set(estimate.n)
            elif name in ("prequential_macro_f1", "rolling_macro_f1"):
                self.online_macro_f1.labels(task=task, window=name.removesuffix("_macro_f1")).set(
                    estimate.value
                )
            elif name in ("prequential_log_loss", "rolling_log_loss"):
                self.online_log_loss.labels(task=task, window=name.removesuffix("_log_loss")).set(
                    estimate.value
                )

    def observe_alert(self, alert: DriftAlert) -> None:
        """A drift alert was published (counted, and kept for the dashboard's time axis)."""
        self.drift_alerts.labels(signal=alert.signal, detector_kind=alert.detector_kind).inc()
        self.recent_alerts.append(
            AlertMark(alert.detected_at, alert.signal, alert.detector, alert.task, alert.message)
        )

    def observe_lag(self, lag: Mapping[tuple[str, int], int]) -> None:
        """The consumer lag of the partitions this worker owns now (others are dropped)."""
        self.consumer_lag.clear()
        for (topic, partition), records in lag.items():
            self.consumer_lag.labels(topic=self.topic(topic), partition=str(partition)).set(records)

    # -- reading -------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)

    def families(self) -> list[Metric]:
        """Every metric family with its samples, as the registry collects them now."""
        return list(self.registry.collect())

    def family_names(self) -> set[str]:
        """The series names a query can use (counters with ``_total``, histograms' ``_bucket`` etc.)."""
        names: set[str] = set()
        for family in self.registry.collect():
            names.update(sample.name for sample in family.samples)
            # A family without observations (or labels set) has no samples yet: name its series.
            if family.type == "histogram":
                names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
            elif family.type == "counter":
                names.add(f"{family.name}_total")
            else:
                names.add(family.name)
        return names

    def value(self, name: str, **labels: str) -> float | None:
        """One sample's current value (e.g. ``labelloop_pool_backlog_tasks``, pool="simulated")."""
        return self.registry.get_sample_value(name, labels)

    def snapshot(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Every sample now, by sample name: ``[(labels, value), ...]`` (the dashboard's input)."""
        found: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                found.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
        return found


def total(samples: Iterable[tuple[dict[str, str], float]], **where: str) -> float:
    """The sum of the samples whose labels match ``where``.

    >>> total([({"action": "accept"}, 3.0), ({"action": "review"}, 2.0)], action="review")
    2.0
    """
    return sum(value for labels, value in samples if all(labels.get(k) == v for k, v in where.items()))


def lag_by_partition(
    end_offsets: Mapping[Any, int], committed: Mapping[Any, int | None]
) -> dict[tuple[str, int], int]:
    """Consumer lag per partition: its end offset minus the group's committed offset.

    A partition with no commit yet lags by its whole log end (the group starts at
    the earliest offset); a commit at or past the end is no lag. Keys are
    ``TopicPartition``-likes (``.topic``, ``.partition``).

    >>> from collections import namedtuple
    >>> TP = namedtuple("TP", "topic partition")
    >>> lag_by_partition({TP("t", 0): 10, TP("t", 1): 5}, {TP("t", 0): 7})
    {('t', 0): 3, ('t', 1): 5}
    """
    return {
        (place.topic, place.partition): max(0, end - (committed.get(place) or 0))
        for place, end in end_offsets.items()
    }
