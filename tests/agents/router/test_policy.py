"""The router's rule: accept, review, control or audit an event, and the Label or LabelRequest it makes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agents.router.policy import (
    Router,
    RouterSettings,
    label_request,
    load_policy,
    model_label,
    provenance,
)
from agents.router.sampling import AuditSettings, ControlSampler
from agents.router.uncertainty import UncertaintyMeasure, uncertainty
from schemas import PolicyCommand, PredictionEvent, PredictionInput, Suggestion
from streams.errors import ConfigError

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
NOW = CREATED + timedelta(seconds=2)
MEASURES: list[UncertaintyMeasure] = ["max_probability", "margin", "entropy"]


def event(
    predicted_label: str = "ok",
    confidence: float = 0.9,
    *,
    event_id: str = "tx-1",
    scores: dict[str, float] | None = None,
) -> PredictionEvent:
    other = "fraud" if predicted_label == "ok" else "ok"
    return PredictionEvent(
        event_id=event_id,
        task="payments",
        model_name="fraud-model",
        model_version="3",
        created_at=CREATED,
        input=PredictionInput(features={"amount": 12.5}),
        predicted_label=predicted_label,
        scores=scores if scores is not None else {predicted_label: confidence, other: 1.0 - confidence},
    )


def make_router(**settings: Any) -> Router:
    """A router with no control group unless asked for, on a frozen clock."""
    return Router(RouterSettings.model_validate({"control_share": 0.0, **settings}), clock=lambda: 0.0)


def suggest(label: str) -> Suggestion:
    return Suggestion(label=label, confidence=0.8, model_name="online-model")


def command(**changes: Any) -> PolicyCommand:
    return PolicyCommand.model_validate(
        {"issued_by": "operator", "issued_at": NOW, "reason": "drift alert", **changes}
    )


# --- accept or review by threshold --------------------------------------------------------


@pytest.mark.parametrize(
    ("predicted_label", "confidence", "action"),
    [
        ("ok", 0.8, "accept"),  # at the threshold
        ("ok", 0.99, "accept"),
        ("ok", 0.79, "review"),
        ("ok", 0.55, "review"),
        ("fraud", 0.9, "review"),  # its own, stricter threshold
        ("fraud", 0.95, "accept"),
    ],
)
def test_accept_at_or_above_the_threshold_review_below(
    predicted_label: str, confidence: float, action: str
) -> None:
    router = make_router(accept_threshold=0.8, per_class_thresholds={"fraud": 0.95})
    decision = router.decide(event(predicted_label, confidence), NOW)
    assert decision.action == action
    assert decision.route == ("accepted" if action == "accept" else "low_confidence")
    assert decision.confidence == pytest.approx(confidence)
    assert decision.uncertainty == pytest.approx(1.0 - confidence)
    assert decision.threshold == router.threshold_for(predicted_label)
    assert decision.inclusion_probability == 1.0
    assert not decision.shed
    assert decision.trace.measure == "max_probability"
    assert decision.trace.uncertainty == decision.uncertainty
    assert decision.trace.threshold == decision.threshold
    assert decision.trace.policy_version == 1


def test_per_class_thresholds_override_the_global_one() -> None:
    router = make_router(accept_threshold=0.8, per_class_thresholds={"ok": 0.6})
    assert (router.threshold_for("ok"), router.threshold_for("fraud")) == (0.6, 0.8)
    assert router.decide(event("ok", 0.65), NOW).action == "accept"
    assert router.decide(event("fraud", 0.65), NOW).action == "review"


@pytest.mark.parametrize("measure", MEASURES)
def test_each_measure_sets_the_confidence_compared_with_the_threshold(measure: UncertaintyMeasure) -> None:
    scores = {"ok": 0.7, "fraud": 0.2, "chargeback": 0.1}
    confidence = 1.0 - uncertainty(scores, measure)
    below, above = confidence - 0.01, confidence + 0.01
    accepted = make_router(measure=measure, accept_threshold=below).decide(event(scores=scores), NOW)
    reviewed = make_router(measure=measure, accept_threshold=above).decide(event(scores=scores), NOW)
    assert (accepted.action, reviewed.action) == ("accept", "review")
    for decision in (accepted, reviewed):
        assert decision.confidence == pytest.approx(confidence)
        assert decision.trace.measure == measure
    assert f"({measure})" in accepted.reason


@pytest.mark.parametrize(
    ("measure", "threshold", "action"),
    [
        ("max_probability", 0.75, "accept"),  # confidence 0.8
        ("margin", 0.55, "accept"),  # confidence 0.8 - 0.2 = 0.6
        ("margin", 0.75, "review"),
        ("entropy", 0.25, "accept"),  # confidence 1 - H(0.8, 0.2) / log 2 = 0.278
        ("entropy", 0.3, "review"),
    ],
)
def test_the_same_prediction_is_accepted_or_reviewed_depending_on_the_measure(
    measure: UncertaintyMeasure, threshold: float, action: str
) -> None:
    decision = make_router(measure=measure, accept_threshold=threshold).decide(event("ok", 0.8), NOW)
    assert decision.action == action


def test_the_reason_says_confidence_threshold_class_and_measure() -> None:
    router = make_router(accept_threshold=0.8)
    assert (
        router.decide(event("ok", 0.9), NOW).reason == "confidence 0.900 >= threshold 0.800 (max_probability)"
    )
    assert (
        router.decide(event("ok", 0.7), NOW).reason
        == "confidence 0.700 < threshold 0.800 for ok (max_probability)"
    )


@given(
    threshold=st.floats(min_value=0.01, max_value=1.0),
    confidence=st.floats(min_value=0.5, max_value=1.0),
    higher=st.floats(min_value=0.5, max_value=1.0),
    predicted_label=st.sampled_from(["ok", "fraud"]),
    measure=st.sampled_from(MEASURES),
)
def test_decisions_are_monotone_in_the_predicted_score(
    threshold: float, confidence: float, higher: float, predicted_label: str, measure: UncertaintyMeasure
) -> None:
    low, high = sorted((confidence, higher))
    router = make_router(accept_threshold=threshold, measure=measure)
    if router.decide(event(predicted_label, low), NOW).action == "accept":
        assert router.decide(event(predicted_label, high), NOW).action == "accept"


def test_a_prediction_is_never_accepted_on_the_score_of_another_class() -> None:
    decision = make_router(accept_threshold=0.8).decide(
        event("fraud", scores={"fraud": 0.05, "ok": 0.95}), NOW
    )
    assert decision.action == "review"


# --- control group ------------------------------------------------------------------------


def confident_events(count: int) -> list[PredictionEvent]:
    """Would-be-accepted events with distinct ids and fraud scores from 0.01 to 0.19."""
    return [event("ok", 0.99 - (index % 19) / 100, event_id=f"tx-{index}") for index in range(count)]


def test_with_no_control_share_nothing_goes_to_the_control_group() -> None:
    router = make_router(control_share=0.0)
    routes = {router.decide(each, NOW).route for each in confident_events(2_000)}
    assert routes == {"accepted"}


def test_with_a_control_share_of_one_every_would_accept_is_a_control_review() -> None:
    router = make_router(control_share=1.0)
    for each in confident_events(200):
        decision = router.decide(each, NOW)
        assert (decision.action, decision.route) == ("review", "control")
        assert decision.inclusion_probability == 1.0
        assert decision.audit is None
        assert decision.reason.startswith("control group (share 1.000)")
        request = label_request(each, decision, NOW)
        assert (request.route, request.inclusion_probability) == ("control", 1.0)
    # A would-review event is still a review, not a control.
    assert router.decide(event("ok", 0.6), NOW).route == "low_confidence"


def test_the_control_share_is_met_and_each_event_is_drawn_the_same_way_every_time() -> None:
    events = confident_events(5_000)
    router = make_router(control_share=0.1)
    routes = [router.decide(each, NOW).route for each in events]
    assert set(routes) == {"accepted", "control"}
    assert routes.count("control") / len(routes) == pytest.approx(0.1, abs=0.02)
    for each, route in list(zip(events, routes, strict=True))[::50]:
        assert make_router(control_share=0.1).decide(each, NOW).route == route
        assert router.decide(each, NOW).route == route
    # The draw is the control sampler's: a pure function of the event id.
    controls = ControlSampler()
    assert routes == ["control" if controls.decide(each.event_id, 0.1) else "accepted" for each in events]


def test_a_control_request_carries_the_share_as_its_inclusion_probability() -> None:
    router = make_router(control_share=0.1)
    for each in confident_events(500):
        decision = router.decide(each, NOW)
        if decision.route == "control":
            request = label_request(each, decision, NOW)
            assert (request.route, request.tier) == ("control", "crowd")
            assert request.inclusion_probability == decision.inclusion_probability == 0.1
            assert request.reason == decision.reason
            assert request.routing == decision.trace
            return
    pytest.fail("no control event among 500")


# --- accepted events and the recall audit -------------------------------------------------


def test_an_accepted_event_makes_the_revision_1_model_label() -> None:
    accepted = event("ok", 0.9)
    decision = make_router(accept_threshold=0.8).decide(accepted, NOW)
    label = model_label(accepted, decision, NOW)
    assert (label.event_id, label.task, label.label) == ("tx-1", "payments", "ok")
    assert (label.source, label.revision, label.supersedes, label.route) == ("model", 1, None, "accepted")
    assert label.confidence == 0.9
    assert label.inclusion_probability == 1.0
    assert (label.decided_at, label.prediction_created_at) == (NOW, CREATED)
    assert label.reason == decision.reason
    assert label.routing == decision.trace
    assert label.provenance == provenance(accepted)
    assert label.provenance.model_dump() == {
        "model_name": "fraud-model",
        "model_version": "3",
        "model_label": "ok",
        "model_confidence": 0.9,
        "n_answers": 0,
        "pool": None,
        "worker_ids": [],
        # Set only on a revision an operator made in the record explorer.
        "operator": None,
        "operator_reason": None,
        "action_id": None,
    }
    assert not label.is_human
    assert label.model_was_right


def test_the_audit_samples_about_its_rate_of_accepted_events_by_importance() -> None:
    events = confident_events(2_000)
    router = make_router(audit=AuditSettings(rate=0.2))
    decisions = [router.decide(each, NOW) for each in events]
    assert {decision.action for decision in decisions} == {"accept"}
    audited = [(each, decision) for each, decision in zip(events, decisions, strict=True) if decision.audit]
    assert len(audited) / len(events) == pytest.approx(0.2, rel=0.4)
    for _, decision in audited:
        assert decision.audit is not None
        assert 0.0 < decision.audit.inclusion_probability <= 1.0
        assert decision.audit.audited_class == decision.trace.audited_class == "fraud"
    # Importance sampling: events more likely to be missed fraud are audited more often ...
    mean_fraud_score = sum(each.scores["fraud"] for each in events) / len(events)
    audited_fraud_score = sum(each.scores["fraud"] for each, _ in audited) / len(audited)
    assert audited_fraud_score > mean_fraud_score
    # ... and weighting by 1/π recovers the size of the accepted stream (Horvitz–Thompson).
    weights = [1.0 / decision.audit.inclusion_probability for _, decision in audited if decision.audit]
    assert sum(weights) == pytest.approx(len(events), rel=0.15)
    # Events not audited carry no audited class.
    assert all(decision.trace.audited_class is None for decision in decisions if decision.audit is None)


def test_every_accepted_event_gets_a_model_label_and_audited_ones_a_request_too() -> None:
    router = make_router(audit=AuditSettings(rate=0.2))
    audited = 0
    for each in confident_events(300):
        decision = router.decide(each, NOW)
        label = model_label(each, decision, NOW)
        assert (label.source, label.revision, label.route) == ("model", 1, "accepted")
        assert label.routing == decision.trace
        if decision.audit is None:
            continue
        audited += 1
        assert label.routing is not None
        assert label.routing.audited_class == "fraud"
        request = label_request(each, decision, NOW)
        assert request.route == "audit"
        assert request.reason == "recall audit of fraud"
        assert request.inclusion_probability == decision.audit.inclusion_probability
        assert request.routing == decision.trace
        assert request.prediction == each
    assert audited > 0


def test_the_audited_class_is_the_positive_class_when_one_is_set() -> None:
    router = make_router(audit=AuditSettings(rate=1.0, positive_class="chargeback"))
    scores = {"ok": 0.9, "fraud": 0.08, "chargeback": 0.02}
    audits = [router.decide(event(scores=scores, event_id=f"tx-{index}"), NOW).audit for index in range(50)]
    assert {audit.audited_class for audit in audits if audit is not None} == {"chargeback"}


# --- reviews: priority, disagreement, the request -----------------------------------------


def test_a_review_request_is_prioritised_by_uncertainty() -> None:
    reviewed = event("ok", 0.7)
    decision = make_router(age_weight=0.0).decide(reviewed, NOW)
    request = label_request(reviewed, decision, NOW)
    assert request.prediction == reviewed
    assert request.event_id == "tx-1"
    assert (request.route, request.tier, request.requested_at) == ("low_confidence", "crowd", NOW)
    assert request.priority == request.uncertainty == decision.uncertainty == pytest.approx(0.3)
    assert request.inclusion_probability == 1.0
    assert request.reason == decision.reason
    assert request.routing == decision.trace
    assert request.suggestion is None
    assert decision.trace.disagreement is None


def test_the_more_uncertain_event_gets_the_higher_priority() -> None:
    router = make_router()
    unsure, surer = event("ok", 0.55), event("ok", 0.75)
    assert router.decide(unsure, NOW).priority > router.decide(surer, NOW).priority


@pytest.mark.parametrize(
    ("suggested", "disagreement", "bonus"),
    [("fraud", True, 0.5), ("ok", False, 0.0)],
    ids=["disagrees", "agrees"],
)
def test_a_disagreeing_suggestion_adds_the_bonus_and_is_traced(
    suggested: str, disagreement: bool, bonus: float
) -> None:
    reviewed = event("ok", 0.7)
    router = make_router(age_weight=0.0, disagreement_bonus=0.5)
    decision = router.decide(reviewed, NOW, suggest(suggested))
    assert decision.trace.disagreement is disagreement
    assert decision.priority == pytest.approx(0.3 + bonus)
    request = label_request(reviewed, decision, NOW, suggest(suggested))
    assert request.priority == decision.priority
    assert request.suggestion == suggest(suggested)
    assert request.routing is not None
    assert request.routing.disagreement is disagreement


@pytest.mark.parametrize(
    ("age_s", "age_term"),
    [(-30.0, 0.0), (0.0, 0.0), (300.0, 0.05), (600.0, 0.1), (3_600.0, 0.1)],
    ids=["from_the_future", "fresh", "half_scale", "at_scale", "capped"],
)
def test_older_events_gain_priority_up_to_the_age_weight(age_s: float, age_term: float) -> None:
    router = make_router(age_weight=0.1, age_scale_s=600.0)
    decision = router.decide(event("ok", 0.7), CREATED + timedelta(seconds=age_s))
    assert decision.priority == pytest.approx(0.3 + age_term)


# --- the live policy: commands, status, the policy file -----------------------------------


def test_a_policy_command_changes_only_the_fields_it_sets() -> None:
    router = make_router(accept_threshold=0.8, control_share=0.05, per_class_thresholds={"fraud": 0.95})
    before = router.settings
    after = router.apply(command(accept_threshold=0.9))
    assert router.version == 2
    assert after is router.settings
    assert after.accept_threshold == 0.9
    assert after.model_dump(exclude={"accept_threshold"}) == before.model_dump(exclude={"accept_threshold"})
    assert router.decide(event("ok", 0.85), NOW).action == "review"
    assert router.decide(event("ok", 0.85), NOW).trace.policy_version == 2


def test_every_field_of_a_policy_command_applies_and_each_command_bumps_the_version() -> None:
    router = make_router(accept_threshold=0.8)
    router.apply(command(measure="margin", control_share=0.2, per_class_thresholds={"ok": 0.5}))
    router.apply(command(audit_rate=0.3))
    assert router.version == 3
    settings = router.settings
    assert (settings.measure, settings.control_share, settings.per_class_thresholds) == (
        "margin",
        0.2,
        {"ok": 0.5},
    )
    assert settings.audit.rate == 0.3
    assert router.audits.settings.rate == 0.3  # the live sampler follows
    assert settings.accept_threshold == 0.8
    router.apply(command())  # nothing set: nothing changes, but it is a new version
    assert router.settings == settings
    assert router.version == 4


def test_the_status_reports_the_policy_in_force() -> None:
    router = make_router(audit=AuditSettings(rate=0.02))
    router.apply(command(accept_threshold=0.9, per_class_thresholds={"fraud": 0.97}, audit_rate=0.05))
    status = router.status("payments", NOW, "drift alert")
    assert status.task == "payments"
    assert status.version == 2
    assert status.measure == "max_probability"
    assert (status.accept_threshold, status.per_class_thresholds) == (0.9, {"fraud": 0.97})
    assert (status.control_share, status.audit_rate) == (0.0, 0.05)
    assert status.target_backlog == router.settings.capacity.target_backlog
    assert (status.updated_at, status.reason) == (NOW, "drift alert")


def test_the_audit_cannot_be_switched_off_by_command_and_the_policy_stays_changeable() -> None:
    # Audits can be made small, not switched off: a command with audit_rate=0 is refused at the door.
    with pytest.raises(ValidationError):
        command(audit_rate=0.0)
    router = make_router()
    router.apply(command(audit_rate=0.001))
    router.apply(command(accept_threshold=0.9))
    assert (router.version, router.settings.accept_threshold, router.settings.audit.rate) == (3, 0.9, 0.001)


def test_the_policy_file_replaces_the_settings(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "measure: entropy\n"
        "accept_threshold: 0.7\n"
        "per_class_thresholds:\n  fraud: 0.9\n"
        "control_share: 0.1\n"
        "audit:\n  rate: 0.05\n  positive_class: fraud\n"
        "capacity:\n  target_backlog: 50\n",
        encoding="utf-8",
    )
    policy = load_policy(RouterSettings(policy_file=path, accept_threshold=0.5))
    assert (policy.measure, policy.accept_threshold, policy.control_share) == ("entropy", 0.7, 0.1)
    assert policy.per_class_thresholds == {"fraud": 0.9}
    assert (policy.audit.rate, policy.audit.positive_class) == (0.05, "fraud")
    assert policy.capacity.target_backlog == 50
    assert policy.policy_file is None
    assert policy.disagreement_bonus == RouterSettings().disagreement_bonus  # unset: the default


def test_without_a_policy_file_the_settings_are_the_policy(tmp_path: Path) -> None:
    settings = RouterSettings(accept_threshold=0.6)
    assert load_policy(settings) is settings
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert load_policy(RouterSettings(policy_file=empty)) == RouterSettings()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the routing policy"),
        ("- measure\n- margin\n", "must be a YAML mapping"),
        ("accept_threshold: 1.5\n", "is invalid"),
        ("measure: vibes\n", "is invalid"),
        ("acept_threshold: 0.9\n", "is invalid"),  # a typo is not silently ignored
        ("measure: [unclosed\n", "cannot read the routing policy"),
    ],
    ids=["missing", "not_a_mapping", "out_of_range", "unknown_measure", "unknown_field", "bad_yaml"],
)
def test_a_bad_policy_file_is_a_config_error(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "policy.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as raised:
        load_policy(RouterSettings(policy_file=path))
    assert str(path) in str(raised.value)


def test_control_and_audit_go_to_the_measurement_tier_and_reviews_to_the_crowd() -> None:
    router = Router(
        RouterSettings(control_share=0.5, audit=AuditSettings(rate=1.0), measurement_tier="expert"),
        clock=lambda: 0.0,
    )
    tiers: dict[str, set[str]] = {}
    for index in range(200):
        confidence = 0.95 if index % 2 else 0.55
        event = PredictionEvent(
            event_id=f"m-{index}",
            model_name="m",
            model_version="1",
            created_at=NOW,
            input=PredictionInput(features={"x": 1.0}),
            predicted_label="ok",
            scores={"ok": confidence, "fraud": round(1 - confidence, 6)},
        )
        decision = router.decide(event, NOW)
        if decision.action == "accept" and decision.audit is None:
            continue
        request = label_request(event, decision, NOW, measurement_tier=router.settings.measurement_tier)
        tiers.setdefault(request.route, set()).add(request.tier)
    assert tiers == {"low_confidence": {"crowd"}, "control": {"expert"}, "audit": {"expert"}}
