"""Drift detectors over the loop's signals: settings, the alert they share, the production model's error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from river import drift

from agents.monitor.response import ResponseSettings
from schemas import DriftAlert, DriftSignal, Label
from streams.patches.river_adwin import adwin_step as adwin_step  # importable from here, as it always was

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
    #: (``python -m bench.drift_tuning``), with the per-class detectors below on: every
    #: candidate then found every drift within 1,000 labels, and 0.002 had the fewest false
    #: alarms (0.04 per 100,000 labels on three streams; 0.02, the default before the per-class
    #: detectors, had 0.24); a test at every label, not every 32nd, for the shorter delay (a
    #: class's detector counts only its class's labels, so every 32nd of them can be far apart).
    error_delta: float = Field(default=0.002, gt=0.0, lt=1.0)
    error_clock: int = Field(default=1, ge=1)
    #: Besides the error over all labels, one ADWIN (same delta and clock) per predicted class
    #: on the error among the labels the production model predicted as that class (a row of the
    #: confusion matrix), up to ``max_classes`` classes. A drift that moves the decision
    #: boundary puts all its new errors into the class the moved region is predicted as, where
    #: the error jumps far more than overall (SEA 8 -> 7: 0.06 -> 0.23 among predicted
    #: negatives, 0.06 -> 0.11 overall), and the alert names that class.
    error_per_class: bool = True
    #: Observations before an alarm may be raised (ADWIN's warm-up; per class for the
    #: per-class detectors).
    min_observations: int = Field(default=100, ge=0)
    #: The routes whose first human labels feed a model-error detector each (one per route).
    error_routes: tuple[ErrorRoute, ...] = ("control", "low_confidence")
    #: The KS window on the production model's confidence (see :class:`KSWindow`): its
    #: significance level, window, newest part compared with the rest, and how often it tests.
    ks_alpha: float = Field(default=1e-5, gt=0.0, lt=1.0)
    ks_window: int = Field(default=500, ge=20)
    ks_recent: int = Field(default=100, ge=5)
    ks_test_every: int = Field(default=20, ge=1)
    #: Classes whose predicted share (and, with ``error_per_class``, whose error) is watched,
    #: one ADWIN each; more classes are not watched.
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
    step = adwin_step(detector, value)
    return None if step is None else _change(detector, value, step)


def _change(detector: drift.ADWIN, value: float, step: tuple[float, float]) -> tuple[float, float]:
    """:func:`adwin_change`'s means, once :func:`adwin_step` saw a drift: ``step`` is its answer."""
    width_before, total = step
    # What ``estimation * width`` gave before the update (the division is not undone exactly).
    total_before = total / width_before * width_before if width_before else 0.0
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
    predicted_class: str | None = None,
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
        predicted_class=predicted_class,
    )


@dataclass(frozen=True, slots=True)
class ErrorChange:
    """A model-error detector fired: the error before and after, over all labels or one predicted class."""

    before: float
    after: float
    #: The predicted class whose error moved (None: the error over all labels).
    predicted_class: str | None = None
    #: Labels that detector had seen (all labels, or those predicted ``predicted_class``).
    observations: int = 0


class ModelErrorMonitor:
    """ADWIN on the production model's 0/1 error over the first human labels of one route.

    ADWIN keeps a window whose two halves never differ significantly; when they
    do it drops the old half and fires. ``before`` and ``after`` in the alert
    are the error rate estimated just before the drop and just after.

    With ``error_per_class`` (the default) one more ADWIN per predicted class
    watches the error among the labels the production model predicted as that
    class: a row of the confusion matrix. A concept drift that moves the
    decision boundary turns one region's events into errors, and they are all
    predicted as one class, so that class's error jumps by (the region's share)
    / (the class's share) while the overall error moves by the region's share
    only: a larger jump over fewer labels, which ADWIN sees sooner. The alert
    then names the class (``DriftAlert.predicted_class``). When several
    detectors fire on one label, the alert is the one whose error moved most.

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

    Errors confined to one predicted class are found there, and named:

    >>> monitor = ModelErrorMonitor(MonitorSettings(), task="default")
    >>> changes = []
    >>> for i in range(4000):
    ...     predicted = "fraud" if rng.random() < 0.3 else "ok"
    ...     rate = 0.4 if i >= 2000 and predicted == "fraud" else 0.05
    ...     changes.append(monitor.observe_error(rng.random() < rate, predicted))
    >>> first = next(i for i, change in enumerate(changes) if change is not None)
    >>> 2000 < first < 2300, changes[first].predicted_class
    (True, 'fraud')
    """

    def __init__(self, settings: MonitorSettings, task: str, route: ErrorRoute = "control") -> None:
        self.settings = settings
        self.task = task
        self.route = route
        self.detector = self._adwin()
        #: Per predicted class: its detector and how many labels it has seen.
        self.per_class: dict[str, drift.ADWIN] = {}
        self.class_observations: dict[str, int] = {}
        self.observations = 0
        self.alerts = 0
        # The settings read for every label (frozen, so read once).
        self._min_observations = settings.min_observations
        self._per_class = settings.error_per_class
        self._max_classes = settings.max_classes

    def _adwin(self) -> drift.ADWIN:
        return drift.ADWIN(delta=self.settings.error_delta, clock=self.settings.error_clock)

    @property
    def name(self) -> str:
        """The detector's name (the key of its alerts)."""
        population = "control" if self.route == "control" else "reviewed"
        return f"adwin-model-error-{population}-{self.task}"

    def observe_error(self, error: bool, predicted: str | None = None) -> ErrorChange | None:
        """Feed one 0/1 error (and the class the model predicted); the change, when drift is detected."""
        value = 1.0 if error else 0.0
        observations = self.observations = self.observations + 1
        # The change to report: over all labels, or the predicted class's when its error moved more
        # (on a tie, the overall one).
        moved: ErrorChange | None = None
        # adwin_change, its means worked out only when ADWIN saw a drift (the step runs per label).
        step = adwin_step(self.detector, value)
        if step is not None and observations >= self._min_observations:
            moved = ErrorChange(*_change(self.detector, value, step), observations=observations)
        if predicted is not None and self._per_class:
            detector = self.per_class.get(predicted)
            if detector is None and len(self.per_class) < self._max_classes:
                detector = self.per_class[predicted] = self._adwin()
                self.class_observations[predicted] = 0
            if detector is not None:
                seen = self.class_observations[predicted] = self.class_observations[predicted] + 1
                step = adwin_step(detector, value)
                if step is not None and seen >= self._min_observations:
                    before, after = _change(detector, value, step)
                    if moved is None or abs(after - before) > abs(moved.after - moved.before):
                        moved = ErrorChange(before, after, predicted, seen)
        if moved is None:
            return None
        self.alerts += 1
        return ErrorChange(
            min(max(moved.before, 0.0), 1.0), moved.after, moved.predicted_class, moved.observations
        )

    def observe(
        self,
        label: Label,
        now: datetime,
        *,
        partition: int | None = None,
        offset: int | None = None,
    ) -> DriftAlert | None:
        """Feed a Label; only first human labels of this monitor's route count."""
        # Label.is_human and Label.model_was_right written out, each field read once: this runs for
        # every label, and on a pydantic model a property costs about three field reads.
        if label.source == "model" or label.revision != 1 or label.route != self.route:
            return None
        predicted = label.provenance.model_label
        change = self.observe_error(predicted != label.label, predicted)
        if change is None:
            return None
        direction = "rose" if change.after > change.before else "fell"
        population = "the control group" if self.route == "control" else "reviewed events"
        where = (
            population
            if change.predicted_class is None
            else f"{population} predicted {change.predicted_class!r} ({change.observations} of them)"
        )
        return drift_alert(
            detector=self.name,
            kind="ADWIN",
            signal="model_error",
            task=self.task,
            observation=self.observations,
            now=now,
            before=change.before,
            after=change.after,
            partition=partition,
            offset=offset,
            predicted_class=change.predicted_class,
            message=(
                f"production model error on {where} {direction} from "
                f"{change.before:.3f} to {change.after:.3f} after {self.observations} labels"
            )[:512],
        )
