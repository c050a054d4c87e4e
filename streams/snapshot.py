"""Versioned label datasets: snapshots of the trusted labels (Parquet + manifest) and their replay.

A snapshot is the latest revision of every event on a ``labels`` topic, read
from the beginning up to the end offsets the export saw when it started (kept
per partition in the manifest, so "which labels" is exact). The layout::

    <out>/<snapshot-id>/labels.parquet   one row per event, sorted by event_id
    <out>/<snapshot-id>/manifest.json    hashes, offsets, time range, counts, schema version

Determinism: the rows are sorted by ``event_id``; the Parquet schema is fixed;
the writer options are pinned (:data:`WRITER_OPTIONS`); nothing about the
export itself (its time, its host) is inside the data file. So the same labels,
read in any order, give the same bytes with the same pyarrow version.

Two hashes are in the manifest:

- ``content_hash``: sha256 of the ``labels.parquet`` bytes. The snapshot id is
  derived from it (``snap-<first 16 hex digits>``), and goal L3 compares it:
  a snapshot replayed into a fresh topic and exported again must give the
  same ``content_hash`` (so the same id and byte-identical Parquet).
- ``rows_hash``: sha256 of a canonical row serialisation (each Label's wire
  JSON, ``Label.to_json_bytes()``, in event_id order, one per line). It does
  not depend on the Parquet writer, so it still matches across pyarrow
  upgrades, where the Parquet bytes (and the id) may change.

The core (:func:`latest_revisions`, :func:`build_snapshot`, :func:`parquet_bytes`,
:class:`SnapshotTrigger`) is pure; :func:`export_topic` and :func:`replay` are
the thin Kafka I/O (aiokafka, with a timeout on every fetch).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas import Label
from streams.codec import decode, encode_key
from streams.errors import ContractError
from streams.errors import SnapshotError as SnapshotError  # importable from here, as it always was
from streams.patches.aiokafka_metadata import partitions_of
from streams.settings import Settings
from streams.topics import topic_names

log = logging.getLogger(__name__)

DATA_FILE = "labels.parquet"
MANIFEST_FILE = "manifest.json"
#: The version of the snapshot layout and manifest (not of the Label schema, which is in the manifest too).
FORMAT_VERSION = 1
#: Pinned Parquet writer options: a change here changes every snapshot's bytes (and id).
WRITER_OPTIONS: dict[str, Any] = {
    "version": "2.6",
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "data_page_version": "1.0",
    "row_group_size": 1_000_000,
    "write_page_index": False,
    "write_page_checksum": False,
    "store_schema": True,
}


# --- the pure core ------------------------------------------------------------------------------


def _preference(label: Label) -> tuple[int, datetime, bytes]:
    """Which of two records of one event is the truth: the higher revision, then the later decision.

    The wire bytes break the last tie, so the winner never depends on reading order.
    """
    return (label.revision, label.decided_at, label.to_json_bytes())


def latest_revisions(labels: Iterable[Label]) -> list[Label]:
    """The trusted label per event (its latest revision), sorted by event_id.

    >>> from tests.factories import human_label
    >>> [(x.event_id, x.revision) for x in latest_revisions(
    ...     [human_label(event_id="b"), human_label(event_id="a", revision=2), human_label(event_id="a")])]
    [('a', 2), ('b', 1)]
    """
    latest: dict[str, Label] = {}
    for label in labels:
        current = latest.get(label.event_id)
        if current is None or _preference(label) > _preference(current):
            latest[label.event_id] = label
    return [latest[event_id] for event_id in sorted(latest)]


def _schema() -> Any:
    import pyarrow as pa  # type: ignore[import-untyped]

    timestamp = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            pa.field("event_id", pa.string(), nullable=False),
            pa.field("task", pa.string(), nullable=False),
            pa.field("label", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("revision", pa.int64(), nullable=False),
            pa.field("supersedes", pa.int64()),
            pa.field("confidence", pa.float64(), nullable=False),
            pa.field("route", pa.string(), nullable=False),
            pa.field("inclusion_probability", pa.float64(), nullable=False),
            pa.field("decided_at", timestamp, nullable=False),
            pa.field("prediction_created_at", timestamp, nullable=False),
            pa.field("model_name", pa.string(), nullable=False),
            pa.field("model_version", pa.string(), nullable=False),
            pa.field("model_label", pa.string(), nullable=False),
            pa.field("model_confidence", pa.float64(), nullable=False),
            pa.field("n_answers", pa.int64(), nullable=False),
            pa.field("pool", pa.string()),
            pa.field("schema_version", pa.int64(), nullable=False),
            # The Label exactly as on the wire: what replay republishes.
            pa.field("label_json", pa.string(), nullable=False),
        ]
    )


def _row(label: Label) -> dict[str, Any]:
    return {
        "event_id": label.event_id,
        "task": label.task,
        "label": label.label,
        "source": label.source,
        "revision": label.revision,
        "supersedes": label.supersedes,
        "confidence": label.confidence,
        "route": label.route,
        "inclusion_probability": label.inclusion_probability,
        "decided_at": label.decided_at.astimezone(UTC),
        "prediction_created_at": label.prediction_created_at.astimezone(UTC),
        "model_name": label.provenance.model_name,
        "model_version": label.provenance.model_version,
        "model_label": label.provenance.model_label,
        "model_confidence": label.provenance.model_confidence,
        "n_answers": label.provenance.n_answers,
        "pool": label.provenance.pool,
        "schema_version": label.schema_version,
        "label_json": label.to_json_bytes().decode("utf-8"),
    }


def parquet_bytes(rows: Sequence[Label]) -> bytes:
    """The Parquet file of ``rows`` (already the latest revisions, in event_id order), deterministically."""
    import pyarrow as pa
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    table = pa.Table.from_pylist([_row(label) for label in rows], schema=_schema())
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **WRITER_OPTIONS)
    return buffer.getvalue()


def rows_hash(rows: Sequence[Label]) -> str:
    """sha256 of the canonical row serialisation: each Label's wire JSON in order, newline-terminated."""
    digest = hashlib.sha256()
    for label in rows:
        digest.update(label.to_json_bytes())
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """A snapshot in memory: its rows, the Parquet bytes and the manifest."""

    rows: list[Label]
    data: bytes
    manifest: dict[str, Any]

    @property
    def snapshot_id(self) -> str:
        return str(self.manifest["snapshot_id"])

    @property
    def content_hash(self) -> str:
        return str(self.manifest["content_hash"])


def snapshot_id_of(content_hash: str) -> str:
    """The id of a snapshot: the same content is the same id."""
    return f"snap-{content_hash[:16]}"


def build_snapshot(
    labels: Iterable[Label],
    *,
    topic: str,
    end_offsets: dict[int, int] | None = None,
    records_read: int | None = None,
    skipped: int = 0,
    created_at: datetime | None = None,
) -> Snapshot:
    """The snapshot of ``labels`` (any order, revisions included): rows, Parquet bytes, manifest."""
    rows = latest_revisions(labels)
    data = parquet_bytes(rows)
    content_hash = hashlib.sha256(data).hexdigest()
    decided = [label.decided_at.astimezone(UTC) for label in rows]
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "snapshot_id": snapshot_id_of(content_hash),
        "content_hash": content_hash,
        "content_hash_of": f"sha256 of {DATA_FILE} (goal L3 compares this)",
        "rows_hash": rows_hash(rows),
        "rows_hash_of": "sha256 of each Label's wire JSON in event_id order, one per line",
        "data_file": DATA_FILE,
        "topic": topic,
        "end_offsets": {str(partition): offset for partition, offset in sorted((end_offsets or {}).items())},
        "records_read": records_read if records_read is not None else len(rows),
        "records_skipped": skipped,
        "label_count": len(rows),
        "human_label_count": sum(label.is_human for label in rows),
        "decided_at_min": min(decided).isoformat() if decided else None,
        "decided_at_max": max(decided).isoformat() if decided else None,
        "counts_per_class": dict(sorted(Counter(label.label for label in rows).items())),
        "counts_per_source": dict(sorted(Counter(label.source for label in rows).items())),
        "schema": "Label",
        "schema_version": Label.SCHEMA_VERSION,
        "parquet_writer": {**WRITER_OPTIONS, "pyarrow": _pyarrow_version()},
        "created_at": (created_at or datetime.now(UTC)).isoformat(),
    }
    return Snapshot(rows, data, manifest)


def _pyarrow_version() -> str:
    import pyarrow as pa

    return str(pa.__version__)


def write_snapshot(snapshot: Snapshot, out: Path) -> Path:
    """Write ``<out>/<snapshot-id>/labels.parquet`` and ``manifest.json``; return the manifest's path."""
    folder = out / snapshot.snapshot_id
    folder.mkdir(parents=True, exist_ok=True)
    data_path = folder / DATA_FILE
    if not data_path.exists() or data_path.read_bytes() != snapshot.data:
        temporary = data_path.with_suffix(".parquet.tmp")
        temporary.write_bytes(snapshot.data)
        temporary.replace(data_path)
    manifest_path = folder / MANIFEST_FILE
    manifest_path.write_text(json.dumps(snapshot.manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest_path


def load_snapshot(folder: Path) -> tuple[list[Label], dict[str, Any]]:
    """The Labels and manifest of a snapshot folder; raises :class:`SnapshotError` if the data was altered."""
    import pyarrow.parquet as pq

    manifest_path, data_path = folder / MANIFEST_FILE, folder / DATA_FILE
    if not manifest_path.is_file() or not data_path.is_file():
        raise SnapshotError(f"{folder} is not a snapshot: it needs {MANIFEST_FILE} and {DATA_FILE}")
    manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
    data = data_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest.get("content_hash"):
        raise SnapshotError(f"{data_path} does not match the content_hash of its manifest")
    column = pq.read_table(io.BytesIO(data), columns=["label_json"]).column("label_json").to_pylist()
    return [Label.from_json_bytes(text.encode("utf-8")) for text in column], manifest


class SnapshotTrigger:
    """Decides when a new snapshot is due: every ``every_human_labels`` human labels or every ``every_s``.

    Pure: the caller feeds it labels and the clock. Either rule may be off (``None``).

    >>> from tests.factories import human_label
    >>> trigger = SnapshotTrigger(every_human_labels=2, now=0.0)
    >>> trigger.observe(human_label(source="model")); trigger.due(1.0)
    False
    >>> trigger.observe(human_label()); trigger.observe(human_label()); trigger.due(1.0)
    True
    """

    def __init__(
        self, *, every_human_labels: int | None = None, every_s: float | None = None, now: float = 0.0
    ) -> None:
        if every_human_labels is not None and every_human_labels < 1:
            raise ValueError("every_human_labels must be at least 1")
        if every_s is not None and every_s <= 0:
            raise ValueError("every_s must be positive")
        self.every_human_labels = every_human_labels
        self.every_s = every_s
        self.new_human_labels = 0
        self.last_snapshot_at = now

    def observe(self, label: Label) -> None:
        """Count a label that arrived since the last snapshot (only human ones count)."""
        if label.is_human:
            self.new_human_labels += 1

    def due(self, now: float) -> bool:
        """Whether a snapshot should be taken now."""
        by_count = self.every_human_labels is not None and self.new_human_labels >= self.every_human_labels
        by_time = self.every_s is not None and now - self.last_snapshot_at >= self.every_s
        return by_count or by_time

    def taken(self, now: float) -> None:
        """A snapshot was taken at ``now``: start counting again."""
        self.new_human_labels = 0
        self.last_snapshot_at = now


# --- thin Kafka I/O -----------------------------------------------------------------------------


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
