"""The router's order back: every event's decision, released in the order the router made them.

The confidence and class-mix detectors watch every event once, as the router
decided it (:func:`agents.monitor.confidence.routed_prediction`). The router
says so on two topics: a model Label on ``labels`` for an accepted event (most
of them, the confident ones) and a LabelRequest on ``label-requests`` for one
sent to humans (the unsure ones). The monitor's two agents read those topics
independently, and one can run hundreds of records ahead of the other (fetch
batches, a busy agent), so in arrival order a run of confident events and
then a run of unsure ones reads as a shift in confidence and class mix that
the predictions never had (the demo raised one before its drift).

:class:`RouterOrder` holds each decision for ``lag_s`` seconds of the router's
own clock (``decided_at`` of a model Label, ``requested_at`` of a request, both
stamped when the router decided) and releases them oldest first: once a later
decision is ``lag_s`` newer, or the wall clock has passed it by ``lag_s`` (a
quiet stream still drains), or more than ``max_pending`` wait (memory stays
bounded whatever a clock says).
"""

from __future__ import annotations

import heapq
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


class RouterOrder(Generic[T]):
    """A reorder buffer over decision times: see the module docstring.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> start = datetime(2026, 1, 1, tzinfo=UTC)
    >>> order: RouterOrder[str] = RouterOrder(lag_s=5.0, max_pending=100)
    >>> order.push(start + timedelta(seconds=2), "b"), order.push(start, "a")
    ([], [])
    >>> order.push(start + timedelta(seconds=6), "c")
    ['a']
    >>> order.flush(start + timedelta(seconds=30))
    ['b', 'c']
    """

    def __init__(self, lag_s: float, max_pending: int) -> None:
        self.lag_s = lag_s
        self.max_pending = max_pending
        self._pending: list[tuple[float, int, T]] = []
        self._pushed = 0
        self._newest = float("-inf")

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, at: datetime, item: T) -> list[T]:
        """Add a decision made ``at``; the decisions now due, oldest first."""
        stamp = at.timestamp()
        heapq.heappush(self._pending, (stamp, self._pushed, item))
        self._pushed += 1
        self._newest = max(self._newest, stamp)
        return self._release(self._newest - self.lag_s)

    def flush(self, now: datetime) -> list[T]:
        """The decisions the wall clock ``now`` has passed by ``lag_s``, oldest first."""
        return self._release(now.timestamp() - self.lag_s)

    def _release(self, before: float) -> list[T]:
        due: list[T] = []
        pending = self._pending
        while pending and (pending[0][0] <= before or len(pending) > self.max_pending):
            due.append(heapq.heappop(pending)[2])
        return due
