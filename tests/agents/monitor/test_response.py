"""The response policy: an alert raises the control share and tightens auto-accept, and it reverts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents.monitor.response import ResponsePolicy, ResponseSettings
from schemas import DriftAlert, DriftSignal, PolicyStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def status(
    control_share: float = 0.05, accept_threshold: float = 0.8, per_class: dict[str, float] | None = None
) -> PolicyStatus:
    return PolicyStatus(
        version=1,
        measure="max_probability",
        accept_threshold=accept_threshold,
        per_class_thresholds=per_class or {},
        control_share=control_share,
        audit_rate=0.02,
        target_backlog=200,
        updated_at=T0,
        reason="start",
    )


def alert(
    signal: DriftSignal = "model_error",
    before: float = 0.05,
    after: float = 0.2,
    predicted_class: str | None = None,
) -> DriftAlert:
    return DriftAlert(
        detector=f"detector-{signal}",
        detector_kind="ADWIN",
        signal=signal,
        task="payments",
        observation=500,
        detected_at=T0,
        before=before,
        after=after,
        message=f"{signal} moved",
        predicted_class=predicted_class,
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


SETTINGS = ResponseSettings(control_share=0.25, tighten_by=0.1, window_s=60, settle_s=30)


def test_an_error_rise_raises_the_control_share_and_tightens_auto_accept() -> None:
    response = ResponsePolicy(SETTINGS, status(per_class={"fraud": 0.95}))
    reaction = response.observe(alert(), at(0))
    assert reaction is not None
    assert reaction.kind == "raise"
    command = reaction.command
    assert command is not None
    assert (command.control_share, command.accept_threshold) == (0.25, 0.9)
    assert command.per_class_thresholds == {"fraud": 0.99}  # capped at max_threshold
    assert (command.issued_by, command.task, command.issued_at) == ("monitor", "payments", at(0))
    assert "detector-model_error" in command.reason
    assert "model_error moved" in reaction.notice


def test_an_error_rise_within_one_predicted_class_reacts_and_names_the_class() -> None:
    response = ResponsePolicy(SETTINGS, status())
    reaction = response.observe(alert(predicted_class="ok"), at(0))
    assert reaction is not None
    assert reaction.kind == "raise"
    assert reaction.command is not None
    assert (reaction.command.control_share, reaction.command.accept_threshold) == (0.25, 0.9)
    assert "model_error of predicted 'ok' 0.050 -> 0.200" in reaction.command.reason
    fell = response.observe(alert(before=0.2, after=0.05, predicted_class="ok"), at(1))
    assert fell is not None
    assert fell.kind == "notify"
    assert "drift on model_error of predicted 'ok'" in fell.notice


def test_it_reverts_once_the_window_passed_and_the_signal_settled() -> None:
    response = ResponsePolicy(SETTINGS, status())
    response.observe(alert(), at(0))
    response.observe_policy(status(0.25, 0.9))  # the router applied the reaction
    extended = response.observe(alert("confidence"), at(50))
    assert extended is not None
    assert extended.kind == "extend"
    # Published so every worker learns the end moved; it changes nothing in the policy.
    assert extended.command is not None
    changes = extended.command.model_dump(
        include={"control_share", "accept_threshold", "per_class_thresholds"}
    )
    assert set(changes.values()) == {None}
    assert extended.command.reason.startswith("drift response extended by detector-confidence")
    assert response.tick(at(61)) is None  # window over, but the last alert is 11 s old
    assert response.tick(at(79)) is None
    reverted = response.tick(at(80))
    assert reverted is not None
    assert reverted.kind == "revert"
    assert reverted.command is not None
    assert (reverted.command.control_share, reverted.command.accept_threshold) == (0.05, 0.8)
    assert reverted.command.per_class_thresholds is None
    assert "2 alerts" in reverted.command.reason
    assert response.active is None
    assert response.tick(at(500)) is None


def test_a_value_changed_by_an_operator_meanwhile_is_kept() -> None:
    response = ResponsePolicy(SETTINGS, status())
    response.observe(alert(), at(0))
    response.observe_policy(status(0.25, 0.7))  # an operator lowered the threshold during the reaction
    reverted = response.tick(at(100))
    assert reverted is not None
    assert reverted.command is not None
    assert (reverted.command.control_share, reverted.command.accept_threshold) == (0.05, None)


def test_the_control_share_is_never_lowered_and_thresholds_never_loosened() -> None:
    response = ResponsePolicy(SETTINGS, status(control_share=0.5, accept_threshold=0.995))
    reaction = response.observe(alert(), at(0))
    assert reaction is not None
    assert reaction.command is not None
    assert (reaction.command.control_share, reaction.command.accept_threshold) == (0.5, 0.995)


@pytest.mark.parametrize(
    "only_told",
    [alert("queue_rate", 200, 600), alert("model_error", before=0.3, after=0.1)],
    ids=["queue_rate", "error_fell"],
)
def test_some_alerts_only_notify(only_told: DriftAlert) -> None:
    response = ResponsePolicy(SETTINGS, status())
    reaction = response.observe(only_told, at(0))
    assert reaction is not None
    assert (reaction.kind, reaction.command) == ("notify", None)
    assert only_told.message in reaction.notice
    assert response.active is None


def test_the_signals_it_reacts_to_are_configurable() -> None:
    response = ResponsePolicy(SETTINGS.model_copy(update={"react_to": ("queue_rate",)}), status())
    surge = response.observe(alert("queue_rate", 200, 600), at(0))
    assert surge is not None
    assert surge.kind == "raise"
    error = response.observe(alert(), at(1))
    assert error is not None
    assert error.kind == "notify"


def test_disabled_it_does_nothing() -> None:
    response = ResponsePolicy(SETTINGS.model_copy(update={"enabled": False}), status())
    assert response.observe(alert(), at(0)) is None
    assert response.tick(at(1_000)) is None
    # Not even revert a reaction another worker raised.
    raised = ResponsePolicy(SETTINGS, status()).observe(alert(), at(0))
    assert raised is not None
    assert raised.command is not None
    response.observe_policy(status(0.25, 0.9).model_copy(update={"reason": raised.command.reason}))
    assert response.tick(at(1_000)) is None


def test_a_reaction_in_force_before_a_restart_is_adopted_and_still_reverts() -> None:
    before = status()
    raised = ResponsePolicy(SETTINGS, before).observe(alert(), at(0))
    assert raised is not None
    assert raised.command is not None
    # A fresh worker replays policy-status: the policy at start, then the router's status after the raise.
    restarted = ResponsePolicy(SETTINGS, status(0.5, 0.5))  # its configured policy is not what ran
    restarted.observe_policy(before)
    in_force = status(0.25, 0.9).model_copy(update={"reason": raised.command.reason, "updated_at": at(0)})
    restarted.observe_policy(in_force)
    assert restarted.active is not None
    assert restarted.observe(alert("confidence"), at(10)) is not None  # an extension, not a second raise
    assert restarted.tick(at(59)) is None
    reverted = restarted.tick(at(61))
    assert reverted is not None
    assert reverted.command is not None
    assert (reverted.command.control_share, reverted.command.accept_threshold) == (0.05, 0.8)


def test_a_revert_published_by_another_worker_ends_the_reaction_here() -> None:
    response = ResponsePolicy(SETTINGS, status())
    response.observe(alert(), at(0))
    response.observe_policy(status(0.25, 0.9))
    elsewhere = ResponsePolicy(SETTINGS, status())
    elsewhere.observe(alert(), at(0))
    reverted = elsewhere.tick(at(100))
    assert reverted is not None
    assert reverted.command is not None
    response.observe_policy(status().model_copy(update={"reason": reverted.command.reason}))
    assert response.active is None
    assert response.tick(at(200)) is None


def test_an_extension_published_by_another_worker_pushes_the_end_here() -> None:
    response = ResponsePolicy(SETTINGS, status())
    response.observe(alert(), at(0))
    elsewhere = ResponsePolicy(SETTINGS, status())
    elsewhere.observe(alert(), at(0))
    extended = elsewhere.observe(alert("class_mix"), at(55))
    assert extended is not None
    assert extended.command is not None
    response.observe_policy(
        status(0.25, 0.9).model_copy(update={"reason": extended.command.reason, "updated_at": at(55)})
    )
    assert response.tick(at(70)) is None  # 60 s window over, but the extension was 15 s ago
    assert response.tick(at(85)) is not None
