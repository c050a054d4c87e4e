"""A drift detector's alarm, on ``drift-alerts``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import ClassLabel, Finite, Id, Reason, Timestamp, WireModel

DriftSignal = Literal["model_error", "confidence", "class_mix", "queue_rate"]


class DriftAlert(WireModel):
    """A detected change in one signal, keyed by ``detector`` on ``drift-alerts``.

    Says which signal drifted, where (observation index, time, last source
    offset), the magnitude before and after, and which detector saw it. When
    the change is confined to one predicted class, ``predicted_class`` names it.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> alert = DriftAlert(detector="adwin-model-error-default", detector_kind="ADWIN",
    ...                    signal="model_error", task="default", observation=1234,
    ...                    detected_at=datetime(2026, 1, 1, tzinfo=UTC),
    ...                    before=0.08, after=0.31, message="error rose")
    >>> round(alert.after - alert.before, 2)
    0.23
    """

    SCHEMA_VERSION = 1
    schema_version: Literal[1] = 1
    detector: Id
    detector_kind: Id
    signal: DriftSignal
    task: Id = "default"
    #: How many observations the detector had seen when it fired.
    observation: Annotated[int, Field(ge=0)]
    source_partition: Annotated[int, Field(ge=0)] | None = None
    source_offset: Annotated[int, Field(ge=0)] | None = None
    detected_at: Timestamp
    before: Finite
    after: Finite
    message: Reason
    #: The production model's predicted class the change belongs to: for ``model_error`` the
    #: error among events predicted this class moved (one row of the confusion matrix), for
    #: ``class_mix`` this class's share moved; absent when the change is not one class's. An
    #: optional field within version 1: older readers ignore it, and alerts without it travel
    #: as before.
    predicted_class: ClassLabel | None = None
