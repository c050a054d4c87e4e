"""The learner agent: human Labels (joined with their request's input) train the online model."""

from __future__ import annotations

import json
from typing import Any

from agents.learner.model import OnlineLearner, build_model, features_of
from agents.loop import Loop
from schemas import Label, LabelRequest
from streams.runtime import Record, decode_or_skip, run_records


def register(loop: Loop) -> dict[str, OnlineLearner]:
    """Add the learner to ``loop.app``; returns its models by task (for the summary)."""
    names = loop.names
    settings = loop.stages.learner
    learners: dict[str, OnlineLearner] = {}
    pending = loop.table("learner-pending")
    metrics = loop.output(names.model_metrics)
    dead_letters = loop.dead_letters("learner")
    counters = loop.counters

    def learner_for(task: str) -> OnlineLearner:
        if task not in learners:
            learners[task] = OnlineLearner(build_model(settings.model), settings.window)
        return learners[task]

    def learn(task: str, x: dict[str, Any], label: str, weight: float) -> None:
        learner_for(task).observe(x, label, weight)
        counters["learner.learned"] += 1

    async def on_request(record: Record) -> None:
        request = decode_or_skip(LabelRequest, record)
        if request is None:
            return
        event_id = request.event_id
        waiting = pending.get(event_id)
        x = features_of(request.prediction.input, settings.model)
        if waiting is not None and "label" in (entry := json.loads(waiting)):
            learn(request.prediction.task, x, entry["label"], entry["weight"])
            del pending[event_id]
        elif waiting is None:
            pending[event_id] = json.dumps({"x": x, "task": request.prediction.task})

    async def on_label(record: Record) -> None:
        label = decode_or_skip(Label, record)
        if label is None or not label.is_human:
            return
        weight = min(1.0 / label.inclusion_probability, settings.max_weight)
        waiting = pending.get(label.event_id)
        if waiting is None:
            # The label overtook its request: keep it until the input arrives.
            pending[label.event_id] = json.dumps({"label": label.label, "weight": weight})
            return
        entry = json.loads(waiting)
        if "x" in entry:
            learn(entry["task"], entry["x"], label.label, weight)
            del pending[label.event_id]

    @loop.app.agent(loop.topic(names.label_requests), name="learner-requests")
    async def collect_inputs(stream: Any) -> None:
        async for _ in run_records(stream, on_request, dead_letters):
            pass

    @loop.app.agent(loop.topic(names.labels), name="learner-labels")
    async def learn_labels(stream: Any) -> None:
        async for ok in run_records(stream, on_label, dead_letters):
            if not ok:
                counters["learner.dlq"] += 1

    @loop.app.timer(settings.publish_every_s)  # type: ignore[untyped-decorator]
    async def publish_metrics() -> None:
        now = loop.clock()
        for task, learner in learners.items():
            if learner.seen:
                await metrics.send(f"online-{task}", learner.metrics(f"online-{task}", task, now))

    return learners
