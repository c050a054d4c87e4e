"""The monitor agent: Labels and LabelRequests in; DriftAlerts, and the policy's reactions to them, out.

Detectors per task (:class:`agents.monitor.signals.TaskMonitor`) watch the
production model's error on control-group (and reviewed) labels, its
confidence and class mix over every event (the router hands the monitor each
prediction it decides: the predictions topic's order, decoded once), and the
queue rate. An alert goes
to ``drift-alerts``; the response policy's reaction to it (a PolicyCommand)
goes to ``commands``, where the router applies it like an operator's, and is
logged for operators. The policy in force is followed on ``policy-status`` so
a reaction starts from, and reverts to, what the router really routes by.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from agents.loop import Loop
from agents.monitor.notify import WebhookNotifier
from agents.monitor.response import Reaction, ResponsePolicy
from agents.monitor.signals import TaskMonitor
from agents.router.agent import Watch
from agents.router.policy import RouterSettings, load_policy
from schemas import DriftAlert, Label, LabelRequest, PolicyStatus, PredictionEvent
from streams.batch import Batch
from streams.broadcast import follow
from streams.codec import MODEL_LABELS, decode
from streams.runtime import Record

log = logging.getLogger(__name__)


def configured_policy(settings: RouterSettings, now: datetime) -> PolicyStatus:
    """The policy the router starts with, as a PolicyStatus (until the router publishes its own)."""
    return PolicyStatus(
        version=0,
        measure=settings.measure,
        accept_threshold=settings.accept_threshold,
        per_class_thresholds=settings.per_class_thresholds,
        control_share=settings.control_share,
        audit_rate=settings.audit.rate,
        target_backlog=settings.capacity.target_backlog,
        updated_at=now,
        reason="configured",
    )


def register(loop: Loop) -> tuple[dict[str, TaskMonitor], ResponsePolicy, Watch]:
    """Add the monitor to ``loop.app``; returns its detectors by task, its response policy, and the
    watch the router hands every prediction it decides to (confidence and class mix)."""
    names = loop.names
    settings = loop.stages.monitor
    monitors: dict[str, TaskMonitor] = {}
    configured = configured_policy(load_policy(loop.stages.router), loop.clock())
    response = ResponsePolicy(settings.response, configured)
    alerts = loop.output(names.drift_alerts)
    commands = loop.output(names.commands)
    counters = loop.counters
    webhook = (
        WebhookNotifier(settings.response.notify_url, settings.response.notify_timeout_s)
        if settings.response.notify_url is not None
        else None
    )

    notifying: set[asyncio.Task[None]] = set()

    async def notify(webhook: WebhookNotifier, reaction: Reaction) -> None:
        counters["monitor.notified" if await webhook.notify(reaction) else "monitor.notify_failed"] += 1

    def monitor_for(task: str) -> TaskMonitor:
        if task not in monitors:
            monitors[task] = TaskMonitor(settings, task)
        return monitors[task]

    async def react(reaction: Reaction | None) -> None:
        if reaction is None:
            return
        counters[f"monitor.reaction.{reaction.kind}"] += 1
        # Operators read this in the worker log; the command itself is on ``commands``.
        log.warning("drift response (%s): %s", reaction.kind, reaction.notice)
        if reaction.command is not None:
            await commands.send("policy", reaction.command)
        if webhook is not None:
            # In the background: a slow webhook must not hold up the labels behind this one.
            task = asyncio.create_task(notify(webhook, reaction))
            notifying.add(task)
            task.add_done_callback(notifying.discard)

    async def publish(found: list[DriftAlert]) -> None:
        for alert in found:
            await alerts.send(alert.detector, alert)
            counters["monitor.alerts"] += 1
            loop.metrics.observe_alert(alert)
            await react(response.observe(alert, loop.clock()))

    async def on_label(label: Label, record: Record, batch: Batch) -> None:
        # Once the label's batch is committed: a batch read again would feed the detectors twice.
        batch.after_commit(lambda: watch_label(label, record))

    async def watch_label(label: Label, record: Record) -> None:
        found = monitor_for(label.task).observe_label(
            label, loop.clock(), partition=record.partition, offset=record.offset
        )
        await publish(found)

    async def on_request(request: LabelRequest, record: Record, batch: Batch) -> None:
        batch.after_commit(lambda: watch_request(request, record))

    async def watch_request(request: LabelRequest, record: Record) -> None:
        found = monitor_for(request.prediction.task).observe_request(
            request, loop.clock(), partition=record.partition, offset=record.offset
        )
        await publish(found)

    async def watch_prediction(prediction: PredictionEvent, record: Record) -> None:
        # On the router's per-event path: nothing is awaited unless a detector fired.
        found = monitor_for(prediction.task).observe_prediction(
            prediction, loop.clock(), partition=record.partition, offset=record.offset
        )
        if found:
            await publish(found)

    async def on_policy(record: Record) -> None:
        response.observe_policy(decode(PolicyStatus, record.value))

    # The monitor owns the labels topic's DLQ: a record there that is no Label goes to it.
    # The router's own accepted Labels feed no detector (their route has no error to watch).
    loop.read_batched(
        names.labels,
        Label,
        "monitor",
        on_label,
        owner=True,
        dlq_counter="monitor.dlq",
        ignore_origins=MODEL_LABELS,
    )
    loop.read_batched(names.label_requests, LabelRequest, "monitor", on_request)

    @loop.app.task  # type: ignore[untyped-decorator]
    async def follow_policy() -> None:
        await follow(loop.settings, [names.policy_status], on_policy)

    @loop.app.timer(settings.tick_every_s)  # type: ignore[untyped-decorator]
    async def tick() -> None:
        now = loop.clock()
        for monitor in list(monitors.values()):
            await publish(monitor.tick(now))
        await react(response.tick(now))

    return monitors, response, watch_prediction
