"""Wire objects the tests build again and again, with defaults a test overrides by name.

Also the fake :class:`streams.runtime.Sender` (a topic) that records what was produced to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas import (
    Label,
    LabelProvenance,
    LabelRequest,
    LabelSource,
    PredictionEvent,
    PredictionInput,
    RouteReason,
    RoutingTrace,
)

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


def label_request(event_id: str = "tx-1", *, route: RouteReason = "low_confidence") -> LabelRequest:
    """A LabelRequest for a two-class prediction of event ``event_id``."""
    return LabelRequest(
        prediction=prediction(event_id),
        route=route,
        reason="test",
        priority=0.4,
        uncertainty=0.4,
        requested_at=WHEN,
    )


@dataclass(frozen=True)
class Sent:
    key: bytes | None
    value: bytes | None
    headers: Any


@dataclass
class FakeTopic:
    """A Sender that remembers what was produced."""

    sent: list[Sent] = field(default_factory=list)

    async def send(self, *, key: bytes | None, value: bytes | None, headers: Any = None) -> None:
        self.sent.append(Sent(key, value, headers))
