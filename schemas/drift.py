"""A drift detector's alarm, on ``drift-alerts``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import Finite, Id, Reason, Timestamp, WireModel

DriftSignal = Literal["model_error", "confidence", "class_mix", "queue_rate"]


class DriftAlert(WireModel):
    """A detected change in one signal, keyed by ``detector`` on ``drift-alerts``.

    Says which signal drifted, where (observation index, time, last source
    offset), the magnitude before and after, and which detector saw it.

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
