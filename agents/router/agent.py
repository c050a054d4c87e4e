"""The router agent: predictions in; a Label (accepted) or a LabelRequest (review, control, audit) out.

Also keeps the router's view of the world current (pool capacity from
``pool-status``, policy commands from ``commands``, both read whole by every
worker) and publishes the production model's precision and recall
estimates, measured from the control and audit labels, on ``model-metrics``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from agents.loop import Loop
from agents.router.batch import RoutedTopics, route_batch
from agents.router.estimators import PrecisionEstimator, RecallEstimator
from agents.router.policy import Decision, Router, load_policy
from agents.router.production_metrics import production_metrics
from schemas import Command, Label, PolicyCommand, PoolStatus, PredictionEvent, Suggestion
from streams.batch import Batch, BatchSender
from streams.broadcast import follow
from streams.codec import MODEL_LABELS, decode, decode_json
from streams.runtime import DeadLetters, Record
from streams.topics import catalogue

log = logging.getLogger(__name__)
_COMMAND = TypeAdapter[Command](Command)
Suggest = Callable[[PredictionEvent], Suggestion | None]
#: Sees each prediction the router decides (with its record), once its batch is committed.
Watch = Callable[[PredictionEvent, Record], Awaitable[None]]
#: The batch-path state of the human labels the estimators counted (event id -> revision, label).
ESTIMATED = "router-estimated"


@dataclass
class Estimates:
    """One task's precision and recall estimators and the model they measure."""

    model_name: str
    precision: PrecisionEstimator = field(default_factory=PrecisionEstimator)
    recall: RecallEstimator = field(default_factory=RecallEstimator)


def observe_label(estimates: dict[str, Estimates], label: Label, counted: str | None = None) -> bool:
    """Feed a human label of a control or audit route to its task's estimators; True if used.

    ``counted`` is the label an earlier revision of the same event gave, if one
    was counted: a later revision (an expert verdict, a healed label) then
    replaces it instead of counting the event twice.
    """
    if not label.is_human or label.route not in ("control", "audit"):
        return False
    found = estimates.setdefault(label.task, Estimates(label.provenance.model_name))
    model_label = label.provenance.model_label
    if label.route == "control":
        if counted is None:
            found.precision.observe(model_label, label.model_was_right, label.inclusion_probability)
        else:
            found.precision.revise(
                model_label, counted == model_label, label.model_was_right, label.inclusion_probability
            )
        return True
    if label.routing is not None and label.routing.audited_class is not None:
        audited = label.routing.audited_class
        if counted is None:
            found.recall.observe(audited, label.label, model_label, label.inclusion_probability)
        else:
            found.recall.revise(audited, counted, label.label, model_label, label.inclusion_probability)
        return True
    return False


def register(
    loop: Loop,
    suggest: Suggest | None = None,
    watch: Watch | None = None,
    accepted: Callable[[PredictionEvent, Label], None] | None = None,
) -> Router:
    """Add the router to ``loop.app``; returns its live :class:`Router`.

    Predictions are read in batches by a :class:`~streams.batches.TransactionalBatches`
    service of the worker, not a faust agent: each partition's batch is decided here in
    memory and its Labels, LabelRequests and DLQ records are committed with its input offsets
    in one transaction (faust's per-record delivery cost five times the decision, bench F1).

    ``watch`` sees every prediction the router decides, once, in the predictions topic's order
    (the monitor's confidence and class mix: :func:`agents.monitor.agent.register`).
    ``accepted`` sees each event accepted, with the Label published for it (the learner, when
    it learns the model's own labels). Both run once the batch is committed.
    """
    names = loop.names
    router = Router(load_policy(loop.stages.router), clock=time.monotonic)
    policy_status = loop.output(names.policy_status)
    metrics = loop.output(names.model_metrics)
    commands = loop.output(names.commands)
    estimates: dict[str, Estimates] = {}
    counters = loop.counters
    meter = loop.metrics
    meter.target_backlog.set(router.settings.capacity.target_backlog)
    measurement_tier = router.settings.measurement_tier

    partitions = {topic.name: topic.partitions for topic in catalogue(loop.settings)}
    outputs = RoutedTopics(
        labels=names.labels,
        label_requests=names.label_requests,
        labels_partitions=partitions.get(names.labels),
        label_requests_partitions=partitions.get(names.label_requests),
    )

    async def decide_batch(batch: Batch, records: Sequence[Record]) -> None:
        dead_letters = DeadLetters(BatchSender(batch, names.dlq), stage="router", clock=loop.clock)
        routed = await route_batch(
            router,
            batch,
            records,
            loop.clock(),
            outputs,
            dead_letters,
            suggest=suggest,
            measurement_tier=measurement_tier,
        )
        batch.after_commit(lambda: after_commit(len(records), routed.decided, routed.dropped))

    async def after_commit(
        routed: int,
        decided: list[tuple[PredictionEvent, Record, Decision, Label | None]],
        dropped: Counter[str],
    ) -> None:
        """What a committed batch tells the rest of the worker: counters, metrics, estimators, watchers.

        Counted per batch (one increment per kind), not per event: a Prometheus child's ``inc``
        takes a lock each time.
        """
        counters["router.in"] += routed
        for kind, count in dropped.items():
            counters[f"router.{kind}"] += count
        if dropped["duplicates"]:
            meter.duplicates.inc(dropped["duplicates"])
        kinds: Counter[tuple[str, str, bool]] = Counter()
        waits_s: list[float] = []
        for event, record, decision, label in decided:
            if watch is not None:
                await watch(event, record)
            if label is not None:
                waits_s.append((label.decided_at - label.prediction_created_at).total_seconds())
                if accepted is not None:
                    accepted(event, label)
                # The audit's population: recall scales each class's audit share to these counts.
                found = estimates.get(event.task)
                if found is None:
                    found = estimates[event.task] = Estimates(event.model_name)
                found.recall.observe_accepted(event.predicted_label)
                kinds[
                    "accept",
                    "shed_by_capacity" if decision.shed else decision.route,
                    decision.audit is not None,
                ] += 1
            else:
                kinds["review", decision.route, False] += 1
        # The model's own Labels (source "model", revision 1), as observe_label counts each.
        meter.observe_first_labels("model", waits_s)
        for (action, route, audited), count in kinds.items():
            meter.decided(action, route, audit=audited, count=count)
            if action == "review":
                counters[f"router.{route}"] += count
                continue
            counters["router.shed" if route == "shed_by_capacity" else "router.accept"] += count
            if audited:
                counters["router.audit"] += count

    loop.batched(names.predictions, decide_batch, "router")

    async def on_broadcast(record: Record) -> None:
        if record.topic == names.pool_status:
            router.gate.observe_pool(decode(PoolStatus, record.value))
            return
        command = decode_json(_COMMAND, record.value, "Command")
        if isinstance(command, PolicyCommand):
            before = router.settings
            after = router.apply(command)
            log.warning(
                "routing policy v%d by %s (%s): %s",
                router.version,
                command.issued_by,
                command.reason,
                _changes(before.model_dump(), after.model_dump()),
            )
            await policy_status.send(command.task, router.status(command.task, loop.clock(), command.reason))
            meter.target_backlog.set(router.settings.capacity.target_backlog)
            counters["router.policy_changes"] += 1

    async def on_label(label: Label, record: Record, batch: Batch) -> None:
        if not label.is_human:
            return
        # Labels come at least once: a redelivered (or older) revision must not count twice; a
        # newer one replaces what the event's earlier revision counted. What was counted is
        # partition state, committed with the batch; the estimators count once it is.
        seen = batch.get(ESTIMATED, label.event_id)
        counted = json.loads(seen) if seen is not None else None
        if counted is not None and label.revision <= counted["revision"]:
            return
        batch.put(ESTIMATED, label.event_id, json.dumps({"revision": label.revision, "label": label.label}))
        batch.after_commit(lambda: estimate(label, None if counted is None else counted["label"]))

    async def estimate(label: Label, counted: str | None) -> None:
        if observe_label(estimates, label, counted):
            counters["router.estimator_labels" if counted is None else "router.estimator_revisions"] += 1
        tuned = router.learn_from(label, loop.clock())
        if tuned is not None:
            # Through the commands topic, like an operator's: every worker applies it the same way.
            await commands.send("policy", tuned)

    loop.read_batched(names.labels, Label, "router", on_label, ignore_origins=MODEL_LABELS)

    @loop.app.task  # type: ignore[untyped-decorator]
    async def follow_capacity_and_commands() -> None:
        await policy_status.send("default", router.status("default", loop.clock(), "worker started"))
        try:
            await follow(loop.settings, [names.pool_status, names.commands], on_broadcast)
        except asyncio.CancelledError:
            raise

    @loop.app.timer(loop.stages.learner.publish_every_s)  # type: ignore[untyped-decorator]
    async def publish_estimates() -> None:
        now = loop.clock()
        for task, found in estimates.items():
            snapshot = production_metrics(found.model_name, task, now, found.precision, found.recall)
            await metrics.send(f"production-{found.model_name}", snapshot)
            meter.observe_model_metrics(snapshot)

    return router


def _changes(before: dict[str, Any], after: dict[str, Any]) -> str:
    return ", ".join(
        f"{key}: {before[key]!r} -> {after[key]!r}" for key in after if before.get(key) != after[key]
    )
