"""The router's rule: accept a prediction as the trusted label, or send it to humans.

This is the one place that knows about thresholds. The core is pure: it takes
a :class:`PredictionEvent` and a time and returns a :class:`Decision`, plus
the Label or LabelRequest that carries it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas import Label, LabelProvenance, LabelRequest, PredictionEvent

Action = Literal["accept", "review"]


class RouterSettings(BaseModel):
    """Routing policy (``LABELLOOP_ROUTER__*``).

    ``accept_threshold`` applies to every class unless ``per_class_thresholds``
    names the predicted class.
    """

    model_config = ConfigDict(frozen=True)

    accept_threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    per_class_thresholds: dict[str, float] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the router decided for one event, and why."""

    action: Action
    threshold: float
    confidence: float
    reason: str

    @property
    def uncertainty(self) -> float:
        """1 - max probability: 0 for a sure model, up to 1 - 1/k for a uniform one."""
        return 1.0 - self.confidence


class ThresholdPolicy:
    """Accept when the predicted class's score reaches its threshold, else review.

    Parameters
    ----------
    settings
        Global and per-class thresholds.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> from schemas import PredictionInput
    >>> policy = ThresholdPolicy(RouterSettings(accept_threshold=0.8,
    ...                                         per_class_thresholds={"fraud": 0.95}))
    >>> def event(label, score):
    ...     other = "ok" if label == "fraud" else "fraud"
    ...     return PredictionEvent(event_id="e", model_name="m", model_version="1",
    ...                            created_at=datetime(2026, 1, 1, tzinfo=UTC),
    ...                            input=PredictionInput(features={"x": 1.0}),
    ...                            predicted_label=label, scores={label: score, other: 1 - score})
    >>> policy.decide(event("ok", 0.9)).action
    'accept'
    >>> policy.decide(event("fraud", 0.9)).reason
    'confidence 0.900 < threshold 0.950 for fraud'
    """

    def __init__(self, settings: RouterSettings) -> None:
        self.settings = settings

    def threshold_for(self, label: str) -> float:
        """The acceptance threshold of ``label``."""
        return self.settings.per_class_thresholds.get(label, self.settings.accept_threshold)

    def decide(self, event: PredictionEvent) -> Decision:
        """Accept or review ``event``."""
        threshold = self.threshold_for(event.predicted_label)
        confidence = event.confidence
        if confidence >= threshold:
            return Decision(
                "accept",
                threshold,
                confidence,
                f"confidence {confidence:.3f} >= threshold {threshold:.3f}",
            )
        return Decision(
            "review",
            threshold,
            confidence,
            f"confidence {confidence:.3f} < threshold {threshold:.3f} for {event.predicted_label}",
        )


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
        decided_at=now,
        prediction_created_at=event.created_at,
        provenance=provenance(event),
    )


def review_request(event: PredictionEvent, decision: Decision, now: datetime) -> LabelRequest:
    """The LabelRequest of a reviewed event; the most uncertain are labeled first."""
    return LabelRequest(
        prediction=event,
        route="low_confidence",
        reason=decision.reason,
        tier="crowd",
        priority=decision.uncertainty,
        uncertainty=decision.uncertainty,
        inclusion_probability=1.0,
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
