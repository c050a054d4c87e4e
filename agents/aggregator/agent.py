"""The aggregator agent: answers (and the requests behind them) in, one crowd Label per event out."""

from __future__ import annotations

from typing import Any

from agents.aggregator.majority import MajorityVoteAggregator, TaskState
from agents.loop import Loop
from schemas import CrowdAnswer, LabelRequest
from streams.runtime import Record, decode_keyed, decode_or_skip, run_records


def register(loop: Loop) -> None:
    """Add the aggregator's two agents (request context, answers) to ``loop.app``."""
    names = loop.names
    aggregator = MajorityVoteAggregator(loop.stages.aggregator.default_overlap)
    labels = loop.output(names.labels)
    dead_letters = loop.dead_letters("aggregator")
    tasks = loop.table("aggregator-tasks")
    counters = loop.counters

    async def on_request(record: Record) -> None:
        request = decode_or_skip(LabelRequest, record)
        if request is None:
            return
        state, label = aggregator.observe_request(
            TaskState.from_json(tasks.get(request.event_id)), request, loop.clock()
        )
        if label is not None:
            await labels.send(label.event_id, label)
            counters["aggregator.labels"] += 1
        tasks[request.event_id] = state.to_json()

    async def on_answer(record: Record) -> None:
        answer = decode_keyed(CrowdAnswer, record)
        counters["aggregator.answers"] += 1
        previous = tasks.get(answer.event_id)
        state, label = aggregator.observe_answer(
            TaskState.from_json(previous), answer, answer.event_id, loop.clock()
        )
        if label is not None:
            await labels.send(label.event_id, label)
            counters["aggregator.labels"] += 1
        text = state.to_json()
        if text != previous:
            tasks[answer.event_id] = text

    @loop.app.agent(loop.topic(names.label_requests), name="aggregator-requests")
    async def collect_requests(stream: Any) -> None:
        async for ok in run_records(stream, on_request, dead_letters):
            if not ok:
                counters["aggregator.dlq"] += 1

    @loop.app.agent(loop.topic(names.crowd_answers), name="aggregator-answers")
    async def collect_answers(stream: Any) -> None:
        async for ok in run_records(stream, on_answer, dead_letters):
            if not ok:
                counters["aggregator.dlq"] += 1
