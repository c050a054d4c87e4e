"""The explorer's pure write side: corrections, bulk plans, caps and undo as revisions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.explorer.actions import (
    PART_SIZE,
    ActionError,
    BulkAction,
    RevisionOrder,
    action_parts,
    correction,
    not_yet_seen,
    plan_bulk,
    plan_undo,
    publishable,
    undone,
)
from schemas import Label, RoutingTrace
from tests import factories

NOW = datetime(2026, 1, 3, tzinfo=UTC)


def _selected(n: int, label: str = "ok") -> list[Label]:
    return [factories.human_label(event_id=f"e-{i:04d}", human_label=label) for i in range(n)]


def test_a_correction_is_the_next_expert_revision_and_keeps_what_estimators_weigh() -> None:
    trace = RoutingTrace(
        measure="margin", uncertainty=0.4, threshold=0.3, policy_version=2, audited_class="fraud"
    )
    audited = factories.human_label(
        "audit", human_label="ok", revision=2, inclusion_probability=0.05, routing=trace
    )
    fixed = correction(audited, label="fraud", operator="ana", reason="chargeback", now=NOW)
    assert (fixed.revision, fixed.supersedes, fixed.source, fixed.confidence) == (3, 2, "expert", 1.0)
    assert (fixed.route, fixed.inclusion_probability, fixed.routing) == ("audit", 0.05, trace)
    assert fixed.provenance.model_label == audited.provenance.model_label
    assert (fixed.provenance.operator, fixed.provenance.operator_reason) == ("ana", "chargeback")
    assert fixed.reason is not None
    assert "ana" in fixed.reason
    assert "chargeback" in fixed.reason
    assert fixed.decided_at == NOW
    # It survives the wire as the public contract.
    assert Label.from_json_bytes(fixed.to_json_bytes()) == fixed


def test_a_bulk_plan_changes_only_what_differs_and_is_conditional_on_the_preview() -> None:
    picked = [*_selected(5), factories.human_label(event_id="e-spam", human_label="spam")]
    plan = plan_bulk(picked, label="spam", operator="ana", reason="outage", now=NOW, cap=100, action_id="b-1")
    assert plan.count == 5
    assert plan.unchanged == 1
    assert not plan.capped
    assert all(order.if_latest and order.kind == "bulk" for order in plan.orders)
    assert {order.label.provenance.action_id for order in plan.orders} == {"b-1"}
    assert [order.label.revision for order in plan.orders] == [2] * 5


def test_a_bulk_plan_is_capped_and_counts_each_event_once() -> None:
    picked = _selected(10)
    plan = plan_bulk(picked + picked, label="spam", operator="ana", reason="r", now=NOW, cap=4, action_id="b")
    assert plan.count == 4
    assert plan.capped
    exact = plan_bulk(
        picked + picked, label="spam", operator="ana", reason="r", now=NOW, cap=10, action_id="b"
    )
    assert exact.count == 10
    assert not exact.capped
    with pytest.raises(ActionError):
        plan_bulk(picked, label="spam", operator="ana", reason="r", now=NOW, cap=0, action_id="b")


def test_the_action_log_splits_into_parts_that_fit_a_record() -> None:
    picked = _selected(PART_SIZE * 2 + 7)
    plan = plan_bulk(picked, label="spam", operator="ana", reason="r", now=NOW, cap=5_000, action_id="b-big")
    parts = action_parts(plan, picked, operator="ana", reason="r", label="spam", now=NOW)
    assert [len(part.events) for part in parts] == [PART_SIZE, PART_SIZE, 7]
    assert {part.parts for part in parts} == {3}
    assert all(len(part.to_json_bytes()) < 200_000 for part in parts)
    assert BulkAction.from_json_bytes(parts[0].to_json_bytes()) == parts[0]


def test_undo_restores_the_prior_label_only_where_the_action_is_still_latest() -> None:
    crowd = factories.human_label(event_id="e-crowd", human_label="ok", source="crowd")
    model = factories.human_label(event_id="e-model", human_label="ok", source="model", route="accepted")
    moved = factories.human_label(event_id="e-moved", human_label="ok")
    picked = [crowd, model, moved]
    plan = plan_bulk(picked, label="spam", operator="ana", reason="r", now=NOW, cap=10, action_id="b-2")
    parts = action_parts(plan, picked, operator="ana", reason="r", label="spam", now=NOW)
    latest = {order.event_id: order.label for order in plan.orders}
    latest["e-moved"] = correction(latest["e-moved"], label="ham", operator="bo", reason="no", now=NOW)
    orders, left = plan_undo(parts, latest, operator="cy", now=NOW)
    assert left == 1
    by_event = {order.event_id: order.label for order in orders}
    assert set(by_event) == {"e-crowd", "e-model"}
    assert (by_event["e-crowd"].label, by_event["e-crowd"].source, by_event["e-crowd"].revision) == (
        "ok",
        "crowd",
        3,
    )
    assert by_event["e-model"].source == "model"
    assert by_event["e-model"].supersedes == 2
    assert all(order.if_latest and order.kind == "undo" for order in orders)
    assert {label.provenance.operator for label in by_event.values()} == {"cy"}


def test_an_undone_or_unknown_action_cannot_be_undone() -> None:
    picked = _selected(2)
    plan = plan_bulk(picked, label="spam", operator="ana", reason="r", now=NOW, cap=10, action_id="b-3")
    parts = action_parts(plan, picked, operator="ana", reason="r", label="spam", now=NOW)
    with pytest.raises(ActionError) as missing:
        plan_undo([], {}, operator="cy", now=NOW)
    assert missing.value.status == 404
    with pytest.raises(ActionError) as twice:
        plan_undo(undone(parts, operator="cy", now=NOW), {}, operator="cy", now=NOW)
    assert twice.value.status == 409
    big = _selected(PART_SIZE + 1)
    split = action_parts(
        plan_bulk(big, label="spam", operator="a", reason="r", now=NOW, cap=999, action_id="b-4"),
        big,
        operator="a",
        reason="r",
        label="spam",
        now=NOW,
    )
    with pytest.raises(ActionError) as incomplete:
        plan_undo(split[:1], {}, operator="cy", now=NOW)
    assert incomplete.value.status == 409


@pytest.mark.parametrize(
    ("if_latest", "latest", "expected"),
    [(True, 0, (3, 2)), (True, 2, (3, 2)), (True, 3, None), (False, 1, (3, 2)), (False, 4, (5, 4))],
)
def test_the_publisher_rule(if_latest: bool, latest: int, expected: tuple[int, int] | None) -> None:
    order = RevisionOrder(label=factories.human_label(revision=3), if_latest=if_latest)
    found = publishable(order, latest)
    assert (None if found is None else (found.revision, found.supersedes)) == expected


def test_an_order_survives_the_wire() -> None:
    order = RevisionOrder(
        label=correction(factories.human_label(), label="x", operator="a", reason="r", now=NOW)
    )
    assert RevisionOrder.from_json_bytes(order.to_json_bytes()) == order
    assert order.event_id == "tx-1"


def test_an_undo_is_refused_while_the_index_has_not_seen_the_action() -> None:
    picked = _selected(3)
    plan = plan_bulk(picked, label="spam", operator="ana", reason="r", now=NOW, cap=10, action_id="b-5")
    parts = action_parts(plan, picked, operator="ana", reason="r", label="spam", now=NOW)
    # The index still has e-0002 at its prior revision (its bulk revision not read yet).
    latest = {order.event_id: order.label for order in plan.orders}
    latest["e-0002"] = picked[2]
    assert not_yet_seen(parts, latest) == ["e-0002"]
    with pytest.raises(ActionError) as lagging:
        plan_undo(parts, latest, operator="cy", now=NOW)
    assert lagging.value.status == 409
    assert "try the undo again" in lagging.value.message
    latest["e-0002"] = plan.orders[2].label
    orders, left = plan_undo(parts, latest, operator="cy", now=NOW)
    assert (len(orders), left) == (3, 0)
