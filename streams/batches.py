"""One Kafka transaction per batch: topics read in batches, each batch's outputs, state and offsets at once.

faust hands an agent one record at a time, and that delivery costs more than the work
itself on the loop's busiest paths (bench F1: a bare faust agent that only forwards bytes
spent 67 µs of CPU per record, a raw aiokafka consume→produce loop 22 µs). The router and
the readers of ``labels`` (the router's estimators, the learner, the monitor) need neither
faust's streams nor its tables. :class:`TransactionalBatches` is a ``mode.Service`` the faust
worker starts and stops, which reads their topics with a consumer of its own (consumer group
``<app_id>-<name>``, ``getmany``), hands each partition's batch to the topics' handlers, which
decide it in memory, and then produces everything the batch made (Labels, LabelRequests, DLQ
records), the batch's state changes and its input offsets **in one Kafka transaction**
(``send_offsets_to_transaction``).

The topics are co-partitioned (same key, same partition count) and assigned by range, so a
worker owns partition *p* of every one of them: the router's decision for an event and the
human label that comes back for it are handled by the same worker, which joins them in its
partition state (the learner's inputs waiting for their labels).

What that makes exact, without a ledger entry or a faust table write per event:

- **A worker killed between produce and commit.** Its open transaction is aborted (the
  partition's next producer fences it at once, see below), so readers in ``read_committed``
  never see its records, and the batch's offsets were not committed: the next owner
  handles the same records again, once.
- **A dead owner's or a zombie's records.** Every partition has its own transactional id
  (``<app_id>-<name>-<partition>``): the producer that takes a partition over calls
  ``init_transactions`` with that id, which aborts whatever the previous owner left open and
  fences it, so a worker that lost its partitions while it was stalled can commit nothing
  more for them. (aiokafka 0.14's ``send_offsets_to_transaction`` sends the group id only,
  without the group's generation of KIP-447, so the fencing is by transactional id per
  partition, as Kafka Streams did before EOS v2.)
- **The same key published twice by a producer** (a retry, a replay) at another offset:
  a transaction cannot know that. The handler asks the partition's state
  (:meth:`Batch.seen`), a RocksDB store per partition (memory bounded like the event
  tables', ``streams/app.py``); every batch writes its state changes to a compacted changelog
  topic **inside the same transaction**, so the state and the outputs it stands for are
  committed together or not at all. A partition's state is rebuilt from that changelog (read
  committed) when the partition is assigned.
- **A poison record** is the handler's to dead-letter (its DLQ record is one more output of
  the batch): it never fails or replays the batch's good records.

A batch that fails on Kafka (a broker away, a timeout) is aborted and read again from its
first offsets after a pause: backpressure, never a drop. Readers of the outputs must read
committed (every consumer of the loop does: ``streams/transport.py`` for faust's).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
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
#: The state namespace of the keys a handler must not handle twice (:meth:`Batch.mark`).
SEEN = "seen"


@dataclass(slots=True)
class Produced:
    """One record a batch sends (key-partitioned, like every output of the loop).

    ``partition``: the key's partition, where the handler computed it already (Kafka's default
    partitioner, :func:`streams.partitioner.partition_for`); None leaves it to the producer.
    """

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] | None = None
    partition: int | None = None


#: A change of a partition's state: (namespace, key, new value or None to delete).
Change = tuple[str, str, str | None]


@dataclass
class Batch:
    """One partition's records (of every topic of the service) and what handling them makes.

    Handlers call :meth:`send` for each output, :meth:`put` / :meth:`mark` for state, and
    :meth:`after_commit` for in-process effects (metrics, the monitor) that must happen once per
    committed record, not again when an aborted batch is read again.

    >>> batch = Batch(0, {}, state=None, known=frozenset({"e-1"}))
    >>> batch.seen("e-1"), batch.seen("e-2")
    (True, False)
    >>> batch.mark("e-2"); batch.seen("e-2"), batch.changes
    (True, [('seen', 'e-2', '')])
    >>> batch.put("pending", "e-3", "{}"); batch.get("pending", "e-3")
    '{}'
    >>> batch.put("pending", "e-3", None); batch.get("pending", "e-3") is None
    True
    """

    partition: int
    records: Mapping[str, Sequence[Record]]
    state: PartitionState | None
    #: Keys of the batch's records already marked by earlier batches (one multi-get up front).
    known: frozenset[str] = frozenset()
    out: list[Produced] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    effects: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)
    _overlay: dict[tuple[str, str], str | None] = field(default_factory=dict)

    def get(self, namespace: str, key: str) -> str | None:
        """The state's value of ``key``, with this batch's changes applied."""
        place = (namespace, key)
        if place in self._overlay:
            return self._overlay[place]
        return self.state.get(namespace, key) if self.state is not None else None

    def put(self, namespace: str, key: str, value: str | None) -> None:
        """Set (or with None delete) ``key`` in the partition's state, committed with this batch."""
        self._overlay[(namespace, key)] = value
        self.changes.append((namespace, key, value))

    def seen(self, key: str) -> bool:
        """Was ``key`` marked by an earlier batch of the partition or earlier in this one?"""
        if (SEEN, key) in self._overlay:
            return True
        return key in self.known

    def mark(self, key: str) -> None:
        """Remember ``key`` for good (:meth:`seen`)."""
        if not self.seen(key):
            self.put(SEEN, key, "")

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None:
        """Add one output record to the batch's transaction (``partition``: see :class:`Produced`).

        An output the producer would refuse (over :data:`MAX_OUTPUT_BYTES`) is a
        :class:`ContractError`: the record that made it goes to the DLQ instead of failing the
        whole batch's transaction.
        """
        size = len(key or b"") + len(value or b"")
        if size > MAX_OUTPUT_BYTES:
            raise ContractError(
                f"too_large: its {topic} record would be {size} bytes > {MAX_OUTPUT_BYTES}", kind="too_large"
            )
        self.out.append(Produced(topic, key, value, headers, partition))

    def after_commit(self, effect: Callable[[], Awaitable[None] | None]) -> None:
        """Run ``effect`` once the batch is committed (in the order given)."""
        self.effects.append(effect)

    def savepoint(self) -> tuple[int, int, int]:
        """Where the batch stands: :meth:`rollback` to it drops what was added since."""
        return len(self.out), len(self.changes), len(self.effects)

    def rollback(self, point: tuple[int, int, int]) -> None:
        """Drop the outputs, state changes and effects added since ``point`` (a record that failed midway)."""
        outs, changes, effects = point
        del self.out[outs:]
        del self.changes[changes:]
        del self.effects[effects:]
        self._overlay = {(namespace, key): value for namespace, key, value in self.changes}


class BatchSender:
    """A :class:`~streams.runtime.Sender` into a batch: an ``Output`` or ``DeadLetters`` over it sends
    within the batch's transaction.

    >>> import asyncio
    >>> batch = Batch(0, {}, state=None)
    >>> asyncio.run(BatchSender(batch, "t").send(key=b"k", value=b"v"))
    >>> batch.out
    [Produced(topic='t', key=b'k', value=b'v', headers=None, partition=None)]
    """

    def __init__(self, batch: Batch, topic: str, headers: Sequence[tuple[str, bytes]] | None = None) -> None:
        self._batch = batch
        self.topic = topic
        self._headers = headers

    async def send(self, *, key: bytes | None, value: bytes | None, headers: Any = None) -> None:
        self._batch.send(self.topic, key, value, headers if headers is not None else self._headers)


#: Decides one topic's records of a partition's batch, in memory (dead-letters a bad record itself).
BatchHandler = Callable[[Batch, Sequence[Record]], Awaitable[None]]
#: Sees every committed batch (metrics), before the batch's own effects run.
Committed = Callable[[Batch], None]


class PartitionState:
    """One partition's state: namespaced keys to text values, in RocksDB (memory bounded whatever its size).

    The database is a cache of the changelog: made empty when the partition is assigned and
    filled from the changelog, so it never holds a change whose batch was not committed.
    """

    def __init__(self, path: Path) -> None:
        from faust.stores.rocksdb import RocksDBOptions

        from streams.app import ROCKSDB_OPTIONS

        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        options = {name: value for name, value in ROCKSDB_OPTIONS.items() if name != "driver"}
        self.path = path
        self._db: Any = RocksDBOptions(**options).open(path)

    @staticmethod
    def _key(namespace: str, key: str) -> bytes:
        return f"{namespace}\x1f{key}".encode()

    def get(self, namespace: str, key: str) -> str | None:
        found = self._db.get(self._key(namespace, key))
        return None if found is None else bytes(found).decode()

    def known(self, namespace: str, keys: Iterable[str]) -> frozenset[str]:
        """Those of ``keys`` that are in ``namespace`` (one multi-get)."""
        wanted = list(keys)
        if not wanted:
            return frozenset()
        found = self._db.get([self._key(namespace, key) for key in wanted])
        return frozenset(key for key, value in zip(wanted, found, strict=True) if value is not None)

    def apply(self, changes: Iterable[Change]) -> None:
        """Apply ``changes`` in order (one write batch)."""
        import rocksdict

        batch = rocksdict.WriteBatch(raw_mode=True)
        for namespace, key, value in changes:
            if value is None:
                batch.delete(self._key(namespace, key))
            else:
                batch.put(self._key(namespace, key), value.encode())
        self._db.write(batch)

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self.path, ignore_errors=True)


def changes_value(changes: Sequence[Change]) -> bytes:
    """A changelog record's value: the batch's state changes, in order (JSON).

    >>> changes_of(changes_value([("seen", "e-1", ""), ("pending", "e-2", None)]))
    [('seen', 'e-1', ''), ('pending', 'e-2', None)]
    """
    return json.dumps(changes, separators=(",", ":"), ensure_ascii=False).encode()


def changes_values(changes: Sequence[Change], max_bytes: int = MAX_OUTPUT_BYTES) -> list[bytes]:
    """The changelog records of a batch's changes: as few as fit, each under ``max_bytes``, in order.

    A batch's state changes grow with its records (and an input kept for the learner may be a long
    text): one record for them all could pass the producer's request limit, and a batch whose
    transaction can never commit would be read again for ever.

    >>> values = changes_values([("seen", f"e-{i}", "") for i in range(100)], max_bytes=500)
    >>> len(values) > 1, all(len(v) <= 500 for v in values)
    (True, True)
    >>> [c for v in values for c in changes_of(v)] == [("seen", f"e-{i}", "") for i in range(100)]
    True
    """
    values: list[bytes] = []
    chunk: list[Change] = []
    size = 2
    for change in changes:
        namespace, key, new = change
        # An id has no whitespace or control characters: at most its quotes and backslashes are
        # escaped, so twice its UTF-8 bytes bound it. Only a value (an input, a counted label) is
        # measured as JSON. Most changes are ``seen`` marks, with no value.
        value_cost = len(json.dumps(new, ensure_ascii=False).encode()) if new else 4
        cost = len(namespace) + 2 * len(key.encode()) + 10 + value_cost
        if chunk and size + cost > max_bytes:
            values.append(changes_value(chunk))
            chunk, size = [], 2
        chunk.append(change)
        size += cost
    if chunk:
        values.append(changes_value(chunk))
    return values


def changes_of(value: bytes | None) -> list[Change]:
    """The changes of a changelog record (:func:`changes_value`)."""
    return [(str(namespace), str(key), value) for namespace, key, value in json.loads(value or b"[]")]


def seen_keys(value: bytes | None) -> list[str]:
    """The keys a changelog record marks seen (:meth:`Batch.mark`)."""
    return [key for namespace, key, new in changes_of(value) if namespace == SEEN and new is not None]


@dataclass
class _Partition:
    """What this worker holds for one assigned partition: its transactional producer and its state."""

    producer: Any
    state: PartitionState
    fenced: bool = False


class TransactionalBatches(Service):
    """Consume co-partitioned topics in batches; per partition batch, one transaction.

    Parameters
    ----------
    settings
        Broker, security, app id (the group is ``<app_id>-<name>``), data dir, batch settings.
    name
        The service (``batches``): its group, transactional ids and local state carry it.
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
        from aiokafka.coordinator.assignors.range import RangePartitionAssignor

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
            # Range over co-partitioned topics: a member gets the same partitions of each.
            partition_assignment_strategy=(RangePartitionAssignor,),
            max_partition_fetch_bytes=batch.max_partition_fetch_bytes,
            fetch_max_wait_ms=batch.fetch_max_wait_ms,
            session_timeout_ms=int(self.settings.session_timeout_s * 1000),
            heartbeat_interval_ms=int(min(3.0, self.settings.session_timeout_s / 3) * 1000),
            # Labels come in transactions (ours) and from faust's producer: committed ones only.
            **self.settings.kafka.reader_options(),
        )
        self._consumer.subscribe(list(self.handlers), listener=Listener())
        await self._consumer.start()

    async def on_stop(self) -> None:
        # The batch under way is finished (committed) first: the loop checks should_stop. The lock
        # is let go before the consumer stops: leaving the group revokes the partitions, and the
        # revocation waits for the lock too.
        async with self._working:
            consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()  # leaves the group: the partitions move at once
        async with self._working:
            for partition in [*self._partitions, *self._revoked]:
                await self._drop(partition)

    @Service.task
    async def _run(self) -> None:
        from aiokafka.errors import KafkaError

        batch = self.settings.batch
        while not self.should_stop and self._consumer is not None:
            try:
                fetched = await self._consumer.getmany(
                    timeout_ms=batch.poll_timeout_ms, max_records=batch.max_records
                )
            except KafkaError as error:
                log.warning("%s: fetch failed (%s); trying again in %.1f s", self.stage, error, RETRY_WAIT_S)
                await asyncio.sleep(RETRY_WAIT_S)
                continue
            if not fetched:
                continue
            by_partition: dict[int, dict[str, list[Record]]] = {}
            # What to commit: the consumer's position, past the last record returned and past
            # any transaction marker after it (committing last + 1 would leave the marker as lag).
            upto: dict[int, dict[str, int]] = {}
            for tp, messages in fetched.items():
                by_partition.setdefault(tp.partition, {})[tp.topic] = [Record.of(m) for m in messages]
                position = await self._consumer.position(tp)
                upto.setdefault(tp.partition, {})[tp.topic] = max(position, messages[-1].offset + 1)
            async with self._working:
                if self._consumer is None:
                    break  # stopping: what was fetched is read again by the partitions' next owner
                await asyncio.gather(*(self._one(p, records, upto[p]) for p, records in by_partition.items()))

    def assignment(self) -> list[tuple[str, int]]:
        """The (topic, partition)s this worker's batch path owns now."""
        if self._consumer is None:
            return []
        return sorted((tp.topic, tp.partition) for tp in self._consumer.assignment())

    async def end_offsets(self, places: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The end offsets (read committed: the last stable offset) of ``places``."""
        from aiokafka import TopicPartition

        if self._consumer is None or not places:
            return {}
        ends = await self._consumer.end_offsets(
            [TopicPartition(topic, partition) for topic, partition in places]
        )
        return {(tp.topic, tp.partition): int(end) for tp, end in ends.items()}

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
            # Each new partition's producer (its fencing) and state, side by side: a takeover
            # waits for the slowest, not for their sum.
            new = sorted(partitions - set(self._partitions))
            for partition, taken in zip(new, await asyncio.gather(*map(self._take, new)), strict=True):
                self._partitions[partition] = taken
            log.info("%s: partitions %s of %s", self.stage, sorted(self._partitions), sorted(self.handlers))

    async def _take(self, partition: int) -> _Partition:
        """A partition just assigned: fence its previous producer, rebuild its state."""
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
        state = PartitionState(self._state_dir / str(partition))
        restored = await self._restore(partition, state)
        log.info("%s: partition %d: %d state changes restored", self.stage, partition, restored)
        return _Partition(producer, state)

    async def _restore(self, partition: int, state: PartitionState) -> int:
        """Fill ``state`` from the partition's changelog, read committed to its end."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tp = TopicPartition(self._state_topic, partition)
        reader = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            client_id=f"{self.group_id}-restore-{os.getpid()}",
            **self.settings.kafka.reader_options(),
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
                    changes = changes_of(message.value)
                    state.apply(changes)
                    restored += len(changes)
        finally:
            await reader.stop()
        return restored

    async def _drop(self, partition: int) -> None:
        found = self._partitions.pop(partition, None) or self._revoked.pop(partition, None)
        if found is None:
            return
        with contextlib.suppress(Exception):  # a fenced producer may refuse to stop cleanly
            await found.producer.stop()
        found.state.close()

    # -- one partition's batch ---------------------------------------------------------------

    async def _one(self, partition: int, records: dict[str, list[Record]], upto: Mapping[str, int]) -> None:
        from aiokafka import TopicPartition
        from aiokafka.errors import KafkaError, ProducerFenced

        part = self._partitions.get(partition)
        if part is None or part.fenced:
            return  # revoked or fenced: the next owner reads these records
        keyed = records.get(self._seen_topic or "", ())
        known = part.state.known(SEEN, [text for r in keyed if (text := r.key_text) is not None])
        batch = Batch(partition, records, part.state, known)
        firsts = {topic: found[0].offset for topic, found in records.items()}
        try:
            for topic, handle in self.handlers.items():
                if topic in records:
                    await handle(batch, records[topic])
        except Exception:
            # A handler dead-letters a bad record itself; this is a bug around the records.
            log.exception("%s: batch of partition %d failed; reading it again", self.stage, partition)
            await self._read_again(partition, firsts)
            return
        producer = part.producer
        try:
            await producer.begin_transaction()
            for produced in batch.out:
                headers = list(produced.headers) if produced.headers else None
                await producer.send(
                    produced.topic,
                    produced.value,
                    key=produced.key,
                    headers=headers,
                    partition=produced.partition,
                )
            first = min(firsts.values())
            for part_no, value in enumerate(changes_values(batch.changes)):
                key = f"{partition}:{first}:{part_no}".encode()
                await producer.send(self._state_topic, value, key=key, partition=partition)
            offsets = {TopicPartition(topic, partition): offset for topic, offset in upto.items()}
            await producer.send_offsets_to_transaction(offsets, self.group_id)
            await self._drill(batch, producer)
            await producer.commit_transaction()
        except ProducerFenced:
            # Another worker owns the partition now (we were a zombie): it reads these again.
            log.warning(
                "%s: partition %d fenced by its new owner; its batch is left to it", self.stage, partition
            )
            part.fenced = True
            self.aborted += 1
            return
        except (KafkaError, ConnectionError, TimeoutError) as error:
            log.warning(
                "%s: batch of partition %d failed (%s); aborted, reading it again",
                self.stage,
                partition,
                error,
            )
            self.aborted += 1
            with contextlib.suppress(Exception):
                await producer.abort_transaction()
            await self._read_again(partition, firsts)
            return
        if batch.changes:
            part.state.apply(batch.changes)
        self.batches += 1
        self.records += sum(len(found) for found in records.values())
        if self._committed is not None:
            self._committed(batch)
        for effect in batch.effects:
            result = effect()
            if result is not None:
                await result

    async def _read_again(self, partition: int, firsts: Mapping[str, int]) -> None:
        """After a pause, fetch ``partition`` again from the batch's first offsets (drops what followed)."""
        from aiokafka import TopicPartition

        await asyncio.sleep(RETRY_WAIT_S)
        if self._consumer is not None and partition in self._partitions:
            for topic, offset in firsts.items():
                self._consumer.seek(TopicPartition(topic, partition), offset)

    async def _drill(self, batch: Batch, producer: Any) -> None:
        """The fault drill's kill point: a batch's records on the broker, its commit not sent (tests only)."""
        after = self.settings.batch.kill_before_commit_after
        if after is not None and self.batches + 1 >= after:
            await producer.flush()
            log.warning(
                "%s: drill: SIGKILL between produce and commit of partition %d (%d outputs)",
                self.stage,
                batch.partition,
                len(batch.out),
            )
            os.kill(os.getpid(), signal.SIGKILL)
