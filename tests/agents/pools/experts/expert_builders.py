"""Label requests and a hand-driven clock for the expert pool's tests."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas import LabelRequest, PredictionEvent, PredictionInput, Suggestion

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def expert_request(
    event_id: str,
    *,
    priority: float = 0.5,
    text: str | None = "refund please",
    overlap: int | None = None,
    suggestion: str | None = "fraud",
    features: dict[str, float] | None = None,
    image_url: str | None = None,
) -> LabelRequest:
    """An expert-tier request over classes ok/fraud/spam; the model said "ok"."""
    event = PredictionEvent(
        event_id=event_id,
        model_name="fraud-model",
        model_version="3",
        created_at=WHEN,
        input=PredictionInput.model_validate({"text": text, "features": features, "image_url": image_url}),
        predicted_label="ok",
        scores={"ok": 0.5, "fraud": 0.3, "spam": 0.2},
    )
    return LabelRequest(
        prediction=event,
        route="low_confidence",
        reason="confidence 0.50 < 0.80",
        tier="expert",
        priority=priority,
        uncertainty=0.5,
        overlap=overlap,
        suggestion=None
        if suggestion is None
        else Suggestion(label=suggestion, confidence=0.7, model_name="online"),
        requested_at=WHEN,
    )


class ManualClock:
    """Monotonic seconds a test moves by hand."""

    def __init__(self, now_s: float = 1_000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds
