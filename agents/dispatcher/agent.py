"""The dispatcher agent: label-requests in, each handed to the pool of its tier; answers out.

A request is acknowledged only when its pool has all its answers, so a worker
that dies mid-task loses nothing (the request comes again).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.loop import Loop
from agents.pools.base import LabelingBackend
from schemas import CrowdAnswer, LabelRequest, Tier
from streams.runtime import Record, decode_keyed, run_records


def pick_backend(request: LabelRequest, backends: Mapping[Tier, LabelingBackend]) -> LabelingBackend:
    """The pool for the request's tier, falling back to the crowd when there are no experts."""
    backend = backends.get(request.tier) or backends.get("crowd")
    if backend is None:
        raise LookupError(f"no labeling pool for tier {request.tier!r}")
    return backend


def register(loop: Loop, backends: Mapping[Tier, LabelingBackend]) -> None:
    """Add the dispatcher to ``loop.app``."""
    names = loop.names
    answers = loop.output(names.crowd_answers)
    dead_letters = loop.dead_letters("dispatcher")
    counters = loop.counters

    async def report(answer: CrowdAnswer) -> None:
        await answers.send(answer.event_id, answer)
        counters["dispatcher.answers"] += 1

    async def handle(record: Record) -> None:
        request = decode_keyed(LabelRequest, record)
        counters["dispatcher.in"] += 1
        await pick_backend(request, backends).label(request, report)
        counters["dispatcher.done"] += 1

    @loop.app.agent(
        loop.topic(names.label_requests),
        name="dispatcher",
        concurrency=loop.stages.dispatcher.concurrency,
    )
    async def dispatch(stream: Any) -> None:
        async for ok in run_records(stream, handle, dead_letters):
            if not ok:
                counters["dispatcher.dlq"] += 1
