"""The explorer's pure core: topic records folded into one row per event, in any order, any number of times.

Every record a topic holds becomes a :class:`Fact` (:func:`facts_of`); the facts of one event
merge into its :class:`EventRow` by :func:`merge`, a join in the lattice sense: commutative,
associative and idempotent. A redelivered record changes nothing, and a rebuild that reads the
topics in another interleaving ends with the very rows the live index holds. Each group of
fields (the prediction, the latest label revision, the latest request) carries the key that
decides between two candidates, never the order they came in:

- the prediction: a ``PredictionEvent`` (from ``predictions`` or inside a ``LabelRequest``)
  wins over what a ``Label``'s provenance says of it; among two events of one id, the later
  ``created_at``, then the wire bytes (as ``streams/snapshot.py`` breaks ties);
- the label: the higher revision, then the later decision, then the wire bytes (the snapshot's
  rule, so the explorer's trusted label is the one ``labelloop export`` exports);
- ``n_revisions`` is the highest revision number seen (revisions count up from 1, each naming
  the one it supersedes: compaction may drop the older records, never their number);
- ``updated_at`` is the latest time any record of the event states (never the wall clock).

Answers, revisions, labelers, skills and drift alerts are kept as facts of their own
(rows of child tables keyed so a duplicate is one row).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from schemas import CrowdAnswer, DriftAlert, Label, LabelRequest, PredictionEvent, WorkerSkill

#: The routes the explorer lists: the project's RouteReason values, and ``shed`` for an event the
#: capacity gate accepted instead of sending it for review.
ExplorerRoute = Literal["accepted", "low_confidence", "control", "audit", "escalation", "shed"]


def digest(raw: bytes) -> str:
    """A short stable fingerprint of a record's wire bytes (the last tie-break, never the order).

    >>> digest(b"{}")
    'bf21a9e8fbc5a384'
    """
    return hashlib.sha1(raw).hexdigest()[:16]


def input_text(event: PredictionEvent) -> str | None:
    """What full-text search sees of an event's input: its text, else its image URL.

    >>> from schemas.examples import prediction
    >>> input_text(prediction())
    'refund please'
    """
    if event.input.text is not None:
        return event.input.text
    if event.input.image_url is not None:
        return str(event.input.image_url)
    return None


@dataclass(frozen=True)
class EventRow:
    """Everything the explorer lists of one event; None where no record has said it yet."""

    event_id: str
    task: str | None = None
    text: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    predicted: str | None = None
    confidence: float | None = None
    created_at: datetime | None = None
    #: 2: from a PredictionEvent; 1: from a Label's provenance only; 0: not known.
    prediction_rank: int = 0
    prediction_key: str = ""
    prediction_json: str | None = None
    has_embedding: bool = False
    # The latest label revision.
    trusted: str | None = None
    source: str | None = None
    revision: int | None = None
    label_decided_at: datetime | None = None
    label_key: str = ""
    label_route: str | None = None
    label_reason: str | None = None
    label_routing_json: str | None = None
    label_shed: bool = False
    n_revisions: int = 0
    # The latest label request.
    requested_at: datetime | None = None
    request_key: str = ""
    request_route: str | None = None
    request_routing_json: str | None = None
    updated_at: datetime | None = None

    @property
    def route(self) -> str | None:
        """The route that decided the event: the latest label's, else its request's."""
        if self.revision is not None:
            return "shed" if self.label_shed else self.label_route
        return self.request_route

    @property
    def routing_json(self) -> str | None:
        """The routing trace of the latest label, else of the request."""
        if self.revision is not None and self.label_routing_json is not None:
            return self.label_routing_json
        return self.request_routing_json

    @property
    def disagree(self) -> bool | None:
        """Whether the trusted label differs from the model's (None until both are known)."""
        if self.trusted is None or self.predicted is None:
            return None
        return self.trusted != self.predicted

    @property
    def listed(self) -> bool:
        """Whether the row has a prediction to list (an answer alone does not make an event)."""
        return self.predicted is not None and self.task is not None


_PREDICTION_FIELDS = (
    "task",
    "text",
    "model_name",
    "model_version",
    "predicted",
    "confidence",
    "created_at",
    "prediction_rank",
    "prediction_key",
    "prediction_json",
    "has_embedding",
)
_LABEL_FIELDS = (
    "trusted",
    "source",
    "revision",
    "label_decided_at",
    "label_key",
    "label_route",
    "label_reason",
    "label_routing_json",
    "label_shed",
)
_REQUEST_FIELDS = ("requested_at", "request_key", "request_route", "request_routing_json")


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


_NEVER = datetime.min.replace(tzinfo=UTC)


def merge(a: EventRow, b: EventRow) -> EventRow:
    """The join of two partial rows of one event: commutative, associative, idempotent.

    >>> from schemas.examples import human_label, prediction
    >>> p, l1 = row_of_prediction(prediction()), row_of_label(human_label(), b"l1")
    >>> merge(p, l1) == merge(l1, p) == merge(merge(p, l1), l1)
    True
    >>> merge(p, l1).trusted, merge(p, l1).disagree
    ('fraud', True)
    """
    if a.event_id != b.event_id:
        raise ValueError(f"cannot merge rows of {a.event_id!r} and {b.event_id!r}")
    # The hot loop of the indexer: plain dicts, no dataclasses.replace (3x slower here).
    left, right = a.__dict__, b.__dict__
    out = dict(left)
    if _prediction_key(b) > _prediction_key(a):
        for name in _PREDICTION_FIELDS:
            out[name] = right[name]
    if _label_key(b) > _label_key(a):
        for name in _LABEL_FIELDS:
            out[name] = right[name]
    if _request_key(b) > _request_key(a):
        for name in _REQUEST_FIELDS:
            out[name] = right[name]
    out["n_revisions"] = max(a.n_revisions, b.n_revisions)
    out["updated_at"] = _later(a.updated_at, b.updated_at)
    merged = object.__new__(EventRow)
    merged.__dict__.update(out)
    return merged


def _prediction_key(row: EventRow) -> tuple[int, datetime, str]:
    return (row.prediction_rank, row.created_at or _NEVER, row.prediction_key)


def _label_key(row: EventRow) -> tuple[int, datetime, str]:
    return (row.revision or 0, row.label_decided_at or _NEVER, row.label_key)


def _request_key(row: EventRow) -> tuple[datetime, str]:
    return (row.requested_at or _NEVER, row.request_key)


def row_of_prediction(event: PredictionEvent, raw: bytes | None = None) -> EventRow:
    """The row a PredictionEvent says: its input, model and prediction."""
    # The wire bytes are the event's JSON as its producer published it (a request's embedded
    # prediction is serialised here, once).
    wire = raw if raw is not None else event.to_json_bytes()
    return EventRow(
        event_id=event.event_id,
        task=event.task,
        text=input_text(event),
        model_name=event.model_name,
        model_version=event.model_version,
        predicted=event.predicted_label,
        confidence=event.confidence,
        created_at=event.created_at,
        prediction_rank=2,
        prediction_key=digest(wire),
        prediction_json=wire.decode("utf-8"),
        has_embedding=event.input.embedding is not None,
        updated_at=event.created_at,
    )


def row_of_request(request: LabelRequest, raw: bytes | None = None) -> EventRow:
    """The row a LabelRequest says: its prediction, and why it was sent to humans."""
    wire = raw if raw is not None else request.to_json_bytes()
    routing = request.routing.to_json_bytes().decode("utf-8") if request.routing is not None else None
    asked = EventRow(
        event_id=request.event_id,
        requested_at=request.requested_at,
        request_key=digest(wire),
        request_route=request.route,
        request_routing_json=routing,
        updated_at=request.requested_at,
    )
    return merge(row_of_prediction(request.prediction), asked)


def is_shed(label: Label) -> bool:
    """An accepted label the capacity gate shed: it carries the review's trace with its budget.

    The router accepts an event it would have reviewed when the gate is full and keeps the
    review's trace (``budget`` set), which plain accepts never have (agents/router/policy.py).
    """
    return label.route == "accepted" and label.routing is not None and label.routing.budget is not None


def row_of_label(label: Label, raw: bytes | None = None) -> EventRow:
    """The row a Label revision says: the trusted label, and the model's prediction it kept."""
    wire = raw if raw is not None else label.to_json_bytes()
    return EventRow(
        event_id=label.event_id,
        task=label.task,
        model_name=label.provenance.model_name,
        model_version=label.provenance.model_version,
        predicted=label.provenance.model_label,
        confidence=label.provenance.model_confidence,
        created_at=label.prediction_created_at,
        prediction_rank=1,
        trusted=label.label,
        source=label.source,
        revision=label.revision,
        label_decided_at=label.decided_at,
        label_key=digest(wire),
        label_route=label.route,
        label_reason=label.reason,
        label_routing_json=label.routing.to_json_bytes().decode("utf-8") if label.routing else None,
        label_shed=is_shed(label),
        n_revisions=label.revision,
        updated_at=label.decided_at,
    )


def row_of_answer(answer: CrowdAnswer) -> EventRow:
    """An answer only moves its event's ``updated_at`` (the answer itself is an :class:`AnswerFact`)."""
    return EventRow(event_id=answer.event_id, updated_at=answer.answered_at)


@dataclass(frozen=True)
class AnswerFact:
    """One labeler's answer on one event (a duplicate is the same fact)."""

    event_id: str
    worker_id: str
    task_id: str
    answered_at: datetime
    label: str
    golden_label: str | None
    pool: str
    tier: str


@dataclass(frozen=True)
class RevisionFact:
    """One label revision as it was published (every revision is kept, oldest first on the record page)."""

    event_id: str
    revision: int
    key: str
    decided_at: datetime
    label_json: str


@dataclass(frozen=True)
class SkillFact:
    """A labeler's published skill; the later ``updated_at`` (then the bytes) wins."""

    worker_id: str
    key: str
    accuracy: float
    skill_json: str


@dataclass(frozen=True)
class AlertFact:
    """A drift alert: the window of events after it can be a filter."""

    alert_id: str
    detector: str
    task: str
    signal: str
    predicted_class: str | None
    detected_at: datetime
    alert_json: str


@dataclass(frozen=True)
class Facts:
    """What a batch of records says: partial rows per event and the child facts."""

    rows: dict[str, EventRow] = field(default_factory=dict)
    answers: list[AnswerFact] = field(default_factory=list)
    revisions: list[RevisionFact] = field(default_factory=list)
    #: (event_id, labeler): who answered or decided an event.
    labelers: set[tuple[str, str]] = field(default_factory=set)
    skills: list[SkillFact] = field(default_factory=list)
    alerts: list[AlertFact] = field(default_factory=list)
    #: event_id -> the producer's embedding (the last one of the batch; a prediction is immutable).
    embeddings: dict[str, tuple[str, list[float]]] = field(default_factory=dict)

    def add_row(self, row: EventRow) -> None:
        """Merge ``row`` into the batch's row of its event."""
        current = self.rows.get(row.event_id)
        self.rows[row.event_id] = row if current is None else merge(current, row)

    def add(self, record: Any, raw: bytes | None = None) -> None:
        """Fold one decoded record (any of the six topics' models) into the batch."""
        if isinstance(record, PredictionEvent):
            self.add_row(row_of_prediction(record, raw))
            self._embedding(record)
        elif isinstance(record, LabelRequest):
            self.add_row(row_of_request(record, raw))
            self._embedding(record.prediction)
        elif isinstance(record, CrowdAnswer):
            self.add_row(row_of_answer(record))
            self.answers.append(
                AnswerFact(
                    event_id=record.event_id,
                    worker_id=record.worker_id,
                    task_id=record.task_id,
                    answered_at=record.answered_at,
                    label=record.label,
                    golden_label=record.golden_label,
                    pool=record.pool,
                    tier=record.tier,
                )
            )
            self.labelers.add((record.event_id, record.worker_id))
        elif isinstance(record, Label):
            wire = raw if raw is not None else record.to_json_bytes()
            row = row_of_label(record, wire)
            self.add_row(row)
            self.revisions.append(
                RevisionFact(
                    event_id=record.event_id,
                    revision=record.revision,
                    key=row.label_key,
                    decided_at=record.decided_at,
                    label_json=wire.decode("utf-8"),
                )
            )
            for worker_id in record.provenance.worker_ids:
                self.labelers.add((record.event_id, worker_id))
        elif isinstance(record, WorkerSkill):
            wire = raw if raw is not None else record.to_json_bytes()
            updated = record.updated_at.isoformat() if record.updated_at is not None else ""
            self.skills.append(
                SkillFact(
                    worker_id=record.worker_id,
                    key=f"{updated}|{digest(wire)}",
                    accuracy=record.accuracy,
                    skill_json=record.to_json_bytes().decode("utf-8"),
                )
            )
        elif isinstance(record, DriftAlert):
            self.alerts.append(
                AlertFact(
                    alert_id=alert_id(record),
                    detector=record.detector,
                    task=record.task,
                    signal=record.signal,
                    predicted_class=record.predicted_class,
                    detected_at=record.detected_at,
                    alert_json=record.to_json_bytes().decode("utf-8"),
                )
            )
        else:
            raise TypeError(f"the explorer indexes no {type(record).__name__}")

    def _embedding(self, event: PredictionEvent) -> None:
        if event.input.embedding is not None:
            self.embeddings[event.event_id] = (event.task, list(event.input.embedding))


def alert_id(alert: DriftAlert) -> str:
    """The drift window's name in filters: ``<detector>@<detected_at>``.

    >>> from datetime import datetime, UTC
    >>> alert_id(DriftAlert(detector="adwin-x", detector_kind="ADWIN", signal="model_error",
    ...     observation=3, detected_at=datetime(2026, 1, 1, tzinfo=UTC), before=0.1, after=0.3,
    ...     message="error rose"))
    'adwin-x@2026-01-01T00:00:00+00:00'
    """
    return f"{alert.detector}@{alert.detected_at.isoformat()}"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys (stable bytes for comparing two indexes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
