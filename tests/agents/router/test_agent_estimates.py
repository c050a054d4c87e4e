"""The router's estimators are fed only by human labels of the control group and the recall audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents.aggregator.majority import MajorityVoteAggregator, TaskState
from agents.router.agent import Estimates, observe_label
from agents.router.estimators import PrecisionEstimator, RecallEstimator
from agents.router.policy import Router, RouterSettings, label_request
from agents.router.sampling import AuditSettings
from schemas import CrowdAnswer, Label, PredictionEvent, PredictionInput
from schemas.labels import LabelSource, RouteReason, RoutingTrace
from tests import factories

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
NOW = CREATED + timedelta(minutes=1)


def trace(audited_class: str | None = None) -> RoutingTrace:
    return RoutingTrace(
        measure="max_probability",
        uncertainty=0.1,
        threshold=0.8,
        policy_version=1,
        audited_class=audited_class,
    )


def label(
    route: RouteReason,
    *,
    human_label: str = "fraud",
    model_label: str = "ok",
    source: LabelSource = "crowd",
    revision: int = 1,
    inclusion_probability: float = 0.05,
    routing: RoutingTrace | None = None,
    task: str = "payments",
    event_id: str = "tx-1",
) -> Label:
    return factories.human_label(
        route,
        human_label=human_label,
        model_label=model_label,
        source=source,
        revision=revision,
        inclusion_probability=inclusion_probability,
        routing=routing,
        task=task,
        event_id=event_id,
        decided_at=NOW,
        created_at=CREATED,
        model_confidence=0.9,
    )


class RecordingPrecision(PrecisionEstimator):
    """A precision estimator that remembers what it was fed."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, bool, float]] = []

    def observe(self, predicted_label: str, model_was_right: bool, inclusion_probability: float) -> None:
        self.calls.append((predicted_label, model_was_right, inclusion_probability))
        super().observe(predicted_label, model_was_right, inclusion_probability)


class RecordingRecall(RecallEstimator):
    """A recall estimator that remembers what it was fed."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, str, float]] = []

    def observe(
        self, audited_class: str, true_label: str, predicted_label: str, inclusion_probability: float
    ) -> None:
        self.calls.append((audited_class, true_label, predicted_label, inclusion_probability))
        super().observe(audited_class, true_label, predicted_label, inclusion_probability)


class Recorded:
    """Estimates for the tasks named, each with recording estimators."""

    def __init__(self, *tasks: str) -> None:
        self.precision = {task: RecordingPrecision() for task in tasks}
        self.recall = {task: RecordingRecall() for task in tasks}
        self.estimates = {
            task: Estimates("fraud-model", precision=self.precision[task], recall=self.recall[task])
            for task in tasks
        }

    def calls(self) -> int:
        return sum(len(found.calls) for found in self.precision.values()) + sum(
            len(found.calls) for found in self.recall.values()
        )


@pytest.mark.parametrize("source", ["crowd", "expert"])
def test_a_control_label_feeds_precision_with_its_inclusion_probability(source: LabelSource) -> None:
    recorded = Recorded("payments")
    right = label("control", source=source, human_label="ok", model_label="ok", inclusion_probability=0.2)
    wrong = label("control", source=source, human_label="fraud", model_label="ok", event_id="tx-2")
    assert observe_label(recorded.estimates, right)
    assert observe_label(recorded.estimates, wrong)
    assert recorded.precision["payments"].calls == [("ok", True, 0.2), ("ok", False, 0.05)]
    assert recorded.recall["payments"].calls == []
    precision = recorded.estimates["payments"].precision.estimate()
    assert precision is not None
    assert precision.n == 2


def test_the_first_label_of_a_task_creates_its_estimates() -> None:
    estimates: dict[str, Estimates] = {}
    assert observe_label(estimates, label("control", human_label="ok", model_label="ok"))
    assert list(estimates) == ["payments"]
    assert estimates["payments"].model_name == "fraud-model"
    precision = estimates["payments"].precision.estimate()
    assert precision is not None
    assert (precision.n, precision.value) == (1, 1.0)


def test_an_audit_label_feeds_the_recall_of_its_audited_class() -> None:
    recorded = Recorded("payments")
    missed = label("audit", revision=2, human_label="fraud", model_label="ok", routing=trace("fraud"))
    found = label(
        "audit",
        revision=2,
        human_label="fraud",
        model_label="fraud",
        routing=trace("ok"),
        inclusion_probability=0.5,
        event_id="tx-2",
    )
    assert observe_label(recorded.estimates, missed)
    assert observe_label(recorded.estimates, found)
    assert recorded.recall["payments"].calls == [
        ("fraud", "fraud", "ok", 0.05),
        ("ok", "fraud", "fraud", 0.5),
    ]
    assert recorded.precision["payments"].calls == []
    assert "fraud" in recorded.estimates["payments"].recall.classes()


@pytest.mark.parametrize(
    "ignored",
    [
        label("accepted", source="model", human_label="ok", model_label="ok", inclusion_probability=1.0),
        label("accepted", source="model", routing=trace("fraud")),  # an audited event's model label
        label("low_confidence", inclusion_probability=1.0),
        label("escalation", source="expert", inclusion_probability=1.0),
        label("audit", revision=2, routing=None),  # no trace: the audited class is unknown
        label("audit", revision=2, routing=trace(None)),
    ],
    ids=[
        "model",
        "model_audited",
        "low_confidence",
        "escalation",
        "audit_untraced",
        "audit_no_class",
    ],
)
def test_other_labels_are_ignored(ignored: Label) -> None:
    recorded = Recorded("payments")
    assert not observe_label(recorded.estimates, ignored)
    assert recorded.calls() == 0


def test_each_task_has_its_own_estimates() -> None:
    recorded = Recorded("payments", "refunds")
    observe_label(recorded.estimates, label("control", task="payments"))
    observe_label(recorded.estimates, label("control", task="refunds", human_label="ok"))
    assert recorded.precision["payments"].calls == [("ok", False, 0.05)]
    assert recorded.precision["refunds"].calls == [("ok", True, 0.05)]


# --- the loop: router -> request -> crowd -> aggregator -> estimators ---------------------


def prediction(index: int, ok_score: float) -> PredictionEvent:
    return PredictionEvent(
        event_id=f"tx-{index}",
        task="payments",
        model_name="fraud-model",
        model_version="3",
        created_at=CREATED,
        input=PredictionInput(features={"amount": 12.5}),
        predicted_label="ok",
        scores={"ok": ok_score, "fraud": 1.0 - ok_score},
    )


def test_control_and_audit_labels_from_the_crowd_reach_the_estimators() -> None:
    router = Router(RouterSettings(control_share=0.1, audit=AuditSettings(rate=0.1)), clock=lambda: 0.0)
    aggregator = MajorityVoteAggregator(default_overlap=3)
    recorded = Recorded("payments")
    routes: dict[str, int] = {}
    for index in range(300):
        event = prediction(index, 0.9)
        decision = router.decide(event, CREATED)
        if decision.action == "accept" and decision.audit is None:
            continue
        request = label_request(event, decision, CREATED)
        state, decided = aggregator.observe_request(TaskState(), request, NOW)
        truth = "fraud" if index % 10 == 0 else "ok"  # the crowd finds a miss in every tenth event
        for worker in ("w1", "w2", "w3"):
            answer = CrowdAnswer(
                event_id=event.event_id,
                task_id=f"{event.event_id}/simulated",
                pool="simulated",
                worker_id=worker,
                label=truth,
                time_spent_s=3.0,
                answered_at=NOW,
                overlap=3,
            )
            state, decided = aggregator.observe_answer(state, answer, event.event_id, NOW)
        assert decided is not None
        assert decided.inclusion_probability == request.inclusion_probability
        assert decided.routing == request.routing
        assert decided.revision == (2 if decided.route == "audit" else 1)
        assert observe_label(recorded.estimates, decided)
        routes[decided.route] = routes.get(decided.route, 0) + 1
    assert set(routes) == {"control", "audit"}
    precision, recall = recorded.precision["payments"].calls, recorded.recall["payments"].calls
    assert len(precision) == routes["control"]
    assert {pi for _, _, pi in precision} == {0.1}
    assert len(recall) == routes["audit"]
    assert {audited for audited, _, _, _ in recall} == {"fraud"}
    assert all(predicted == "ok" and 0.0 < pi <= 1.0 for _, _, predicted, pi in recall)


def test_a_later_revision_replaces_what_the_first_counted() -> None:
    """An expert verdict on a control or audit label corrects the estimate, never counts twice."""
    estimates: dict[str, Estimates] = {}
    first = label("control", human_label="fraud", model_label="ok")  # the crowd said the model was wrong
    assert observe_label(estimates, first)
    assert estimates["payments"].precision.estimate().value == 0.0  # type: ignore[union-attr]
    expert = first.model_copy(update={"label": "ok", "source": "expert", "revision": 2, "supersedes": 1})
    assert observe_label(estimates, expert, counted="fraud")
    after = estimates["payments"].precision.estimate()
    assert after is not None
    assert (after.value, after.n) == (1.0, 1)

    audit = label("audit", revision=2, routing=trace("fraud"), human_label="ok", model_label="ok")
    assert observe_label(estimates, audit)
    corrected = audit.model_copy(
        update={"label": "fraud", "source": "expert", "revision": 3, "supersedes": 2}
    )
    assert observe_label(estimates, corrected, counted="ok")
    recall = estimates["payments"].recall
    assert recall.false_negatives("fraud").value > 0.0
    assert sum(domain.labels.labels for domain in recall.domains.values()) == 1
