"""Drift detectors over the loop's signals; the first: the production model's error on reviewed events."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from river import drift

from schemas import DriftAlert, Label


class MonitorSettings(BaseModel):
    """Drift monitoring (``LABELLOOP_MONITOR__*``)."""

    model_config = ConfigDict(frozen=True)

    #: ADWIN's confidence: smaller means fewer false alarms and slower detection.
    adwin_delta: float = Field(default=0.002, gt=0.0, lt=1.0)
    #: Observations before an alarm may be raised (ADWIN's warm-up).
    min_observations: int = Field(default=100, ge=0)


class ModelErrorMonitor:
    """ADWIN on the production model's 0/1 error over human-labeled, reviewed events.

    ADWIN keeps a window whose two halves never differ significantly; when they
    do it drops the old half and fires. ``before`` and ``after`` in the alert
    are the error rate estimated just before the drop and just after.

    Examples
    --------
    >>> import random
    >>> monitor = ModelErrorMonitor(MonitorSettings(), task="default")
    >>> rng = random.Random(1)
    >>> fired = [i for i in range(4000) if monitor.observe_error(
    ...     rng.random() < (0.1 if i < 2000 else 0.3)) is not None]
    >>> 2000 < fired[0] < 2400
    True
    """

    def __init__(self, settings: MonitorSettings, task: str) -> None:
        self.settings = settings
        self.task = task
        self.detector = drift.ADWIN(delta=settings.adwin_delta)
        self.observations = 0
        self.alerts = 0

    @property
    def name(self) -> str:
        """The detector's name (the key of its alerts)."""
        return f"adwin-model-error-{self.task}"

    def observe_error(self, error: bool) -> tuple[float, float] | None:
        """Feed one 0/1 error; returns (before, after) error rates when drift is detected.

        ``before`` is the mean of the part of the window ADWIN dropped (the old
        regime), ``after`` the mean of the part it kept (the new one).
        """
        total_before = float(self.detector.estimation) * float(self.detector.width)
        width_before = float(self.detector.width)
        self.detector.update(1.0 if error else 0.0)
        self.observations += 1
        if self.detector.drift_detected and self.observations >= self.settings.min_observations:
            self.alerts += 1
            kept_width = float(self.detector.width)
            after = float(self.detector.estimation)
            dropped_width = width_before + 1.0 - kept_width
            dropped_total = total_before + (1.0 if error else 0.0) - after * kept_width
            before = dropped_total / dropped_width if dropped_width > 0 else after
            return min(max(before, 0.0), 1.0), after
        return None

    def observe(
        self,
        label: Label,
        now: datetime,
        *,
        partition: int | None = None,
        offset: int | None = None,
    ) -> DriftAlert | None:
        """Feed a Label; only first human labels of reviewed events count (unbiased for them)."""
        if not label.is_human or label.revision != 1 or label.route != "low_confidence":
            return None
        change = self.observe_error(not label.model_was_right)
        if change is None:
            return None
        before, after = change
        direction = "rose" if after > before else "fell"
        return DriftAlert(
            detector=self.name,
            detector_kind="ADWIN",
            signal="model_error",
            task=self.task,
            observation=self.observations,
            source_partition=partition,
            source_offset=offset,
            detected_at=now,
            before=before,
            after=after,
            message=(
                f"production model error on reviewed events {direction} from "
                f"{before:.3f} to {after:.3f} after {self.observations} labels"
            ),
        )
