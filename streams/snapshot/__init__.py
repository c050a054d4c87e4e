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
:class:`SnapshotTrigger`) is pure, in :mod:`streams.snapshot.core`; :func:`export_topic`,
:func:`replay` and :func:`watch` are the thin Kafka I/O (aiokafka, with a timeout on every
fetch), in :mod:`streams.snapshot.kafka_io`. Both are importable from here.
"""

from streams.errors import SnapshotError
from streams.snapshot.core import (
    DATA_FILE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    WRITER_OPTIONS,
    Snapshot,
    SnapshotTrigger,
    build_snapshot,
    latest_revisions,
    load_snapshot,
    parquet_bytes,
    rows_hash,
    snapshot_id_of,
    write_snapshot,
)
from streams.snapshot.kafka_io import (
    ReplayReport,
    TopicRead,
    create_label_topic,
    export_topic,
    publish_labels,
    read_topic,
    replay,
    watch,
)

__all__ = [
    "DATA_FILE",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "WRITER_OPTIONS",
    "ReplayReport",
    "Snapshot",
    "SnapshotError",
    "SnapshotTrigger",
    "TopicRead",
    "build_snapshot",
    "create_label_topic",
    "export_topic",
    "latest_revisions",
    "load_snapshot",
    "parquet_bytes",
    "publish_labels",
    "read_topic",
    "replay",
    "rows_hash",
    "snapshot_id_of",
    "watch",
    "write_snapshot",
]
