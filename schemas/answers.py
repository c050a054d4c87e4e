"""One labeler's answer to one task, as a pool reports it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import ClassLabel, Id, Timestamp, WireModel
from schemas.requests import Tier


class CrowdAnswer(WireModel):
    """One worker's answer, keyed by ``event_id`` on ``crowd-answers``.

    Golden (honeypot) answers are flagged with ``golden_label`` set: they grade
    the worker and never become an event's label.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> answer = CrowdAnswer(event_id="tx-1", task_id="t-1", pool="simulated", tier="crowd",
    ...                      worker_id="w-7", label="fraud", time_spent_s=4.2,
    ...                      answered_at=datetime(2026, 1, 1, tzinfo=UTC))
    >>> answer.is_golden
    False
    """

    SCHEMA_VERSION = 1
    schema_version: Literal[1] = 1
    event_id: Id
    task_id: Id
    pool: Id
    tier: Tier = "crowd"
    worker_id: Id
    label: ClassLabel
    time_spent_s: Annotated[float, Field(ge=0.0, le=86_400.0)]
    answered_at: Timestamp
    #: How many answers the task asked for (the aggregator's stopping point).
    overlap: Annotated[int, Field(ge=1, le=50)] = 1
    golden_label: ClassLabel | None = None

    @property
    def is_golden(self) -> bool:
        """True for an answer to a golden task (known answer)."""
        return self.golden_label is not None
