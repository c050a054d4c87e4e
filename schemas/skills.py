"""A labeler's estimated skill, as the aggregator publishes it for operators."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from schemas.base import STRICT, Id, Probability, SchemaVersion1, Timestamp, WireModel


class WorkerSkill(WireModel):
    """A worker's published skill, keyed by ``worker_id`` on ``worker-skills`` (compacted).

    Published by the aggregator from its SkillBook (golden tasks, expert
    audits, agreement, Dawid–Skene), so an operator can see spammers.

    Examples
    --------
    >>> skill = WorkerSkill(worker_id="w1", pool="toloka", accuracy=0.52, n_golden=40,
    ...                     golden_accuracy=0.5, n_audited=0, n_answers=300, flagged_spammer=True)
    >>> skill.flagged_spammer, WorkerSkill.from_json_bytes(skill.to_json_bytes()) == skill
    (True, True)
    """

    model_config = STRICT

    SCHEMA_VERSION = 1
    schema_version: SchemaVersion1 = 1
    worker_id: Id
    pool: str
    #: The estimate the aggregator weighs votes with.
    accuracy: Probability
    n_golden: Annotated[int, Field(ge=0)]
    golden_accuracy: Probability | None = None
    n_audited: Annotated[int, Field(ge=0)]
    audited_accuracy: Probability | None = None
    n_answers: Annotated[int, Field(ge=0)]
    #: Share of the worker's answers that agreed with a confident aggregate.
    agreement: Probability | None = None
    dawid_skene_accuracy: Probability | None = None
    flagged_spammer: bool
    updated_at: Timestamp | None = None
