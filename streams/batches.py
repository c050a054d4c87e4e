"""One Kafka transaction per poll: topics read in batches, each poll's outputs, state and offsets at once.

faust hands an agent one record at a time, and that delivery costs more than the work
itself on the loop's busiest paths (bench F1: a bare faust agent that only forwards bytes
spent 67 µs of CPU per record, a raw aiokafka consume→produce loop 22 µs). The router and
the readers of ``labels`` (the router's estimators, the learner, the monitor) need neither
faust's streams nor its tables. :class:`TransactionalBatches` is a ``mode.Service`` the faust
worker starts and stops, which reads their topics with a consumer of its own (consumer group
``<app_id>-<name>``), hands each partition's batch of a poll to the topics' handlers, which
decide it in memory, and then produces everything the poll made (Labels, LabelRequests, DLQ
records), the batches' state changes and their input offsets **in one Kafka transaction**.

The client is confluent-kafka (librdkafka): the protocol runs in librdkafka's C threads, and its
``send_offsets_to_transaction`` carries the consumer group's generation (KIP-447), so ONE
transactional producer per worker commits all of the worker's partitions of a poll in one
transaction and a zombie is fenced by the group. With aiokafka 0.14 (no KIP-447) the fencing had
to be by a transactional id per partition, one transaction per partition batch, ~5 broker requests
each through aiokafka's Python: at 1,000 events/s that cost 174 µs of CPU per record in a bare
consume→copy→commit loop, against 64 µs here (``bench/txn_clients.py``). Every call into librdkafka
that blocks runs in one thread of the service's own (:meth:`TransactionalBatches._call`), never on
faust's event loop; librdkafka's rebalance callbacks run there too, inside the poll, and wait for
their coroutine on the event loop.

The topics are co-partitioned (same key, same partition count) and assigned by range, so a
worker owns partition *p* of every one of them: the router's decision for an event and the
human label that comes back for it are handled by the same worker, which joins them in its
partition state (the learner's inputs waiting for their labels).

What that makes exact, without a ledger entry or a faust table write per event:

- **A worker killed between produce and commit.** Its open transaction is aborted, so readers in
  ``read_committed`` never see its records, and the batches' offsets were not committed: the next
  owner handles the same records again, once. The worker's transactional id is kept in its data
  dir (:meth:`TransactionalBatches.transactional_id`): restarted there, its ``init_transactions``
  aborts the transaction at once; a worker that never comes back leaves it to the broker's
  transaction timeout (``LABELLOOP_BATCH__TRANSACTION_TIMEOUT_S``, 10 s).
- **A zombie** (a worker that lost its partitions while it was stalled): its offsets go with the
  group generation it had, which the group coordinator refuses, so its transaction aborts and
  nothing of it is ever read; the partitions it had are rebuilt from the changelog if they come
  back to it.
- **The same key published twice by a producer** (a retry, a replay) at another offset:
  a transaction cannot know that. The handler asks the partition's state
  (:meth:`Batch.seen`), a RocksDB store per partition (memory bounded like the event
  tables', ``streams/app.py``); every batch writes its state changes to a compacted changelog
  topic **inside the same transaction**, so the state and the outputs it stands for are
  committed together or not at all. A partition's state is rebuilt from that changelog (read
  committed) when the partition is assigned.
- **A poison record** is the handler's to dead-letter (its DLQ record is one more output of
  the batch): it never fails or replays the batch's good records.

A transaction that fails on Kafka (a broker away, a timeout) is aborted and its batches read again
from their first offsets after a pause: backpressure, never a drop. A partition whose handler
raised (a bug) is left out of the poll's transaction and read again. Readers of the outputs must
read committed (every consumer of the loop does: ``streams/transport.py`` for faust's).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import signal
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from mode import Service

from streams import batch_clients
from streams.batch import Batch, BatchHandler, Committed
from streams.batch_state import SEEN, OwnedPartition, OwnedPartitions, changes_values
from streams.runtime import Record
from streams.settings import Settings

log = logging.getLogger(__name__)

#: After a Kafka failure a batch waits this long before it is read again.
RETRY_WAIT_S = 1.0


@dataclass
class _Decided:
    """One partition's batch of a poll, decided, waiting for the poll's transaction."""

    batch: Batch
    #: Per topic: the batch's first offset (read again from there) and the offset to commit.
    firsts: dict[str, int]
    upto: dict[str, int]


class TransactionalBatches(Service):
    """Consume co-partitioned topics in batches; per poll, one transaction over every partition of it.

    Parameters
    ----------
    settings
        Broker, security, app id (the group is ``<app_id>-<name>``), data dir, batch settings.
    name
        The service (``batches``): its group, transactional id and local state carry it.
    handlers
        Per input topic, the handler of its records (called in this order within a batch).
    state_topic
        The compacted changelog of the partitions' state.
    seen_topic
        The topic whose record keys are looked up in the ``seen`` state up front (one multi-get
        per batch for :meth:`Batch.seen`); None for none.
    committed
        Sees each committed batch (metrics), before the batch's own effects run.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        name: str,
        handlers: Mapping[str, BatchHandler],
        state_topic: str,
        seen_topic: str | None = None,
        committed: Committed | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.stage = name
        self.handlers = dict(handlers)
        self.group_id = f"{settings.app_id}-{name}"
        self._state_topic = state_topic
        self._seen_topic = seen_topic
        self._committed = committed
        self._consumer: Any = None
        self._producer: Any = None
        #: Every call into librdkafka's consumer and producer, one after another, off the event loop.
        self._kafka = ThreadPoolExecutor(1, thread_name_prefix=f"labelloop-{name}-kafka")
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._partitions = OwnedPartitions(
            settings, stage=name, group_id=self.group_id, state_topic=state_topic
        )
        #: Held while batches are decided and committed; a rebalance waits for it.
        self._working = asyncio.Lock()
        self.batches = 0
        self.transactions = 0
        self.records = 0
        self.aborted = 0

    # -- clients ---------------------------------------------------------------------------

    def transactional_id(self) -> str:
        """This worker's transactional id, kept in its data dir (:func:`.batch_clients.transactional_id`)."""
        return batch_clients.transactional_id(self.settings, self.stage, self.group_id)

    def _new_producer(self) -> Any:
        """The worker's transactional producer, its transactions initialised (in the Kafka thread)."""
        return batch_clients.new_producer(
            self.settings, self.group_id, self.transactional_id(), self._timeout_s
        )

    @property
    def _timeout_s(self) -> float:
        return self.settings.kafka.request_timeout_ms / 1000

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` in the Kafka thread (librdkafka's calls block; the event loop must not)."""
        return await asyncio.get_running_loop().run_in_executor(
            self._kafka, functools.partial(function, *args)
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def on_start(self) -> None:
        from confluent_kafka import Consumer

        self._event_loop = asyncio.get_running_loop()
        shutil.rmtree(self._partitions.state_dir, ignore_errors=True)
        self._producer = await self._call(self._new_producer)
        self._consumer = Consumer(batch_clients.consumer_config(self.settings, self.group_id))
        self._consumer.subscribe(
            list(self.handlers),
            on_assign=self._assigned_cb,
            on_revoke=self._revoked_cb,
            on_lost=self._lost_cb,
        )

    async def on_stop(self) -> None:
        # The batch under way is finished (committed) first: the loop checks should_stop. The lock
        # is let go before the consumer closes: leaving the group revokes the partitions, and the
        # revocation waits for the lock too.
        async with self._working:
            consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await self._call(consumer.close)  # leaves the group: the partitions move at once
        async with self._working:
            self._partitions.drop_all()
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await self._call(producer.flush, self._timeout_s)
        self._kafka.shutdown(wait=False)

    @Service.task
    async def _run(self) -> None:
        from confluent_kafka import KafkaException

        batch = self.settings.batch
        while not self.should_stop and self._consumer is not None:
            consumer = self._consumer
            try:
                messages = await self._call(
                    batch_clients.fetch,
                    consumer,
                    batch.max_records,
                    batch.poll_timeout_ms / 1000,
                    batch.gather_ms / 1000,
                )
            except (KafkaException, RuntimeError) as error:  # RuntimeError: closed meanwhile
                if self._consumer is None:
                    break
                log.warning("%s: fetch failed (%s); trying again in %.1f s", self.stage, error, RETRY_WAIT_S)
                await asyncio.sleep(RETRY_WAIT_S)
                continue
            if not messages:
                continue
            async with self._working:
                if self._consumer is None:
                    break  # stopping: what was fetched is read again by the partitions' next owner
                await self._poll(messages)

    def assignment(self) -> list[tuple[str, int]]:
        """The (topic, partition)s this worker's batch path owns now."""
        if self._consumer is None:
            return []
        with contextlib.suppress(Exception):
            return sorted((tp.topic, tp.partition) for tp in self._consumer.assignment())
        return []

    async def end_offsets(self, places: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The end offsets (read committed: the last stable offset) of ``places``."""
        if self._consumer is None or not places:
            return {}
        # A reader of its own: the batch path's consumer is busy in the Kafka thread.
        return await batch_clients.end_offsets(self.settings, places)

    # -- rebalances ------------------------------------------------------------------------
    # librdkafka calls these in the Kafka thread, inside ``consume``: each runs its coroutine on
    # the event loop and waits for it (no batch is under way then: the loop is awaiting the poll).

    def _on_loop(self, coroutine: Coroutine[Any, Any, None]) -> None:
        loop = self._event_loop
        if loop is None or loop.is_closed():
            coroutine.close()
            return
        asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    def _assigned_cb(self, consumer: Any, assigned: list[Any]) -> None:
        self._on_loop(self._on_assigned({tp.partition for tp in assigned}))

    def _revoked_cb(self, consumer: Any, revoked: list[Any]) -> None:
        self._on_loop(self._on_revoked({tp.partition for tp in revoked}))

    def _lost_cb(self, consumer: Any, lost: list[Any]) -> None:
        # Lost (the session expired): another worker may own them already, never keep their state.
        self._on_loop(self._on_revoked({tp.partition for tp in lost}, lost=True))

    async def _on_revoked(self, partitions: set[int], lost: bool = False) -> None:
        async with self._working:
            self._partitions.revoke(partitions, lost=lost)

    async def _on_assigned(self, partitions: set[int]) -> None:
        async with self._working:
            await self._partitions.assign(partitions)
            log.info(
                "%s: partitions %s of %s", self.stage, sorted(self._partitions.owned), sorted(self.handlers)
            )

    # -- one poll: every partition's batch, one transaction ----------------------------------

    async def _poll(self, messages: Sequence[Any]) -> None:
        by_partition: dict[int, dict[str, list[Record]]] = {}
        for message in messages:
            if message.error() is not None:
                log.warning("%s: fetch error %s", self.stage, message.error())
                continue
            record = Record(
                key=message.key(),
                value=message.value(),
                topic=message.topic(),
                partition=message.partition(),
                offset=message.offset(),
                headers=tuple(message.headers() or ()),
            )
            by_partition.setdefault(record.partition, {}).setdefault(record.topic, []).append(record)
        decided: list[_Decided] = []
        failed: dict[int, dict[str, int]] = {}
        for partition, records in by_partition.items():
            part = self._partitions.get(partition)
            if part is None:
                continue  # revoked: the next owner reads these records
            firsts = {topic: found[0].offset for topic, found in records.items()}
            batch = await self._decide(partition, part, records)
            if batch is None:
                failed[partition] = firsts
                continue
            upto = {topic: found[-1].offset + 1 for topic, found in records.items()}
            decided.append(_Decided(batch, firsts, upto))
        if decided:
            await self._commit(decided)
        if failed:
            await self._read_again(failed)

    async def _decide(
        self, partition: int, part: OwnedPartition, records: dict[str, list[Record]]
    ) -> Batch | None:
        """The partition's batch, handled in memory; None if a handler failed (it is read again)."""
        keyed = records.get(self._seen_topic or "", ())
        known = part.state.known(SEEN, [text for r in keyed if (text := r.key_text) is not None])
        batch = Batch(partition, records, part.state, known)
        try:
            for topic, handle in self.handlers.items():
                if topic in records:
                    await handle(batch, records[topic])
        except Exception:
            # A handler dead-letters a bad record itself; this is a bug around the records.
            log.exception("%s: batch of partition %d failed; reading it again", self.stage, partition)
            return None
        return batch

    async def _commit(self, decided: list[_Decided]) -> None:
        """The poll's batches in one transaction; then their state, counters and effects."""
        from confluent_kafka import KafkaException

        try:
            await self._call(self._transact, decided)
        except KafkaException as exception:
            error = exception.args[0] if exception.args else exception
            fatal = bool(getattr(error, "fatal", lambda: False)())
            partitions = sorted(item.batch.partition for item in decided)
            log.warning(
                "%s: transaction of partitions %s failed (%s); aborted, reading it again",
                self.stage,
                partitions,
                error,
            )
            self.aborted += 1
            await self._call(self._abort, fatal)
            for item in decided:
                if (part := self._partitions.get(item.batch.partition)) is not None:
                    part.suspect = True
            await self._read_again({item.batch.partition: item.firsts for item in decided})
            return
        self.transactions += 1
        for item in decided:
            batch = item.batch
            part = self._partitions.get(batch.partition)
            if batch.changes and part is not None:
                part.state.apply(batch.changes)
            self.batches += 1
            self.records += sum(len(found) for found in batch.records.values())
            if self._committed is not None:
                self._committed(batch)
            for effect in batch.effects:
                result = effect()
                if result is not None:
                    await result

    def _transact(self, decided: list[_Decided]) -> None:
        """In the Kafka thread: begin, produce every output and state change, the offsets, commit."""
        from confluent_kafka import TopicPartition

        producer = self._producer
        producer.begin_transaction()
        offsets = []
        for item in decided:
            batch = item.batch
            for produced in batch.out:
                headers = list(produced.headers) if produced.headers else None
                # A partition the handler computed (Kafka's murmur2, as librdkafka's murmur2_random)
                # spares librdkafka nothing much, but keeps one rule: the catalogue's counts decide.
                where = {} if produced.partition is None else {"partition": produced.partition}
                batch_clients.produce(
                    producer, produced.topic, produced.value, produced.key, headers=headers, **where
                )
            first = min(item.firsts.values())
            for part_no, value in enumerate(changes_values(batch.changes)):
                key = f"{batch.partition}:{first}:{part_no}".encode()
                batch_clients.produce(producer, self._state_topic, value, key, partition=batch.partition)
            offsets += [TopicPartition(topic, batch.partition, offset) for topic, offset in item.upto.items()]
        # KIP-447: the offsets carry the group's generation; a zombie's are refused, its transaction aborted.
        producer.send_offsets_to_transaction(
            offsets, self._consumer.consumer_group_metadata(), self._timeout_s
        )
        self._drill(decided, producer)
        producer.commit_transaction(self._timeout_s)

    def _abort(self, fatal: bool) -> None:
        """In the Kafka thread: abort the open transaction; a producer in a fatal state is replaced."""
        if not fatal:
            try:
                self._producer.abort_transaction(self._timeout_s)
                return
            except Exception as error:  # the abort failed too: start over with a new producer
                log.warning("%s: abort failed (%s); a new producer", self.stage, error)
        with contextlib.suppress(Exception):
            self._producer.flush(0)
        self._producer = self._new_producer()

    async def _read_again(self, firsts: Mapping[int, Mapping[str, int]]) -> None:
        """After a pause, fetch the partitions again from their batches' first offsets."""
        from confluent_kafka import TopicPartition

        await asyncio.sleep(RETRY_WAIT_S)
        consumer = self._consumer
        if consumer is None:
            return
        for partition, offsets in firsts.items():
            if partition in self._partitions:
                for topic, offset in offsets.items():
                    with contextlib.suppress(Exception):  # revoked meanwhile: its next owner reads it
                        await self._call(consumer.seek, TopicPartition(topic, partition, offset))

    def _drill(self, decided: list[_Decided], producer: Any) -> None:
        """The fault drill's kill point: a transaction on the broker, its commit not sent (tests only)."""
        after = self.settings.batch.kill_before_commit_after
        if after is not None and self.transactions + 1 >= after:
            producer.flush(self._timeout_s)
            log.warning(
                "%s: drill: SIGKILL between produce and commit of partitions %s (%d outputs)",
                self.stage,
                sorted(item.batch.partition for item in decided),
                sum(len(item.batch.out) for item in decided),
            )
            os.kill(os.getpid(), signal.SIGKILL)
