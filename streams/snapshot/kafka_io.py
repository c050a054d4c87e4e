"""The thin Kafka I/O of label snapshots: read a labels topic to its end offsets, export, replay, watch.

aiokafka for reading and publishing (a timeout on every call), kafka-python's admin to create a
replay topic; everything about the snapshot itself is :mod:`streams.snapshot.core`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas import Label
from streams.codec import decode, encode_key
from streams.errors import ContractError, SnapshotError
from streams.patches.aiokafka_metadata import partitions_of
from streams.settings import Settings
from streams.snapshot.core import Snapshot, SnapshotTrigger, build_snapshot, load_snapshot, write_snapshot
from streams.topics import topic_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicRead:
    """What an export read: the labels, the end offsets it read up to, and how much it skipped."""

    labels: list[Label]
    end_offsets: dict[int, int]
    records: int
    skipped: int


async def _read_topic(settings: Settings, topic: str, timeout_s: float) -> TopicRead:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        **settings.kafka.reader_options(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="labelloop-snapshot",
        max_partition_fetch_bytes=2 * 1024 * 1024,
    )
    await asyncio.wait_for(consumer.start(), 30)
    try:
        # Fresh cluster metadata (the consumer's cache knows only subscribed topics).
        numbers = await partitions_of(consumer, topic)
        if not numbers:
            raise SnapshotError(f"topic {topic} does not exist (or has no partitions)")
        assigned = [TopicPartition(topic, number) for number in sorted(numbers)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await asyncio.wait_for(consumer.end_offsets(assigned), 30)
        end_offsets = {tp.partition: int(ends[tp]) for tp in assigned}
        labels: list[Label] = []
        deleted: set[str] = set()
        records = skipped = 0
        remaining = {tp for tp in assigned if end_offsets[tp.partition] > 0}
        # Partitions whose log starts at their end (all records expired) are done already.
        for tp in list(remaining):
            if await consumer.position(tp) >= end_offsets[tp.partition]:
                remaining.discard(tp)
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                raise SnapshotError(f"reading {topic} did not reach its end offsets in {timeout_s:g}s")
            batches = await asyncio.wait_for(consumer.getmany(*remaining, timeout_ms=500), 30)
            for tp, messages in batches.items():
                for message in messages:
                    if message.offset >= end_offsets[tp.partition]:
                        continue
                    records += 1
                    key = message.key.decode("utf-8", "replace") if message.key is not None else None
                    if message.value is None:
                        if key is not None:
                            deleted.add(key)  # a tombstone: compaction will forget the event
                        continue
                    try:
                        label = decode(Label, message.value)
                    except ContractError as error:
                        skipped += 1
                        log.warning(
                            "snapshot skips %s[%d]@%d: %s", topic, tp.partition, message.offset, error
                        )
                        continue
                    deleted.discard(label.event_id)
                    labels.append(label)
            for tp in list(remaining):
                if await consumer.position(tp) >= end_offsets[tp.partition]:
                    remaining.discard(tp)
        if deleted:
            labels = [label for label in labels if label.event_id not in deleted]
        return TopicRead(labels, end_offsets, records, skipped)
    finally:
        await asyncio.wait_for(consumer.stop(), 30)


def read_topic(settings: Settings, topic: str, *, timeout_s: float = 300.0) -> TopicRead:
    """Every Label of ``topic`` from the beginning up to the end offsets at the start of the read."""
    return asyncio.run(_read_topic(settings, topic, timeout_s))


def export_topic(
    settings: Settings, out: Path, *, topic: str | None = None, timeout_s: float = 300.0
) -> tuple[Path, Snapshot]:
    """Snapshot ``topic`` (default: the ``labels`` topic of ``settings``) into ``out``."""
    name = topic or topic_names(settings).labels
    read = read_topic(settings, name, timeout_s=timeout_s)
    snapshot = build_snapshot(
        read.labels,
        topic=name,
        end_offsets=read.end_offsets,
        records_read=read.records,
        skipped=read.skipped,
    )
    return write_snapshot(snapshot, out), snapshot


@dataclass(frozen=True)
class ReplayReport:
    """What a replay did."""

    topic: str
    published: int
    created_topic: bool
    snapshot_id: str


def create_label_topic(settings: Settings, topic: str, *, timeout_s: float = 30.0) -> bool:
    """Create ``topic`` compacted like ``labels`` (the settings' partitions); False if it existed."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(client_id="labelloop-snapshot", **settings.kafka.kafka_python_options())
    try:
        admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=settings.topics.partitions,
                    replication_factor=settings.topics.replication_factor,
                    topic_configs={"cleanup.policy": "compact"},
                )
            ],
            timeout_ms=int(timeout_s * 1000),
        )
    except TopicAlreadyExistsError:
        return False
    finally:
        admin.close()
    return True


async def _publish(settings: Settings, topic: str, labels: Sequence[Label]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        **settings.kafka.aiokafka_options(),
        client_id="labelloop-replay",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )
    await asyncio.wait_for(producer.start(), 30)
    try:
        futures = [
            await producer.send(topic, key=encode_key(label.event_id), value=label.to_json_bytes())
            for label in labels
        ]
        await asyncio.wait_for(producer.flush(), 120)
        await asyncio.wait_for(asyncio.gather(*futures), 120)
    finally:
        await asyncio.wait_for(producer.stop(), 30)


def publish_labels(settings: Settings, topic: str, labels: Sequence[Label]) -> int:
    """Publish ``labels`` as wire JSON keyed by event_id to ``topic`` and wait for every ack."""
    asyncio.run(_publish(settings, topic, labels))
    return len(labels)


def replay(settings: Settings, folder: Path, topic: str, *, create: bool = False) -> ReplayReport:
    """Republish every Label of the snapshot in ``folder`` to ``topic`` (keyed by event_id), flushed."""
    labels, manifest = load_snapshot(folder)
    created = create_label_topic(settings, topic) if create else False
    published = publish_labels(settings, topic, labels)
    return ReplayReport(topic, published, created, str(manifest["snapshot_id"]))


def watch(
    settings: Settings,
    out: Path,
    trigger: SnapshotTrigger,
    *,
    topic: str | None = None,
    max_snapshots: int | None = None,
    on_snapshot: Callable[[Path, Snapshot], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Take a snapshot now, then whenever ``trigger`` says one is due; return how many were taken.

    New labels are followed on ``topic`` (from its end at the start) and fed to the trigger;
    each snapshot is a full :func:`export_topic`. Runs until ``max_snapshots`` (or forever).
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    name = topic or topic_names(settings).labels

    async def start() -> Any:
        # Built inside the loop: aiokafka binds the loop at construction (this may run in a thread).
        consumer = AIOKafkaConsumer(
            **settings.kafka.reader_options(),
            group_id=None,
            enable_auto_commit=False,
            client_id="labelloop-snapshot-watch",
        )
        await asyncio.wait_for(consumer.start(), 30)
        assigned = [TopicPartition(name, n) for n in sorted(await partitions_of(consumer, name))]
        if not assigned:
            await consumer.stop()
            raise SnapshotError(f"topic {name} does not exist (or has no partitions)")
        consumer.assign(assigned)
        await consumer.seek_to_end(*assigned)
        for partition in assigned:  # resolve the end now: every label after this point counts
            await asyncio.wait_for(consumer.position(partition), 30)
        return consumer

    loop = asyncio.new_event_loop()
    taken = 0
    try:
        consumer = loop.run_until_complete(start())
    except BaseException:
        loop.close()
        raise
    try:
        trigger.taken(clock())
        while True:
            path, snapshot = export_topic(settings, out, topic=name)
            taken += 1
            if on_snapshot is not None:
                on_snapshot(path, snapshot)
            if max_snapshots is not None and taken >= max_snapshots:
                return taken
            trigger.taken(clock())
            while not trigger.due(clock()):
                batches = loop.run_until_complete(asyncio.wait_for(consumer.getmany(timeout_ms=500), 30))
                for messages in batches.values():
                    for message in messages:
                        with contextlib.suppress(ContractError):
                            trigger.observe(decode(Label, message.value))
    finally:
        loop.run_until_complete(asyncio.wait_for(consumer.stop(), 30))
        loop.close()
