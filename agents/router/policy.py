"""The router's rule: accept a prediction as the trusted label, or send it to humans, and why.

This is the one place that knows about thresholds. For each event the
:class:`Router` measures uncertainty, compares it with the threshold of the
predicted class, and then:

- would accept: a uniform control share goes to humans instead (route
  ``control``, inclusion probability = the share: the unbiased precision
  sample); the rest is accepted, and an importance-sampled few are also
  sent for a recall audit (route ``audit``) after the fact;
- would review: the capacity gate decides whether the pools can take it;
  a review the pools cannot absorb is accepted, with the budget state said.

The core is pure: events, settings and the gate's clock in; decisions out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from agents.router.capacity import CapacitySettings, GateDecision, ReviewGate
from agents.router.sampling import AuditDecision, AuditSampler, AuditSettings, ControlSampler
from agents.router.tuning import ThresholdTuner, TuningSettings
from agents.router.uncertainty import UncertaintyMeasure, uncertainty
from schemas import (
    Label,
    LabelProvenance,
    LabelRequest,
    PolicyCommand,
    PolicyStatus,
    PredictionEvent,
    RouteReason,
    RoutingTrace,
    Suggestion,
    Tier,
)
from streams.errors import ConfigError

Action = Literal["accept", "review"]


class RouterSettings(BaseModel):
    """The routing policy (``LABELLOOP_ROUTER__*``, or a YAML file named by ``policy_file``).

    Thresholds are on confidence = 1 - uncertainty under ``measure``:
    accept when confidence >= the predicted class's threshold.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    measure: UncertaintyMeasure = "max_probability"
    accept_threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    per_class_thresholds: dict[str, float] = Field(default_factory=dict)
    #: Share of would-be-accepted events sent to humans as the control group.
    control_share: float = Field(default=0.05, ge=0.0, le=1.0)
    audit: AuditSettings = AuditSettings()
    #: Who labels the control group and the recall audit: "expert" measures precision and recall
    #: against the experts, so crowd mistakes do not count as the model's (reviews stay with the crowd).
    measurement_tier: Tier = "crowd"
    capacity: CapacitySettings = CapacitySettings()
    #: Auto-tune ``accept_threshold`` to a target precision (off unless a target is set).
    tuning: TuningSettings = TuningSettings()
    #: Priority added when the online model disagrees with the production model.
    disagreement_bonus: float = Field(default=0.5, ge=0.0)
    #: Priority added for age, up to ``age_weight`` at ``age_scale_s`` old.
    age_weight: float = Field(default=0.1, ge=0.0)
    age_scale_s: float = Field(default=600.0, gt=0.0)
    #: A YAML file whose content replaces these settings (the policy lives in one file).
    policy_file: Path | None = None


def load_policy(settings: RouterSettings) -> RouterSettings:
    """The policy in force: ``settings``, or the YAML file it names.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "policy.yaml"
    >>> _ = path.write_text("measure: margin\\naccept_threshold: 0.9\\ncontrol_share: 0.1\\n")
    >>> policy = load_policy(RouterSettings(policy_file=path))
    >>> policy.measure, policy.accept_threshold, policy.control_share
    ('margin', 0.9, 0.1)
    """
    if settings.policy_file is None:
        return settings
    try:
        document = yaml.safe_load(settings.policy_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read the routing policy {settings.policy_file}: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"the routing policy {settings.policy_file} must be a YAML mapping")
    try:
        return RouterSettings.model_validate({**document, "policy_file": None})
    except ValueError as error:
        raise ConfigError(f"the routing policy {settings.policy_file} is invalid: {error}") from None


@dataclass(frozen=True, slots=True)
class Decision:
    """What the router decided for one event, and why."""

    action: Action
    route: RouteReason
    reason: str
    confidence: float
    uncertainty: float
    threshold: float
    inclusion_probability: float
    priority: float
    trace: RoutingTrace
    #: Set when an accepted event is also drawn into the recall audit.
    audit: AuditDecision | None = None
    #: True when a would-review event was accepted because the pools were full.
    shed: bool = False
    #: The online model's suggestion, for the events a human will see.
    suggestion: Suggestion | None = None


class Router:
    """Route events under a live policy.

    Parameters
    ----------
    settings
        The routing policy.
    clock
        Monotonic seconds for the capacity gate.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> from schemas import PredictionInput
    >>> router = Router(RouterSettings(accept_threshold=0.8, control_share=0.0,
    ...                                per_class_thresholds={"fraud": 0.95}), clock=lambda: 0.0)
    >>> def event(label, score):
    ...     other = "ok" if label == "fraud" else "fraud"
    ...     return PredictionEvent(event_id=f"e-{label}-{score}", model_name="m", model_version="1",
    ...                            created_at=datetime(2026, 1, 1, tzinfo=UTC),
    ...                            input=PredictionInput(features={"x": 1.0}),
    ...                            predicted_label=label, scores={label: score, other: 1 - score})
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> router.decide(event("ok", 0.9), now).action
    'accept'
    >>> router.decide(event("fraud", 0.9), now).reason
    'confidence 0.900 < threshold 0.950 for fraud (max_probability)'
    """

    def __init__(self, settings: RouterSettings, clock: Any) -> None:
        self.settings = settings
        self.version = 1
        self.gate = ReviewGate(settings.capacity, clock)
        self.audits = AuditSampler(settings.audit)
        self.controls = ControlSampler()
        self.tuner = ThresholdTuner(settings.tuning)

    def threshold_for(self, label: str) -> float:
        """The acceptance threshold of ``label``."""
        return self.settings.per_class_thresholds.get(label, self.settings.accept_threshold)

    def decide(
        self,
        event: PredictionEvent,
        now: datetime,
        suggestion: Suggestion | Callable[[], Suggestion | None] | None = None,
    ) -> Decision:
        """Accept, review, control or audit ``event``.

        ``suggestion`` is the online model's label, or a function that makes it: it is
        asked only for events a human will see (plain accepts skip the model call).
        """
        # Straight-line, one branch per outcome: this runs for every prediction (bench F1/F2).
        settings = self.settings
        measure = settings.measure
        predicted = event.predicted_label
        scores = event.scores
        unsure = uncertainty(scores, measure)
        # Never more confident than the score of the label we would accept (a producer may
        # predict a label that is not its top score).
        confidence = min(1.0 - unsure, scores[predicted])
        threshold = settings.per_class_thresholds.get(predicted, settings.accept_threshold)
        if settings.tuning.target_precision is not None:
            self.tuner.observe_event(confidence)
        if confidence >= threshold:
            share = settings.control_share
            if self.controls.decide(event.event_id, share):
                self.gate.reserve()
                found = _suggested(suggestion)
                disagreement = None if found is None else found.label != predicted
                return Decision(
                    "review",
                    "control",
                    f"control group (share {share:.3f}) of confidence {confidence:.3f} "
                    f">= threshold {threshold:.3f}",
                    confidence,
                    unsure,
                    threshold,
                    share,
                    self._priority(unsure, disagreement, event, now),
                    self._trace(unsure, threshold, disagreement),
                    suggestion=found,
                )
            reason = f"confidence {confidence:.3f} >= threshold {threshold:.3f} ({measure})"
            audit = self.audits.decide(event.event_id, scores, predicted)
            if audit is None:
                # Only an audited event asks for the online model's suggestion (a human sees it).
                return Decision(
                    "accept",
                    "accepted",
                    reason,
                    confidence,
                    unsure,
                    threshold,
                    1.0,
                    self._priority(unsure, None, event, now),
                    self._trace(unsure, threshold, None),
                )
            self.gate.reserve()
            found = _suggested(suggestion)
            disagreement = None if found is None else found.label != predicted
            return Decision(
                "accept",
                "accepted",
                reason,
                confidence,
                unsure,
                threshold,
                1.0,
                self._priority(unsure, disagreement, event, now),
                self._trace(unsure, threshold, disagreement, audited_class=audit.audited_class),
                audit=audit,
                suggestion=found,
            )
        found = _suggested(suggestion)
        disagreement = None if found is None else found.label != predicted
        priority = self._priority(unsure, disagreement, event, now)
        gate = self.gate.admit(priority)
        budget = gate.describe()
        why = f"confidence {confidence:.3f} < threshold {threshold:.3f} for {predicted} ({measure})"
        if gate.admitted:
            return Decision(
                "review",
                "low_confidence",
                why,
                confidence,
                unsure,
                threshold,
                1.0,
                priority,
                self._trace(unsure, threshold, disagreement, budget=budget),
                suggestion=found,
            )
        audit = self.audits.decide(event.event_id, scores, predicted)
        if audit is not None:
            self.gate.reserve()
        return Decision(
            "accept",
            "accepted",
            f"{why}; not sent: {_shed_reason(gate)}",
            confidence,
            unsure,
            threshold,
            1.0,
            priority,
            self._trace(
                unsure,
                threshold,
                disagreement,
                budget=budget,
                audited_class=None if audit is None else audit.audited_class,
            ),
            audit=audit,
            shed=True,
            suggestion=found if audit is not None else None,
        )

    def _trace(
        self,
        unsure: float,
        threshold: float,
        disagreement: bool | None,
        budget: str | None = None,
        audited_class: str | None = None,
    ) -> RoutingTrace:
        """The routing trace of a decision under the policy in force."""
        return RoutingTrace(
            measure=self.settings.measure,
            uncertainty=unsure,
            threshold=threshold,
            policy_version=self.version,
            budget=budget,
            disagreement=disagreement,
            audited_class=audited_class,
        )

    def _priority(
        self, unsure: float, disagreement: bool | None, event: PredictionEvent, now: datetime
    ) -> float:
        age_s = max(0.0, (now - event.created_at).total_seconds())
        return (
            unsure
            + (self.settings.disagreement_bonus if disagreement else 0.0)
            + self.settings.age_weight * min(age_s / self.settings.age_scale_s, 1.0)
        )

    def learn_from(self, label: Label, now: datetime) -> PolicyCommand | None:
        """Feed a human label of a review or control to the tuner; a command when the threshold should move.

        The command goes through the same path as an operator's (applied, logged, published).
        """
        if (
            self.settings.tuning.target_precision is None
            or not label.is_human
            or label.revision != 1
            or label.route not in ("low_confidence", "control")
            or label.routing is None
            or label.routing.measure != self.settings.measure
        ):
            return None
        self.tuner.observe(
            1.0 - label.routing.uncertainty, label.model_was_right, label.inclusion_probability
        )
        if not self.tuner.due():
            return None
        threshold = self.tuner.threshold()
        if threshold is None or abs(threshold - self.settings.accept_threshold) < 0.005:
            return None
        return PolicyCommand(
            task=label.task,
            accept_threshold=max(threshold, 0.01),
            issued_by="tuner",
            issued_at=now,
            reason=(
                f"lowest threshold with estimated precision >= {self.settings.tuning.target_precision} "
                f"after {self.tuner.observed} human labels"
            ),
        )

    def apply(self, command: PolicyCommand) -> RouterSettings:
        """Change the policy live from a command; returns the new settings (version + 1)."""
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("accept_threshold", command.accept_threshold),
                ("per_class_thresholds", command.per_class_thresholds),
                ("control_share", command.control_share),
                ("measure", command.measure),
            )
            if value is not None
        }
        if command.audit_rate is not None:
            changes["audit"] = self.settings.audit.model_copy(update={"rate": command.audit_rate})
        self.settings = RouterSettings.model_validate({**self.settings.model_dump(), **changes})
        self.audits.settings = self.settings.audit
        self.version += 1
        return self.settings

    def status(self, task: str, now: datetime, reason: str) -> PolicyStatus:
        """The policy in force, for ``policy-status``."""
        return PolicyStatus(
            task=task,
            version=self.version,
            measure=self.settings.measure,
            accept_threshold=self.settings.accept_threshold,
            per_class_thresholds=self.settings.per_class_thresholds,
            control_share=self.settings.control_share,
            audit_rate=self.settings.audit.rate,
            target_backlog=self.settings.capacity.target_backlog,
            updated_at=now,
            reason=reason,
        )


def _suggested(suggestion: Suggestion | Callable[[], Suggestion | None] | None) -> Suggestion | None:
    """The online model's suggestion, made now if ``suggestion`` is the function that makes it."""
    return suggestion() if callable(suggestion) else suggestion


def _shed_reason(gate: GateDecision) -> str:
    return f"pools full, {gate.describe()}"


def model_label(event: PredictionEvent, decision: Decision, now: datetime) -> Label:
    """The revision-1 Label of an accepted event: the model's own prediction."""
    return Label(
        event_id=event.event_id,
        task=event.task,
        label=event.predicted_label,
        source="model",
        revision=1,
        confidence=event.confidence,
        route="accepted",
        reason=decision.reason,
        routing=decision.trace,
        decided_at=now,
        prediction_created_at=event.created_at,
        provenance=provenance(event),
    )


def label_request(
    event: PredictionEvent,
    decision: Decision,
    now: datetime,
    suggestion: Suggestion | None = None,
    measurement_tier: Tier = "crowd",
) -> LabelRequest:
    """The LabelRequest that carries out a review, control or audit decision.

    Control and audit requests go to ``measurement_tier``; reviews to the crowd.
    """
    audit = decision.audit
    route = "audit" if audit is not None else decision.route
    return LabelRequest(
        prediction=event,
        route=route,
        reason=("recall audit of " + audit.audited_class) if audit is not None else decision.reason,
        tier=measurement_tier if route in ("control", "audit") else "crowd",
        priority=decision.priority,
        uncertainty=decision.uncertainty,
        inclusion_probability=audit.inclusion_probability
        if audit is not None
        else decision.inclusion_probability,
        suggestion=suggestion if suggestion is not None else decision.suggestion,
        routing=decision.trace,
        requested_at=now,
    )


def provenance(event: PredictionEvent) -> LabelProvenance:
    """What the production model said about ``event`` (kept on every Label)."""
    return LabelProvenance(
        model_name=event.model_name,
        model_version=event.model_version,
        model_label=event.predicted_label,
        model_confidence=event.confidence,
    )
