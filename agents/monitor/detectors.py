"""Drift detectors over the loop's signals: settings, the alert they share, the production model's error."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from river import drift

from agents.monitor.response import ResponseSettings
from schemas import DriftAlert, DriftSignal, Label

#: Human routes whose labels measure the production model's error: the control group (a uniform
#: sample of would-be-accepted events: unbiased) and reviews (low confidence: biased, but many).
ErrorRoute = Literal["control", "low_confidence"]


class MonitorSettings(BaseModel):
    """Drift monitoring (``LABELLOOP_MONITOR__*``)."""

    model_config = ConfigDict(frozen=True)

    #: ADWIN's confidence for the class mix and the queue rate: smaller means fewer false
    #: alarms and slower detection.
    adwin_delta: float = Field(default=0.002, gt=0.0, lt=1.0)
    #: ADWIN's confidence on the model's 0/1 error, and how often it tests for a cut (every
    #: n-th label; River's default is 32). Chosen on tuning seeds apart from the L1 bench's
    #: (``python -m bench.drift_tuning``): 0.02 tested at every label found SEA's small error
    #: jump (0.06 -> 0.11) within 1,000 labels in 97% of runs where River's defaults (0.002,
    #: every 32nd) found 73%, with 0.12 false alarms per 100,000 labels on three streams.
    error_delta: float = Field(default=0.02, gt=0.0, lt=1.0)
    error_clock: int = Field(default=1, ge=1)
    #: Observations before an alarm may be raised (ADWIN's warm-up).
    min_observations: int = Field(default=100, ge=0)
    #: The routes whose first human labels feed a model-error detector each (one per route).
    error_routes: tuple[ErrorRoute, ...] = ("control", "low_confidence")
    #: The KS window on the production model's confidence (see :class:`KSWindow`): its
    #: significance level, window, newest part compared with the rest, and how often it tests.
    ks_alpha: float = Field(default=1e-5, gt=0.0, lt=1.0)
    ks_window: int = Field(default=500, ge=20)
    ks_recent: int = Field(default=100, ge=5)
    ks_test_every: int = Field(default=20, ge=1)
    #: Classes whose predicted share is watched (one ADWIN each); more classes are not watched.
    max_classes: int = Field(default=20, ge=1, le=1_000)
    #: The queue rate is counted in buckets of this many seconds of ``requested_at``.
    queue_bucket_s: float = Field(default=10.0, gt=0.0)
    #: Buckets before a queue-rate alarm may be raised.
    queue_min_buckets: int = Field(default=12, ge=0)
    #: Seconds between two ticks (closing queue-rate buckets, reverting settled reactions).
    tick_every_s: float = Field(default=1.0, gt=0.0)
    #: How the loop reacts to an alert (raise the control share, tighten auto-accept, notify).
    response: ResponseSettings = ResponseSettings()


def adwin_change(detector: drift.ADWIN, value: float) -> tuple[float, float] | None:
    """Update ADWIN with ``value``; (before, after) means when it drops part of its window.

    ``before`` is the mean of the part of the window ADWIN dropped (the old
    regime), ``after`` the mean of the part it kept (the new one).

    >>> detector = drift.ADWIN()
    >>> changes = [adwin_change(detector, 0.0 if i < 500 else 1.0) for i in range(600)]
    >>> before, after = next(change for change in changes if change is not None)
    >>> before, after > 0.0
    (0.0, True)
    """
    total_before = float(detector.estimation) * float(detector.width)
    width_before = float(detector.width)
    detector.update(value)
    if not detector.drift_detected:
        return None
    kept_width = float(detector.width)
    after = float(detector.estimation)
    dropped_width = width_before + 1.0 - kept_width
    dropped_total = total_before + value - after * kept_width
    before = dropped_total / dropped_width if dropped_width > 0 else after
    return before, after


def drift_alert(
    *,
    detector: str,
    kind: str,
    signal: DriftSignal,
    task: str,
    observation: int,
    now: datetime,
    before: float,
    after: float,
    message: str,
    partition: int | None = None,
    offset: int | None = None,
) -> DriftAlert:
    """The alert every detector publishes (one place that fills the wire model)."""
    return DriftAlert(
        detector=detector,
        detector_kind=kind,
        signal=signal,
        task=task,
        observation=observation,
        source_partition=partition,
        source_offset=offset,
        detected_at=now,
        before=before,
        after=after,
        message=message,
    )


class ModelErrorMonitor:
    """ADWIN on the production model's 0/1 error over the first human labels of one route.

    ADWIN keeps a window whose two halves never differ significantly; when they
    do it drops the old half and fires. ``before`` and ``after`` in the alert
    are the error rate estimated just before the drop and just after.

    On ``route="control"`` (the default) the labels are a uniform sample of
    the events the router would accept, so the error is unbiased for them
    without weights: every control label drawn under one control share has the
    same inclusion weight, and a raised share (a drift response) adds labels
    from the same population, which changes how fast the detector learns but
    not what it estimates. ``route="low_confidence"`` watches reviews: many
    more labels, but biased toward hard events, and a tightened threshold
    changes which events are reviewed (so its error can move with the policy).

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

    def __init__(self, settings: MonitorSettings, task: str, route: ErrorRoute = "control") -> None:
        self.settings = settings
        self.task = task
        self.route = route
        self.detector = drift.ADWIN(delta=settings.error_delta, clock=settings.error_clock)
        self.observations = 0
        self.alerts = 0

    @property
    def name(self) -> str:
        """The detector's name (the key of its alerts)."""
        population = "control" if self.route == "control" else "reviewed"
        return f"adwin-model-error-{population}-{self.task}"

    def observe_error(self, error: bool) -> tuple[float, float] | None:
        """Feed one 0/1 error; returns (before, after) error rates when drift is detected."""
        change = adwin_change(self.detector, 1.0 if error else 0.0)
        self.observations += 1
        if change is None or self.observations < self.settings.min_observations:
            return None
        self.alerts += 1
        before, after = change
        return min(max(before, 0.0), 1.0), after

    def observe(
        self,
        label: Label,
        now: datetime,
        *,
        partition: int | None = None,
        offset: int | None = None,
    ) -> DriftAlert | None:
        """Feed a Label; only first human labels of this monitor's route count."""
        if not label.is_human or label.revision != 1 or label.route != self.route:
            return None
        change = self.observe_error(not label.model_was_right)
        if change is None:
            return None
        before, after = change
        direction = "rose" if after > before else "fell"
        population = "the control group" if self.route == "control" else "reviewed events"
        return drift_alert(
            detector=self.name,
            kind="ADWIN",
            signal="model_error",
            task=self.task,
            observation=self.observations,
            now=now,
            before=before,
            after=after,
            partition=partition,
            offset=offset,
            message=(
                f"production model error on {population} {direction} from "
                f"{before:.3f} to {after:.3f} after {self.observations} labels"
            ),
        )
