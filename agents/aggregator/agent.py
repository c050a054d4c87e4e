"""The aggregator agent: answers (and the requests behind them) in; labels, expert requests and skills out.

Thin: the decisions are :class:`~agents.aggregator.weighted.WeightedVoteAggregator`'s.
Three agents share one task table keyed by event id, each writing only keys of
the record it handles (so every changelog write lands in the key's partition):

- ``aggregator-requests`` records a request's context (the crowd's first request);
- ``aggregator-answers`` votes, decides, escalates and sends expert audits;
- ``aggregator-revisits`` re-aggregates one decided task when its workers' skills
  changed. A revisit is a record keyed by the event on ``aggregator-revisits``,
  so healing a label never writes another partition's key.

The worker's :class:`~agents.aggregator.skills.SkillBook` lives in memory and is
shared with the pools (dynamic overlap weighs answers by it). A timer refits
Dawid–Skene over the recent answers in a thread (it takes about a second), folds
the fit into the book, publishes every changed skill on ``worker-skills`` and
sends a revisit for each recent task of a newly flagged worker.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, Literal

from agents.aggregator.dawid_skene import DawidSkeneRefit, fit_dawid_skene
from agents.aggregator.skills import SkillBook
from agents.aggregator.weighted import Outcome, WeightedTaskState, WeightedVoteAggregator
from agents.loop import Loop
from schemas import CrowdAnswer, LabelRequest, WorkerSkill
from schemas.base import Id, Reason, Timestamp, WireModel
from streams.runtime import Record, decode_keyed, run_records

log = logging.getLogger(__name__)


class Revisit(WireModel):
    """Re-aggregate one decided task (internal topic ``aggregator-revisits``, keyed by event_id)."""

    SCHEMA_VERSION = 1
    schema_version: Literal[1] = 1
    event_id: Id
    reason: Reason
    requested_at: Timestamp


def register(loop: Loop, book: SkillBook) -> WeightedVoteAggregator:
    """Add the aggregator's agents and its Dawid–Skene timer to ``loop.app``; returns the live core."""
    names = loop.names
    settings = loop.stages.aggregator
    aggregator = WeightedVoteAggregator(settings.weighted, book)
    refit = DawidSkeneRefit(settings.dawid_skene)
    ledger = loop.ledger
    requests = loop.output(names.label_requests)
    skills = loop.output(names.worker_skills)
    revisits = loop.output(names.revisits)
    dead_letters = loop.dead_letters("aggregator")
    tasks = loop.table("aggregator-tasks", per_event=True)
    counters = loop.counters
    refitting: list[asyncio.Future[Any]] = []
    # Three agents read, decide and write the same task states, awaiting sends in between: one
    # lock makes each read-publish-store step whole, so two never decide the same revision.
    deciding = asyncio.Lock()

    async def publish(outcome: Outcome, now: datetime, partition: int) -> None:
        for label in outcome.labels:
            if not await ledger.publish(label, partition):
                counters["aggregator.labels_suppressed"] += 1
                continue
            loop.metrics.observe_label(label)
            counters["aggregator.labels"] += 1
            if label.revision > 1:
                counters["aggregator.revisions"] += 1
        for request in outcome.requests:
            await requests.send(request.event_id, request)
            counters[f"aggregator.to_experts.{request.route}"] += 1
        await publish_skills(outcome.skills)
        for worker in outcome.flagged:
            log.warning("worker %s flagged unreliable: revisiting the labels that leaned on it", worker)
            counters["aggregator.flagged"] += 1
            loop.metrics.workers_flagged.inc()
        # The core refits nothing here (refit=None), so its revisits are the tasks of newly
        # flagged workers; the refit timer sends its own.
        for event_id, reason in outcome.revisit:
            await revisits.send(event_id, Revisit(event_id=event_id, reason=reason, requested_at=now))
            counters["aggregator.revisits_sent"] += 1

    async def publish_skills(updated: tuple[WorkerSkill, ...]) -> None:
        for skill in {skill.worker_id: skill for skill in updated}.values():
            await skills.send(skill.worker_id, skill)

    async def store(event_id: str, previous: str | None, state: WeightedTaskState) -> None:
        text = state.to_json()
        if text != previous:
            tasks[event_id] = text

    async def on_request(request: LabelRequest, record: Record) -> None:
        async with deciding:
            now = loop.clock()
            previous = tasks.get(request.event_id)
            state, outcome = aggregator.step_request(WeightedTaskState.from_json(previous), request, now)
            await publish(outcome, now, record.partition)
            await store(request.event_id, previous, state)

    async def on_answer(record: Record) -> None:
        answer = decode_keyed(CrowdAnswer, record)
        counters["aggregator.answers"] += 1
        if answer.tier == "expert":
            counters["aggregator.expert_answers"] += 1
            refit.observe_verdict(answer.event_id, answer.label)
        else:
            refit.observe_answer(answer)
        async with deciding:
            now = loop.clock()
            previous = tasks.get(answer.event_id)
            state, outcome = aggregator.step_answer(
                WeightedTaskState.from_json(previous), answer, answer.event_id, now
            )
            await publish(outcome, now, record.partition)
            await store(answer.event_id, previous, state)

    async def on_revisit(record: Record) -> None:
        revisit = decode_keyed(Revisit, record)
        async with deciding:
            now = loop.clock()
            previous = tasks.get(revisit.event_id)
            if previous is None:
                return
            state, outcome = aggregator.reaggregate(
                WeightedTaskState.from_json(previous), revisit.event_id, now, revisit.reason
            )
            counters["aggregator.revisited"] += 1
            await publish(outcome, now, record.partition)
            await store(revisit.event_id, previous, state)

    loop.read(names.label_requests, LabelRequest, "aggregator", on_request, dlq_counter="aggregator.dlq")

    @loop.app.agent(loop.topic(names.crowd_answers), name="aggregator-answers")
    async def collect_answers(stream: Any) -> None:
        async for ok in run_records(stream, on_answer, dead_letters):
            if not ok:
                counters["aggregator.dlq"] += 1

    @loop.app.agent(loop.topic(names.revisits), name="aggregator-revisits")
    async def collect_revisits(stream: Any) -> None:
        async for ok in run_records(stream, on_revisit, dead_letters):
            if not ok:
                counters["aggregator.dlq"] += 1

    @loop.app.timer(settings.refit_every_s)  # type: ignore[untyped-decorator]
    async def refit_skills() -> None:
        if refitting or refit.since_refit < settings.dawid_skene.refit_every:
            return
        # Snapshot the window here, on the loop: the answers agent keeps appending to it meanwhile.
        window, known = refit.snapshot()
        future = asyncio.get_running_loop().run_in_executor(
            None, fit_dawid_skene, window, known, settings.dawid_skene
        )
        refitting.append(future)
        try:
            fit = await future
        except Exception:  # a failed fit leaves the skills as they were; the next one may succeed
            log.exception("Dawid–Skene refit failed")
            return
        finally:
            refitting.clear()
        now = loop.clock()
        flagged = refit.fold(fit, book, now)
        counters["aggregator.refits"] += 1
        await publish_skills(tuple(book.skill(worker) for worker in sorted(fit.workers)))
        for event_id in aggregator.revisits(flagged):
            reason = f"Dawid-Skene refit flagged {', '.join(flagged)} unreliable"
            await revisits.send(event_id, Revisit(event_id=event_id, reason=reason[:512], requested_at=now))
            counters["aggregator.revisits_sent"] += 1
        for worker in flagged:
            log.warning("Dawid–Skene refit flagged worker %s unreliable", worker)
            counters["aggregator.flagged"] += 1
            loop.metrics.workers_flagged.inc()

    return aggregator
