"""One task's detectors over the four signals the monitor watches (Labels, LabelRequests, predictions)."""

from __future__ import annotations

from datetime import datetime

from agents.monitor.class_mix import ClassMixMonitor
from agents.monitor.confidence import ConfidenceMonitor
from agents.monitor.detectors import ModelErrorMonitor, MonitorSettings
from agents.monitor.queue_rate import QueueRateMonitor
from schemas import DriftAlert, Label, LabelRequest, PredictionEvent


class TaskMonitor:
    """The production model's error (per route in ``error_routes``), confidence, class mix and queue rate.

    Examples
    --------
    >>> from schemas import examples
    >>> monitor = TaskMonitor(MonitorSettings(), task="default")
    >>> [d.name for d in monitor.error]
    ['adwin-model-error-control-default', 'adwin-model-error-reviewed-default']
    >>> monitor.observe_label(examples.human_label("control"), examples.WHEN)
    []
    >>> monitor.observe_prediction(examples.prediction(), examples.WHEN)
    []
    >>> monitor.error[0].observations, monitor.confidence.seen, monitor.class_mix.observations
    (1, 1, 1)
    """

    def __init__(self, settings: MonitorSettings, task: str) -> None:
        self.task = task
        self.error = [ModelErrorMonitor(settings, task, route) for route in settings.error_routes]
        #: The error monitors by the route they watch: a Label concerns those of its route only.
        self._error_by_route: dict[str, list[ModelErrorMonitor]] = {}
        for monitor in self.error:
            self._error_by_route.setdefault(monitor.route, []).append(monitor)
        self.confidence = ConfidenceMonitor(settings, task)
        self.class_mix = ClassMixMonitor(settings, task)
        self.queue_rate = QueueRateMonitor(settings, task)

    def observe_label(
        self, label: Label, now: datetime, *, partition: int | None = None, offset: int | None = None
    ) -> list[DriftAlert]:
        """Feed a Label to the detectors it concerns; the alerts they raised."""
        alerts: list[DriftAlert] = []
        for monitor in self._error_by_route.get(label.route, ()):
            alert = monitor.observe(label, now, partition=partition, offset=offset)
            if alert is not None:
                alerts.append(alert)
        return alerts

    def observe_prediction(
        self,
        prediction: PredictionEvent,
        now: datetime,
        *,
        partition: int | None = None,
        offset: int | None = None,
    ) -> list[DriftAlert]:
        """Feed a prediction to the confidence and class-mix detectors; the alerts they raised."""
        found = [
            self.confidence.observe(prediction, now, partition=partition, offset=offset),
            self.class_mix.observe(prediction, now, partition=partition, offset=offset),
        ]
        return [alert for alert in found if alert is not None]

    def observe_request(
        self, request: LabelRequest, now: datetime, *, partition: int | None = None, offset: int | None = None
    ) -> list[DriftAlert]:
        """Feed a LabelRequest to the queue rate; the alerts it raised."""
        return self.queue_rate.observe(request, now, partition=partition, offset=offset)

    def tick(self, now: datetime) -> list[DriftAlert]:
        """Let time close the queue rate's buckets."""
        return self.queue_rate.tick(now)
