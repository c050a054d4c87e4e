"""A request for human labels: what the router or the aggregator asks a pool to label."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import ClassLabel, Finite, Id, Probability, Reason, Timestamp, WireModel
from schemas.labels import RouteReason, RoutingTrace
from schemas.predictions import PredictionEvent

Tier = Literal["crowd", "expert"]


class Suggestion(WireModel):
    """A pre-annotation shown to labelers (from the online model)."""

    label: ClassLabel
    confidence: Probability
    model_name: Id


class LabelRequest(WireModel):
    """Ask humans to label one event, keyed by ``event_id`` on ``label-requests``.

    Carries the prediction it is about, why it was sent (``route``, ``reason``),
    the tier that should answer, the ``priority`` the dispatcher orders the
    backlog by, and the ``inclusion_probability`` with which this route picked
    the event (1.0 for reviews; the sampling share for control and audit).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> from schemas.predictions import PredictionInput
    >>> event = PredictionEvent(
    ...     event_id="tx-1", model_name="fraud", model_version="3",
    ...     created_at=datetime(2026, 1, 1, tzinfo=UTC),
    ...     input=PredictionInput(text="refund please"),
    ...     predicted_label="ok", scores={"ok": 0.55, "fraud": 0.45})
    >>> request = LabelRequest(
    ...     prediction=event, route="low_confidence", reason="confidence 0.55 < 0.8",
    ...     tier="crowd", priority=0.45, uncertainty=0.45,
    ...     requested_at=datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC))
    >>> request.event_id
    'tx-1'
    """

    SCHEMA_VERSION = 1
    schema_version: Literal[1] = 1
    prediction: PredictionEvent
    route: RouteReason
    reason: Reason
    tier: Tier = "crowd"
    priority: Finite
    uncertainty: Probability
    inclusion_probability: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    #: How many human answers the aggregator should collect (None: the pool's default).
    overlap: Annotated[int, Field(ge=1, le=50)] | None = None
    suggestion: Suggestion | None = None
    routing: RoutingTrace | None = None
    requested_at: Timestamp

    @property
    def event_id(self) -> str:
        """The event this request is about (its Kafka key)."""
        return self.prediction.event_id
