"""faust's aiokafka transport with an idempotent, acks=all producer outside transactions too.

faust turns idempotence on only inside exactly_once transactions
(``Producer._settings_extra``); at-least-once workers would otherwise produce
with aiokafka's defaults (acks=1, no idempotence), so a broker retry could
write a Label twice. Registered as the ``labelloop://`` transport through the
``faust.transports`` entry point.

It also makes ``flush`` wait for every table write. faust sends a table's
changelog records through a buffer (``send_soon``), and before committing
offsets it flushes the producer; but the buffer's flush gives up after 0.1 s
without progress (``ProducerBuffer.flush_atmost``) and returns with writes still
queued. On a busy worker the offsets of records were then committed while their
table writes were not sent yet, and a SIGKILL lost them for good: in the
three-worker SIGKILL test, label requests whose open-task records never reached
the changelog, although their offsets were committed. Here ``flush`` returns
only when every record given to ``send_soon`` is acknowledged by the broker.

And its consumer never commits an offset past a record that is not done
(:class:`CommitFloor`), which faust 0.15 does in two cases (faust-streaming
issue #606, fix open upstream as PR #707).

Two per-record costs of faust are cut here (a profile of the worker under
``bench.throughput``'s load showed them; README, F1): the fetch loop's
``wait_first`` made four tasks per record consumed (:meth:`GenerationSafeConsumer.wait_first`),
and every record sent went through ``App.maybe_start_producer``'s stampede guard,
three event-loop rounds each (:class:`Topic`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from functools import partial
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, FutureMessage, Message, ProducerT, RecordMetadata
from faust.types.tuples import ack_lock
from faust.utils.functional import consecutive_numbers
from mode.services import WaitResults
from mode.utils.queues import FlowControlEvent

log = logging.getLogger(__name__)

#: How long a stopping worker waits for the records its streams started to be acknowledged.
#: faust waits for ever; a record no agent acknowledges any more (seen at a SIGTERM right after a
#: rebalance, the agents all waiting for their next record) then holds the shutdown until the
#: process is killed. Past this, what is not done is not committed (the commit floor holds it)
#: and the partition's next owner reads it again: at least once, and the label ledger drops the
#: Label it already published.
SHUTDOWN_WAIT_S = 10.0


class Topic(faust.Topic):
    """faust's topic, with a short way to the producer for records that are bytes already.

    ``Topic.publish_message`` asks ``App.maybe_start_producer`` for the producer on
    every send; that is wrapped in mode's ``stampede``, which awaits ``asyncio.sleep(0)``
    three times per call even when the producer runs already. Here a started producer
    outside a transaction is returned at once; anything else (the first send, exactly_once's
    transaction manager) goes the way faust goes. Table writes (``send_soon``) take this way.

    And :meth:`send` of bytes (what every stage sends: ``streams.runtime.Output``) hands them
    to the producer directly, without faust's serializer registry, pending/future messages
    and sensors between (a third of a routed event's CPU time went to the two sends).
    """

    async def _get_producer(self) -> ProducerT:
        app = self.app
        if not app.in_transaction:
            producer = app.producer
            if producer.started:
                return producer
        return await super()._get_producer()

    async def send(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Any = None,
        **options: Any,
    ) -> Awaitable[RecordMetadata]:
        app = self.app
        producer = app.producer
        if (
            options
            or not isinstance(key, bytes | None)
            or not isinstance(value, bytes | None)
            or app.in_transaction
            or app.conf.stream_publish_on_commit
            or not producer.started
        ):
            sent: Awaitable[RecordMetadata] = await super().send(
                key=key, value=value, partition=partition, timestamp=timestamp, headers=headers, **options
            )
            return sent
        name = self.get_topic_name()
        future = await producer.send(name, key, value, partition, timestamp, headers)
        asyncio.ensure_future(future).add_done_callback(partial(_log_failed_send, name))
        return future


class RawSchema(faust.Schema[bytes, bytes]):
    """A schema of raw bytes keys and values that hands faust's streams the message's own bytes.

    What faust's own ``Schema(key_type=bytes, value_type=bytes)`` gives too, without its decode
    path per record per agent (the serializer registry and the raw codec for key and value:
    3.1 us per delivery here, 1.7 us with this, most of it faust's Event). The stages decode the
    bytes themselves (``streams.codec``). Sending goes faust's way (our :class:`Topic` sends
    bytes directly).

    >>> import asyncio
    >>> from types import SimpleNamespace
    >>> app = SimpleNamespace(create_event=lambda key, value, headers, message: (key, value, headers))
    >>> decode = RawSchema(key_type=bytes, value_type=bytes).compile(app)
    >>> message = SimpleNamespace(key=b"e-1", value=b"{}", headers=[("h", b"v")])
    >>> asyncio.run(decode(message))
    (b'e-1', b'{}', [('h', b'v')])
    """

    def compile(self, app: Any, **_: Any) -> Any:
        create_event = app.create_event

        async def decode(message: Message, *, propagate: bool = False) -> Any:
            return create_event(message.key, message.value, message.headers, message)

        return decode


def _log_failed_send(topic: str, future: asyncio.Future[RecordMetadata]) -> None:
    """Say so when the broker never took a record (as faust's ``Topic._on_published`` does)."""
    if not future.cancelled() and future.exception() is not None:
        log.warning("send to %s failed: %r", topic, future.exception())


class Resumed(Awaitable[Any]):
    """The rest of a coroutine that already ran up to its first wait, as an awaitable for a task.

    ``waiting`` is what the coroutine's first step yielded (the future it waits on). A task
    awaiting this waits on that, then drives the coroutine on, passing in whatever the
    task sends or throws (a cancellation reaches the coroutine as it would have).

    >>> async def twice():
    ...     await asyncio.sleep(0)
    ...     return 2
    >>> async def main():
    ...     coro = twice()
    ...     return await Resumed(coro, coro.send(None))
    >>> asyncio.run(main())
    2
    """

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting: Any) -> None:
        self._coro = coro
        self._waiting = waiting

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, waiting = self._coro, self._waiting
        while True:
            try:
                sent = yield waiting
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as error:  # thrown in by the task: the coroutine decides
                try:
                    waiting = coro.throw(error)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    waiting = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class IdempotentProducer(faust_aiokafka.Producer):
    """acks=all with idempotence on every producer faust creates; ``flush`` waits for table writes."""

    def __post_init__(self) -> None:
        super().__post_init__()
        #: Records given to ``send_soon`` that the broker has not acknowledged yet.
        self._unsent: set[FutureMessage] = set()

    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}

    def send_soon(self, fut: FutureMessage) -> None:
        """Buffer ``fut`` (a table's changelog write) and remember it until the broker has it."""
        self._unsent.add(fut)
        fut.add_done_callback(self._unsent.discard)
        super().send_soon(fut)

    async def flush(self) -> None:
        """Send the buffer and wait until every buffered record is acknowledged (or failed).

        A failed write raises here, so the consumer does not commit offsets past it.
        """
        await super().flush()
        pending = list(self._unsent)
        if pending:
            await asyncio.gather(*pending)


class ReadOffsets(dict[TP, int | None]):
    """faust's last-read offset per partition, not moved by records streams drop.

    faust's fetch loop drops a record below the last offset it read from the
    partition ("DROPPED MESSAGE ROFF"), and the seek to the committed offsets
    after a rebalance lowers that offset so the records after it come again. But
    the partitions are resumed before that seek and flow control is turned on
    only after it: records fetched in between reach the streams, which drop them
    (flow control is off), while the loop still moves the last-read offset past
    them, and their second delivery after the seek is dropped as already read.
    The partition then sits at its end with those records never handled (seen:
    label requests of a taken-over partition never dispatched, the consumer's
    position at the highwater). So the loop's updates are ignored while flow
    control is off; the seek's (``update``) always apply.

    >>> active = [False]
    >>> offsets = ReadOffsets(lambda: active[0])
    >>> offsets["tp"] = 134          # dropped while flow control is off: not read
    >>> offsets["tp"] is None
    True
    >>> offsets.update({"tp": 55})   # the seek to the committed offset
    >>> active[0] = True
    >>> offsets["tp"] = 56
    >>> offsets["tp"]
    56
    """

    def __init__(self, flow_active: Callable[[], bool]) -> None:
        super().__init__()
        self._flow_active = flow_active

    def __missing__(self, tp: TP) -> None:
        return None

    def __setitem__(self, tp: TP, offset: int | None) -> None:
        if self._flow_active():
            super().__setitem__(tp, offset)


class FlowControl(FlowControlEvent):
    """faust's flow control of the stream queues, whose resume clears them only after a suspend.

    Resuming clears every stream's queue (faust's channels are ``clear_on_resume``):
    what was queued before the suspend belongs to the previous assignment. But
    faust's recovery resumes the flow twice: for the changelogs, then again in
    ``Recovery._resume_streams`` after it has resumed the stream partitions and
    while it seeks them to their committed offsets. Records fetched in between are
    in the streams' queues, of this assignment, and the second resume wiped them:
    never handled, never acknowledged, and when the seek had run before they were
    drained from the fetch buffer, never fetched again. The partition then sat
    at its end with its commit below them (seen in the restart loop test: the
    records of ``predictions[0]`` from 173 to 487 delivered to the router's queue,
    none handled, until the next restart). Here a resume of a flow that is not
    suspended leaves the queues as they are; after a suspend it clears them as
    faust does.

    >>> import asyncio
    >>> from mode.utils.queues import FlowControlQueue
    >>> async def demo() -> list[int]:
    ...     flow = FlowControl()
    ...     queue = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    ...     flow.resume()
    ...     queue.put_nowait("fetched after the resume")
    ...     flow.resume()                  # again, never suspended: kept
    ...     kept = queue.qsize()
    ...     flow.suspend()
    ...     flow.resume()                  # after a suspend: cleared
    ...     return [kept, queue.qsize()]
    >>> asyncio.run(demo())
    [1, 0]
    """

    def resume(self) -> None:
        if self.is_active():
            return
        super().resume()


class CommitFloor:
    """Per partition, the offsets of deliveries a stream dropped that were not done since.

    faust commits the end of the first run of consecutive acknowledged offsets,
    and only withholds the commit when the run starts more than one offset above
    the committed one, and never when nothing (or offset 0) is committed yet
    (``Consumer._new_offset``). A record dropped at a rebalance (its
    acknowledgement is not committable, see :class:`GenerationSafeConsumer`)
    while the ones after it are handled leaves exactly such a hole: the next
    commit passed it, and a SIGKILL before its second delivery lost it. A
    dropped record's offset is held here until a delivery of it is done; no
    commit goes past the lowest one held.

    >>> floor = CommitFloor()
    >>> floor.dropped("tp", 16, committed=None, done=False)
    >>> floor.dropped("tp", 40, committed=None, done=True)    # its second delivery came first
    >>> floor.lowest("tp", committed=None)
    16
    >>> floor.done("tp", 16)
    >>> floor.lowest("tp", committed=None) is None
    True
    """

    def __init__(self) -> None:
        self._held: dict[TP, set[int]] = {}

    def dropped(self, tp: TP, offset: int, *, committed: int | None, done: bool) -> None:
        """A delivery of ``offset`` was dropped; hold it unless it is done or committed already."""
        if done or (committed is not None and offset < committed):
            return
        self._held.setdefault(tp, set()).add(offset)

    def done(self, tp: TP, offset: int) -> None:
        """A delivery of ``offset`` was handled: nothing holds the commit there any more."""
        held = self._held.get(tp)
        if held is not None:
            held.discard(offset)
            if not held:
                del self._held[tp]

    def lowest(
        self, tp: TP, *, committed: int | None, skipped: Callable[[int], bool] | None = None
    ) -> int | None:
        """The lowest held offset of ``tp``.

        Offsets below ``committed`` (done by an earlier owner) and those the fetch
        loop saw the log skip (``skipped``: compacted away, or transaction markers;
        no delivery of them will come) are let go.
        """
        held = self._held.get(tp)
        if not held:
            return None
        gone = [o for o in held if (committed is not None and o < committed) or (skipped and skipped(o))]
        held.difference_update(gone)
        if not held:
            del self._held[tp]
            return None
        return min(held)

    def keep_only(self, tps: set[TP]) -> None:
        """Forget the partitions this worker no longer holds."""
        for tp in [tp for tp in self._held if tp not in tps]:
            del self._held[tp]

    def held(self) -> dict[TP, list[int]]:
        """What is held, for the worker's state dump."""
        return {tp: sorted(offsets) for tp, offsets in self._held.items()}


def first_committable_run(acked: list[int], committed: int | None, floor: int | None) -> list[int]:
    """The acknowledged offsets a commit may cover now: faust's first run, cut below ``floor``.

    ``acked`` is sorted. faust's rule stays (no run when it starts more than one
    above ``committed``); ``floor`` is the lowest offset not done: a record a
    stream still handles, or a dropped delivery (:class:`CommitFloor`).

    >>> first_committable_run([32, 33], committed=31, floor=None)   # faust commits 34 here
    [32, 33]
    >>> first_committable_run([32, 33], committed=31, floor=31)
    []
    >>> first_committable_run([5, 6, 7, 9], committed=None, floor=7)
    [5, 6]
    >>> first_committable_run([35, 36], committed=31, floor=None)
    []
    """
    if not acked or (committed and acked[0] - committed > 1):
        return []
    run = list(next(consecutive_numbers(acked)))
    return run if floor is None else [offset for offset in run if offset < floor]


class GenerationSafeConsumer(faust_aiokafka.Consumer):
    """Never commit the offset of a message a stream dropped at a rebalance.

    After a rebalance faust's streams drop every queued message fetched under the
    previous consumer generation (``Stream.__aiter__``: "Skipping message ... with
    generation_id"), and acknowledge it as they drop it. If the worker kept the
    partition, that acknowledgement lets the offset be committed past a record that
    no agent processed, and the seek to the committed offsets that follows the
    rebalance starts after it: the record is lost. Seen in the three-worker SIGKILL
    test: a router stream went from offset 16 to 18 of a kept partition, and that
    event never got a Label. Streams drop (and acknowledge) what reaches them while
    flow control is off as well, during a rebalance's table recovery: a new owner
    went from offset 0 to 135 of the partition it took over, 80 events never
    routed. Here such an acknowledgement ends the message's
    bookkeeping (nothing waits for it) without making its offset committable, so
    the seek starts at or before it and the message is delivered again. Until a
    delivery of it is done, no commit goes past it (:class:`CommitFloor`), nor
    past a record a stream still handles (faust-streaming #606).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = ReadOffsets(self.app.flow_control.is_active)
        self.commit_floor = CommitFloor()

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:  # noqa: ASYNC109 - mode's signature
        """mode's ``wait_first``, without four tasks when the first coroutine finishes at once.

        faust's fetch loop hands every record to the streams with
        ``wait_first(callback(message), self.suspend_flow.wait())``: mode wraps the callback,
        the event's wait and the service's stopped and crashed events in four tasks and
        cancels three of them, for every record consumed. The callback nearly always finishes
        without waiting (the streams' buffers have room, flow control is on): here its first
        step runs at once, and when it finishes there, it is the winner and the other
        coroutines are closed unrun. When it has to wait (a full buffer, flow control off
        during a rebalance), the rest of it races the others in mode's ``wait_first``
        exactly as before, so a rebalance still interrupts a delivery stuck on a full buffer.
        """
        first = coros[0] if coros else None
        if (
            timeout is not None
            or not asyncio.iscoroutine(first)
            or self._stopped.is_set()
            or self._crashed.is_set()
        ):
            return await super().wait_first(*coros, timeout=timeout)
        rest = coros[1:]
        try:
            waiting = first.send(None)
        except StopIteration as stop:
            for other in rest:
                if asyncio.iscoroutine(other):
                    other.close()
            return WaitResults([first], [stop.value], False)
        except BaseException:
            for other in rest:
                if asyncio.iscoroutine(other):
                    other.close()
            raise
        resumed = Resumed(first, waiting)
        done, results, stopped = await super().wait_first(resumed, *rest)
        return WaitResults([first if winner is resumed else winner for winner in done], results, stopped)

    async def wait_empty(self) -> None:
        """faust's wait for every started record to be acknowledged, for :data:`SHUTDOWN_WAIT_S` at most."""
        deadline = time.monotonic() + SHUTDOWN_WAIT_S
        while not self.should_stop and self._unacked_messages and time.monotonic() < deadline:
            gc.collect()  # faust's step: the set is weak, a record no stream holds is gone
            await self.commit()
            if not self._unacked_messages:
                break
            await self._wait_for_ack(timeout=1)
            self._clean_unacked_messages()
        if self._unacked_messages:
            pending = sorted((m.tp.topic, m.tp.partition, m.offset) for m in list(self._unacked_messages))
            log.warning(
                "stopping with %d records not acknowledged after %.0f s (not committed: read again by "
                "the next owner): %s",
                len(pending),
                SHUTDOWN_WAIT_S,
                pending[:5],
            )
        await self.commit_and_end_transactions()

    def ack(self, message: Message) -> bool:
        current = self.app.consumer_generation_id
        stale = message.generation_id is not None and message.generation_id != current
        acking = self.app.topics.acks_enabled_for(message.topic)
        # The same skip happens while flow control is off (a rebalance and its table
        # recovery): a message that reaches a stream then is dropped and acknowledged too.
        if stale or not self.app.flow_control.is_active():
            with ack_lock:
                if not message.acked:
                    message.acked = True
                    self._unacked_messages.discard(message)
                    if acking:
                        tp, offset = message.tp, message.offset
                        done = offset in self._acked_index[tp]
                        self.commit_floor.dropped(tp, offset, committed=self._committed_offset[tp], done=done)
            return False
        acked = bool(super().ack(message))
        if acking:
            self.commit_floor.done(message.tp, message.offset)
        return acked

    def _new_offset(self, tp: TP) -> int | None:
        """faust's next offset to commit for ``tp``, never past a record that is not done."""
        acked = self._acked[tp]
        if not acked:
            return None
        committed = self._committed_offset[tp]
        floor = self._floor(tp, committed)
        self._fill_gaps(tp, acked, floor)
        acked.sort()
        run = first_committable_run(acked, committed, floor)
        if not run:
            return None
        del acked[: len(run)]
        self._acked_index[tp].difference_update(run)
        return run[-1] + 1

    def _floor(self, tp: TP, committed: int | None) -> int | None:
        """The lowest offset of ``tp`` not done: a dropped delivery, or a record a stream still handles."""
        generation = self.app.consumer_generation_id
        gaps = self._gap[tp]
        lows = [self.commit_floor.lowest(tp, committed=committed, skipped=gaps.overlaps if gaps else None)]
        # A record of an older generation is delivered again after the seek: its second delivery counts.
        lows += [
            m.offset
            for m in list(self._unacked_messages)
            if m.tp == tp and not m.acked and m.generation_id in (None, generation)
        ]
        offsets = [offset for offset in lows if offset is not None]
        return min(offsets) if offsets else None

    def _fill_gaps(self, tp: TP, acked: list[int], floor: int | None) -> None:
        """faust's step: offsets the fetch loop saw skipped (compaction, markers) count as acked.

        faust takes every gap below the highest ack; here only those below ``floor`` too.
        """
        gaps = self._gap[tp]
        if not gaps:
            return
        highest = max(acked)
        limit = highest if floor is None else min(highest, floor)
        fill = [o for gap in sorted(gaps.overlap(0, limit)) for o in range(gap.begin, gap.end)]
        if floor is not None:
            fill = [offset for offset in fill if offset < floor]
        if fill:
            acked.extend(fill)
            gaps.chop(0, fill[-1] + 1 if floor is not None else max(fill[-1] + 1, highest + 1))

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self.commit_floor.keep_only(set(assigned))
        await super().on_partitions_assigned(assigned, generation_id)

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's consumer reading committed records only, in every processing guarantee.

    faust reads ``read_committed`` only under exactly_once (``_create_worker_consumer``). The
    router now writes ``labels``, ``label-requests`` and the DLQ in transactions
    (``streams/batches.py``): read uncommitted, a worker's agents (and the tables' changelog
    recovery) would see the records of a transaction that a killed router left open and its
    successor aborted, and act on Labels that consumers never get. aiokafka takes the level
    from the consumer's ``_isolation_level`` when it starts its fetcher, after this.
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"
        return consumer


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport with :class:`IdempotentProducer` and :class:`GenerationSafeConsumer`."""

    Producer = IdempotentProducer
    Consumer = GenerationSafeConsumer
