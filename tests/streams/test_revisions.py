"""One latest-revision rule: the SDK's consumer view and a snapshot pick the same label per event."""

from __future__ import annotations

import random
from datetime import timedelta

from schemas import Label
from schemas.examples import WHEN, human_label
from streams.revisions import latest_labels, supersedes
from streams.sdk import latest_labels as sdk_latest_labels
from streams.snapshot import latest_revisions


def _records() -> list[Label]:
    later = WHEN + timedelta(seconds=5)
    return [
        human_label(event_id="a", revision=1),
        human_label(event_id="a", revision=2, human_label="ok"),
        human_label(event_id="a", revision=2, human_label="fraud", decided_at=later),  # same revision, later
        human_label(event_id="b", revision=1, human_label="ok"),
        human_label(event_id="b", revision=1, human_label="fraud"),  # a full tie but for the label
        human_label(event_id="c", revision=3, source="expert"),
    ]


def test_the_consumer_and_the_snapshot_agree_on_every_event_in_any_reading_order() -> None:
    expected = {event_id: label.to_json_bytes() for event_id, label in latest_labels(_records()).items()}
    for seed in range(20):
        shuffled = _records()
        random.Random(seed).shuffle(shuffled)
        consumer = {
            event_id: label.to_json_bytes() for event_id, label in sdk_latest_labels(shuffled).items()
        }
        snapshot = {label.event_id: label.to_json_bytes() for label in latest_revisions(shuffled)}
        assert consumer == snapshot == expected
    assert latest_labels(_records())["a"].label == "fraud"  # the later decision of revision 2


def test_the_rule_is_a_strict_order() -> None:
    records = _records()
    for x in records:
        assert not supersedes(x, x)
        for y in records:
            if x.event_id == y.event_id and x.to_json_bytes() != y.to_json_bytes():
                assert supersedes(x, y) != supersedes(y, x)
