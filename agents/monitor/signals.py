"""One task's detectors over the four signals the monitor watches, fed from Labels and LabelRequests."""

from __future__ import annotations

from datetime import datetime

from agents.monitor.class_mix import ClassMixMonitor
from agents.monitor.confidence import ConfidenceMonitor, routed_prediction
from agents.monitor.detectors import ModelErrorMonitor, MonitorSettings
from agents.monitor.ordering import RouterOrder
from agents.monitor.queue_rate import QueueRateMonitor
from schemas import DriftAlert, Label, LabelRequest

#: A routed event waiting for its turn: confidence, predicted class, source partition and offset.
Routed = tuple[float, str, int | None, int | None]


class TaskMonitor:
    """The production model's error (per route in ``error_routes``), confidence, class mix and queue rate.

    Examples
    --------
    >>> from tests import factories
    >>> monitor = TaskMonitor(MonitorSettings(), task="default")
    >>> [d.name for d in monitor.error]
    ['adwin-model-error-control-default', 'adwin-model-error-reviewed-default']
    >>> monitor.observe_label(factories.human_label("control"), factories.WHEN)
    []
    >>> monitor.observe_request(factories.label_request(route="control"), factories.WHEN)
    []
    >>> monitor.error[0].observations, monitor.confidence.seen, len(monitor.order)
    (1, 0, 1)
    >>> from datetime import timedelta
    >>> monitor.tick(factories.WHEN + timedelta(minutes=1))
    []
    >>> monitor.confidence.seen, monitor.class_mix.observations
    (1, 1)
    """

    def __init__(self, settings: MonitorSettings, task: str) -> None:
        self.task = task
        self.error = [ModelErrorMonitor(settings, task, route) for route in settings.error_routes]
        self.confidence = ConfidenceMonitor(settings, task)
        self.class_mix = ClassMixMonitor(settings, task)
        self.queue_rate = QueueRateMonitor(settings, task)
        self.order: RouterOrder[Routed] = RouterOrder(settings.order_lag_s, settings.order_max_pending)

    def observe_label(
        self, label: Label, now: datetime, *, partition: int | None = None, offset: int | None = None
    ) -> list[DriftAlert]:
        """Feed a Label to the detectors it concerns; the alerts they raised."""
        found = [monitor.observe(label, now, partition=partition, offset=offset) for monitor in self.error]
        routed = routed_prediction(label)
        if routed is not None:
            due = self.order.push(label.decided_at, (*routed, partition, offset))
            found.extend(self._observe_routed(due, now))
        return [alert for alert in found if alert is not None]

    def observe_request(
        self, request: LabelRequest, now: datetime, *, partition: int | None = None, offset: int | None = None
    ) -> list[DriftAlert]:
        """Feed a LabelRequest to the queue rate, confidence and class mix; the alerts they raised."""
        found: list[DriftAlert | None] = [
            *self.queue_rate.observe(request, now, partition=partition, offset=offset)
        ]
        routed = routed_prediction(request)
        if routed is not None:
            due = self.order.push(request.requested_at, (*routed, partition, offset))
            found.extend(self._observe_routed(due, now))
        return [alert for alert in found if alert is not None]

    def tick(self, now: datetime) -> list[DriftAlert]:
        """Let time close the queue rate's buckets and release the routed events it has passed."""
        found = self.queue_rate.tick(now)
        found.extend(alert for alert in self._observe_routed(self.order.flush(now), now) if alert is not None)
        return found

    def _observe_routed(self, due: list[Routed], now: datetime) -> list[DriftAlert | None]:
        found: list[DriftAlert | None] = []
        for confidence, predicted, partition, offset in due:
            found.append(self.confidence.observe_routed(confidence, now, partition=partition, offset=offset))
            found.append(self.class_mix.observe_routed(predicted, now, partition=partition, offset=offset))
        return found
