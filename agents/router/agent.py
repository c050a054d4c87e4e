"""The router agent: predictions in, a Label (accepted) or a LabelRequest (review) out, once per event."""

from __future__ import annotations

from typing import Any

from agents.loop import Loop
from agents.router.policy import ThresholdPolicy, model_label, review_request
from schemas import PredictionEvent
from streams.runtime import Record, decode_keyed, run_records


def register(loop: Loop) -> None:
    """Add the router to ``loop.app``."""
    names = loop.names
    policy = ThresholdPolicy(loop.stages.router)
    labels = loop.output(names.labels)
    requests = loop.output(names.label_requests)
    dead_letters = loop.dead_letters("router")
    decisions = loop.table("router-decisions")
    counters = loop.counters

    async def handle(record: Record) -> None:
        event = decode_keyed(PredictionEvent, record)
        counters["router.in"] += 1
        if decisions.get(event.event_id) is not None:
            counters["router.duplicates"] += 1
            return
        decision = policy.decide(event)
        now = loop.clock()
        if decision.action == "accept":
            await labels.send(event.event_id, model_label(event, decision, now))
        else:
            await requests.send(event.event_id, review_request(event, decision, now))
        decisions[event.event_id] = decision.action
        counters[f"router.{decision.action}"] += 1

    @loop.app.agent(loop.topic(names.predictions), name="router")
    async def route(stream: Any) -> None:
        async for ok in run_records(stream, handle, dead_letters):
            if not ok:
                counters["router.dlq"] += 1
