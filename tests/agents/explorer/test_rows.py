"""The fold of topic records into one row per event: any order, any number of deliveries, one result."""

from __future__ import annotations

import random
from datetime import timedelta

from agents.explorer.rows import EventRow, Facts, is_shed, merge
from tests.agents.explorer.scenario import event, label_of, scenario


def fold(records: list[object]) -> dict[str, EventRow]:
    facts = Facts()
    for record in records:
        facts.add(record)
    return facts.rows


def test_any_order_and_any_redelivery_gives_the_same_rows() -> None:
    records = scenario()
    expected = fold(records)
    rng = random.Random(7)
    for _ in range(20):
        shuffled = records + rng.sample(records, 10)  # some records delivered twice
        rng.shuffle(shuffled)
        assert fold(shuffled) == expected


def test_the_latest_revision_is_the_trusted_label_and_counts_the_revisions() -> None:
    row = fold(scenario())["ev-3"]
    assert (row.trusted, row.source, row.revision, row.n_revisions) == ("billing", "expert", 3, 3)
    assert row.predicted == "tech"
    assert row.disagree is True
    assert row.updated_at == event(3).created_at + timedelta(minutes=30)  # the last decision


def test_the_prediction_wins_over_what_a_label_says_of_it() -> None:
    prediction = event(1, predicted="billing", confidence=0.7)
    label = label_of(prediction, label="tech")
    from_label_only = fold([label])["ev-1"]
    assert from_label_only.text is None
    assert from_label_only.predicted == "billing"
    both = fold([label, prediction])["ev-1"]
    assert both.text == prediction.input.text
    assert both.prediction_rank == 2
    assert both.route == "low_confidence"
    assert both.disagree is True


def test_a_shed_event_is_routed_shed_and_a_request_alone_routes_it() -> None:
    rows = fold(scenario())
    assert rows["ev-10"].route == "shed"
    assert is_shed(label_of(event(1), label="x", route="accepted")) is False
    request_only = next(r for r in scenario() if type(r).__name__ == "LabelRequest")
    assert fold([request_only])[request_only.event_id].route == "low_confidence"


def test_merge_refuses_two_events() -> None:
    import pytest

    with pytest.raises(ValueError, match="cannot merge"):
        merge(EventRow("a"), EventRow("b"))


def test_the_child_facts_of_a_batch() -> None:
    facts = Facts()
    for record in scenario():
        facts.add(record)
    assert {(e, w) for e, w in facts.labelers if e == "ev-1"} == {("ev-1", "w1"), ("ev-1", "w2")}
    assert len(facts.revisions) == 15
    assert len(facts.alerts) == 1
    assert len(facts.skills) == 2
