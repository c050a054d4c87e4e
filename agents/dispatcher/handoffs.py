"""Which label requests this worker is working on, and which it must pick up again.

The dispatcher acknowledges a request as soon as it hands it to a pool and
records it in a table of open tasks (changelogged, keyed by event id). A task
leaves the table when its pool has every answer (a ``dispatcher-done`` record,
so the delete happens in the key's partition). The open-task table, not a held
offset, is what survives a crash: the worker that owns a partition after a
rebalance starts every open task of that partition it is not already running.
Holding offsets instead made every rebalance wait for the slowest human task
(faust's ``stream_wait_empty``), minutes with people.

:class:`Handoffs` is the pure bookkeeping: what runs here, what finished but is
still in the table (its delete is on its way), which open tasks to start on
recovery and which to cancel when partitions are revoked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from schemas import LabelRequest
from schemas.base import Id, Timestamp, WireModel

T = TypeVar("T")


class OpenTask(WireModel):
    """A request handed to a pool and not finished yet (the ``dispatcher-open`` table's value)."""

    SCHEMA_VERSION = 1
    schema_version: Literal[1] = 1
    #: The label-requests partition and offset the request came from (the table's partition).
    partition: int
    offset: int
    request: LabelRequest


class TaskDone(WireModel):
    """A pool has every answer of a request, or gave up on it (internal topic ``dispatcher-done``)."""

    SCHEMA_VERSION = 1
    schema_version: Literal[1] = 1
    event_id: Id
    #: "answered", or "dead-lettered" when the pool rejected the request for good.
    outcome: Literal["answered", "dead-lettered"]
    finished_at: Timestamp


@dataclass
class Handoffs(Generic[T]):
    """Tasks running on this worker (event id -> partition and handle) and those finished here.

    >>> handoffs: Handoffs[str] = Handoffs()
    >>> handoffs.started("e1", 0, "task-1"); handoffs.started("e2", 1, "task-2")
    >>> handoffs.busy("e1"), handoffs.busy("e3")
    (True, False)
    >>> handoffs.finished("e1", "task-1")
    >>> handoffs.busy("e1")   # finished, its delete not seen yet: never started again
    True
    >>> handoffs.revoke({1})
    ['task-2']
    >>> handoffs.to_recover([("e3", 0), ("e4", 2), ("e1", 0)], actives={0, 1})
    ['e3']
    """

    running: dict[str, tuple[int, T]] = field(default_factory=dict)
    #: Finished here; the table still holds them until their done record is processed.
    done: dict[str, int] = field(default_factory=dict)

    def busy(self, event_id: str) -> bool:
        """Running here, or finished here and leaving the table: do not start it (again)."""
        return event_id in self.running or event_id in self.done

    def started(self, event_id: str, partition: int, handle: T) -> None:
        self.running[event_id] = (partition, handle)

    def stopped(self, event_id: str, handle: T) -> None:
        """``handle`` ended without finishing (cancelled, failed): the task stays open in the table."""
        if self._is(event_id, handle):
            del self.running[event_id]

    def finished(self, event_id: str, handle: T) -> None:
        """``handle`` has every answer (or dead-lettered the request): its done record is on the way."""
        if self._is(event_id, handle):
            self.done[event_id] = self.running.pop(event_id)[0]

    def _is(self, event_id: str, handle: T) -> bool:
        # A task revoked and started again here has a new handle: the old one's end changes nothing.
        entry = self.running.get(event_id)
        return entry is not None and entry[1] is handle

    def closed(self, event_id: str) -> None:
        """Its done record was processed: the table no longer holds it."""
        self.done.pop(event_id, None)

    def revoke(self, partitions: set[int]) -> list[T]:
        """Forget the tasks of partitions this worker lost; the handles to cancel."""
        lost = [event_id for event_id, (partition, _) in self.running.items() if partition in partitions]
        handles = [self.running.pop(event_id)[1] for event_id in lost]
        for event_id in [e for e, partition in self.done.items() if partition in partitions]:
            del self.done[event_id]
        return handles

    def outside(self, actives: set[int]) -> set[int]:
        """Partitions of running tasks this worker no longer owns."""
        return {partition for partition, _ in self.running.values()} - actives

    def to_recover(self, open_tasks: Iterable[tuple[str, int]], actives: set[int]) -> list[str]:
        """Open tasks (event id, partition) of owned partitions that nobody runs here."""
        return [
            event_id for event_id, partition in open_tasks if partition in actives and not self.busy(event_id)
        ]
