"""Majority vote over a task's answers: once, with its context, from distinct workers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from agents.aggregator.majority import MajorityVoteAggregator, TaskState, majority
from schemas import CrowdAnswer, Label, LabelRequest, PredictionEvent, PredictionInput
from schemas.labels import RouteReason, RoutingTrace
from schemas.requests import Tier

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
NOW = CREATED + timedelta(minutes=1)
EVENT_ID = "tx-1"


def request(overlap: int | None = 3) -> LabelRequest:
    prediction = PredictionEvent(
        event_id=EVENT_ID,
        task="payments",
        model_name="fraud-model",
        model_version="3",
        created_at=CREATED,
        input=PredictionInput(text="refund please"),
        predicted_label="ok",
        scores={"ok": 0.6, "fraud": 0.4},
    )
    return LabelRequest(
        prediction=prediction,
        route="control",
        reason="control group",
        priority=0.4,
        uncertainty=0.4,
        inclusion_probability=0.05,
        overlap=overlap,
        requested_at=CREATED,
    )


def answer(
    worker_id: str, label: str, *, tier: Tier = "crowd", overlap: int = 3, golden_label: str | None = None
) -> CrowdAnswer:
    return CrowdAnswer(
        event_id=EVENT_ID,
        task_id=f"{EVENT_ID}/pool",
        pool="experts" if tier == "expert" else "simulated",
        tier=tier,
        worker_id=worker_id,
        label=label,
        time_spent_s=3.0,
        answered_at=NOW,
        overlap=overlap,
        golden_label=golden_label,
    )


def feed(
    aggregator: MajorityVoteAggregator,
    state: TaskState,
    inputs: Sequence[LabelRequest | CrowdAnswer],
) -> tuple[TaskState, list[Label]]:
    """Feed requests and answers in order; the Labels that came out."""
    labels: list[Label] = []
    for item in inputs:
        if isinstance(item, LabelRequest):
            state, label = aggregator.observe_request(state, item, NOW)
        else:
            state, label = aggregator.observe_answer(state, item, EVENT_ID, NOW)
        if label is not None:
            labels.append(label)
    return state, labels


AGGREGATOR = MajorityVoteAggregator(default_overlap=3)


def test_decides_with_the_context_and_overlap_distinct_workers() -> None:
    state, labels = feed(AGGREGATOR, TaskState(), [request(), answer("w1", "fraud"), answer("w2", "ok")])
    assert labels == []
    assert len(state.votes) == 2
    state, labels = feed(AGGREGATOR, state, [answer("w3", "fraud")])
    [label] = labels
    assert (label.event_id, label.task, label.label, label.source) == (EVENT_ID, "payments", "fraud", "crowd")
    assert label.revision == 1
    assert label.confidence == pytest.approx(2 / 3)
    assert (label.route, label.inclusion_probability, label.reason) == ("control", 0.05, "control group")
    assert (label.decided_at, label.prediction_created_at) == (NOW, CREATED)
    assert label.provenance.model_label == "ok"
    assert label.provenance.model_confidence == 0.6
    assert label.provenance.n_answers == 3
    assert label.provenance.pool == "simulated"
    assert label.provenance.worker_ids == ["w1", "w2", "w3"]
    assert state.decided == "fraud"


def test_answers_without_context_never_decide() -> None:
    state, labels = feed(AGGREGATOR, TaskState(), [answer(f"w{index}", "fraud") for index in range(5)])
    assert labels == []
    assert state.decided is None


def test_the_same_worker_counts_once() -> None:
    state, labels = feed(
        AGGREGATOR, TaskState(), [request(), answer("w1", "ok"), answer("w1", "ok"), answer("w2", "fraud")]
    )
    assert labels == []
    assert [vote.worker_id for vote in state.votes] == ["w1", "w2"]


def test_golden_answers_are_ignored() -> None:
    golden = [answer(f"g{index}", "fraud", golden_label="fraud") for index in range(3)]
    state, labels = feed(AGGREGATOR, TaskState(), [request(), *golden])
    assert labels == []
    assert state.votes == []


def test_answers_before_the_request_decide_when_it_arrives() -> None:
    early = [answer("w1", "ok"), answer("w2", "ok"), answer("w3", "fraud")]
    state, labels = feed(AGGREGATOR, TaskState(), early)
    assert labels == []
    state, labels = feed(AGGREGATOR, state, [request()])
    [label] = labels
    assert label.label == "ok"
    assert label.provenance.worker_ids == ["w1", "w2", "w3"]


def test_answers_after_the_decision_are_ignored() -> None:
    decided, labels = feed(
        AGGREGATOR, TaskState(), [request(), answer("w1", "ok"), answer("w2", "ok"), answer("w3", "ok")]
    )
    assert len(labels) == 1
    state, late = feed(AGGREGATOR, decided, [answer("w4", "fraud"), answer("w5", "fraud"), request()])
    assert late == []
    assert state == decided


def test_ties_go_to_the_smallest_label() -> None:
    _, labels = feed(AGGREGATOR, TaskState(), [request(overlap=2), answer("w1", "ok"), answer("w2", "fraud")])
    [label] = labels
    assert (label.label, label.confidence) == ("fraud", 0.5)
    assert majority(["zebra", "ant", "zebra", "ant"]) == ("ant", 0.5)


def test_majority_needs_votes() -> None:
    with pytest.raises(ValueError, match="no votes"):
        majority([])


def test_the_request_overlap_wins_then_the_answers_then_the_default() -> None:
    _, labels = feed(AGGREGATOR, TaskState(), [request(overlap=1), answer("w1", "ok", overlap=5)])
    assert [label.provenance.n_answers for label in labels] == [1]
    answers_say_two = [answer("w1", "ok", overlap=2), answer("w2", "ok", overlap=2)]
    _, labels = feed(AGGREGATOR, TaskState(), [request(overlap=None), *answers_say_two])
    assert [label.provenance.n_answers for label in labels] == [2]
    _, labels = feed(MajorityVoteAggregator(default_overlap=1), TaskState(), [request(overlap=None)])
    assert labels == []  # no answers yet: nothing to decide


@pytest.mark.parametrize(
    ("tiers", "source"),
    [(("expert", "expert", "expert"), "expert"), (("expert", "crowd", "expert"), "crowd")],
)
def test_the_source_is_expert_only_when_every_vote_is(tiers: tuple[Tier, ...], source: str) -> None:
    answers = [answer(f"w{index}", "fraud", tier=tier) for index, tier in enumerate(tiers)]
    _, labels = feed(AGGREGATOR, TaskState(), [request(), *answers])
    [label] = labels
    assert label.source == source
    assert label.is_human


def test_task_state_round_trips_through_json() -> None:
    state, _ = feed(
        AGGREGATOR, TaskState(), [request(), answer("w1", "ok"), answer("w2", "fraud", tier="expert")]
    )
    assert TaskState.from_json(state.to_json()) == state
    decided, _ = feed(AGGREGATOR, state, [answer("w3", "ok")])
    assert TaskState.from_json(decided.to_json()) == decided
    assert decided.to_json() == '{"decided":"ok"}'


@pytest.mark.parametrize("stored", [None, ""])
def test_no_stored_state_is_a_fresh_state(stored: str | None) -> None:
    assert TaskState.from_json(stored) == TaskState()
    assert TaskState.from_json(stored).votes == []


def test_a_restored_state_keeps_deciding_the_same_way() -> None:
    inputs: list[LabelRequest | CrowdAnswer] = [
        request(),
        answer("w1", "fraud"),
        answer("w2", "ok"),
        answer("w3", "fraud"),
    ]
    _, direct = feed(AGGREGATOR, TaskState(), inputs)
    state = TaskState()
    restored: list[Label] = []
    for item in inputs:  # through the table's JSON after every step, as the agent does
        state, labels = feed(AGGREGATOR, TaskState.from_json(state.to_json()), [item])
        restored += labels
    assert restored == direct


@pytest.mark.parametrize("answers_first", [False, True], ids=["request_first", "answers_first"])
def test_the_same_events_twice_have_the_same_effect_once(answers_first: bool) -> None:
    answers: list[LabelRequest | CrowdAnswer] = [
        answer("w1", "ok"),
        answer("w2", "fraud"),
        answer("w3", "ok"),
    ]
    once: list[LabelRequest | CrowdAnswer] = [*answers, request()] if answers_first else [request(), *answers]
    state, labels = feed(AGGREGATOR, TaskState(), [*once, *once])
    _, labels_once = feed(AGGREGATOR, TaskState(), once)
    assert labels == labels_once
    assert len(labels) == 1
    assert state.decided == "ok"


# --- recall audits: the crowd's verdict is revision 2 of a label the model gave -------------


def audit_request(overlap: int = 3) -> LabelRequest:
    """The router's audit of an accepted "ok" that may be missed fraud."""
    routing = RoutingTrace(
        measure="max_probability",
        uncertainty=0.1,
        threshold=0.8,
        policy_version=3,
        audited_class="fraud",
    )
    return LabelRequest.model_validate(
        request(overlap).model_dump()
        | {
            "route": "audit",
            "reason": "recall audit of fraud",
            "inclusion_probability": 0.04,
            "routing": routing,
        }
    )


@pytest.mark.parametrize("answers_first", [False, True], ids=["request_first", "answers_first"])
def test_an_audit_the_crowd_agrees_with_confirms_the_model_label_in_revision_2(answers_first: bool) -> None:
    answers: list[LabelRequest | CrowdAnswer] = [
        answer("w1", "ok"),
        answer("w2", "fraud"),
        answer("w3", "ok"),
    ]
    inputs = [*answers, audit_request()] if answers_first else [audit_request(), *answers]
    _, labels = feed(AGGREGATOR, TaskState(), inputs)
    [label] = labels
    assert (label.label, label.source, label.route) == ("ok", "crowd", "audit")
    assert (label.revision, label.supersedes) == (2, 1)
    assert label.reason == "recall audit of fraud: confirmed"
    assert label.inclusion_probability == 0.04
    assert label.routing == audit_request().routing
    assert label.model_was_right


def test_an_audit_the_crowd_disagrees_with_corrects_the_model_label() -> None:
    _, labels = feed(
        AGGREGATOR,
        TaskState(),
        [audit_request(), answer("w1", "fraud"), answer("w2", "fraud"), answer("w3", "ok")],
    )
    [label] = labels
    assert (label.label, label.revision, label.supersedes) == ("fraud", 2, 1)
    assert label.reason is not None
    assert label.reason.startswith("recall audit of fraud: ")
    assert "corrected" in label.reason
    assert "'ok'" in label.reason  # the model's label it corrects
    assert not label.reason.endswith("confirmed")
    assert label.routing is not None
    assert label.routing.audited_class == "fraud"
    assert not label.model_was_right


def test_an_audit_state_round_trips_and_decides_once() -> None:
    inputs: list[LabelRequest | CrowdAnswer] = [audit_request(), answer("w1", "ok"), answer("w2", "ok")]
    state, labels = feed(AGGREGATOR, TaskState(), inputs)
    assert labels == []
    restored = TaskState.from_json(state.to_json())
    assert restored == state
    assert restored.context is not None
    assert restored.context.routing == audit_request().routing
    state, labels = feed(
        AGGREGATOR, restored, [answer("w3", "fraud"), answer("w3", "fraud"), audit_request()]
    )
    assert [(label.revision, label.reason) for label in labels] == [(2, "recall audit of fraud: confirmed")]


@pytest.mark.parametrize("route", ["low_confidence", "control"])
def test_requests_other_than_audits_decide_revision_1_with_their_reason(route: RouteReason) -> None:
    routed = LabelRequest.model_validate(
        request().model_dump() | {"route": route, "reason": "why it was sent"}
    )
    _, labels = feed(
        AGGREGATOR, TaskState(), [routed, answer("w1", "ok"), answer("w2", "ok"), answer("w3", "ok")]
    )
    [label] = labels
    assert (label.revision, label.supersedes, label.reason) == (1, None, "why it was sent")
