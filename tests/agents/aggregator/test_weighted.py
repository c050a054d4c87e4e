"""Skill-weighted aggregation: deciding, escalating, expert audits, experts trumping the crowd, healing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.aggregator.majority import MajorityVoteAggregator, TaskState
from agents.aggregator.skills import SkillBook
from agents.aggregator.weighted import (
    Outcome,
    VoterIndex,
    WeightedSettings,
    WeightedTaskState,
    WeightedVoteAggregator,
)
from agents.router.sampling import uniform_for
from schemas import CrowdAnswer, Label, LabelRequest, PredictionEvent, PredictionInput
from schemas.labels import RouteReason
from schemas.requests import Tier

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
NOW = CREATED + timedelta(minutes=1)
EVENT_ID = "tx-1"
NO_AUDIT = WeightedSettings(audit_share=0.0)
Item = LabelRequest | CrowdAnswer


def request(
    overlap: int | None = 3, route: RouteReason = "low_confidence", event_id: str = EVENT_ID
) -> LabelRequest:
    prediction = PredictionEvent(
        event_id=event_id,
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
        route=route,
        reason="confidence 0.60 < 0.80",
        priority=0.4,
        uncertainty=0.4,
        inclusion_probability=0.5 if route == "control" else 1.0,
        overlap=overlap,
        requested_at=CREATED,
    )


def answer(
    worker_id: str,
    label: str,
    *,
    tier: Tier = "crowd",
    overlap: int = 3,
    golden_label: str | None = None,
    event_id: str = EVENT_ID,
) -> CrowdAnswer:
    return CrowdAnswer(
        event_id=event_id,
        task_id=f"{event_id}/pool",
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
    aggregator: WeightedVoteAggregator,
    state: WeightedTaskState,
    inputs: Sequence[LabelRequest | CrowdAnswer],
    event_id: str = EVENT_ID,
) -> tuple[WeightedTaskState, Outcome]:
    """Feed requests and answers in order, through the table's JSON after each step; all that came out."""
    total = Outcome()
    for item in inputs:
        if isinstance(item, LabelRequest):
            state, outcome = aggregator.step_request(state, item, NOW)
        else:
            state, outcome = aggregator.step_answer(state, item, event_id, NOW)
        state = WeightedTaskState.from_json(state.to_json())
        total += outcome
    return state, total


def test_agreeing_crowd_decides_with_a_posterior_confidence() -> None:
    aggregator = WeightedVoteAggregator(NO_AUDIT)
    state, outcome = feed(
        aggregator, WeightedTaskState(), [request(), *(answer(f"w{i}", "fraud") for i in range(3))]
    )
    [label] = outcome.labels
    assert (label.label, label.source, label.revision, label.supersedes) == ("fraud", "crowd", 1, None)
    assert label.confidence == pytest.approx(0.7**3 / (0.7**3 + 0.3**3))
    assert label.provenance.worker_ids == ["w0", "w1", "w2"]
    assert outcome.requests == ()
    assert state.decided == "fraud"
    assert state.request is None  # the prediction is not kept once decided
    assert [vote.worker_id for vote in state.votes] == ["w0", "w1", "w2"]  # votes are, for healing


def test_it_waits_for_the_latest_answers_overlap() -> None:
    aggregator = WeightedVoteAggregator(NO_AUDIT)
    inputs: list[Item] = [
        request(overlap=None),
        answer("w1", "fraud", overlap=2),
        answer("w2", "ok", overlap=3),
    ]
    state, outcome = feed(aggregator, WeightedTaskState(), inputs)
    assert outcome.labels == ()
    _, outcome = feed(aggregator, state, [answer("w3", "ok", overlap=3)])
    assert [label.label for label in outcome.labels] == ["ok"]


def test_an_unsure_crowd_gets_a_provisional_label_and_an_escalation_above_crowd_priority() -> None:
    aggregator = WeightedVoteAggregator(NO_AUDIT)
    inputs: list[Item] = [
        request(route="control"),
        answer("w1", "fraud"),
        answer("w2", "ok"),
        answer("w3", "fraud"),
    ]
    state, outcome = feed(aggregator, WeightedTaskState(), inputs)
    [provisional] = outcome.labels
    assert provisional.confidence == pytest.approx(0.7)
    assert provisional.reason is not None
    assert "escalated" in provisional.reason
    [escalation] = outcome.requests
    assert (escalation.route, escalation.tier, escalation.overlap) == ("escalation", "expert", 1)
    assert escalation.priority > 1.0 >= request().priority
    assert escalation.event_id == EVENT_ID
    assert state.expert_asked == "escalation"
    _, verdict = feed(aggregator, state, [answer("x1", "ok", tier="expert", overlap=1)])
    [final] = verdict.labels
    assert (final.label, final.source, final.revision, final.supersedes) == ("ok", "expert", 2, 1)
    # The route and inclusion probability stay the sample's, so estimators still weigh it right.
    assert (final.route, final.inclusion_probability) == ("control", 0.5)
    assert final.reason == "expert verdict (escalation): corrected 'fraud'"
    assert final.provenance.worker_ids == ["x1"]


def test_expert_verdicts_grade_the_crowd_once() -> None:
    aggregator = WeightedVoteAggregator(NO_AUDIT)
    inputs: list[Item] = [request(), answer("w1", "fraud"), answer("w2", "ok"), answer("w3", "fraud")]
    state, _ = feed(aggregator, WeightedTaskState(), inputs)
    state, outcome = feed(
        aggregator, state, [answer("x1", "ok", tier="expert"), answer("x2", "ok", tier="expert")]
    )
    assert len(outcome.labels) == 1  # the second expert agreeing publishes nothing new
    book = aggregator.book
    assert (book.skill("w1").n_audited, book.skill("w1").audited_accuracy) == (1, 0.0)
    assert (book.skill("w2").n_audited, book.skill("w2").audited_accuracy) == (1, 1.0)
    assert {skill.worker_id for skill in outcome.skills} == {"w1", "w2", "w3"}


def test_an_expert_answer_trumps_the_crowd_before_it_decides() -> None:
    aggregator = WeightedVoteAggregator(NO_AUDIT)
    inputs: list[Item] = [request(), answer("w1", "fraud"), answer("x1", "ok", tier="expert", overlap=1)]
    state, outcome = feed(aggregator, WeightedTaskState(), inputs)
    [label] = outcome.labels
    assert (label.label, label.source) == ("ok", "expert")
    assert label.confidence == pytest.approx(0.97)
    _, late = feed(aggregator, state, [answer("w2", "fraud"), answer("w3", "fraud")])
    assert late.labels == ()


def test_a_deterministic_share_of_confident_labels_is_audited_by_experts() -> None:
    share = 0.3
    aggregator = WeightedVoteAggregator(WeightedSettings(audit_share=share))
    audited = []
    for index in range(200):
        event_id = f"e{index}"
        inputs: list[Item] = [
            request(event_id=event_id),
            *(answer(f"w{i}", "ok", event_id=event_id) for i in range(3)),
        ]
        _, outcome = feed(aggregator, WeightedTaskState(), inputs, event_id)
        assert len(outcome.labels) == 1
        if outcome.requests:
            [audit] = outcome.requests
            assert (audit.route, audit.tier, audit.inclusion_probability) == ("audit", "expert", share)
            audited.append(event_id)
    expected = [f"e{i}" for i in range(200) if uniform_for(f"e{i}", "crowd-audit") < share]
    assert audited == expected
    assert 30 < len(audited) < 90


def test_golden_answers_grade_workers_and_never_vote() -> None:
    aggregator = WeightedVoteAggregator(NO_AUDIT)
    state, outcome = feed(
        aggregator, WeightedTaskState(), [answer("w1", "ok", golden_label="fraud", event_id="g1")], "g1"
    )
    assert state == WeightedTaskState()
    assert outcome.labels == ()
    [skill] = outcome.skills
    assert (skill.worker_id, skill.n_golden, skill.golden_accuracy) == ("w1", 1, 0.0)


def test_a_flagged_worker_heals_the_labels_that_leaned_on_them() -> None:
    aggregator = WeightedVoteAggregator(NO_AUDIT, SkillBook())
    for index in range(3):  # w2 got three golden tasks right: a little more trusted than the prior
        gold = f"g-w2-{index}"
        feed(
            aggregator,
            WeightedTaskState(),
            [answer("w2", "fraud", golden_label="fraud", event_id=gold)],
            gold,
        )
    # The spammer "s1" and "w1" outvote "w2".
    inputs: list[Item] = [request(), answer("s1", "ok"), answer("w1", "ok"), answer("w2", "fraud")]
    state, outcome = feed(aggregator, WeightedTaskState(), inputs)
    assert [label.label for label in outcome.labels] == ["ok"]
    assert aggregator.index.events_of("s1") == [EVENT_ID]
    # Golden tasks show "s1" always says ok: newly flagged, its events come back to revisit.
    flagged = Outcome()
    for index, truth in enumerate(["ok", "fraud"] * 5):
        gold = f"g-s1-{index}"
        _, step = feed(
            aggregator, WeightedTaskState(), [answer("s1", "ok", golden_label=truth, event_id=gold)], gold
        )
        flagged += step
    assert flagged.flagged == ("s1",)
    assert flagged.revisit == ((EVENT_ID, "worker s1 flagged unreliable"),)
    healed, outcome = aggregator.reaggregate(state, EVENT_ID, NOW, "worker s1 flagged unreliable")
    [label] = outcome.labels
    assert (label.label, label.revision, label.supersedes, label.source) == ("fraud", 2, 1, "crowd")
    assert label.reason == "re-aggregated: worker s1 flagged unreliable"
    assert label.provenance.worker_ids == ["s1", "w1", "w2"]
    # Healing twice publishes nothing more: each revision once.
    _, again = aggregator.reaggregate(healed, EVENT_ID, NOW, "worker s1 flagged unreliable")
    assert again.labels == ()


def test_expert_labels_are_never_re_aggregated() -> None:
    aggregator = WeightedVoteAggregator(NO_AUDIT)
    state, _ = feed(
        aggregator, WeightedTaskState(), [request(), answer("x1", "ok", tier="expert", overlap=1)]
    )
    assert aggregator.reaggregate(state, EVENT_ID, NOW, "whatever")[1] == Outcome()


def test_router_audits_still_end_as_revision_two() -> None:
    aggregator = WeightedVoteAggregator(NO_AUDIT)
    inputs: list[Item] = [request(route="audit"), *(answer(f"w{i}", "fraud") for i in range(3))]
    _, outcome = feed(aggregator, WeightedTaskState(), inputs)
    [label] = outcome.labels
    assert (label.revision, label.supersedes) == (2, 1)


def test_voter_index_is_bounded_per_worker() -> None:
    index = VoterIndex(events_per_worker=3)
    for event in range(10):
        index.add("w1", f"e{event}")
    assert index.events_of("w1") == ["e7", "e8", "e9"]


votes_strategy = st.lists(
    st.tuples(st.sampled_from(["w1", "w2", "w3", "w4", "w5"]), st.sampled_from(["ok", "fraud"])),
    min_size=1,
    max_size=5,
    unique_by=lambda vote: vote[0],
)


@settings(max_examples=60, deadline=None)
@given(votes=votes_strategy)
def test_with_equal_skills_the_label_is_the_majority_votes(votes: list[tuple[str, str]]) -> None:
    overlap = len(votes)
    inputs: list[Item] = [
        request(overlap=overlap),
        *(answer(w, label, overlap=overlap) for w, label in votes),
    ]
    majority_labels: list[Label] = []
    state = TaskState()
    for item in inputs:
        if isinstance(item, LabelRequest):
            state, label = MajorityVoteAggregator().observe_request(state, item, NOW)
        else:
            state, label = MajorityVoteAggregator().observe_answer(state, item, EVENT_ID, NOW)
        majority_labels += [label] if label is not None else []
    _, outcome = feed(
        WeightedVoteAggregator(WeightedSettings(escalate_below=0.0, audit_share=0.0)),
        WeightedTaskState(),
        inputs,
    )
    assert [label.label for label in outcome.labels] == [label.label for label in majority_labels]


@settings(max_examples=40, deadline=None)
@given(
    votes=votes_strategy,
    experts=st.lists(st.sampled_from(["ok", "fraud"]), max_size=3),
    duplicates=st.integers(min_value=1, max_value=3),
)
def test_each_revision_is_published_once_and_in_order(
    votes: list[tuple[str, str]], experts: list[str], duplicates: int
) -> None:
    aggregator = WeightedVoteAggregator(WeightedSettings(audit_share=1.0))
    overlap = len(votes)
    inputs: list[LabelRequest | CrowdAnswer] = [request(overlap=overlap)]
    for worker, label in votes:
        inputs += [answer(worker, label, overlap=overlap)] * duplicates  # redelivered answers
    for index, label in enumerate(experts):
        inputs += [answer(f"x{index}", label, tier="expert", overlap=1)] * duplicates
    state, outcome = feed(aggregator, WeightedTaskState(), inputs)
    revisions = [label.revision for label in outcome.labels]
    assert revisions == list(range(1, len(revisions) + 1))
    assert [label.supersedes for label in outcome.labels] == [None, *revisions[:-1]]
    assert state.revision == (revisions[-1] if revisions else 0)
    for healed_reason in ("a", "b"):
        state, again = aggregator.reaggregate(state, EVENT_ID, NOW, healed_reason)
        assert again.labels == ()  # nothing changed in the skills: nothing to heal
