"""Label snapshots without Kafka: deterministic bytes, latest revision wins, manifest, trigger, CLI errors."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labelloop.cli import app
from schemas import Label
from streams.snapshot import (
    DATA_FILE,
    MANIFEST_FILE,
    SnapshotError,
    SnapshotTrigger,
    build_snapshot,
    latest_revisions,
    load_snapshot,
    write_snapshot,
)
from tests.factories import WHEN, human_label


def _labels() -> list[Label]:
    labels = [
        human_label(
            event_id=f"tx-{number:03d}",
            source="model" if number % 3 == 0 else "crowd",
            human_label="fraud" if number % 4 == 0 else "ok",
            decided_at=WHEN + timedelta(seconds=number),
        )
        for number in range(50)
    ]
    # Later revisions: an audit corrects tx-007 twice, an expert tx-010 once.
    labels += [
        human_label(event_id="tx-007", revision=2, human_label="fraud", source="expert", route="audit"),
        human_label(event_id="tx-007", revision=3, human_label="spam", source="expert", route="audit"),
        human_label(event_id="tx-010", revision=2, human_label="ok", source="expert", route="audit"),
    ]
    return labels


def test_the_same_labels_in_any_order_give_the_same_bytes() -> None:
    labels = _labels()
    first = build_snapshot(labels, topic="t")
    for seed in range(5):
        shuffled = labels[:]
        random.Random(seed).shuffle(shuffled)
        again = build_snapshot(shuffled, topic="t", created_at=datetime(2030, 1, 1, tzinfo=UTC))
        assert again.data == first.data
        assert again.content_hash == first.content_hash == hashlib.sha256(first.data).hexdigest()
        assert again.manifest["rows_hash"] == first.manifest["rows_hash"]
        assert again.snapshot_id == first.snapshot_id == f"snap-{first.content_hash[:16]}"


def test_different_labels_give_a_different_snapshot() -> None:
    labels = _labels()
    changed = [*labels, human_label(event_id="tx-010", revision=3, human_label="fraud", source="expert")]
    assert build_snapshot(changed, topic="t").content_hash != build_snapshot(labels, topic="t").content_hash


def test_the_latest_revision_wins_whatever_the_order() -> None:
    labels = _labels()
    for seed in range(5):
        shuffled = labels[:]
        random.Random(seed).shuffle(shuffled)
        rows = {label.event_id: label for label in latest_revisions(shuffled)}
        assert (rows["tx-007"].revision, rows["tx-007"].label) == (3, "spam")
        assert (rows["tx-010"].revision, rows["tx-010"].label) == (2, "ok")
    assert [label.event_id for label in latest_revisions(labels)] == sorted({x.event_id for x in labels})


def test_a_tie_on_revision_is_decided_by_the_later_decision_not_the_order() -> None:
    early = human_label(event_id="e", revision=2, human_label="a", decided_at=WHEN)
    late = human_label(event_id="e", revision=2, human_label="b", decided_at=WHEN + timedelta(seconds=1))
    assert latest_revisions([early, late])[0].label == latest_revisions([late, early])[0].label == "b"


def test_the_manifest_counts_and_ranges() -> None:
    snapshot = build_snapshot(_labels(), topic="lab.labels", end_offsets={1: 20, 0: 33}, records_read=53)
    manifest = snapshot.manifest
    assert manifest["label_count"] == 50
    assert manifest["records_read"] == 53
    assert manifest["end_offsets"] == {"0": 33, "1": 20}
    assert manifest["topic"] == "lab.labels"
    assert manifest["schema_version"] == Label.SCHEMA_VERSION
    rows = snapshot.rows
    assert manifest["counts_per_source"] == {
        source: sum(label.source == source for label in rows) for source in ("crowd", "expert", "model")
    }
    assert sum(manifest["counts_per_class"].values()) == 50
    assert manifest["counts_per_class"]["spam"] == 1
    assert manifest["human_label_count"] == sum(label.is_human for label in rows)
    assert manifest["decided_at_min"] == WHEN.isoformat()
    assert manifest["decided_at_max"] == (WHEN + timedelta(seconds=49)).isoformat()


def test_an_empty_snapshot_is_valid() -> None:
    snapshot = build_snapshot([], topic="t")
    assert snapshot.manifest["label_count"] == 0
    assert snapshot.manifest["decided_at_min"] is None


def test_write_and_load_round_trip_the_labels_exactly(tmp_path: Path) -> None:
    snapshot = build_snapshot(_labels(), topic="t")
    manifest_path = write_snapshot(snapshot, tmp_path)
    assert manifest_path == tmp_path / snapshot.snapshot_id / MANIFEST_FILE
    labels, manifest = load_snapshot(manifest_path.parent)
    assert manifest["content_hash"] == snapshot.content_hash
    assert [label.to_json_bytes() for label in labels] == [label.to_json_bytes() for label in snapshot.rows]
    assert build_snapshot(labels, topic="t").data == snapshot.data
    # Writing the same content again lands in the same folder with the same bytes.
    assert write_snapshot(build_snapshot(labels, topic="other"), tmp_path).parent == manifest_path.parent
    assert (manifest_path.parent / DATA_FILE).read_bytes() == snapshot.data


def test_a_tampered_data_file_is_refused(tmp_path: Path) -> None:
    folder = write_snapshot(build_snapshot(_labels(), topic="t"), tmp_path).parent
    (folder / DATA_FILE).write_bytes((folder / DATA_FILE).read_bytes() + b"x")
    with pytest.raises(SnapshotError, match="content_hash"):
        load_snapshot(folder)
    with pytest.raises(SnapshotError, match="not a snapshot"):
        load_snapshot(tmp_path)


def test_the_manifest_is_json_with_sorted_keys(tmp_path: Path) -> None:
    path = write_snapshot(build_snapshot(_labels(), topic="t"), tmp_path)
    document = json.loads(path.read_text())
    assert list(document) == sorted(document)


def test_the_trigger_fires_every_n_human_labels() -> None:
    trigger = SnapshotTrigger(every_human_labels=3, now=0.0)
    trigger.observe(human_label(source="model"))
    trigger.observe(human_label())
    trigger.observe(human_label(source="expert"))
    assert not trigger.due(100.0)
    trigger.observe(human_label())
    assert trigger.due(100.0)
    trigger.taken(100.0)
    assert not trigger.due(100.0)
    assert trigger.new_human_labels == 0


def test_the_trigger_fires_on_schedule() -> None:
    trigger = SnapshotTrigger(every_s=60.0, now=10.0)
    assert not trigger.due(69.9)
    assert trigger.due(70.0)
    trigger.taken(70.0)
    assert not trigger.due(100.0)
    assert trigger.due(130.0)


def test_the_trigger_with_both_rules_fires_on_either_and_off_never_fires() -> None:
    trigger = SnapshotTrigger(every_human_labels=1, every_s=60.0, now=0.0)
    trigger.observe(human_label())
    assert trigger.due(1.0)
    assert not SnapshotTrigger(now=0.0).due(1e9)
    with pytest.raises(ValueError, match="at least 1"):
        SnapshotTrigger(every_human_labels=0)
    with pytest.raises(ValueError, match="positive"):
        SnapshotTrigger(every_s=0)


runner = CliRunner()


def test_replay_needs_a_snapshot_folder_and_a_topic(tmp_path: Path) -> None:
    assert runner.invoke(app, ["replay"]).exit_code == 2
    assert runner.invoke(app, ["replay", str(tmp_path)]).exit_code == 2
    missing = runner.invoke(app, ["replay", str(tmp_path / "nope"), "--topic", "t"])
    assert missing.exit_code == 2


def test_export_refuses_unknown_options() -> None:
    assert runner.invoke(app, ["export", "--nope"]).exit_code == 2


def test_export_refuses_a_trigger_below_one() -> None:
    assert runner.invoke(app, ["export", "--every-human-labels", "0"]).exit_code == 2
    assert runner.invoke(app, ["export", "--every-s", "0.5"]).exit_code == 2
