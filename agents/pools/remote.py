"""A crowd outside the worker process: it reads ``label-requests`` and writes ``crowd-answers`` itself.

In production the crowd is remote (Toloka, a vendor's annotation tool, a team's own labeling
service): the worker should spend nothing on it. With this backend the dispatcher hands a
request over by leaving it on ``label-requests``, where the remote crowd reads it (its own
consumer group), and the remote crowd's answers come back on ``crowd-answers`` to the
aggregator, like any pool's. ``agents/simulation/remote_crowd.py`` is such a crowd for local
runs and benches (an instant, perfect one).

The worker cannot see the remote crowd's people: its status reports the headcount it was told
(``workers``, changed by scale commands) and the requests it handed over.
"""

from __future__ import annotations

import time
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from agents.pools.base import AnswerSink
from agents.rates import WindowRate
from schemas import LabelRequest, PoolStatus, Tier


class RemoteCrowdSettings(BaseModel):
    """The remote crowd as the worker knows it (``LABELLOOP_POOLS__REMOTE__*``)."""

    model_config = ConfigDict(frozen=True)

    #: ``enabled=True`` makes it the crowd tier instead of the simulated crowd.
    enabled: bool = False
    name: str = "remote"
    #: The headcount it reports (the remote crowd's own; scale commands change what is reported).
    workers: int = Field(default=20, ge=0, le=100_000)
    #: Answers the remote crowd gives per task (the aggregator's stopping point).
    overlap: int = Field(default=2, ge=1, le=50)
    #: Labels per minute one of its labelers gives, for the capacity it reports.
    labels_per_worker_min: float = Field(default=6.0, gt=0.0)
    cost_per_label: float = Field(default=0.02, ge=0.0)


class RemoteCrowd:
    """A :class:`~agents.pools.base.LabelingBackend` whose labelers are elsewhere, on the topics.

    >>> from datetime import UTC, datetime
    >>> crowd = RemoteCrowd(RemoteCrowdSettings(enabled=True, workers=3, labels_per_worker_min=4))
    >>> crowd.resize(6)
    >>> status = crowd.status(datetime(2026, 1, 1, tzinfo=UTC))
    >>> status.backend, status.workers, status.capacity_per_min
    ('remote', 6, 12.0)
    """

    tier: Tier = "crowd"

    def __init__(self, settings: RemoteCrowdSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self._workers = settings.workers
        self._active = True
        self._arrivals = WindowRate()
        self.handed = 0

    async def start(self) -> None:
        """Nothing to start: the crowd runs elsewhere."""

    async def stop(self) -> None:
        """Nothing to stop."""

    async def label(self, request: LabelRequest, on_answer: AnswerSink | None) -> None:
        """Hand ``request`` over: it is on ``label-requests``, where the remote crowd reads it."""
        self.handed += 1
        self._arrivals.add(time.monotonic())

    def status(self, now: datetime) -> PoolStatus:
        """What the worker knows of the remote crowd: the headcount it was told, what it handed over."""
        capacity = self._workers * self.settings.labels_per_worker_min / self.settings.overlap
        return PoolStatus(
            pool=self.name,
            backend="remote",
            tier=self.tier,
            workers=self._workers,
            active=self._active,
            backlog=0,
            in_progress=0,
            arrival_rate_per_min=self._arrivals.per_min(time.monotonic()),
            capacity_per_min=capacity if self._active else 0.0,
            overlap=self.settings.overlap,
            answers_total=0,
            tasks_done=self.handed,
            cost_per_label=self.settings.cost_per_label,
            reported_at=now,
        )

    def resize(self, workers: int) -> None:
        """Record the headcount asked for (the remote crowd sizes itself)."""
        self._workers = max(0, workers)

    def pause(self) -> None:
        self._active = False

    def resume(self) -> None:
        self._active = True
