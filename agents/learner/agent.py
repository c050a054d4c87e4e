"""The learner agent: human Labels (joined with their request's input) train the online model.

The join is partition state of the batch path (``streams/batches.py``): ``label-requests`` and
``labels`` are read there, co-partitioned (both keyed by event id by the loop's own producers,
whatever partitioner the producer of ``predictions`` used), so an event's request and its
label meet on one worker. A request's input is kept until the event's first human label
comes, and learned once that label's batch is committed.

Each task's learner is checkpointed to the worker's data dir (on a timer and on
shutdown) and restored from there when the worker starts, so a restart loses no
learning. Checkpoints are local trusted state; nothing is ever loaded from Kafka.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from agents.learner.checkpoint import ModelStore, learner_payload, restore_learner, stored_tasks
from agents.learner.model import (
    OnlineLearner,
    build_model,
    features_of,
    first_human_label,
    importance_weight,
    set_by_operator,
)
from agents.loop import Loop
from schemas import Label, LabelRequest, PredictionEvent
from streams.batch import Batch
from streams.codec import MODEL_LABELS
from streams.runtime import Record

log = logging.getLogger(__name__)
#: Sees each event the router accepts, with the Label it published.
Accepted = Callable[[PredictionEvent, Label], None]
#: The batch-path state of inputs waiting for their labels (and labels that came first).
PENDING = "learner-pending"


def register(loop: Loop) -> tuple[dict[str, OnlineLearner], Accepted | None]:
    """Add the learner to ``loop.app``; returns its models by task (for the summary), and what the
    router hands each event it accepts when the learner learns the model's own labels too
    (``learn_model_labels``; None when it does not, the default)."""
    names = loop.names
    settings = loop.stages.learner
    learners: dict[str, OnlineLearner] = {}
    metrics = loop.output(names.model_metrics)
    counters = loop.counters

    stores: dict[str, ModelStore] = {}
    #: ``learner.seen`` at each task's last checkpoint (or restore): unchanged means nothing to write.
    checkpointed: dict[str, int] = {}
    checkpoint_lock = asyncio.Lock()

    def store_for(task: str) -> ModelStore:
        if task not in stores:
            stores[task] = ModelStore(loop.settings.data_dir, task, keep=settings.keep_checkpoints)
        return stores[task]

    def create(task: str) -> OnlineLearner:
        kind = settings.kind_for(task)
        restored = restore_learner(store_for(task), kind, settings.window)
        if restored is None:
            return OnlineLearner(build_model(kind), settings.window)
        learner, checkpoint = restored
        checkpointed[task] = learner.seen
        counters["learner.restored"] += 1
        log.info(
            "learner of task %r resumes from checkpoint v%06d (%d labels seen)",
            task,
            checkpoint.version,
            learner.seen,
        )
        return learner

    def learner_for(task: str) -> OnlineLearner:
        if task not in learners:
            learners[task] = create(task)
        return learners[task]

    # Every task with a checkpoint resumes now: its suggestions and metrics need no new label first.
    for stored in stored_tasks(loop.settings.data_dir):
        learner_for(stored)

    async def checkpoint_all() -> None:
        async with checkpoint_lock:
            for task, learner in list(learners.items()):
                seen = learner.seen
                if seen == checkpointed.get(task, 0):
                    continue  # nothing learned since the last checkpoint
                # Pickled here, between two labels (the model is not mid-update); written in a thread.
                payload = learner_payload(learner, settings.kind_for(task))
                try:
                    await asyncio.to_thread(store_for(task).write, payload, seen, learner.summary())
                except OSError as error:
                    counters["learner.checkpoint_failed"] += 1
                    log.error("cannot checkpoint the learner of task %r: %s", task, error)
                    continue
                checkpointed[task] = seen
                counters["learner.checkpoints"] += 1

    def learn(task: str, x: dict[str, Any], label: str, weight: float) -> None:
        learner_for(task).observe(x, label, weight)
        counters["learner.learned"] += 1

    async def on_request(request: LabelRequest, record: Record, batch: Batch) -> None:
        event_id = request.event_id
        task = request.prediction.task
        waiting = batch.get(PENDING, event_id)
        if waiting is not None and "label" in (entry := json.loads(waiting)):
            # The label came first: learn them now.
            x = features_of(request.prediction.input, settings.kind_for(task))
            batch.put(PENDING, event_id, None)
            batch.after_commit(lambda: learn(task, x, entry["label"], entry["weight"]))
        elif waiting is None:
            x = features_of(request.prediction.input, settings.kind_for(task))
            batch.put(PENDING, event_id, json.dumps({"x": x, "task": task}))

    async def on_label(label: Label, record: Record, batch: Batch) -> None:
        if set_by_operator(label):
            # An operator's correction: learned if the event's input still waits for its first
            # human label (an audit not answered yet), never parked (no request may ever come).
            pending = batch.get(PENDING, label.event_id)
            if pending is not None and "x" in (found := json.loads(pending)):
                batch.put(PENDING, label.event_id, None)
                weight = importance_weight(label, settings.max_weight)
                batch.after_commit(lambda: learn(found["task"], found["x"], label.label, weight))
                counters["learner.corrections"] += 1
            return
        # Only an event's first human label is learned: a later revision (an expert verdict, a
        # healed label) finds no input waiting, and keeping it would leave it in the state forever.
        if not first_human_label(label):
            return
        weight = importance_weight(label, settings.max_weight)
        waiting = batch.get(PENDING, label.event_id)
        if waiting is None:
            # The label overtook its input: keep it until the input arrives.
            batch.put(PENDING, label.event_id, json.dumps({"label": label.label, "weight": weight}))
            return
        entry = json.loads(waiting)
        if "x" in entry:
            batch.put(PENDING, label.event_id, None)
            batch.after_commit(lambda: learn(entry["task"], entry["x"], label.label, weight))

    # Requests first: a request and its label fetched in one batch are joined in that order.
    loop.read_batched(names.label_requests, LabelRequest, "learner", on_request)
    loop.read_batched(
        names.labels, Label, "learner", on_label, dlq_counter="learner.dlq", ignore_origins=MODEL_LABELS
    )

    @loop.app.timer(settings.publish_every_s)  # type: ignore[untyped-decorator]
    async def publish_metrics() -> None:
        now = loop.clock()
        for task, learner in learners.items():
            if learner.seen:
                snapshot = learner.metrics(f"online-{task}", task, now)
                await metrics.send(f"online-{task}", snapshot)
                loop.metrics.observe_model_metrics(snapshot)

    @loop.app.timer(settings.checkpoint_every_s)  # type: ignore[untyped-decorator]
    async def checkpoint_models() -> None:
        await checkpoint_all()

    async def checkpoint_on_shutdown(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await checkpoint_all()

    loop.app.on_before_shutdown.connect(checkpoint_on_shutdown)

    def learn_accepted(event: PredictionEvent, label: Label) -> None:
        # In process, from the router: an accepted event has no LabelRequest to join its input.
        task = event.task
        learner_for(task).learn(features_of(event.input, settings.kind_for(task)), label.label)
        counters["learner.learned_model_labels"] += 1

    return learners, (learn_accepted if settings.learn_model_labels else None)
