"""One Kafka transaction per batch: a topic read in batches, each batch's outputs and offsets at once.

faust hands an agent one record at a time, and that delivery costs more than the work
itself on the router's path (bench F1: a bare faust agent that only forwards bytes spent
67 µs of CPU per record, a raw aiokafka consume→produce loop 22 µs). The router needs
neither faust's streams nor its tables: it decides each prediction with a pure core.
:class:`TransactionalBatches` is a ``mode.Service`` the faust worker starts and stops,
which reads its topic with a consumer of its own (consumer group ``<app_id>-<name>``,
``getmany``), hands each partition's batch to a handler that decides it in memory, and then
produces everything the batch made (Labels, LabelRequests, DLQ records) and commits the
batch's input offsets **in one Kafka transaction** (``send_offsets_to_transaction``).

What that makes exact, without a ledger entry or a table write per event:

- **A worker killed between produce and commit.** Its open transaction is aborted (the
  partition's next producer fences it at once, see below), so readers in ``read_committed``
  never see its records, and the batch's offsets were not committed: the next owner
  decides the same records again, once.
- **A dead owner's or a zombie's records.** Every partition has its own transactional id
  (``<app_id>-<name>-<partition>``): the producer that takes a partition over calls
  ``init_transactions`` with that id, which aborts whatever the previous owner left open and
  fences it, so a worker that lost its partitions while it was stalled can commit nothing
  more for them. (aiokafka 0.14's ``send_offsets_to_transaction`` sends the group id only,
  without the group's generation of KIP-447, so the fencing is by transactional id per
  partition, as Kafka Streams did before EOS v2.)
- **The same key published twice by a producer** (a retry, a replay) at another offset:
  a transaction cannot know that. The batch's handler asks :meth:`Batch.seen`, backed by a
  RocksDB set per partition (memory bounded as the event tables', ``streams/app.py``), and
  every batch writes the keys it marked to a compacted changelog topic **inside the same
  transaction**, so the set and the outputs it stands for are committed together or not at
  all. A partition's set is rebuilt from that changelog (read committed) when the
  partition is assigned.
- **A poison record** is the handler's to dead-letter (its DLQ record is one more output of
  the batch): it never fails or replays the batch's good records.

A batch that fails on Kafka (a broker away, a timeout) is aborted and read again from its
first offset after a pause: backpressure, never a drop. Readers of the outputs must read
committed (every consumer of the loop does: ``streams/transport.py`` for faust's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mode import Service

from streams.codec import MAX_DLQ_VALUE_BYTES
from streams.errors import ContractError
from streams.runtime import Record
from streams.settings import Settings

log = logging.getLogger(__name__)

#: After a Kafka failure a batch waits this long before it is read again.
RETRY_WAIT_S = 1.0
#: The largest output a batch sends: the DLQ's own bound, under the producer's 1 MiB request limit.
MAX_OUTPUT_BYTES = MAX_DLQ_VALUE_BYTES


@dataclass(frozen=True, slots=True)
class Produced:
    """One record a batch sends (key-partitioned by the producer, like every output of the loop)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] | None = None


@dataclass
class Batch:
    """One partition's records and what handling them makes, sent in one transaction.

    The handler calls :meth:`send` for each output and :meth:`mark` for each key it must not
    handle again, and :meth:`after_commit` for in-process effects (metrics, the monitor) that
    must happen once per committed record, not again when an aborted batch is read again.

    >>> batch = Batch(0, [], known=frozenset({b"e-1"}))
    >>> batch.seen(b"e-1"), batch.seen(b"e-2")
    (True, False)
    >>> batch.mark(b"e-2"); batch.seen(b"e-2")
    True
    """

    partition: int
    records: Sequence[Record]
    #: Keys of this batch's records that the partition's set has from earlier batches.
    known: frozenset[bytes] = frozenset()
    out: list[Produced] = field(default_factory=list)
    marked: list[bytes] = field(default_factory=list)
    effects: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)
    _marked: set[bytes] = field(default_factory=set)

    def seen(self, key: bytes) -> bool:
        """Was ``key`` marked by an earlier batch of the partition or earlier in this one?"""
        return key in self.known or key in self._marked

    def mark(self, key: bytes) -> None:
        """Remember ``key`` (committed with this batch)."""
        if key not in self._marked:
            self._marked.add(key)
            self.marked.append(key)

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        """Add one output record to the batch's transaction.

        An output the producer would refuse (over :data:`MAX_OUTPUT_BYTES`) is a
        :class:`ContractError`: the record that made it goes to the DLQ instead of failing the
        whole batch's transaction.
        """
        size = len(key or b"") + len(value or b"")
        if size > MAX_OUTPUT_BYTES:
            raise ContractError(
                f"too_large: the {topic} record it makes is {size} bytes > {MAX_OUTPUT_BYTES}",
                kind="too_large",
            )
        self.out.append(Produced(topic, key, value, headers))

    def after_commit(self, effect: Callable[[], Awaitable[None] | None]) -> None:
        """Run ``effect`` once the batch is committed (in the order given)."""
        self.effects.append(effect)

    def savepoint(self) -> tuple[int, int, int]:
        """Where the batch stands: :meth:`rollback` to it drops what was added since."""
        return len(self.out), len(self.marked), len(self.effects)

    def rollback(self, point: tuple[int, int, int]) -> None:
        """Drop the outputs, marks and effects added since ``point`` (a record that failed midway)."""
        outs, marks, effects = point
        del self.out[outs:]
        for key in self.marked[marks:]:
            self._marked.discard(key)
        del self.marked[marks:]
        del self.effects[effects:]


class BatchSender:
    """A :class:`~streams.runtime.Sender` into a batch: an ``Output`` or ``DeadLetters`` over it sends
    within the batch's transaction.

    >>> import asyncio
    >>> batch = Batch(0, [])
    >>> asyncio.run(BatchSender(lambda: batch, "t").send(key=b"k", value=b"v"))
    >>> batch.out
    [Produced(topic='t', key=b'k', value=b'v', headers=None)]
    """

    def __init__(self, current: Callable[[], Batch], topic: str) -> None:
        self._current = current
        self.topic = topic

    async def send(self, *, key: bytes | None, value: bytes | None, headers: Any = None) -> None:
        self._current().send(self.topic, key, value, headers)


BatchHandler = Callable[[Batch], Awaitable[None]]
#: Called with every committed batch: (partition, records, outputs).
Committed = Callable[[Batch], None]


class SeenKeys:
    """One partition's set of marked keys, in RocksDB (memory bounded whatever its size).

    The database is a cache of the changelog: made empty when the partition is assigned and
    filled from the changelog, so it can never hold a key whose batch was not committed.
    """

    def __init__(self, path: Path) -> None:
        from faust.stores.rocksdb import RocksDBOptions

        from streams.app import ROCKSDB_OPTIONS

        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        options = {name: value for name, value in ROCKSDB_OPTIONS.items() if name != "driver"}
        self.path = path
        self._db: Any = RocksDBOptions(**options).open(path)

    def known(self, keys: Iterable[bytes]) -> frozenset[bytes]:
        """Those of ``keys`` that are in the set (one multi-get)."""
        wanted = list(keys)
        if not wanted:
            return frozenset()
        found = self._db.get(wanted)
        return frozenset(key for key, value in zip(wanted, found, strict=True) if value is not None)

    def add(self, keys: Iterable[bytes]) -> None:
        """Put ``keys`` in the set (one write batch)."""
        import rocksdict

        batch = rocksdict.WriteBatch(raw_mode=True)
        for key in keys:
            batch.put(key, b"")
        self._db.write(batch)

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self.path, ignore_errors=True)


def seen_value(keys: Sequence[bytes]) -> bytes:
    """A changelog record's value: the batch's marked keys, one per line (event ids have no whitespace).

    >>> seen_value([b"e-1", b"e-2"]), seen_keys(seen_value([b"e-1", b"e-2"]))
    (b'e-1\\ne-2', [b'e-1', b'e-2'])
    """
    return b"\n".join(keys)


def seen_keys(value: bytes | None) -> list[bytes]:
    """The keys of a changelog record (:func:`seen_value`)."""
    return [key for key in (value or b"").split(b"\n") if key]


@dataclass
class _Partition:
    """What this worker holds for one assigned partition: its transactional producer and its keys."""

    producer: Any
    seen: SeenKeys | None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    fenced: bool = False


class TransactionalBatches(Service):
    """Consume ``topic`` in batches; per partition batch, one transaction (outputs + changelog + offsets).

    Parameters
    ----------
    settings
        Broker, security, app id (the group is ``<app_id>-<name>``), data dir, batch settings.
    name
        The stage (``router``): its group, transactional ids and local state carry it.
    topic
        The input topic.
    handle
        Decides one :class:`Batch` in memory (never raises for a record: it dead-letters it).
    seen_topic
        The compacted changelog of the marked keys (None: the handler marks nothing).
    committed
        Sees each committed batch (metrics), before the batch's own effects run.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        name: str,
        topic: str,
        handle: BatchHandler,
        seen_topic: str | None = None,
        committed: Committed | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.stage = name
        self.topic = topic
        self.group_id = f"{settings.app_id}-{name}"
        self._handle = handle
        self._seen_topic = seen_topic
        self._committed = committed
        self._state_dir = settings.data_dir / "batches" / name
        self._consumer: Any = None
        self._partitions: dict[int, _Partition] = {}
        #: Partitions revoked in the rebalance under way, kept in case they come straight back.
        self._revoked: dict[int, _Partition] = {}
        #: Held while batches are decided and committed; a rebalance waits for it.
        self._working = asyncio.Lock()
        self.batches = 0
        self.records = 0
        self.aborted = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def on_start(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.abc import ConsumerRebalanceListener

        service = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                await service._on_revoked({tp.partition for tp in revoked})

            async def on_partitions_assigned(self, assigned: Any) -> None:
                await service._on_assigned({tp.partition for tp in assigned})

        batch = self.settings.batch
        shutil.rmtree(self._state_dir, ignore_errors=True)
        self._consumer = AIOKafkaConsumer(
            group_id=self.group_id,
            client_id=f"{self.group_id}-{os.getpid()}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Never read what an aborted transaction wrote (there is none on the input today; a
            # producer of predictions may use transactions of its own).
            isolation_level="read_committed",
            max_partition_fetch_bytes=batch.max_partition_fetch_bytes,
            fetch_max_wait_ms=batch.fetch_max_wait_ms,
            session_timeout_ms=int(self.settings.session_timeout_s * 1000),
            heartbeat_interval_ms=int(min(3.0, self.settings.session_timeout_s / 3) * 1000),
            **self.settings.kafka.aiokafka_options(),
        )
        self._consumer.subscribe([self.topic], listener=Listener())
        await self._consumer.start()

    async def on_stop(self) -> None:
        # The batch under way is finished (committed) first: the loop checks should_stop.
        async with self._working:
            if self._consumer is not None:
                await self._consumer.stop()  # leaves the group: the partitions move at once
                self._consumer = None
            for partition in [*self._partitions, *self._revoked]:
                await self._drop(partition)

    @Service.task
    async def _run(self) -> None:
        batch = self.settings.batch
        while not self.should_stop:
            fetched = await self._consumer.getmany(
                timeout_ms=batch.poll_timeout_ms, max_records=batch.max_records
            )
            if not fetched:
                continue
            async with self._working:
                await asyncio.gather(
                    *(
                        self._one(tp.partition, [Record.of(m) for m in messages])
                        for tp, messages in fetched.items()
                    )
                )

    # -- rebalances ------------------------------------------------------------------------

    async def _on_revoked(self, partitions: set[int]) -> None:
        async with self._working:
            for partition in partitions:
                found = self._partitions.pop(partition, None)
                if found is not None:
                    self._revoked[partition] = found

    async def _on_assigned(self, partitions: set[int]) -> None:
        async with self._working:
            # Partitions that came straight back: nobody else owned them in between, keep them.
            for partition in list(self._revoked):
                if partition in partitions and not self._revoked[partition].fenced:
                    self._partitions[partition] = self._revoked.pop(partition)
            for partition in list(self._revoked):
                await self._drop(partition)
            for partition in sorted(partitions - set(self._partitions)):
                self._partitions[partition] = await self._take(partition)
            log.info("%s: partitions %s of %s", self.stage, sorted(self._partitions), self.topic)

    async def _take(self, partition: int) -> _Partition:
        """A partition just assigned: fence its previous producer, rebuild its keys."""
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(
            client_id=f"{self.group_id}-{partition}-{os.getpid()}",
            transactional_id=f"{self.group_id}-{partition}",
            acks="all",
            enable_idempotence=True,
            linger_ms=self.settings.batch.linger_ms,
            max_batch_size=256 * 1024,
            transaction_timeout_ms=int(self.settings.batch.transaction_timeout_s * 1000),
            **self.settings.kafka.aiokafka_options(),
        )
        # init_transactions: aborts what the previous owner left open and fences it.
        await producer.start()
        seen = None
        if self._seen_topic is not None:
            seen = SeenKeys(self._state_dir / str(partition))
            restored = await self._restore(partition, seen)
            log.info(
                "%s: partition %d: %d keys restored from %s",
                self.stage,
                partition,
                restored,
                self._seen_topic,
            )
        return _Partition(producer, seen)

    async def _restore(self, partition: int, seen: SeenKeys) -> int:
        """Fill ``seen`` from the partition's changelog, read committed to its end."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        assert self._seen_topic is not None
        tp = TopicPartition(self._seen_topic, partition)
        reader = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            client_id=f"{self.group_id}-restore-{os.getpid()}",
            **self.settings.kafka.aiokafka_options(),
        )
        await reader.start()
        restored = 0
        try:
            reader.assign([tp])
            end = (await reader.end_offsets([tp]))[tp]
            await reader.seek_to_beginning(tp)
            while await reader.position(tp) < end:
                fetched = await reader.getmany(tp, timeout_ms=1_000)
                for message in fetched.get(tp, ()):
                    keys = seen_keys(message.value)
                    seen.add(keys)
                    restored += len(keys)
        finally:
            await reader.stop()
        return restored

    async def _drop(self, partition: int) -> None:
        found = self._partitions.pop(partition, None) or self._revoked.pop(partition, None)
        if found is None:
            return
        with contextlib.suppress(Exception):  # a fenced producer may refuse to stop cleanly
            await found.producer.stop()
        if found.seen is not None:
            found.seen.close()

    # -- one partition's batch ---------------------------------------------------------------

    async def _one(self, partition: int, records: list[Record]) -> None:
        from aiokafka import TopicPartition
        from aiokafka.errors import KafkaError, ProducerFenced

        state = self._partitions.get(partition)
        if state is None or state.fenced:
            return  # revoked or fenced: the next owner reads these records
        known = state.seen.known(r.key for r in records if r.key is not None) if state.seen else frozenset()
        batch = Batch(partition, records, known)
        try:
            await self._handle(batch)
        except Exception:
            # The handler dead-letters a bad record itself; this is a bug around the records.
            log.exception(
                "%s: batch %s[%d]@%d failed; reading it again",
                self.stage,
                self.topic,
                partition,
                records[0].offset,
            )
            await self._read_again(partition, records[0].offset)
            return
        producer = state.producer
        try:
            await producer.begin_transaction()
            for produced in batch.out:
                await producer.send(
                    produced.topic, produced.value, key=produced.key, headers=produced.headers
                )
            if batch.marked and self._seen_topic is not None:
                await producer.send(
                    self._seen_topic,
                    seen_value(batch.marked),
                    key=f"{partition}:{records[0].offset}".encode(),
                    partition=partition,
                )
            await producer.send_offsets_to_transaction(
                {TopicPartition(self.topic, partition): records[-1].offset + 1}, self.group_id
            )
            await self._drill(batch, producer)
            await producer.commit_transaction()
        except ProducerFenced:
            # Another worker owns the partition now (we were a zombie): it reads these again.
            log.warning(
                "%s: partition %d fenced by its new owner; its batch is left to it", self.stage, partition
            )
            state.fenced = True
            self.aborted += 1
            return
        except (KafkaError, ConnectionError, TimeoutError) as error:
            log.warning(
                "%s: batch %s[%d]@%d-%d failed (%s); aborted, reading it again in %.1f s",
                self.stage,
                self.topic,
                partition,
                records[0].offset,
                records[-1].offset,
                error,
                RETRY_WAIT_S,
            )
            self.aborted += 1
            with contextlib.suppress(Exception):
                await producer.abort_transaction()
            await self._read_again(partition, records[0].offset)
            return
        if state.seen is not None and batch.marked:
            state.seen.add(batch.marked)
        self.batches += 1
        self.records += len(records)
        if self._committed is not None:
            self._committed(batch)
        for effect in batch.effects:
            result = effect()
            if result is not None:
                await result

    async def _read_again(self, partition: int, offset: int) -> None:
        """After a pause, fetch ``partition`` again from ``offset`` (what was fetched past it is dropped)."""
        from aiokafka import TopicPartition

        await asyncio.sleep(RETRY_WAIT_S)
        if self._consumer is not None and partition in self._partitions:
            self._consumer.seek(TopicPartition(self.topic, partition), offset)

    async def _drill(self, batch: Batch, producer: Any) -> None:
        """The fault drill's kill point: a batch's records on the broker, its commit not sent (tests only)."""
        after = self.settings.batch.kill_before_commit_after
        if after is not None and self.batches + 1 >= after:
            await producer.flush()
            log.warning(
                "%s: drill: SIGKILL between produce and commit of %s[%d]@%d-%d (%d outputs)",
                self.stage,
                self.topic,
                batch.partition,
                batch.records[0].offset,
                batch.records[-1].offset,
                len(batch.out),
            )
            os.kill(os.getpid(), signal.SIGKILL)
