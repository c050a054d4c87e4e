"""The skill-weighted aggregator's settings: a model only (reading them imports no aggregation code)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WeightedSettings(BaseModel):
    """The skill-weighted aggregator (``LABELLOOP_AGGREGATOR__WEIGHTED__*``)."""

    model_config = ConfigDict(frozen=True)

    #: Answers to wait for when neither the answers nor the request say.
    default_overlap: int = Field(default=3, ge=1, le=50)
    #: A crowd label less probable than this goes to the experts.
    escalate_below: float = Field(default=0.8, ge=0.0, le=1.0)
    #: Added to the request's priority for an escalation: above every crowd priority (those are <= 1).
    escalation_priority_boost: float = Field(default=1.0, ge=0.0)
    #: Share of confident crowd labels experts audit.
    audit_share: float = Field(default=0.05, ge=0.0, le=1.0)
    #: Key of the audit draw; change it to draw a new, independent audit sample.
    audit_salt: str = Field(default="crowd-audit", min_length=1)
    #: Accuracy assumed for an expert (the confidence of one expert's verdict).
    expert_accuracy: float = Field(default=0.97, gt=0.5, lt=1.0)
    #: Only aggregates at least this sure teach the voters' agreement.
    agreement_confidence: float = Field(default=0.9, gt=0.0, le=1.0)
    #: Recent events remembered per worker, to revisit when the worker is flagged.
    events_per_worker: int = Field(default=500, ge=1)
