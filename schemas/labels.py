"""The public output contract: the trusted label of an event, as a revision on a compacted topic."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from schemas.base import STRICT, ClassLabel, Id, Probability, Reason, SchemaVersion1, Timestamp, WireModel

LabelSource = Literal["model", "crowd", "expert"]
#: Why a human saw the event: low confidence (review), the control group, a recall audit, an escalation.
RouteReason = Literal["accepted", "low_confidence", "control", "audit", "escalation"]


class RoutingTrace(WireModel):
    """Why the router routed an event as it did: enough to explain any routing after the fact."""

    model_config = STRICT

    measure: Literal["max_probability", "margin", "entropy"]
    uncertainty: Probability
    threshold: Probability
    policy_version: Annotated[int, Field(ge=0)]
    #: The capacity gate's state when it decided (reviews only), e.g. the review budget.
    budget: Annotated[str, StringConstraints(max_length=512)] | None = None
    #: Whether the online model disagreed with the production model.
    disagreement: bool | None = None
    #: The class whose recall an audit measures (audits only).
    audited_class: ClassLabel | None = None


class LabelProvenance(WireModel):
    """Where a label came from: the production model, and the humans if any."""

    model_config = STRICT

    model_name: Id
    model_version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    #: The production model's own prediction for the event (kept so error can be measured).
    model_label: ClassLabel
    model_confidence: Probability
    n_answers: Annotated[int, Field(ge=0, le=1_000)] = 0
    pool: Id | None = None
    worker_ids: Annotated[list[Id], Field(max_length=100)] = Field(default_factory=list)
    #: The operator who set this revision by hand (a correction or a bulk label in the record
    #: explorer, or the undo of one); None for the loop's own revisions.
    operator: Id | None = None
    #: The operator's reason, as they gave it.
    operator_reason: Reason | None = None
    #: The explorer's bulk action this revision belongs to (its undo finds it by this id).
    action_id: Id | None = None


class Label(WireModel):
    """The trusted label of one event, keyed by ``event_id`` on ``labels``.

    ``labels`` is compacted: the latest ``revision`` of an event is the truth.
    Revision 1 comes from the router (``source="model"``) or the aggregator
    (``crowd``/``expert``); later revisions only from audits or corrections and
    name the revision they ``supersede``.

    A rule this JSON Schema cannot express, which the loop refuses all the
    same: an integer (``revision``, ``n_answers``, ...) is written without a
    fraction or exponent (``1``, not ``1.0``: JSON Schema's ``integer`` admits
    ``1.0``). As for every record: at most 900,000 bytes of UTF-8 JSON, with
    at most 200 levels of arrays and objects inside its own object, without
    lone surrogates or ``NaN``; the calendar behind the timestamps' pattern is
    ``format: date-time``'s.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> label = Label(
    ...     event_id="tx-1", task="default", label="fraud", source="crowd", revision=1,
    ...     confidence=0.93, route="low_confidence",
    ...     decided_at=datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC),
    ...     prediction_created_at=datetime(2026, 1, 1, tzinfo=UTC),
    ...     provenance=LabelProvenance(model_name="fraud", model_version="3", model_label="ok",
    ...                                model_confidence=0.55, n_answers=3, pool="simulated"))
    >>> label.is_human, label.model_was_right
    (True, False)
    """

    model_config = STRICT

    SCHEMA_VERSION = 1
    schema_version: SchemaVersion1 = 1
    event_id: Id
    task: Id = "default"
    label: ClassLabel
    source: LabelSource
    revision: Annotated[int, Field(ge=1)] = 1
    supersedes: Annotated[int, Field(ge=1)] | None = None
    confidence: Probability
    #: The route that decided who labels the event; with ``inclusion_probability``
    #: it lets estimators weight human labels without bias.
    route: RouteReason
    inclusion_probability: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    reason: Reason | None = None
    routing: RoutingTrace | None = None
    decided_at: Timestamp
    prediction_created_at: Timestamp
    provenance: LabelProvenance

    @property
    def is_human(self) -> bool:
        """True when people (crowd or experts) decided this label."""
        return self.source != "model"

    @property
    def model_was_right(self) -> bool:
        """Whether the production model predicted this label."""
        return self.provenance.model_label == self.label
