"""[L3] A labels snapshot replayed into a fresh topic and exported again is byte-identical."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from schemas import Label
from streams.settings import KafkaSettings, Settings, TopicSettings
from streams.snapshot import (
    DATA_FILE,
    Snapshot,
    SnapshotTrigger,
    export_topic,
    load_snapshot,
    publish_labels,
    replay,
    watch,
)
from streams.topic_admin import create_topics, delete_topics
from streams.topics import topic_names
from tests.factories import WHEN, human_label

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(kafka_bootstrap: str) -> Iterator[Settings]:
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
        topics=TopicSettings(prefix=f"test.snap.{uuid.uuid4().hex[:8]}.", partitions=4),
    )
    create_topics(settings)
    yield settings
    delete_topics(settings)


def _labels() -> list[Label]:
    labels = [
        human_label(
            event_id=f"ev-{number:04d}",
            source=("model", "crowd", "expert")[number % 3],
            human_label=("ok", "fraud", "spam")[number % 5 % 3],
            decided_at=WHEN + timedelta(seconds=number),
        )
        for number in range(200)
    ]
    # Audits correct every 10th event later (revision 2, then revision 3 for every 20th).
    labels += [
        human_label(event_id=f"ev-{n:04d}", revision=2, human_label="fraud", source="expert", route="audit")
        for n in range(0, 200, 10)
    ]
    labels += [
        human_label(event_id=f"ev-{n:04d}", revision=3, human_label="spam", source="expert", route="audit")
        for n in range(0, 200, 20)
    ]
    return labels


def test_an_exported_snapshot_replayed_into_a_fresh_topic_exports_byte_identical(
    settings: Settings, tmp_path: Path
) -> None:
    labels_topic = topic_names(settings).labels
    assert publish_labels(settings, labels_topic, _labels()) == 230

    first_path, first = export_topic(settings, tmp_path / "first")
    assert first.manifest["label_count"] == 200
    assert first.manifest["records_read"] == 230
    assert sum(first.manifest["end_offsets"].values()) == 230
    assert set(first.manifest["end_offsets"]) == {"0", "1", "2", "3"}
    rows = {label.event_id: label for label in first.rows}
    assert (rows["ev-0000"].revision, rows["ev-0000"].label) == (3, "spam")
    assert (rows["ev-0010"].revision, rows["ev-0010"].label) == (2, "fraud")

    fresh = f"{settings.topics.prefix}replayed"
    try:
        report = replay(settings, first_path.parent, fresh, create=True)
        assert (report.published, report.created_topic) == (200, True)
        second_path, second = export_topic(settings, tmp_path / "second", topic=fresh)
    finally:
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(**settings.kafka.kafka_python_options())
        try:
            admin.delete_topics([fresh])
        finally:
            admin.close()

    assert second.content_hash == first.content_hash
    assert second.manifest["rows_hash"] == first.manifest["rows_hash"]
    assert second.snapshot_id == first.snapshot_id
    assert (second_path.parent / DATA_FILE).read_bytes() == (first_path.parent / DATA_FILE).read_bytes()
    assert second.manifest["records_read"] == 200
    replayed, _ = load_snapshot(second_path.parent)
    assert [label.to_json_bytes() for label in replayed] == [label.to_json_bytes() for label in first.rows]


def test_watch_takes_a_snapshot_at_start_and_another_after_n_new_human_labels(
    settings: Settings, tmp_path: Path
) -> None:
    labels_topic = topic_names(settings).labels
    publish_labels(settings, labels_topic, _labels()[:50])
    taken: list[Snapshot] = []
    first_taken = threading.Event()

    def on_snapshot(path: Path, snapshot: Snapshot) -> None:
        taken.append(snapshot)
        first_taken.set()

    trigger = SnapshotTrigger(every_human_labels=5)
    thread = threading.Thread(
        target=watch,
        args=(settings, tmp_path, trigger),
        kwargs={"max_snapshots": 2, "on_snapshot": on_snapshot},
        daemon=True,
    )
    thread.start()
    assert first_taken.wait(60)
    more = [human_label(event_id=f"new-{n}", source="crowd") for n in range(5)]
    publish_labels(settings, labels_topic, more)
    thread.join(60)
    assert not thread.is_alive()
    assert [snapshot.manifest["label_count"] for snapshot in taken] == [50, 55]
    assert len({snapshot.snapshot_id for snapshot in taken}) == 2
