"""The simulated crowd's backlog: its tasks, by priority, and which task a worker takes next.

A task asks for answers by the shared dynamic-overlap rule
(:class:`~agents.aggregator.overlap.DynamicOverlap`); it is queued while it needs workers
(its target minus the answers in hand and the assignments in progress). A worker takes the
highest-priority task it has not had; one it let expire only when every worker present already
had it, so a task is never stuck and never dropped.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from agents.aggregator.overlap import DynamicOverlap
from agents.pools.base import AnswerSink
from schemas import LabelRequest


@dataclass(eq=False)
class CrowdTask:
    """One label request in the crowd: its overlap rule, votes, and who had, has and let expire it."""

    request: LabelRequest
    rule: DynamicOverlap
    classes: list[str]
    on_answer: AnswerSink
    done: asyncio.Future[None]
    sort_key: tuple[float, int]
    target: int = 1
    votes: list[tuple[str, str]] = field(default_factory=list)
    #: Every worker the task was ever given to.
    assigned: set[str] = field(default_factory=set)
    #: Live assignments: worker id -> the timer that expires it at its deadline.
    open: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    expired: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)
    queued: bool = False
    complete: bool = False
    reporting: int = 0

    @property
    def need(self) -> int:
        """Workers still to find: the target minus answers in hand and assignments in progress."""
        return 0 if self.complete else self.target - len(self.votes) - len(self.open)


class Backlog:
    """The tasks that need workers, in priority order (``sort_key``: lowest first).

    >>> from types import SimpleNamespace
    >>> backlog = Backlog()
    >>> def task(priority, assigned):
    ...     return SimpleNamespace(sort_key=(-priority, 0), need=1, queued=False,
    ...                            assigned=assigned, expired=set(), answered=set())
    >>> a, b = task(0.9, set()), task(0.2, {"w1"})
    >>> backlog.queue(b); backlog.queue(a); len(backlog)
    2
    >>> backlog.next_for("w1", present=lambda: {"w1"}) is a
    True
    >>> backlog.dequeue(a); backlog.next_for("w1", present=lambda: {"w1"}) is None
    True
    """

    def __init__(self) -> None:
        self._pending: list[tuple[tuple[float, int], CrowdTask]] = []

    def __len__(self) -> int:
        return len(self._pending)

    def __iter__(self) -> Iterator[CrowdTask]:
        return (task for _, task in self._pending)

    def queue(self, task: CrowdTask) -> None:
        """Queue ``task`` if it needs workers and is not queued yet."""
        if not task.queued and task.need > 0:
            bisect.insort(self._pending, (task.sort_key, task))
            task.queued = True

    def dequeue(self, task: CrowdTask) -> None:
        """Take ``task`` out of the queue (it has all the workers it needs, or nobody waits for it)."""
        if task.queued:
            position = bisect.bisect_left(self._pending, (task.sort_key,))
            del self._pending[position]
            task.queued = False

    def next_for(self, worker_id: str, present: Callable[[], set[str]]) -> CrowdTask | None:
        """The highest-priority task ``worker_id`` has not had; else one it let expire, if nobody else can.

        ``present`` gives the ids of the active workers; it is called only when a task this worker
        let expire is pending.
        """
        for _, task in self._pending:
            if worker_id not in task.assigned:
                return task
        here: set[str] | None = None
        for _, task in self._pending:
            if worker_id in task.expired and worker_id not in task.answered:
                if here is None:
                    here = present()
                if here <= task.assigned:
                    return task
        return None
