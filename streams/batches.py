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
import json
import logging
import os
import shutil
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
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
    """What this worker holds for one assigned partition: its state, rebuilt from the changelog."""

    state: PartitionState
    #: A transaction that held one of its batches was aborted: if a rebalance brings it back, another
    #: worker may have owned it meanwhile (this one was a zombie), so its state is rebuilt, not kept.
    suspect: bool = False


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
        self._state_dir = settings.data_dir / "batches" / name
        self._consumer: Any = None
        self._producer: Any = None
        #: Every call into librdkafka's consumer and producer, one after another, off the event loop.
        self._kafka = ThreadPoolExecutor(1, thread_name_prefix=f"labelloop-{name}-kafka")
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._partitions: dict[int, _Partition] = {}
        #: Partitions revoked in the rebalance under way, kept in case they come straight back.
        self._revoked: dict[int, _Partition] = {}
        #: Held while batches are decided and committed; a rebalance waits for it.
        self._working = asyncio.Lock()
        self.batches = 0
        self.transactions = 0
        self.records = 0
        self.aborted = 0

    # -- clients ---------------------------------------------------------------------------

    def transactional_id(self) -> str:
        """This worker's transactional id: ``<group>-<id kept in its data dir>``.

        One per worker, not per partition (KIP-447 fences a zombie by its group generation). It
        is kept in the worker's data dir, so a worker restarted there (after a SIGKILL) takes the
        same id back, and ``init_transactions`` aborts what its predecessor left open at once. A
        worker that never comes back leaves its open transaction to the broker's
        ``transaction.timeout.ms`` (:attr:`~streams.settings.BatchSettings.transaction_timeout_s`).
        """
        path = self.settings.data_dir / "batches" / f"{self.stage}.transactional-id"
        with contextlib.suppress(OSError):
            kept = path.read_text().strip()
            if kept:
                return f"{self.group_id}-{kept}"
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = uuid.uuid4().hex[:12]
        path.write_text(kept + "\n")
        return f"{self.group_id}-{kept}"

    def _consumer_config(self) -> dict[str, Any]:
        batch = self.settings.batch
        return {
            **self.settings.kafka.confluent_options(),
            "group.id": self.group_id,
            "client.id": f"{self.group_id}-{os.getpid()}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            # Range over co-partitioned topics: a member gets the same partitions of each.
            "partition.assignment.strategy": "range",
            # Labels come in transactions (ours) and from faust's producer: committed ones only.
            "isolation.level": "read_committed",
            "max.partition.fetch.bytes": batch.max_partition_fetch_bytes,
            "fetch.wait.max.ms": batch.fetch_max_wait_ms,
            "session.timeout.ms": int(self.settings.session_timeout_s * 1000),
            "heartbeat.interval.ms": int(min(3.0, self.settings.session_timeout_s / 3) * 1000),
        }

    def _new_producer(self) -> Any:
        """The worker's transactional producer, its transactions initialised (in the Kafka thread)."""
        from confluent_kafka import Producer

        batch = self.settings.batch
        producer = Producer(
            {
                **self.settings.kafka.confluent_options(),
                "client.id": f"{self.group_id}-{os.getpid()}",
                "transactional.id": self.transactional_id(),
                "transaction.timeout.ms": int(batch.transaction_timeout_s * 1000),
                # librdkafka refuses a request timeout past the transaction's.
                "socket.timeout.ms": min(
                    self.settings.kafka.request_timeout_ms, int(batch.transaction_timeout_s * 1000)
                ),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": batch.linger_ms,
                # Keys go where every other client of the loop puts them (Java's, kafka-python's,
                # aiokafka's murmur2): a Label lands on its prediction's partition.
                "partitioner": "murmur2_random",
                "message.max.bytes": 1024**2,
                # A transaction begun right after the last one's commit is refused with
                # CONCURRENT_TRANSACTIONS until the coordinator has written the markers, and retried
                # after this backoff: librdkafka's 100 ms default was most of an event's latency
                # (a probe at 500 events/s: send_offsets_to_transaction p50 87 ms, 7 ms with 5).
                "retry.backoff.ms": 5,
            }
        )
        # Aborts what a predecessor with this id left open, and fences it.
        producer.init_transactions(self._timeout_s)
        return producer

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
        shutil.rmtree(self._state_dir, ignore_errors=True)
        self._producer = await self._call(self._new_producer)
        self._consumer = Consumer(self._consumer_config())
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
            for partition in [*self._partitions, *self._revoked]:
                await self._drop(partition)
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
                    self._fetch,
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

    @staticmethod
    def _fetch(consumer: Any, most: int, timeout_s: float, gather_s: float = 0.0) -> list[Any]:
        """In the Kafka thread: up to ``most`` records, the first awaited ``timeout_s`` at most, then
        what arrives within ``gather_s`` of it (:attr:`~streams.settings.BatchSettings.gather_ms`).

        ``consume(most, timeout)`` alone returns only once it has ``most`` records or the timeout
        passed: at a low rate every batch would wait the whole timeout.
        """
        first = consumer.poll(timeout_s)
        if first is None:
            return []
        messages = [first]
        until_s = time.monotonic() + gather_s
        while len(messages) < most:
            wait_s = max(0.0, until_s - time.monotonic())
            more = consumer.consume(most - len(messages), wait_s)
            messages += more
            if wait_s == 0.0 or not more:
                break
        return messages

    def assignment(self) -> list[tuple[str, int]]:
        """The (topic, partition)s this worker's batch path owns now."""
        if self._consumer is None:
            return []
        with contextlib.suppress(Exception):
            return sorted((tp.topic, tp.partition) for tp in self._consumer.assignment())
        return []

    async def end_offsets(self, places: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The end offsets (read committed: the last stable offset) of ``places``."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        if self._consumer is None or not places:
            return {}
        # A reader of its own: the batch path's consumer is busy in the Kafka thread.
        reader = AIOKafkaConsumer(group_id=None, **self.settings.kafka.reader_options())
        await reader.start()
        try:
            ends = await reader.end_offsets([TopicPartition(topic, partition) for topic, partition in places])
        finally:
            await reader.stop()
        return {(tp.topic, tp.partition): int(end) for tp, end in ends.items()}

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
            for partition in partitions:
                found = self._partitions.pop(partition, None)
                if found is not None:
                    found.suspect = found.suspect or lost
                    self._revoked[partition] = found

    async def _on_assigned(self, partitions: set[int]) -> None:
        async with self._working:
            # Partitions that came straight back: nobody else owned them in between, keep them.
            for partition in list(self._revoked):
                if partition in partitions and not self._revoked[partition].suspect:
                    self._partitions[partition] = self._revoked.pop(partition)
            for partition in list(self._revoked):
                await self._drop(partition)
            # Each new partition's state, side by side: a takeover waits for the slowest, not
            # for their sum.
            new = sorted(partitions - set(self._partitions))
            for partition, taken in zip(new, await asyncio.gather(*map(self._take, new)), strict=True):
                self._partitions[partition] = taken
            log.info("%s: partitions %s of %s", self.stage, sorted(self._partitions), sorted(self.handlers))

    async def _take(self, partition: int) -> _Partition:
        """A partition just assigned: rebuild its state (its previous owner is fenced by the group)."""
        state = PartitionState(self._state_dir / str(partition))
        restored = await self._restore(partition, state)
        log.info("%s: partition %d: %d state changes restored", self.stage, partition, restored)
        return _Partition(state)

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
        if found is not None:
            found.state.close()

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
        self, partition: int, part: _Partition, records: dict[str, list[Record]]
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
                self._produce(
                    producer, produced.topic, produced.value, produced.key, headers=headers, **where
                )
            first = min(item.firsts.values())
            for part_no, value in enumerate(changes_values(batch.changes)):
                key = f"{batch.partition}:{first}:{part_no}".encode()
                self._produce(producer, self._state_topic, value, key, partition=batch.partition)
            offsets += [TopicPartition(topic, batch.partition, offset) for topic, offset in item.upto.items()]
        # KIP-447: the offsets carry the group's generation; a zombie's are refused, its transaction aborted.
        producer.send_offsets_to_transaction(
            offsets, self._consumer.consumer_group_metadata(), self._timeout_s
        )
        self._drill(decided, producer)
        producer.commit_transaction(self._timeout_s)

    @staticmethod
    def _produce(producer: Any, topic: str, value: bytes | None, key: bytes | None, **options: Any) -> None:
        while True:
            try:
                producer.produce(topic, value, key, **options)
                return
            except BufferError:  # the client's queue is full: let it send some
                producer.poll(0.05)

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
