"""The monitor agent: Labels in, DriftAlerts out when the production model's error shifts."""

from __future__ import annotations

from typing import Any

from agents.loop import Loop
from agents.monitor.detectors import ModelErrorMonitor
from schemas import Label
from streams.runtime import Record, decode_keyed, run_records


def register(loop: Loop) -> dict[str, ModelErrorMonitor]:
    """Add the monitor to ``loop.app``; returns its detectors by task."""
    names = loop.names
    monitors: dict[str, ModelErrorMonitor] = {}
    alerts = loop.output(names.drift_alerts)
    dead_letters = loop.dead_letters("monitor")
    counters = loop.counters

    async def on_label(record: Record) -> None:
        label = decode_keyed(Label, record)
        monitor = monitors.get(label.task)
        if monitor is None:
            monitor = monitors[label.task] = ModelErrorMonitor(loop.stages.monitor, label.task)
        alert = monitor.observe(label, loop.clock(), partition=record.partition, offset=record.offset)
        if alert is not None:
            await alerts.send(alert.detector, alert)
            counters["monitor.alerts"] += 1
            loop.metrics.observe_alert(alert)

    @loop.app.agent(loop.topic(names.labels), name="monitor")
    async def watch(stream: Any) -> None:
        async for ok in run_records(stream, on_label, dead_letters):
            if not ok:
                counters["monitor.dlq"] += 1

    return monitors
