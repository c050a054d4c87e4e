"""The public input contract: a production model's prediction for one event."""

from __future__ import annotations

import math
from typing import Annotated, Self

from pydantic import (
    AnyUrl,
    ConfigDict,
    Field,
    StringConstraints,
    UrlConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from schemas.base import STRICT, ClassLabel, Finite, Id, Probability, SchemaVersion1, Timestamp, WireModel

#: How far the scores may sum away from 1 (rounding in producers' JSON).
SCORE_SUM_TOLERANCE = 1e-3
MAX_TEXT_CHARS = 20_000
MAX_FEATURES = 1_024
MAX_CLASSES = 1_000
#: The longest embedding a producer may send (the explorer's "more like this" indexes it).
MAX_EMBEDDING_DIM = 4_096

FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
IMAGE_URL_SCHEMES = ("http", "https", "s3", "gs")
#: The schemes as the exported JSON Schema states them (schemes are case-insensitive, RFC 3986 3.1;
#: character classes, not an inline flag, which ECMA-262 patterns lack); ``format: uri`` says the rest.
_IMAGE_URL_PATTERN = (
    "^("
    + "|".join(
        "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in scheme) for scheme in IMAGE_URL_SCHEMES
    )
    + "):"
)
ImageUrl = Annotated[
    AnyUrl,
    UrlConstraints(max_length=2_048, allowed_schemes=list(IMAGE_URL_SCHEMES)),
    WithJsonSchema(
        {"type": "string", "format": "uri", "minLength": 1, "maxLength": 2_048, "pattern": _IMAGE_URL_PATTERN}
    ),
]


class PredictionInput(WireModel):
    """What the model saw: text, an image reference and/or numeric features.

    At least one must be present; each is bounded so one record cannot
    exhaust a worker.

    Examples
    --------
    >>> PredictionInput(features={"amount": 12.5}).features
    {'amount': 12.5}
    >>> len(PredictionInput(text="card declined", embedding=[0.1, -0.2, 0.3]).embedding)
    3
    >>> from pydantic import ValidationError
    >>> try:
    ...     PredictionInput()
    ... except ValidationError as error:
    ...     print(error.errors()[0]["msg"])
    Value error, input needs at least one of text, image_url, features
    """

    model_config = ConfigDict(
        **STRICT,
        # The rule of _not_empty, as the exported JSON Schema can say it.
        json_schema_extra={
            "anyOf": [
                {"required": ["text"], "properties": {"text": {"type": "string"}}},
                {"required": ["image_url"], "properties": {"image_url": {"type": "string"}}},
                {
                    "required": ["features"],
                    "properties": {"features": {"type": "object", "minProperties": 1}},
                },
            ]
        },
    )

    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)] | None = None
    image_url: ImageUrl | None = None
    features: Annotated[dict[FeatureName, Finite], Field(max_length=MAX_FEATURES)] | None = None
    #: The producer's own model embedding of the input (finite floats; the explorer fixes one
    #: dimension per task). Optional within version 1: producers without it keep working, and
    #: it alone is no input (the model saw text, an image or features).
    embedding: Annotated[list[Finite], Field(min_length=1, max_length=MAX_EMBEDDING_DIM)] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.text is None and self.image_url is None and not self.features:
            raise ValueError("input needs at least one of text, image_url, features")
        return self


class PredictionEvent(WireModel):
    """One prediction of a production model, keyed by ``event_id`` on ``predictions``.

    ``scores`` are the model's class probabilities: finite, in [0, 1], summing
    to 1 within ``SCORE_SUM_TOLERANCE``, and including ``predicted_label``.

    Rules this JSON Schema cannot express, which the loop refuses all the same
    (the record goes to the DLQ with the reason): the ``scores`` sum to 1
    within 0.001; ``predicted_label`` is one of the ``scores``; an integer is
    written without a fraction or exponent (``1``, not ``1.0``: JSON Schema's
    ``integer`` admits ``1.0``); a record is at most 900,000 bytes of UTF-8
    JSON, with at most 200 levels of arrays and objects inside its own object
    (unknown fields included: the JSON parser counts them), without
    lone surrogates (``\\ud800``) or the non-JSON ``NaN`` and ``Infinity``.
    Where the pattern of ``created_at`` leaves off, ``format: date-time`` says
    the rest: a real date of the calendar (no 30 February), no leap second.

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

    model_config = STRICT

    SCHEMA_VERSION = 1
    schema_version: SchemaVersion1 = 1
    event_id: Id
    task: Id = "default"
    model_name: Id
    model_version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    created_at: Timestamp
    input: PredictionInput
    predicted_label: ClassLabel
    #: Each in [0, 1] by its type (a bound the exported JSON Schema states); the sum and the
    #: predicted label by _scores_are_a_distribution.
    scores: Annotated[dict[ClassLabel, Probability], Field(min_length=1, max_length=MAX_CLASSES)]
    metadata: Annotated[
        dict[
            Annotated[str, StringConstraints(max_length=64)],
            Annotated[str, StringConstraints(max_length=256)],
        ],
        Field(max_length=32),
    ] = Field(default_factory=dict)

    @field_validator("scores")
    @classmethod
    def _scores_are_a_distribution(cls, scores: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        """The rules no JSON Schema can state, on the field (so the error's loc names ``scores``)."""
        total = math.fsum(scores.values())
        if abs(total - 1.0) > SCORE_SUM_TOLERANCE:
            raise ValueError(f"scores sum to {total:.6f}, not 1 (tolerance {SCORE_SUM_TOLERANCE})")
        predicted = info.data.get("predicted_label")  # absent when it failed: that error says why
        if predicted is not None and predicted not in scores:
            raise ValueError(f"predicted_label {predicted!r} is not among the scores")
        return scores

    @property
    def confidence(self) -> float:
        """The score of the predicted label."""
        return self.scores[self.predicted_label]
