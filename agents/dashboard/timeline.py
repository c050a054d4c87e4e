"""The dashboard's time series: samples of the worker's Prometheus registry, kept for a while.

Every few seconds the worker takes a :class:`Sample` of its
:class:`~streams.metrics.LoopMetrics` (the same registry ``/metrics`` serves)
into a :class:`Timeline`; :meth:`Timeline.series` turns the samples into the
arrays the page plots. Rates (predictions and DLQ records per minute, the share
of decisions sent to humans) are differences of counters over a sliding window,
the way Prometheus' ``rate()`` reads them. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streams.metrics import AlertMark, total

Samples = Mapping[str, list[tuple[dict[str, str], float]]]
#: Per pool: the fields of a sample and the metric each is read from (rates per second * 60).
POOL_FIELDS = {
    "workers": ("labelloop_pool_workers", 1.0),
    "backlog": ("labelloop_pool_backlog_tasks", 1.0),
    "in_progress": ("labelloop_pool_in_progress_tasks", 1.0),
    "queue_rate_per_min": ("labelloop_pool_queue_rate_tasks_per_second", 60.0),
    "capacity_per_min": ("labelloop_pool_capacity_tasks_per_second", 60.0),
    "cost_per_hour": ("labelloop_pool_cost_per_hour", 1.0),
    "active": ("labelloop_pool_active", 1.0),
}
BOUNDS = ("estimate", "lower", "upper")
#: The time-to-label quantiles plotted (against the SLA an operator set).
QUANTILES = (0.5, 0.95)


@dataclass(frozen=True)
class Sample:
    """What the registry said at one moment, reduced to what the dashboard plots."""

    at: datetime
    #: Cumulative counts.
    predictions: float
    accepted: float
    reviewed: float
    dlq: float
    labels: dict[str, float]
    #: Gauges.
    pools: dict[str, dict[str, float]]
    pool_tiers: dict[str, str]
    target_backlog: float | None
    precision: dict[str, dict[str, float]]
    recall: dict[str, dict[str, float]]
    online_accuracy: dict[str, dict[str, float]]
    #: Records not yet committed, per topic (the partitions this worker owns).
    consumer_lag: dict[str, float]
    #: Cumulative time-to-label buckets per label source: upper bound (s) -> count.
    time_to_label: dict[str, dict[float, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, samples: Samples, at: datetime) -> Sample:
        """Reduce a registry snapshot (:meth:`LoopMetrics.snapshot`) taken at ``at``.

        Examples
        --------
        >>> from datetime import datetime, UTC
        >>> from streams.metrics import LoopMetrics
        >>> metrics = LoopMetrics()
        >>> metrics.decided("accept", "accepted"); metrics.decided("review", "low_confidence")
        >>> sample = Sample.of(metrics.snapshot(), datetime(2026, 1, 1, tzinfo=UTC))
        >>> sample.accepted, sample.reviewed
        (1.0, 1.0)
        """
        decisions = samples.get("labelloop_router_decisions_total", [])
        pools: dict[str, dict[str, float]] = {}
        tiers: dict[str, str] = {}
        for name, (metric, scale) in POOL_FIELDS.items():
            for labels, value in samples.get(metric, []):
                pools.setdefault(labels["pool"], {})[name] = value * scale
                tiers[labels["pool"]] = labels.get("tier", "")
        precision: dict[str, dict[str, float]] = {}
        for labels, value in samples.get("labelloop_auto_accept_precision_ratio", []):
            precision.setdefault(labels["task"], {})[labels["bound"]] = value
        for labels, value in samples.get("labelloop_estimate_labels", []):
            if labels["metric"] == "auto_accept_precision":
                precision.setdefault(labels["task"], {})["n"] = value
        recall: dict[str, dict[str, float]] = {}
        for labels, value in samples.get("labelloop_recall_ratio", []):
            recall.setdefault(f"{labels['task']}/{labels['class']}", {})[labels["bound"]] = value
        online: dict[str, dict[str, float]] = {}
        for labels, value in samples.get("labelloop_online_model_accuracy_ratio", []):
            online.setdefault(labels["task"], {})[labels["window"]] = value
        target = samples.get("labelloop_router_target_backlog_tasks", [])
        return cls(
            at=at,
            predictions=total(
                samples.get("labelloop_records_consumed_total", []), stage="router", topic="predictions"
            ),
            accepted=total(decisions, action="accept"),
            reviewed=total(decisions, action="review"),
            dlq=total(samples.get("labelloop_dlq_records_total", [])),
            labels={
                source: total(samples.get("labelloop_labels_published_total", []), source=source)
                for source in ("model", "crowd", "expert")
            },
            pools=pools,
            pool_tiers=tiers,
            target_backlog=target[0][1] if target else None,
            precision=precision,
            recall=recall,
            online_accuracy=online,
            consumer_lag=_by(samples.get("labelloop_consumer_lag_records", []), "topic"),
            time_to_label=_buckets(samples.get("labelloop_time_to_label_seconds_bucket", []), "source"),
        )


def _by(samples: Iterable[tuple[dict[str, str], float]], label: str) -> dict[str, float]:
    """Sum samples by one label's value."""
    found: dict[str, float] = {}
    for labels, value in samples:
        found[labels[label]] = found.get(labels[label], 0.0) + value
    return found


def _buckets(samples: Iterable[tuple[dict[str, str], float]], label: str) -> dict[str, dict[float, float]]:
    found: dict[str, dict[float, float]] = {}
    for labels, value in samples:
        found.setdefault(labels[label], {})[float(labels["le"])] = value
    return found


def quantile(buckets: Mapping[float, float], q: float) -> float | None:
    """The ``q`` quantile of cumulative histogram buckets, interpolated as Prometheus does.

    ``buckets`` maps each upper bound (``+Inf`` included) to the count at or below it;
    None without observations. A quantile in the ``+Inf`` bucket is the largest finite bound.

    >>> quantile({1.0: 2.0, 5.0: 6.0, 10.0: 10.0, float("inf"): 10.0}, 0.5)  # rank 5 of 10, in (1, 5]
    4.0
    >>> quantile({1.0: 0.0, float("inf"): 0.0}, 0.5) is None
    True
    """
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def _per_min(later: float, earlier: float, seconds: float) -> float | None:
    return None if seconds <= 0 else max(0.0, later - earlier) * 60.0 / seconds


@dataclass
class Timeline:
    """The last ``max_points`` samples; rates over ``window_s``.

    Examples
    --------
    >>> from datetime import datetime, timedelta, UTC
    >>> from streams.metrics import LoopMetrics
    >>> metrics, timeline = LoopMetrics(), Timeline(window_s=10.0)
    >>> start = datetime(2026, 1, 1, tzinfo=UTC)
    >>> timeline.add(Sample.of(metrics.snapshot(), start))
    >>> for _ in range(3):
    ...     metrics.decided("accept", "accepted")
    >>> metrics.decided("review", "control")
    >>> timeline.add(Sample.of(metrics.snapshot(), start + timedelta(seconds=10)))
    >>> series = timeline.series([])
    >>> series["human_share"], series["decisions_per_min"]
    ([None, 0.25], [None, 24.0])
    """

    max_points: int = 3_600
    window_s: float = 10.0
    samples: deque[Sample] = field(init=False)

    def __post_init__(self) -> None:
        self.samples = deque(maxlen=self.max_points)

    def add(self, sample: Sample) -> None:
        """Keep one more sample (the oldest goes when full)."""
        self.samples.append(sample)

    def _earlier(self, points: list[Sample], index: int) -> Sample | None:
        """The latest sample at least ``window_s`` before ``points[index]`` (or the first one)."""
        at = points[index].at
        found = None
        for position in range(index - 1, -1, -1):
            found = points[position]
            if (at - found.at).total_seconds() >= self.window_s:
                break
        return found

    def series(
        self, alerts: Iterable[AlertMark], *, since: datetime | None = None, **extra: Any
    ) -> dict[str, Any]:
        """The plotted arrays (one value per sample, None where unknown) and the alerts to mark."""
        points = list(self.samples)
        first = 0
        if since is not None:
            first = next((i for i, point in enumerate(points) if point.at >= since), len(points))
        shown = range(first, len(points))
        pool_names = sorted({name for point in points for name in point.pools})
        tiers = {name: tier for point in points for name, tier in point.pool_tiers.items()}
        sources = sorted({source for point in points for source in point.time_to_label})
        time_to_label: dict[str, dict[str, list[float | None]]] = {
            source: {f"p{round(q * 100)}": [] for q in QUANTILES} for source in sources
        }
        human_share: list[float | None] = []
        decisions_per_min: list[float | None] = []
        predictions_per_min: list[float | None] = []
        dlq_per_min: list[float | None] = []
        for index in shown:
            point, earlier = points[index], self._earlier(points, index)
            for source in sources:
                # The labels of the window only: bucket counts now minus those at its start.
                now_buckets = point.time_to_label.get(source, {})
                before = earlier.time_to_label.get(source, {}) if earlier is not None else {}
                window = {bound: count - before.get(bound, 0.0) for bound, count in now_buckets.items()}
                for q in QUANTILES:
                    found = quantile(window, q) if earlier is not None else None
                    time_to_label[source][f"p{round(q * 100)}"].append(found)
            if earlier is None:
                human_share.append(None)
                decisions_per_min.append(None)
                predictions_per_min.append(None)
                dlq_per_min.append(None)
                continue
            seconds = (point.at - earlier.at).total_seconds()
            reviewed = point.reviewed - earlier.reviewed
            decided = reviewed + point.accepted - earlier.accepted
            human_share.append(round(reviewed / decided, 4) if decided > 0 else None)
            decisions_per_min.append(
                _per_min(point.accepted + point.reviewed, earlier.accepted + earlier.reviewed, seconds)
            )
            predictions_per_min.append(_per_min(point.predictions, earlier.predictions, seconds))
            dlq_per_min.append(_per_min(point.dlq, earlier.dlq, seconds))

        def column(read: Any) -> list[Any]:
            return [read(points[index]) for index in shown]

        def nested(attribute: str, keys: Iterable[str]) -> dict[str, dict[str, list[Any]]]:
            names = sorted({name for point in points for name in getattr(point, attribute)})
            return {
                name: {
                    key: column(
                        lambda point, name=name, key=key: getattr(point, attribute).get(name, {}).get(key)
                    )
                    for key in keys
                }
                for name in names
            }

        latest = points[-1] if points else None
        return {
            "t": column(lambda point: point.at.isoformat()),
            "window_s": self.window_s,
            "pools": {
                name: {
                    "tier": tiers.get(name, ""),
                    **{
                        key: column(lambda point, name=name, key=key: point.pools.get(name, {}).get(key))
                        for key in POOL_FIELDS
                    },
                }
                for name in pool_names
            },
            "target_backlog": column(lambda point: point.target_backlog),
            "human_share": human_share,
            "decisions_per_min": decisions_per_min,
            "predictions_per_min": predictions_per_min,
            "dlq_per_min": dlq_per_min,
            "time_to_label_s": time_to_label,
            "consumer_lag": {
                topic: column(lambda point, topic=topic: point.consumer_lag.get(topic))
                for topic in sorted({topic for point in points for topic in point.consumer_lag})
            },
            "precision": nested("precision", (*BOUNDS, "n")),
            "recall": nested("recall", BOUNDS),
            "online_accuracy": nested("online_accuracy", ("prequential", "rolling")),
            "alerts": [
                {
                    "t": alert.at.isoformat(),
                    "signal": alert.signal,
                    "detector": alert.detector,
                    "task": alert.task,
                    "message": alert.message,
                }
                for alert in alerts
                if since is None or alert.at >= since
            ],
            "totals": {
                "predictions": latest.predictions if latest else 0.0,
                "accepted": latest.accepted if latest else 0.0,
                "reviewed": latest.reviewed if latest else 0.0,
                "dlq": latest.dlq if latest else 0.0,
                "labels": dict(latest.labels) if latest else {},
            },
            **extra,
        }
