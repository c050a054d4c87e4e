"""ADWIN on the queue rate: how many events per minute are sent to humans, bucket by bucket."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from river import drift

from agents.monitor.detectors import MonitorSettings, adwin_change, drift_alert
from schemas import DriftAlert, LabelRequest

#: Empty buckets filled in at most when requests resume after a silence (longer gaps are skipped).
MAX_GAP_BUCKETS = 360


class QueueRateMonitor:
    """The queue rate (label requests per minute, by ``requested_at``) in fixed buckets, fed to ADWIN.

    A bucket is closed, and its rate fed to the detector, when a request of a
    later bucket arrives or when :meth:`tick` is past the bucket's end by one
    more bucket (late requests of the last bucket still count). Buckets with
    no requests count as a rate of zero. A worker counts the requests of the
    partitions it owns: with several workers each watches its share of the
    queue (the rates in its alerts are that share's).

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> import random
    >>> monitor = QueueRateMonitor(MonitorSettings(queue_bucket_s=10), task="default")
    >>> rng = random.Random(2)
    >>> start = datetime(2026, 1, 1, tzinfo=UTC)
    >>> changes = []
    >>> for bucket in range(200):
    ...     for _ in range(rng.randint(40, 60) if bucket < 100 else rng.randint(120, 180)):
    ...         changes += monitor.observe_at(start + timedelta(seconds=10 * bucket + rng.random() * 10))
    >>> (bucket, before, after), *_ = changes
    >>> first_bucket = int(start.timestamp() // 10)
    >>> 100 <= bucket - first_bucket < 105, round(before, -1), after > before
    (True, 300.0, True)
    """

    def __init__(self, settings: MonitorSettings, task: str) -> None:
        self.settings = settings
        self.task = task
        # clock=1: test for a change after every bucket (River's default tests every 32nd update,
        # which is 5 minutes of 10 s buckets).
        self.detector = drift.ADWIN(delta=settings.adwin_delta, clock=1)
        self.bucket: int | None = None
        self.count = 0
        self.buckets = 0
        self.alerts = 0

    @property
    def name(self) -> str:
        """The detector's name (the key of its alerts)."""
        return f"adwin-queue-rate-{self.task}"

    def _bucket_of(self, when: datetime) -> int:
        return math.floor(when.timestamp() / self.settings.queue_bucket_s)

    def _close_until(self, bucket: int) -> list[tuple[int, float, float]]:
        """Close every bucket before ``bucket``; the (bucket, before, after) rate changes found."""
        changes: list[tuple[int, float, float]] = []
        if self.bucket is None or bucket <= self.bucket:
            return changes
        per_min = 60.0 / self.settings.queue_bucket_s
        rates = [self.count * per_min] + [0.0] * min(bucket - self.bucket - 1, MAX_GAP_BUCKETS)
        for index, rate in enumerate(rates):
            change = adwin_change(self.detector, rate)
            self.buckets += 1
            if change is not None and self.buckets >= self.settings.queue_min_buckets:
                self.alerts += 1
                changes.append((self.bucket + index, max(change[0], 0.0), max(change[1], 0.0)))
        self.bucket, self.count = bucket, 0
        return changes

    def observe_at(self, requested_at: datetime) -> list[tuple[int, float, float]]:
        """Count one request sent at ``requested_at``; rate changes of the buckets it closed."""
        bucket = self._bucket_of(requested_at)
        if self.bucket is None:
            self.bucket = bucket
        changes = self._close_until(bucket)
        self.count += 1  # a late request (an older bucket) counts in the open one
        return changes

    def tick_at(self, now: datetime) -> list[tuple[int, float, float]]:
        """Close the buckets that ended more than one bucket before ``now``."""
        return self._close_until(self._bucket_of(now) - 1)

    def _alerts(
        self,
        changes: list[tuple[int, float, float]],
        now: datetime,
        partition: int | None,
        offset: int | None,
    ) -> list[DriftAlert]:
        alerts = []
        for bucket, before, after in changes:
            direction = "rose" if after > before else "fell"
            ended = datetime.fromtimestamp((bucket + 1) * self.settings.queue_bucket_s, UTC)
            alerts.append(
                drift_alert(
                    detector=self.name,
                    kind="ADWIN",
                    signal="queue_rate",
                    task=self.task,
                    observation=self.buckets,
                    now=now,
                    before=before,
                    after=after,
                    partition=partition,
                    offset=offset,
                    message=(
                        f"queue rate {direction} from {before:.1f} to {after:.1f} requests/min "
                        f"in the {self.settings.queue_bucket_s:g} s bucket ending "
                        f"{(ended - timedelta(microseconds=1)).isoformat(timespec='seconds')}"
                    ),
                )
            )
        return alerts

    def observe(
        self,
        request: LabelRequest,
        now: datetime,
        *,
        partition: int | None = None,
        offset: int | None = None,
    ) -> list[DriftAlert]:
        """Count a LabelRequest (every route: each one is work for people)."""
        return self._alerts(self.observe_at(request.requested_at), now, partition, offset)

    def tick(self, now: datetime) -> list[DriftAlert]:
        """Close the buckets time has ended (a silent queue is a rate of zero)."""
        return self._alerts(self.tick_at(now), now, None, None)
