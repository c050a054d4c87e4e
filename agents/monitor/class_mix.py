"""ADWIN on each predicted class's share: the production model's class mix moved."""

from __future__ import annotations

from datetime import datetime

from river import drift

from agents.monitor.detectors import MonitorSettings, adwin_change, drift_alert
from schemas import DriftAlert, PredictionEvent


class ClassMixMonitor:
    """One ADWIN per predicted class on the indicator "this event was predicted as the class".

    Each indicator's mean is the class's share of the production model's
    predictions, over every event in the predictions topic's order (see
    :class:`~agents.monitor.confidence.ConfidenceMonitor` for why not Labels). When several
    classes' shares move at once (with two classes they always do) one alert
    names the class whose share moved most. Up to ``max_classes`` classes are
    watched; a class first seen later starts its detector then.

    Examples
    --------
    >>> import random
    >>> monitor = ClassMixMonitor(MonitorSettings(), task="default")
    >>> rng = random.Random(5)
    >>> changes = [monitor.observe_class("fraud" if rng.random() < (0.1 if i < 3000 else 0.3) else "ok")
    ...            for i in range(4000)]
    >>> first = next(i for i, change in enumerate(changes) if change is not None)
    >>> label, before, after = changes[first]
    >>> 3000 < first < 3400, label in ("fraud", "ok")
    (True, True)
    """

    def __init__(self, settings: MonitorSettings, task: str) -> None:
        self.settings = settings
        self.task = task
        self.detectors: dict[str, drift.ADWIN] = {}
        self._counts: dict[str, int] = {}
        self.observations = 0
        self.alerts = 0

    @property
    def name(self) -> str:
        """The detector's name (the key of its alerts)."""
        return f"adwin-class-mix-{self.task}"

    def observe_class(self, predicted: str) -> tuple[str, float, float] | None:
        """Feed one predicted class; (class, share before, share after) when the mix moved."""
        self.observations += 1
        if predicted not in self.detectors and len(self.detectors) < self.settings.max_classes:
            self.detectors[predicted] = drift.ADWIN(delta=self.settings.adwin_delta)
            self._counts[predicted] = 0
        moved: list[tuple[str, float, float]] = []
        for label, detector in self.detectors.items():
            change = adwin_change(detector, 1.0 if label == predicted else 0.0)
            self._counts[label] += 1
            if change is not None and self._counts[label] >= self.settings.min_observations:
                moved.append((label, *change))
        if not moved:
            return None
        self.alerts += 1
        return max(moved, key=lambda change: abs(change[2] - change[1]))

    def observe(
        self,
        prediction: PredictionEvent,
        now: datetime,
        *,
        partition: int | None = None,
        offset: int | None = None,
    ) -> DriftAlert | None:
        """Feed one prediction; the alert when the class mix moved."""
        change = self.observe_class(prediction.predicted_label)
        if change is None:
            return None
        moved, before, after = change
        direction = "rose" if after > before else "fell"
        return drift_alert(
            detector=self.name,
            kind="ADWIN",
            signal="class_mix",
            task=self.task,
            observation=self.observations,
            now=now,
            before=before,
            after=after,
            partition=partition,
            offset=offset,
            predicted_class=moved,
            message=(
                f"share of events predicted {moved!r} {direction} from {before:.3f} to {after:.3f} "
                f"after {self.observations} events"
            ),
        )
