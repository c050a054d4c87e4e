"""KSWIN on the production model's confidence: a change in the score distribution (before labels say so)."""

from __future__ import annotations

import statistics
from collections import deque
from datetime import datetime

from river import drift

from agents.monitor.detectors import MonitorSettings, drift_alert
from schemas import DriftAlert, Label


class ConfidenceMonitor:
    """Kolmogorov–Smirnov windowing (KSWIN) on the confidence of every event's production prediction.

    Every event gets exactly one revision-1 Label (the model's own when it is
    accepted, a human one otherwise), and each carries the production model's
    confidence, so this signal sees every event, labeled by humans or not, and
    moves as soon as the inputs (or the model) change. KSWIN compares the
    last ``kswin_stat_size`` values with a sample of the older part of its
    window and fires when a KS test rejects at ``kswin_alpha``; it sees shape
    changes that a mean detector misses. It costs ~250 us an update, so only
    every ``confidence_stride``-th confidence is fed. ``before`` and ``after``
    are the mean confidence of the older part of the window and of the newest
    ``kswin_stat_size`` values when it fired.

    References
    ----------
    Raab, C., Heusinger, M., Schleif, F.-M. (2020). Reactive soft prototype
    computing for concept drift streams. Neurocomputing 416.

    Examples
    --------
    >>> import random
    >>> monitor = ConfidenceMonitor(MonitorSettings(confidence_stride=1), task="default")
    >>> rng = random.Random(3)
    >>> fired = [i for i in range(3000)
    ...          if monitor.observe_confidence(rng.uniform(0.9, 1.0) if i < 2000 else rng.uniform(0.7, 0.9))]
    >>> 2000 <= fired[0] < 2100
    True
    """

    def __init__(self, settings: MonitorSettings, task: str) -> None:
        self.settings = settings
        self.task = task
        self.detector = drift.KSWIN(
            alpha=settings.kswin_alpha,
            window_size=settings.kswin_window,
            stat_size=settings.kswin_stat_size,
            seed=7,
        )
        self._window: deque[float] = deque(maxlen=settings.kswin_window)
        self.seen = 0
        self.observations = 0
        self.alerts = 0

    @property
    def name(self) -> str:
        """The detector's name (the key of its alerts)."""
        return f"kswin-confidence-{self.task}"

    def observe_confidence(self, confidence: float) -> tuple[float, float] | None:
        """Feed one confidence; (before, after) mean confidence when the distribution changed."""
        self.seen += 1
        if (self.seen - 1) % self.settings.confidence_stride:
            return None
        self.observations += 1
        self._window.append(confidence)
        self.detector.update(confidence)
        if not self.detector.drift_detected:
            return None
        values = list(self._window)
        stat = self.settings.kswin_stat_size
        before = statistics.fmean(values[:-stat]) if len(values) > stat else statistics.fmean(values)
        after = statistics.fmean(values[-stat:])
        # KSWIN restarts from its newest values; so does the window the magnitudes come from.
        self._window = deque(values[-stat:], maxlen=self.settings.kswin_window)
        if self.observations < self.settings.min_observations:
            return None
        self.alerts += 1
        return before, after

    def observe(
        self,
        label: Label,
        now: datetime,
        *,
        partition: int | None = None,
        offset: int | None = None,
    ) -> DriftAlert | None:
        """Feed a Label: the revision-1 label of every event counts once."""
        if label.revision != 1:
            return None
        change = self.observe_confidence(label.provenance.model_confidence)
        if change is None:
            return None
        before, after = change
        direction = "rose" if after > before else "fell"
        return drift_alert(
            detector=self.name,
            kind="KSWIN",
            signal="confidence",
            task=self.task,
            observation=self.seen,
            now=now,
            before=before,
            after=after,
            partition=partition,
            offset=offset,
            message=(
                f"production model confidence distribution changed: mean {direction} from "
                f"{before:.3f} to {after:.3f} after {self.seen} events (KS test at alpha "
                f"{self.settings.kswin_alpha:g})"
            ),
        )
