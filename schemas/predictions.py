"""The public input contract: a production model's prediction for one event."""

from __future__ import annotations

import math
from typing import Annotated, Literal, Self

from pydantic import AnyUrl, Field, StringConstraints, UrlConstraints, model_validator

from schemas.base import ClassLabel, Finite, Id, Timestamp, WireModel

#: How far the scores may sum away from 1 (rounding in producers' JSON).
SCORE_SUM_TOLERANCE = 1e-3
MAX_TEXT_CHARS = 20_000
MAX_FEATURES = 1_024
MAX_CLASSES = 1_000

FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
ImageUrl = Annotated[AnyUrl, UrlConstraints(max_length=2_048, allowed_schemes=["http", "https", "s3", "gs"])]


class PredictionInput(WireModel):
    """What the model saw: text, an image reference and/or numeric features.

    At least one must be present; each is bounded so one record cannot
    exhaust a worker.

    Examples
    --------
    >>> PredictionInput(features={"amount": 12.5}).features
    {'amount': 12.5}
    >>> from pydantic import ValidationError
    >>> try:
    ...     PredictionInput()
    ... except ValidationError as error:
    ...     print(error.errors()[0]["msg"])
    Value error, input needs at least one of text, image_url, features
    """

    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)] | None = None
    image_url: ImageUrl | None = None
    features: Annotated[dict[FeatureName, Finite], Field(max_length=MAX_FEATURES)] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.text is None and self.image_url is None and not self.features:
            raise ValueError("input needs at least one of text, image_url, features")
        return self


class PredictionEvent(WireModel):
    """One prediction of a production model, keyed by ``event_id`` on ``predictions``.

    ``scores`` are the model's class probabilities: finite, in [0, 1], summing
    to 1 within ``SCORE_SUM_TOLERANCE``, and including ``predicted_label``.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> event = PredictionEvent(
    ...     event_id="tx-1", model_name="fraud", model_version="3",
    ...     created_at=datetime(2026, 1, 1, tzinfo=UTC),
    ...     input=PredictionInput(features={"amount": 12.5}),
    ...     predicted_label="ok", scores={"ok": 0.9, "fraud": 0.1})
    >>> event.confidence
    0.9
    >>> PredictionEvent.from_json_bytes(event.to_json_bytes()) == event
    True
    """

    SCHEMA_VERSION = 1
    schema_version: Literal[1] = 1
    event_id: Id
    task: Id = "default"
    model_name: Id
    model_version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    created_at: Timestamp
    input: PredictionInput
    predicted_label: ClassLabel
    scores: Annotated[dict[ClassLabel, Finite], Field(min_length=1, max_length=MAX_CLASSES)]
    metadata: Annotated[
        dict[
            Annotated[str, StringConstraints(max_length=64)],
            Annotated[str, StringConstraints(max_length=256)],
        ],
        Field(max_length=32),
    ] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _scores_are_probabilities(self) -> Self:
        for label, score in self.scores.items():
            if not 0.0 <= score <= 1.0:
                raise ValueError(f"score of {label!r} is {score}, outside [0, 1]")
        total = math.fsum(self.scores.values())
        if abs(total - 1.0) > SCORE_SUM_TOLERANCE:
            raise ValueError(f"scores sum to {total:.6f}, not 1 (tolerance {SCORE_SUM_TOLERANCE})")
        if self.predicted_label not in self.scores:
            raise ValueError(f"predicted_label {self.predicted_label!r} is not among the scores")
        return self

    @property
    def confidence(self) -> float:
        """The score of the predicted label."""
        return self.scores[self.predicted_label]
