"""What the loop measures about models: estimates with intervals, on ``model-metrics``."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from schemas.base import Finite, Id, Timestamp, WireModel

MetricName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[a-z0-9_.:-]+$")]


class Estimate(WireModel):
    """A point estimate with an optional interval and the number of observations behind it.

    Examples
    --------
    >>> Estimate(value=0.9, lower=0.85, upper=0.94, n=400).n
    400
    """

    value: Finite
    lower: Finite | None = None
    upper: Finite | None = None
    n: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.lower is not None and self.lower > self.value + 1e-12:
            raise ValueError("lower bound above the value")
        if self.upper is not None and self.upper < self.value - 1e-12:
            raise ValueError("upper bound below the value")
        return self


class ModelMetrics(WireModel):
    """A snapshot of one model's metrics, keyed by ``model_name`` on ``model-metrics``.

    ``kind`` says which model: the ``online`` River model (prequential
    metrics) or the ``production`` model (precision and recall estimated from
    human labels).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> m = ModelMetrics(model_name="online-default", kind="online", task="default",
    ...                  computed_at=datetime(2026, 1, 1, tzinfo=UTC),
    ...                  metrics={"prequential_accuracy": Estimate(value=0.8, n=100)})
    >>> m.metrics["prequential_accuracy"].value
    0.8
    """

    SCHEMA_VERSION = 1
    schema_version: Literal[1] = 1
    model_name: Id
    kind: Literal["online", "production"]
    task: Id = "default"
    model_version: Annotated[str, StringConstraints(max_length=64)] | None = None
    computed_at: Timestamp
    metrics: Annotated[dict[MetricName, Estimate], Field(max_length=256)]
