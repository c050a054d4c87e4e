"""The router's threshold rule and the Label or LabelRequest it produces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.router.policy import RouterSettings, ThresholdPolicy, model_label, review_request
from schemas import PredictionEvent, PredictionInput

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
NOW = CREATED + timedelta(seconds=2)


def event(predicted_label: str = "ok", confidence: float = 0.9) -> PredictionEvent:
    other = "fraud" if predicted_label == "ok" else "ok"
    return PredictionEvent(
        event_id="tx-1",
        task="payments",
        model_name="fraud-model",
        model_version="3",
        created_at=CREATED,
        input=PredictionInput(features={"amount": 12.5}),
        predicted_label=predicted_label,
        scores={predicted_label: confidence, other: 1.0 - confidence},
    )


POLICY = ThresholdPolicy(RouterSettings(accept_threshold=0.8, per_class_thresholds={"fraud": 0.95}))


@pytest.mark.parametrize(
    ("predicted_label", "confidence", "action"),
    [
        ("ok", 0.8, "accept"),  # at the threshold
        ("ok", 0.99, "accept"),
        ("ok", 0.79, "review"),
        ("ok", 0.5, "review"),
        ("fraud", 0.9, "review"),  # its own, stricter threshold
        ("fraud", 0.95, "accept"),
    ],
)
def test_accept_at_or_above_the_threshold_review_below(
    predicted_label: str, confidence: float, action: str
) -> None:
    decision = POLICY.decide(event(predicted_label, confidence))
    assert decision.action == action
    assert decision.confidence == confidence
    assert decision.threshold == POLICY.threshold_for(predicted_label)


def test_per_class_thresholds_override_the_global_one() -> None:
    assert POLICY.threshold_for("fraud") == 0.95
    assert POLICY.threshold_for("ok") == 0.8
    lenient = ThresholdPolicy(RouterSettings(accept_threshold=0.8, per_class_thresholds={"ok": 0.6}))
    assert lenient.decide(event("ok", 0.65)).action == "accept"
    assert lenient.decide(event("fraud", 0.65)).action == "review"


def test_the_reason_says_confidence_and_threshold() -> None:
    assert POLICY.decide(event("ok", 0.9)).reason == "confidence 0.900 >= threshold 0.800"
    assert POLICY.decide(event("ok", 0.7)).reason == "confidence 0.700 < threshold 0.800 for ok"


def test_model_label_is_the_revision_1_model_label_with_provenance() -> None:
    accepted = event("ok", 0.9)
    label = model_label(accepted, POLICY.decide(accepted), NOW)
    assert (label.event_id, label.task, label.label) == ("tx-1", "payments", "ok")
    assert (label.source, label.revision, label.route) == ("model", 1, "accepted")
    assert label.confidence == 0.9
    assert label.inclusion_probability == 1.0
    assert (label.decided_at, label.prediction_created_at) == (NOW, CREATED)
    assert label.reason == "confidence 0.900 >= threshold 0.800"
    assert label.provenance.model_dump() == {
        "model_name": "fraud-model",
        "model_version": "3",
        "model_label": "ok",
        "model_confidence": 0.9,
        "n_answers": 0,
        "pool": None,
        "worker_ids": [],
    }
    assert not label.is_human
    assert label.model_was_right


def test_review_request_is_prioritised_by_uncertainty() -> None:
    reviewed = event("ok", 0.7)
    decision = POLICY.decide(reviewed)
    request = review_request(reviewed, decision, NOW)
    assert request.prediction == reviewed
    assert request.event_id == "tx-1"
    assert (request.route, request.tier, request.requested_at) == ("low_confidence", "crowd", NOW)
    assert request.priority == request.uncertainty == pytest.approx(0.3)
    assert request.uncertainty == decision.uncertainty == 1.0 - 0.7
    assert request.inclusion_probability == 1.0
    assert request.reason == decision.reason


def test_the_more_uncertain_event_gets_the_higher_priority() -> None:
    unsure, surer = event("ok", 0.55), event("ok", 0.75)
    assert (
        review_request(unsure, POLICY.decide(unsure), NOW).priority
        > review_request(surer, POLICY.decide(surer), NOW).priority
    )


@given(
    threshold=st.floats(min_value=0.01, max_value=1.0),
    confidence=st.floats(min_value=0.0, max_value=1.0),
    higher=st.floats(min_value=0.0, max_value=1.0),
    predicted_label=st.sampled_from(["ok", "fraud"]),
)
def test_decisions_are_monotone_in_confidence(
    threshold: float, confidence: float, higher: float, predicted_label: str
) -> None:
    low, high = sorted((confidence, higher))
    policy = ThresholdPolicy(RouterSettings(accept_threshold=threshold))
    if policy.decide(event(predicted_label, low)).action == "accept":
        assert policy.decide(event(predicted_label, high)).action == "accept"
    if policy.decide(event(predicted_label, high)).action == "review":
        assert policy.decide(event(predicted_label, low)).action == "review"
