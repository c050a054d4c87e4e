"""The expert tier's work queue: tasks by priority, leases to named experts, answers counted once.

A pure core (no HTTP, no asyncio): every call takes ``now_s``, seconds of a
monotonic clock, so tests drive time by hand.

* Tasks are handed out highest ``priority`` first, first come first served
  among equals.
* An expert holds at most one lease; asking again (a page reload) gives back the
  same task, shown at the same time.
* An expert is never shown the same task twice, and a task never gets more
  than ``overlap`` answers, each from a different expert.
* A lease not answered within ``lease_s`` expires: the slot goes back to the
  queue (the task is never lost) and another expert can take it. The expert who
  let it expire may still answer it (the page keeps showing it): that answer is
  used once if the task is still open; once the task has its ``overlap``
  answers, it is refused as closed.

The one error is :class:`AnswerRefusedError`, whose ``kind`` says why.
"""

from __future__ import annotations

import bisect
import itertools
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from agents.rates import WindowRate
from schemas import LabelRequest
from streams.errors import LabelloopError

RefusalKind = Literal["unknown_task", "closed", "not_shown", "duplicate", "unknown_label"]


class AnswerRefusedError(LabelloopError):
    """An expert's answer that cannot be used; ``kind`` says why (``unknown_label`` is the client's fault).

    >>> str(AnswerRefusedError("closed", "task tx-1 already has its answers", event_id="tx-1"))
    'task tx-1 already has its answers (event_id=tx-1)'
    """

    def __init__(self, kind: RefusalKind, message: str, *, event_id: str) -> None:
        super().__init__(message, event_id=event_id)
        self.kind: RefusalKind = kind


@dataclass(frozen=True)
class Lease:
    """A task shown to one expert, reserved for them until ``expires_at_s``."""

    event_id: str
    expert: str
    shown_at_s: float
    expires_at_s: float


@dataclass(frozen=True)
class RecordedAnswer:
    """An expert's answer the queue accepted."""

    request: LabelRequest
    expert: str
    label: str
    #: Seconds from when the task was shown to this expert until the answer.
    time_spent_s: float
    overlap: int
    #: The answer came after its lease had expired (used once all the same).
    late: bool
    #: This answer was the task's last one: the request is complete.
    completes: bool


@dataclass(eq=False)
class _Task:
    request: LabelRequest
    overlap: int
    labels: frozenset[str]
    sort_key: tuple[float, int]
    shown_to: set[str] = field(default_factory=set)
    leases: dict[str, Lease] = field(default_factory=dict)
    expired: dict[str, Lease] = field(default_factory=dict)
    answered_by: set[str] = field(default_factory=set)

    @property
    def open_slots(self) -> int:
        return self.overlap - len(self.answered_by) - len(self.leases)


class ExpertQueue:
    """Priority queue of label requests with per-expert leases.

    Parameters
    ----------
    lease_s
        Seconds a shown task stays reserved for its expert.
    active_window_s
        An expert seen (leasing, answering, polling) within this window is active.
    service_window
        How many recent answer times :meth:`service_time_s` takes the median of.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> from schemas import PredictionEvent, PredictionInput
    >>> def ask(event_id, priority):
    ...     event = PredictionEvent(event_id=event_id, model_name="m", model_version="1",
    ...                             created_at=datetime(2026, 1, 1, tzinfo=UTC),
    ...                             input=PredictionInput(text="meow"), predicted_label="dog",
    ...                             scores={"dog": 0.6, "cat": 0.4})
    ...     return LabelRequest(prediction=event, route="low_confidence", reason="low",
    ...                         priority=priority, uncertainty=0.4, requested_at=event.created_at)
    >>> queue = ExpertQueue(lease_s=60.0)
    >>> queue.add(ask("low", 0.1), overlap=1, now_s=0.0)
    True
    >>> queue.add(ask("high", 0.9), overlap=1, now_s=0.0)
    True
    >>> lease = queue.lease("ada", now_s=1.0)
    >>> lease.event_id
    'high'
    >>> answer = queue.answer("ada", "high", "cat", now_s=5.0)
    >>> answer.time_spent_s, answer.completes
    (4.0, True)
    >>> queue.backlog(now_s=5.0)
    1
    """

    def __init__(self, lease_s: float, *, active_window_s: float = 120.0, service_window: int = 50) -> None:
        self.lease_s = lease_s
        self.active_window_s = active_window_s
        #: While paused, :meth:`lease` hands out nothing (answers to shown tasks are still taken).
        self.paused = False
        self._tasks: dict[str, _Task] = {}
        self._order: list[tuple[tuple[float, int], str]] = []
        self._seq = itertools.count()
        self._held: dict[str, Lease] = {}
        self._last_seen: dict[str, float] = {}
        self._answered_by_expert: dict[str, int] = {}
        self._service_times: deque[float] = deque(maxlen=service_window)
        self.arrivals = WindowRate()
        self.answers = WindowRate()
        self.answers_total = 0
        self.tasks_done = 0

    # -- tasks -------------------------------------------------------------------------------

    def add(self, request: LabelRequest, overlap: int, now_s: float) -> bool:
        """Queue ``request`` for ``overlap`` answers; False when its event is already queued."""
        if request.event_id in self._tasks:
            return False
        sort_key = (-request.priority, next(self._seq))
        self._tasks[request.event_id] = _Task(
            request, overlap, frozenset(request.prediction.scores), sort_key
        )
        bisect.insort(self._order, (sort_key, request.event_id))
        self.arrivals.add(now_s)
        return True

    def withdraw(self, event_id: str) -> bool:
        """Drop an open task (its request was cancelled); False when it was not open."""
        task = self._tasks.pop(event_id, None)
        if task is None:
            return False
        self._order.remove((task.sort_key, event_id))
        for expert, lease in task.leases.items():
            if self._held.get(expert) is lease:
                del self._held[expert]
        return True

    def request(self, event_id: str) -> LabelRequest | None:
        """The open request for ``event_id``, if any."""
        task = self._tasks.get(event_id)
        return None if task is None else task.request

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._tasks

    # -- leases ------------------------------------------------------------------------------

    def expire(self, now_s: float) -> list[Lease]:
        """Return the slots of leases past their time to the queue; the leases that expired."""
        expired = [lease for lease in self._held.values() if lease.expires_at_s <= now_s]
        for lease in expired:
            del self._held[lease.expert]
            task = self._tasks[lease.event_id]
            del task.leases[lease.expert]
            task.expired[lease.expert] = lease
        return expired

    def lease(self, expert: str, now_s: float) -> Lease | None:
        """The task ``expert`` should look at now, or None when nothing is waiting for them."""
        self.seen(expert, now_s)
        self.expire(now_s)
        held = self._held.get(expert)
        if held is not None:
            return held
        if self.paused:
            return None
        for _, event_id in self._order:
            task = self._tasks[event_id]
            if task.open_slots > 0 and expert not in task.shown_to:
                lease = Lease(event_id, expert, now_s, now_s + self.lease_s)
                task.shown_to.add(expert)
                task.leases[expert] = lease
                self._held[expert] = lease
                return lease
        return None

    # -- answers -----------------------------------------------------------------------------

    def answer(self, expert: str, event_id: str, label: str, now_s: float) -> RecordedAnswer:
        """Take ``expert``'s ``label`` for ``event_id``; raises :class:`AnswerRefusedError` if unusable."""
        self.seen(expert, now_s)
        self.expire(now_s)
        task = self._tasks.get(event_id)
        if task is None:
            raise AnswerRefusedError(
                "closed", f"task {event_id} is not open (answered or withdrawn)", event_id=event_id
            )
        if label not in task.labels:
            raise AnswerRefusedError(
                "unknown_label",
                f"label {label!r} is not one of {sorted(task.labels)}",
                event_id=event_id,
            )
        if expert in task.answered_by:
            raise AnswerRefusedError(
                "duplicate", f"{expert} already answered task {event_id}", event_id=event_id
            )
        lease = task.leases.pop(expert, None)
        late = lease is None
        if lease is None:
            lease = task.expired.pop(expert, None)
        if lease is None:
            raise AnswerRefusedError(
                "not_shown", f"task {event_id} was not shown to {expert}", event_id=event_id
            )
        if self._held.get(expert) is lease:
            del self._held[expert]
        task.answered_by.add(expert)
        completes = len(task.answered_by) >= task.overlap
        if completes:
            self._close(task)
        time_spent_s = max(0.0, now_s - lease.shown_at_s)
        self._service_times.append(time_spent_s)
        self._answered_by_expert[expert] = self._answered_by_expert.get(expert, 0) + 1
        self.answers.add(now_s)
        self.answers_total += 1
        return RecordedAnswer(task.request, expert, label, time_spent_s, task.overlap, late, completes)

    def _close(self, task: _Task) -> None:
        self.withdraw(task.request.event_id)
        self.tasks_done += 1

    # -- what the page and the status report show --------------------------------------------

    def seen(self, expert: str, now_s: float) -> None:
        """Note that ``expert`` is at the page (they count as active for a while)."""
        self._last_seen[expert] = now_s

    def active_experts(self, now_s: float) -> int:
        """Experts seen within the active window."""
        return sum(1 for seen_s in self._last_seen.values() if seen_s > now_s - self.active_window_s)

    def backlog(self, now_s: float) -> int:
        """Open tasks with a slot no expert holds (waiting for someone)."""
        self.expire(now_s)
        return sum(1 for task in self._tasks.values() if task.open_slots > 0)

    def waiting_for(self, expert: str, now_s: float) -> int:
        """Open tasks ``expert`` could still be shown."""
        self.expire(now_s)
        return sum(1 for task in self._tasks.values() if task.open_slots > 0 and expert not in task.shown_to)

    def in_progress(self, now_s: float) -> int:
        """Leases held now."""
        self.expire(now_s)
        return len(self._held)

    def answered_by(self, expert: str) -> int:
        """How many answers ``expert`` has given."""
        return self._answered_by_expert.get(expert, 0)

    def service_time_s(self) -> float | None:
        """Median seconds per answer over the recent answers, None before the first one.

        The median, because an expert who walks away from a shown task and answers an
        hour later is one outlier, not a slower tier.
        """
        return statistics.median(self._service_times) if self._service_times else None
