"""The pure core of label snapshots: latest revisions, deterministic Parquet, manifest, trigger.

No Kafka here (:mod:`streams.snapshot.kafka_io` reads and replays topics); the layout, the
hashes and the determinism rules are in :mod:`streams.snapshot`.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas import Label
from streams.errors import SnapshotError
from streams.revisions import latest_labels

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


def latest_revisions(labels: Iterable[Label]) -> list[Label]:
    """The trusted label per event (:func:`streams.revisions.supersedes`), sorted by event_id.

    >>> from schemas.examples import human_label
    >>> [(x.event_id, x.revision) for x in latest_revisions(
    ...     [human_label(event_id="b"), human_label(event_id="a", revision=2), human_label(event_id="a")])]
    [('a', 2), ('b', 1)]
    """
    latest = latest_labels(labels)
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

    >>> from schemas.examples import human_label
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
