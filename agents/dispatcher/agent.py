"""The dispatcher agent: label-requests in, each handed to the pool of its tier; answers out.

A request is acknowledged once it is handed to its pool and recorded in the
``dispatcher-open`` table (see :mod:`agents.dispatcher.handoffs`): a worker that
dies mid-task loses nothing, because whoever owns the partition next starts the
open tasks again, and a rebalance never waits for people to finish. Each tier has
its own agent and its own cap on tasks in flight: requests waiting hours for an
expert never take the slots the crowd's requests need. When a tier's slots are
all taken, its agent waits for one before taking the next request (backpressure:
the rest stay in Kafka).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, cast

from agents.dispatcher.handoffs import Handoffs, OpenTask, TaskDone
from agents.loop import Loop
from agents.pools.base import LabelingBackend
from schemas import CrowdAnswer, LabelRequest, Tier
from streams.errors import NoPoolError
from streams.runtime import Record, decode_keyed, decode_or_skip, handle_record, run_records

log = logging.getLogger(__name__)


def pick_backend(request: LabelRequest, backends: Mapping[Tier, LabelingBackend]) -> LabelingBackend:
    """The pool for the request's tier, falling back to the crowd when there are no experts."""
    backend = backends.get(request.tier) or backends.get("crowd")
    if backend is None:
        raise NoPoolError(f"no labeling pool for tier {request.tier!r}")
    return backend


def register(loop: Loop, backends: Mapping[Tier, LabelingBackend]) -> Handoffs[asyncio.Task[None]]:
    """Add one dispatcher agent per tier, the done agent and the recovery timer to ``loop.app``."""
    names = loop.names
    app = loop.app
    answers = loop.output(names.crowd_answers)
    done_output = loop.output(names.dispatcher_done)
    dead_letters = loop.dead_letters("dispatcher")
    # A task the pool rejects for good is dead-lettered from its own asyncio task, outside the
    # stream (no dedupe table write there); its done record then closes it, so it is sent once
    # unless the worker dies between the two.
    late_dead_letters = loop.dead_letters("dispatcher", dedupe=False)
    open_tasks = loop.table("dispatcher-open")
    counters = loop.counters
    settings = loop.stages.dispatcher
    handoffs: Handoffs[asyncio.Task[None]] = Handoffs()
    slots = {
        tier: asyncio.Semaphore(settings.concurrency if tier == "crowd" else settings.expert_concurrency)
        for tier in backends
    }

    async def report(answer: CrowdAnswer) -> None:
        await answers.send(answer.event_id, answer)
        counters["dispatcher.answers"] += 1
        loop.metrics.observe_answer(answer)

    def tier_of(backend: LabelingBackend) -> Tier:
        return next(tier for tier, candidate in backends.items() if candidate is backend)

    def launch(task: OpenTask, record: Record, tier: Tier) -> None:
        """Run ``task`` in its own asyncio task; the caller holds one of the tier's slots."""
        event_id = task.request.event_id
        backend = backends[tier]

        async def label(_: Record) -> None:
            await backend.label(task.request, report)

        async def work() -> None:
            me = cast("asyncio.Task[None]", asyncio.current_task())
            try:
                answered = await handle_record(record, label, late_dead_letters)
            except asyncio.CancelledError:
                handoffs.stopped(event_id, me)  # revoked or stopping: it stays open in the table
                raise
            except Exception:
                handoffs.stopped(event_id, me)  # the recovery timer starts it again
                log.exception("dispatcher: task %s failed; it stays open and is retried", event_id)
                return
            finally:
                slots[tier].release()
            handoffs.finished(event_id, me)
            counters[f"dispatcher.done.{tier}" if answered else "dispatcher.dlq"] += 1
            outcome = "answered" if answered else "dead-lettered"
            try:
                await done_output.send(
                    event_id, TaskDone(event_id=event_id, outcome=outcome, finished_at=loop.clock())
                )
            except Exception:  # the task stays in the table until a restart runs it again
                log.exception("dispatcher: could not close task %s", event_id)

        handoffs.started(
            event_id,
            task.partition,
            asyncio.get_running_loop().create_task(work(), name=f"labelloop-dispatch-{event_id}"),
        )
        counters[f"dispatcher.in.{tier}"] += 1

    def handler(tier: Tier, owner: bool) -> Any:
        async def handle(record: Record) -> None:
            # The first tier's agent owns the topic's DLQ; the others skip bad records quietly.
            request = decode_keyed(LabelRequest, record) if owner else decode_or_skip(LabelRequest, record)
            if request is None:
                return
            if pick_backend(request, backends) is not backends[tier]:
                return  # another tier's agent serves it
            event_id = request.event_id
            if handoffs.busy(event_id):
                counters["dispatcher.redelivered"] += 1
                return
            await slots[tier].acquire()
            if handoffs.busy(event_id):  # the recovery timer started it while we waited
                slots[tier].release()
                return
            task = OpenTask(partition=record.partition, offset=record.offset, request=request)
            if event_id not in open_tasks:
                open_tasks[event_id] = task.to_json_bytes().decode()
            launch(task, record, tier)

        return handle

    def record_of(task: OpenTask) -> Record:
        """The label-requests record an open task came from (for the DLQ, should its pool reject it)."""
        event_id = task.request.event_id
        return Record(
            key=event_id.encode(),
            value=task.request.to_json_bytes(),
            topic=names.label_requests,
            partition=task.partition,
            offset=task.offset,
        )

    for position, tier in enumerate(backends):
        handle = handler(tier, owner=position == 0)

        async def dispatch(stream: Any, handle: Any = handle) -> None:
            async for ok in run_records(stream, handle, dead_letters):
                if not ok:
                    counters["dispatcher.dlq"] += 1

        # One record at a time is enough: handing a request over takes microseconds; the
        # tier's slots, not the agent's concurrency, bound the tasks in flight.
        app.agent(
            loop.topic(names.label_requests), name="dispatcher" if tier == "crowd" else f"dispatcher-{tier}"
        )(dispatch)

    async def on_done(record: Record) -> None:
        done = decode_keyed(TaskDone, record)
        if done.event_id in open_tasks:
            del open_tasks[done.event_id]
        handoffs.closed(done.event_id)

    @app.agent(loop.topic(names.dispatcher_done), name="dispatcher-done")
    async def close(stream: Any) -> None:
        async for ok in run_records(stream, on_done, dead_letters):
            if not ok:
                counters["dispatcher.dlq"] += 1

    def owned() -> set[int]:
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == names.label_requests}

    async def on_revoked(_: Any, /, *args: Any, signal: Any, **__: Any) -> None:
        (revoked,) = args  # faust sends the set of revoked TopicPartitions
        partitions = {tp.partition for tp in revoked if tp.topic == names.label_requests}
        cancel(handoffs.revoke(partitions))

    def cancel(tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()
        if tasks:
            counters["dispatcher.revoked"] += len(tasks)
            log.info("dispatcher: %d tasks of revoked partitions stopped here", len(tasks))

    app.on_partitions_revoked.connect(on_revoked)

    @app.timer(settings.recover_every_s)  # type: ignore[untyped-decorator]
    async def recover() -> None:
        if app.rebalancing or app.in_recovery:
            return
        actives = owned()
        lost = handoffs.outside(actives)
        if lost:
            cancel(handoffs.revoke(lost))
        # Only the tasks nobody runs here are decoded: at 1,000 events/s thousands are open and
        # running, and decoding each on every tick cost more than the tick's work (bench F5).
        stored = {
            event_id: OpenTask.from_json_bytes(text.encode())
            for event_id, text in open_tasks.items()
            if not handoffs.busy(event_id)
        }
        for event_id in handoffs.to_recover(((e, t.partition) for e, t in stored.items()), actives):
            task = stored[event_id]
            tier = tier_of(pick_backend(task.request, backends))
            if slots[tier].locked():
                continue  # no free slot now; the next tick tries again
            await slots[tier].acquire()
            if handoffs.busy(event_id):
                slots[tier].release()
                continue
            launch(task, record_of(task), tier)
            counters["dispatcher.recovered"] += 1

    return handoffs
