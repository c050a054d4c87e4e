"""What every stage's ``register`` gets: the app, the settings, topic names and shared helpers.

The one place that turns topic names into faust topics, outputs, DLQs and
tables, so every stage reads and writes raw bytes the same way.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import faust

from schemas import utc_now
from streams.app import broker_credentials, table_store
from streams.batch import Batch, BatchHandler, BatchSender
from streams.batches import TransactionalBatches
from streams.codec import H_ORIGIN, H_STAGE, dlq_kind
from streams.ledger import LabelLedger, read_label_tail
from streams.metrics import LoopMetrics
from streams.runtime import Clock, DeadLetters, K, Output, Reader, Reads, Record, read_record, run_readers
from streams.settings import Settings
from streams.topics import TopicNames, topic_names
from streams.transport import RawSchema

if TYPE_CHECKING:  # a field's type only: reading settings never imports the stages' agents
    from agents.settings import StageSettings


@dataclass
class Loop:
    """A worker's wiring: one per faust app."""

    app: faust.App
    settings: Settings
    stages: StageSettings
    clock: Clock = utc_now
    #: This worker process among the group's (host and pid): pool reports name their reporter.
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}"[-128:])
    #: In-process counters (``stage.what``): the summary and tests read them.
    counters: Counter[str] = field(default_factory=Counter)
    #: The worker's Prometheus metrics (``/metrics`` and the dashboard); made from the settings.
    metrics: LoopMetrics = field(init=False)
    _dead_lettered: Any = None
    _ledger: LabelLedger | None = None
    #: The model and the stages reading each shared topic (:meth:`read`), by topic name.
    _readers: dict[str, tuple[type[Any], list[Reader]]] = field(default_factory=dict)
    #: The worker's batch path (:meth:`batched`), made on first use.
    _batches: TransactionalBatches | None = None
    #: The stages reading each topic of the batch path (:meth:`read_batched`), by topic name.
    _batch_readers: dict[str, tuple[type[Any], list[_BatchReader]]] = field(default_factory=dict)
    _batch_stages: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.metrics = LoopMetrics(self.settings.topics.prefix, process=True)

    @property
    def names(self) -> TopicNames:
        """The topic names under the configured prefix."""
        return topic_names(self.settings)

    def topic(self, name: str) -> Any:
        """A faust topic of raw bytes (we decode with our own codecs)."""
        return self.app.topic(name, schema=RawSchema(key_type=bytes, value_type=bytes))

    def output(self, name: str) -> Output:
        """A producer of schema objects to ``name`` (counted in ``labelloop_records_produced_total``)."""
        return Output(self.topic(name), self.metrics, name)

    def dead_letters(self, stage: str, *, dedupe: bool = True) -> DeadLetters:
        """The DLQ of ``stage`` (each bad record once, even when processed again after a restart).

        ``dedupe=False`` for records dead-lettered outside a stream (from a task of its own):
        the table that remembers them can only be written while a record is handled.
        """
        if not dedupe:
            return DeadLetters(
                self.topic(self.names.dlq),
                stage=stage,
                clock=self.clock,
                meter=self.metrics,
                topic_name=self.names.dlq,
            )
        if self._dead_lettered is None:
            self._dead_lettered = self.table("dead-letters")
        return DeadLetters(
            self.topic(self.names.dlq),
            stage=stage,
            clock=self.clock,
            sent=self._dead_lettered,
            meter=self.metrics,
            topic_name=self.names.dlq,
        )

    def read(
        self,
        name: str,
        model: type[K],
        stage: str,
        reads: Reads[K],
        *,
        owner: bool = False,
        dlq_counter: str | None = None,
    ) -> None:
        """Hand ``stage`` every ``model`` record of topic ``name``, decoded, with its record.

        Every stage reading the same topic shares one faust agent (``read-<topic>``) that decodes
        each record once (:func:`~streams.runtime.run_readers`). The ``owner`` (one per topic)
        dead-letters what does not decode; the others never see it. A stage whose handler may
        wait on something outside the worker (the dispatcher's pools) keeps an agent of its own,
        so that it never holds up the others.
        """
        found = self._readers.get(name)
        if found is None:
            readers: list[Reader] = []
            self._readers[name] = (model, readers)
            counters = self.counters

            async def read_topic(stream: Any) -> None:
                async for _ in run_readers(stream, model, readers, counters):
                    pass

            short = name.removeprefix(self.settings.topics.prefix)
            self.app.agent(self.topic(name), name=f"read-{short}")(read_topic)
        else:
            readers = _joined(name, found, model, owner)
        readers.append(Reader(stage, reads, self.dead_letters(stage), owner=owner, dlq_counter=dlq_counter))

    def batched(self, name: str, handle: BatchHandler, *stages: str) -> None:
        """Hand every batch of topic ``name``'s records to ``handle`` (``streams/batches.py``).

        Topics on the batch path are read by one :class:`~streams.batches.TransactionalBatches`
        service of the worker, outside faust's per-record delivery: each partition's batch (of
        every such topic) is handled in memory and its outputs, state and input offsets are
        committed in one transaction. ``stages``: who reads the topic (metrics count a record
        consumed once per stage).
        """
        service = self._batch_service()
        if name in service.handlers:
            raise ValueError(f"topic {name} is on the batch path already")
        service.handlers[name] = handle
        self._batch_stages[name] = list(stages)

    def read_batched(
        self,
        name: str,
        model: type[K],
        stage: str,
        reads: BatchReads[K],
        *,
        owner: bool = False,
        dlq_counter: str | None = None,
        ignore_origins: frozenset[bytes] = frozenset(),
    ) -> None:
        """Like :meth:`read`, on the batch path: ``reads`` also gets the record's :class:`Batch`.

        Every stage reading the topic gets each record decoded once
        (:func:`~streams.runtime.read_record`); a stage's DLQ records and state changes are part
        of the batch's transaction. ``ignore_origins``: records whose ``labelloop.origin`` header
        is one of these are of no use to the stage; a record that no stage of the topic wants is
        skipped undecoded (the router's own accepted Labels, most of ``labels``).
        """
        found = self._batch_readers.get(name)
        if found is None:
            readers: list[_BatchReader] = []
            self._batch_readers[name] = (model, readers)
            counters = self.counters
            clock = self.clock
            dlq = self.names.dlq

            async def handle(batch: Batch, records: Sequence[Record]) -> None:
                bound = [reader.bind(batch, dlq, clock) for reader in readers]
                unwanted = frozenset.intersection(*(reader.ignore_origins for reader in readers))
                for record in records:
                    if unwanted and _origin(record) in unwanted:
                        continue
                    await read_record(record, model, bound, counters)

            self.batched(name, handle)
        else:
            readers = _joined(name, found, model, owner)
        readers.append(_BatchReader(stage, reads, owner, dlq_counter, ignore_origins))
        self._batch_stages[name].append(stage)

    @property
    def batches(self) -> TransactionalBatches | None:
        """The worker's batch path, if any stage put a topic on it."""
        return self._batches

    def _batch_service(self) -> TransactionalBatches:
        if self._batches is None:
            meter = self.metrics
            stages = self._batch_stages

            def committed(batch: Batch) -> None:
                for topic, records in batch.records.items():
                    for stage in stages.get(topic, ()):
                        meter.consumed(stage, topic, len(records))
                for topic, count in Counter(produced.topic for produced in batch.out).items():
                    meter.produced(topic, count)
                for produced in batch.out:
                    if produced.topic == self.names.dlq:
                        headers = dict(produced.headers or ())
                        stage = headers.get(H_STAGE, b"").decode("utf-8", "replace")
                        meter.dead_lettered(stage, dlq_kind(produced.headers))

            self._batches = TransactionalBatches(
                self.settings,
                name="batches",
                handlers={},
                state_topic=self.names.batch_state,
                seen_topic=self.names.predictions,
                committed=committed,
                loop=self.app.loop,
                beacon=self.app.beacon,
            )
            self.app.add_dependency(self._batches)
        return self._batches

    @property
    def ledger(self) -> LabelLedger:
        """The worker's one :class:`~streams.ledger.LabelLedger`: every stage publishes Labels through it."""
        if self._ledger is None:
            self._ledger = _label_ledger(self)
        return self._ledger

    def table(self, name: str, *, per_event: bool = False) -> Any:
        """A faust table of str keys (event ids) to JSON text; changelog from the catalogue.

        ``per_event``: the table keeps an entry for every event it ever saw (not only the ones
        in flight), so it lives in the configured event store (``Settings.event_store``).
        """
        store, options = table_store(self.settings, name, per_event=per_event)
        return self.app.Table(
            name,
            store=store,
            options=options,
            schema=faust.Schema(key_type=str, value_type=str, key_serializer="raw", value_serializer="raw"),
            partitions=self.settings.topics.partitions,
            # Every table write happens while an agent handles a record keyed by the same
            # event_id on a co-partitioned topic, so the record's partition is the key's.
            # (use_partitioner=True asks aiokafka for metadata it may not have fetched yet
            # and fails with TypeError on a fresh worker.)
            use_partitioner=False,
        )


#: A stage's handler of a batch-path topic: the decoded value, its record, and the record's batch.
BatchReads = Callable[[K, Record, Batch], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _BatchReader:
    """One stage's reader of a batch-path topic (:meth:`Loop.read_batched`)."""

    stage: str
    reads: BatchReads[Any]
    owner: bool
    dlq_counter: str | None
    ignore_origins: frozenset[bytes] = frozenset()

    def bind(self, batch: Batch, dlq: str, clock: Clock) -> Reader:
        """The :class:`~streams.runtime.Reader` of this stage for one batch (its DLQ in the batch)."""
        reads = self.reads

        async def bound(value: Any, record: Record) -> None:
            await reads(value, record, batch)

        dead_letters = DeadLetters(BatchSender(batch, dlq), stage=self.stage, clock=clock)
        return Reader(self.stage, bound, dead_letters, owner=self.owner, dlq_counter=self.dlq_counter)


R = TypeVar("R", Reader, "_BatchReader")


def _joined(name: str, found: tuple[type[Any], list[R]], model: type[Any], owner: bool) -> list[R]:
    """The readers of a topic a further stage joins: decoded as one model, with one DLQ owner."""
    decoded_as, readers = found
    if decoded_as is not model:
        # One reader decodes each record once, as the first stage's model.
        raise ValueError(f"topic {name} is read as {decoded_as.__name__}, not {model.__name__}")
    if owner and any(reader.owner for reader in readers):
        raise ValueError(f"topic {name} has an owner already")
    return readers


def _origin(record: Record) -> bytes | None:
    """The record's ``labelloop.origin`` header, if any."""
    for name, value in record.headers:
        if name == H_ORIGIN:
            return value
    return None


def _label_ledger(loop: Loop) -> LabelLedger:
    settings = loop.settings
    topic = loop.names.labels
    reading = asyncio.Lock()
    consumers: list[Any] = []

    async def tail(partition: int, since_ms: int) -> dict[str, int]:
        async with reading:
            if not consumers:
                from aiokafka import AIOKafkaConsumer
                from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

                auth: dict[str, Any] = dict(credentials_to_aiokafka_auth(broker_credentials(settings.kafka)))
                consumer = AIOKafkaConsumer(
                    bootstrap_servers=settings.kafka.bootstrap_list,
                    group_id=None,
                    enable_auto_commit=False,
                    client_id=f"{settings.app_id}-ledger",
                    # A dead owner's aborted Labels must not count as published.
                    isolation_level="read_committed",
                    **auth,
                )
                await consumer.start()
                consumers.append(consumer)
            return await read_label_tail(consumers[0], topic, partition, since_ms)

    ledger = LabelLedger(
        loop.output(topic),
        loop.table("labels-published", per_event=True),
        tail,
        lookback_s=settings.label_lookback_s,
    )

    async def on_revoked(_: Any, /, *args: Any, **__: Any) -> None:
        (revoked,) = args  # the set of revoked TopicPartitions
        ledger.forget_partitions({tp.partition for tp in revoked})

    async def stop_consumer(_: Any, /, *args: Any, **__: Any) -> None:
        for consumer in consumers:
            await consumer.stop()
        consumers.clear()

    loop.app.on_partitions_revoked.connect(on_revoked)
    loop.app.on_before_shutdown.connect(stop_consumer)
    return ledger
