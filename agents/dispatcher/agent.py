"""The dispatcher agent: label-requests in, each handed to the pool of its tier; answers out.

A request is acknowledged only when its pool has all its answers, so a worker
that dies mid-task loses nothing (the request comes again). Each tier has its
own agent with its own concurrency: requests waiting hours for an expert never
take the slots the crowd's requests need.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.loop import Loop
from agents.pools.base import LabelingBackend
from schemas import CrowdAnswer, LabelRequest, Tier
from streams.runtime import Record, decode_keyed, decode_or_skip, run_records


def pick_backend(request: LabelRequest, backends: Mapping[Tier, LabelingBackend]) -> LabelingBackend:
    """The pool for the request's tier, falling back to the crowd when there are no experts."""
    backend = backends.get(request.tier) or backends.get("crowd")
    if backend is None:
        raise LookupError(f"no labeling pool for tier {request.tier!r}")
    return backend


def register(loop: Loop, backends: Mapping[Tier, LabelingBackend]) -> None:
    """Add one dispatcher agent per tier to ``loop.app``."""
    names = loop.names
    answers = loop.output(names.crowd_answers)
    dead_letters = loop.dead_letters("dispatcher")
    counters = loop.counters
    settings = loop.stages.dispatcher

    async def report(answer: CrowdAnswer) -> None:
        await answers.send(answer.event_id, answer)
        counters["dispatcher.answers"] += 1

    def handler(tier: Tier, owner: bool) -> Any:
        async def handle(record: Record) -> None:
            # The first tier's agent owns the topic's DLQ; the others skip bad records quietly.
            request = decode_keyed(LabelRequest, record) if owner else decode_or_skip(LabelRequest, record)
            if request is None:
                return
            backend = pick_backend(request, backends)
            if backend is not backends[tier]:
                return  # another tier's agent serves it
            counters[f"dispatcher.in.{tier}"] += 1
            await backend.label(request, report)
            counters[f"dispatcher.done.{tier}"] += 1

        return handle

    for position, tier in enumerate(backends):
        handle = handler(tier, owner=position == 0)
        concurrency = settings.concurrency if tier == "crowd" else settings.expert_concurrency

        async def dispatch(stream: Any, handle: Any = handle) -> None:
            async for ok in run_records(stream, handle, dead_letters):
                if not ok:
                    counters["dispatcher.dlq"] += 1

        loop.app.agent(
            loop.topic(names.label_requests),
            name="dispatcher" if tier == "crowd" else f"dispatcher-{tier}",
            concurrency=concurrency,
        )(dispatch)
