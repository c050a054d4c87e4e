"""Small, valid wire objects for examples and doctests: one Label and one PredictionEvent builder.

Shipped, so the doctests of shipped modules build their examples from here and never import
``tests/`` (``tests/factories.py`` re-exports these for the tests). Every argument has a default a
caller overrides by name.

>>> human_label(event_id="tx-9", revision=2).supersedes
1
>>> prediction("tx-9", predicted_label="fraud", confidence=0.8).scores
{'fraud': 0.8, 'ok': 0.2}
"""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.labels import Label, LabelProvenance, LabelSource, RouteReason, RoutingTrace
from schemas.predictions import PredictionEvent, PredictionInput

__all__ = ["WHEN", "human_label", "prediction"]

#: The instant every example happens at (a fixed, tz-aware UTC time: examples are exact).
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def human_label(
    route: RouteReason = "low_confidence",
    *,
    human_label: str = "fraud",
    model_label: str = "ok",
    source: LabelSource = "crowd",
    revision: int = 1,
    inclusion_probability: float = 1.0,
    routing: RoutingTrace | None = None,
    task: str = "default",
    event_id: str = "tx-1",
    decided_at: datetime = WHEN,
    created_at: datetime = WHEN,
    model_confidence: float = 0.6,
) -> Label:
    """A Label for event ``event_id`` (revision > 1 supersedes the one before)."""
    return Label(
        event_id=event_id,
        task=task,
        label=human_label,
        source=source,
        revision=revision,
        supersedes=revision - 1 if revision > 1 else None,
        confidence=1.0,
        route=route,
        inclusion_probability=inclusion_probability,
        routing=routing,
        decided_at=decided_at,
        prediction_created_at=created_at,
        provenance=LabelProvenance(
            model_name="fraud-model",
            model_version="3",
            model_label=model_label,
            model_confidence=model_confidence,
        ),
    )


def prediction(
    event_id: str = "tx-1", *, predicted_label: str = "ok", confidence: float = 0.6
) -> PredictionEvent:
    """A two-class prediction of event ``event_id`` (``confidence`` on ``predicted_label``)."""
    other = "fraud" if predicted_label != "fraud" else "ok"
    return PredictionEvent(
        event_id=event_id,
        model_name="fraud-model",
        model_version="3",
        created_at=WHEN,
        input=PredictionInput(text="refund please"),
        predicted_label=predicted_label,
        scores={predicted_label: confidence, other: round(1.0 - confidence, 9)},
    )
