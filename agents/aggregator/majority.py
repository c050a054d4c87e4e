"""Turn the answers of one task into a label: majority vote over a fixed overlap.

The state of a task (its request context and the answers so far) is a small
JSON document kept in a faust table by the agent; this core only transforms
it. Answers and the request can arrive in either order; an answer from the
same worker twice counts once; answers after the decision are ignored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas import CrowdAnswer, Label, LabelProvenance, LabelRequest
from schemas.labels import RouteReason, RoutingTrace


class TaskContext(BaseModel):
    """What the aggregator needs to know about the request behind a task."""

    model_config = ConfigDict(frozen=True)

    task: str
    model_name: str
    model_version: str
    model_label: str
    model_confidence: float
    prediction_created_at: datetime
    route: RouteReason
    inclusion_probability: float
    reason: str
    overlap: int | None
    routing: RoutingTrace | None = None

    @classmethod
    def of(cls, request: LabelRequest) -> TaskContext:
        """The context of ``request``."""
        prediction = request.prediction
        return cls(
            task=prediction.task,
            model_name=prediction.model_name,
            model_version=prediction.model_version,
            model_label=prediction.predicted_label,
            model_confidence=prediction.confidence,
            prediction_created_at=prediction.created_at,
            route=request.route,
            inclusion_probability=request.inclusion_probability,
            reason=request.reason,
            overlap=request.overlap,
            routing=request.routing,
        )


class Vote(BaseModel):
    """One worker's (non-golden) answer, as the task state keeps it."""

    model_config = ConfigDict(frozen=True)

    worker_id: str
    label: str
    pool: str
    tier: Literal["crowd", "expert"]
    overlap: int


class TaskState(BaseModel):
    """A task's aggregation state; ``decided`` is set once its Label is out."""

    context: TaskContext | None = None
    votes: list[Vote] = []
    decided: str | None = None

    def to_json(self) -> str:
        """The state as stored in the table."""
        return self.model_dump_json(exclude_defaults=True)

    @classmethod
    def from_json(cls, text: str | None) -> TaskState:
        """A stored state, or a fresh one."""
        return cls() if not text else cls.model_validate_json(text)


def majority(labels: Sequence[str]) -> tuple[str, float]:
    """The most frequent label and its share of the votes; ties go to the smallest label.

    >>> majority(["cat", "dog", "cat"])
    ('cat', 0.6666666666666666)
    >>> majority(["dog", "cat"])
    ('cat', 0.5)
    """
    if not labels:
        raise ValueError("no votes to aggregate")
    counts = Counter(labels)
    best = min(counts, key=lambda label: (-counts[label], label))
    return best, counts[best] / len(labels)


class MajorityVoteAggregator:
    """Decide a task once it has ``overlap`` distinct workers' answers and its context.

    Parameters
    ----------
    default_overlap
        Answers to wait for when neither the request nor the answers say.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> aggregator = MajorityVoteAggregator(default_overlap=3)
    >>> when = datetime(2026, 1, 1, tzinfo=UTC)
    >>> state = TaskState(context=TaskContext(
    ...     task="default", model_name="m", model_version="1", model_label="dog",
    ...     model_confidence=0.6, prediction_created_at=when, route="low_confidence",
    ...     inclusion_probability=1.0, reason="low", overlap=3))
    >>> label = None
    >>> for worker, answer in [("w1", "cat"), ("w2", "dog"), ("w2", "dog"), ("w3", "cat")]:
    ...     state, label = aggregator.observe_answer(state, CrowdAnswer(
    ...         event_id="e1", task_id="t", pool="sim", worker_id=worker, label=answer,
    ...         time_spent_s=1.0, answered_at=when, overlap=3), "e1", when)
    >>> label.label, round(label.confidence, 3), label.provenance.n_answers
    ('cat', 0.667, 3)
    """

    def __init__(self, default_overlap: int = 3) -> None:
        self.default_overlap = default_overlap

    def observe_request(
        self, state: TaskState, request: LabelRequest, now: datetime
    ) -> tuple[TaskState, Label | None]:
        """Record the request's context; decide if the answers are already in."""
        if state.decided is not None or state.context is not None:
            return state, None
        return self._maybe_decide(
            state.model_copy(update={"context": TaskContext.of(request)}), request.event_id, now
        )

    def observe_answer(
        self, state: TaskState, answer: CrowdAnswer, event_id: str, now: datetime
    ) -> tuple[TaskState, Label | None]:
        """Record one answer (once per worker); decide when enough are in."""
        if state.decided is not None or answer.is_golden:
            return state, None
        if any(vote.worker_id == answer.worker_id for vote in state.votes):
            return state, None
        vote = Vote(
            worker_id=answer.worker_id,
            label=answer.label,
            pool=answer.pool,
            tier=answer.tier,
            overlap=answer.overlap,
        )
        return self._maybe_decide(state.model_copy(update={"votes": [*state.votes, vote]}), event_id, now)

    def _overlap(self, state: TaskState) -> int:
        if state.context is not None and state.context.overlap is not None:
            return state.context.overlap
        if state.votes:
            return state.votes[0].overlap
        return self.default_overlap

    def _maybe_decide(self, state: TaskState, event_id: str, now: datetime) -> tuple[TaskState, Label | None]:
        context = state.context
        if context is None or len(state.votes) < self._overlap(state):
            return state, None
        label, share = majority([vote.label for vote in state.votes])
        source: Literal["crowd", "expert"] = (
            "expert" if all(vote.tier == "expert" for vote in state.votes) else "crowd"
        )
        # An audit revisits an event the model labeled already: its verdict is revision 2,
        # confirming or correcting revision 1 (so consumers see that humans checked it).
        audit = context.route == "audit"
        if audit:
            verdict = "confirmed" if label == context.model_label else f"corrected {context.model_label!r}"
            reason = f"{context.reason}: {verdict}"
        else:
            reason = context.reason
        decided = Label(
            event_id=event_id,
            task=context.task,
            label=label,
            source=source,
            revision=2 if audit else 1,
            supersedes=1 if audit else None,
            confidence=share,
            route=context.route,
            inclusion_probability=context.inclusion_probability,
            reason=reason,
            routing=context.routing,
            decided_at=now,
            prediction_created_at=context.prediction_created_at,
            provenance=LabelProvenance(
                model_name=context.model_name,
                model_version=context.model_version,
                model_label=context.model_label,
                model_confidence=context.model_confidence,
                n_answers=len(state.votes),
                pool=state.votes[0].pool,
                worker_ids=[vote.worker_id for vote in state.votes],
            ),
        )
        return TaskState(decided=label), decided
