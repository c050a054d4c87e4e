"""Which events each worker voted on lately: what to revisit when a worker turns out unreliable."""

from __future__ import annotations

from collections import deque

from pydantic import BaseModel


class VoterIndex:
    """The recent events each worker voted on (at most ``events_per_worker`` each), oldest first.

    >>> index = VoterIndex(events_per_worker=2)
    >>> for event in ["e1", "e2", "e3"]:
    ...     index.add("w1", event)
    >>> index.events_of("w1"), index.events_of("w2")
    (['e2', 'e3'], [])
    >>> VoterIndex.from_json(index.to_json(), 2).events_of("w1")
    ['e2', 'e3']
    """

    def __init__(self, events_per_worker: int = 500) -> None:
        self.events_per_worker = events_per_worker
        self._events: dict[str, deque[str]] = {}

    def add(self, worker_id: str, event_id: str) -> None:
        events = self._events.get(worker_id)
        if events is None:
            events = self._events[worker_id] = deque(maxlen=self.events_per_worker)
        events.append(event_id)

    def events_of(self, worker_id: str) -> list[str]:
        return list(self._events.get(worker_id, ()))

    def to_json(self) -> str:
        return _IndexSnapshot(events={w: list(e) for w, e in self._events.items()}).model_dump_json()

    @classmethod
    def from_json(cls, text: str | None, events_per_worker: int = 500) -> VoterIndex:
        index = cls(events_per_worker)
        if text:
            for worker, events in _IndexSnapshot.model_validate_json(text).events.items():
                index._events[worker] = deque(events, maxlen=events_per_worker)
        return index


class _IndexSnapshot(BaseModel):
    events: dict[str, list[str]]
