"""A simulated crowd for local runs: seeded workers with their own accuracy and service time.

Workers never read the true label from the event: they ask a
:class:`TruthSource` (the simulation's side-channel) and answer it with
probability equal to their accuracy, else a wrong class. Each worker has its
own seeded random generator, so accuracies, service times and mistakes are
reproducible for a given seed.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from agents.pools.base import AnswerSink
from agents.pools.rates import WindowRate
from schemas import CrowdAnswer, LabelRequest, PoolStatus, Tier, utc_now

log = logging.getLogger(__name__)


class SimulatedCrowdSettings(BaseModel):
    """The simulated crowd (``LABELLOOP_POOLS__SIMULATED__*``)."""

    model_config = ConfigDict(frozen=True)

    name: str = "simulated"
    workers: int = Field(default=12, ge=0, le=10_000)
    min_accuracy: float = Field(default=0.75, ge=0.0, le=1.0)
    max_accuracy: float = Field(default=0.95, ge=0.0, le=1.0)
    #: Mean seconds a worker spends on one answer (log-normal, sigma 0.5).
    mean_service_s: float = Field(default=2.0, gt=0.0)
    overlap: int = Field(default=3, ge=1, le=50)
    cost_per_label: float = Field(default=0.02, ge=0.0)
    seed: int = 7
    #: How long a worker waits for the side-channel truth before using the model's label.
    truth_wait_s: float = Field(default=30.0, ge=0.0)


class TruthSource(Protocol):
    """The simulation's side-channel: the true label of an event, if known yet."""

    def true_label(self, event_id: str) -> str | None: ...  # pragma: no cover - protocol


@dataclass
class SimulatedWorker:
    """One simulated labeler."""

    worker_id: str
    accuracy: float
    mean_service_s: float
    rng: random.Random
    retired: bool = False

    def service_time_s(self) -> float:
        """A log-normal service time with the worker's mean (sigma 0.5)."""
        sigma = 0.5
        return self.rng.lognormvariate(math.log(self.mean_service_s) - sigma**2 / 2, sigma)

    def answer(self, truth: str, classes: list[str]) -> str:
        """The truth with probability ``accuracy``, else another class."""
        wrong = [label for label in classes if label != truth]
        if not wrong or self.rng.random() < self.accuracy:
            return truth
        return self.rng.choice(wrong)


@dataclass(eq=False)
class _Task:
    request: LabelRequest
    overlap: int
    on_answer: AnswerSink
    done: asyncio.Future[None]
    sort_key: tuple[float, int]
    assigned: set[str] = field(default_factory=set)
    answered: int = 0


class SimulatedCrowd:
    """A crowd of simulated workers serving a priority-ordered backlog.

    Parameters
    ----------
    settings
        Size, accuracy range, service time, overlap, seed.
    truth
        The side-channel that knows each event's true label.
    clock
        Wall clock for answer timestamps (tz-aware UTC).
    monotonic
        Seconds for rates (``asyncio`` loop time by default).
    sleep
        How a worker spends its service time.

    Examples
    --------
    >>> import asyncio
    >>> from datetime import datetime, UTC
    >>> from schemas import PredictionEvent, PredictionInput
    >>> class Truth:
    ...     def true_label(self, event_id): return "cat"
    >>> async def demo():
    ...     crowd = SimulatedCrowd(SimulatedCrowdSettings(workers=3, mean_service_s=0.001,
    ...                                                   min_accuracy=1.0, max_accuracy=1.0),
    ...                            Truth())
    ...     await crowd.start()
    ...     event = PredictionEvent(event_id="e1", model_name="m", model_version="1",
    ...                             created_at=datetime(2026, 1, 1, tzinfo=UTC),
    ...                             input=PredictionInput(text="meow"), predicted_label="dog",
    ...                             scores={"dog": 0.6, "cat": 0.4})
    ...     request = LabelRequest(prediction=event, route="low_confidence", reason="low",
    ...                            priority=0.4, uncertainty=0.4, requested_at=event.created_at)
    ...     answers = []
    ...     async def keep(answer): answers.append(answer)
    ...     await crowd.label(request, keep)
    ...     await crowd.stop()
    ...     return sorted({a.worker_id for a in answers}), {a.label for a in answers}
    >>> asyncio.run(demo())
    (['simulated-w0', 'simulated-w1', 'simulated-w2'], {'cat'})
    """

    tier: Tier = "crowd"

    def __init__(
        self,
        settings: SimulatedCrowdSettings,
        truth: TruthSource,
        *,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self._truth = truth
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._pending: list[tuple[tuple[float, int], _Task]] = []
        self._seq = itertools.count()
        self._workers: list[SimulatedWorker] = []
        self._worker_tasks: dict[str, asyncio.Task[None]] = {}
        self._wakeup: asyncio.Condition | None = None
        self._paused = False
        self._in_progress = 0
        self._answers_total = 0
        self._tasks_done = 0
        self._arrivals = WindowRate()
        self.truth_missing = 0
        self._target_workers = settings.workers

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the configured number of workers (idempotent)."""
        if self._wakeup is not None:
            return
        self._wakeup = asyncio.Condition()
        self.resize(self._target_workers)

    async def stop(self) -> None:
        """Cancel every worker; unfinished requests stay unanswered (and unacknowledged)."""
        tasks = list(self._worker_tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._worker_tasks.clear()

    def resize(self, workers: int) -> None:
        """Grow or shrink the crowd; a removed worker finishes its current answer first."""
        self._target_workers = max(0, workers)
        active = [worker for worker in self._workers if not worker.retired]
        if self._wakeup is None:
            return
        for worker in active[self._target_workers :]:
            worker.retired = True
        for index in range(len(self._workers), len(self._workers) + self._target_workers - len(active)):
            worker = self._new_worker(index)
            self._workers.append(worker)
            self._worker_tasks[worker.worker_id] = asyncio.get_running_loop().create_task(
                self._work(worker), name=f"labelloop-{worker.worker_id}"
            )
        self._notify()

    def pause(self) -> None:
        """Hand out no new tasks until :meth:`resume`."""
        self._paused = True

    def resume(self) -> None:
        """Hand out tasks again."""
        self._paused = False
        self._notify()

    def _new_worker(self, index: int) -> SimulatedWorker:
        rng = random.Random(f"{self.settings.seed}/{self.name}/{index}")
        accuracy = rng.uniform(self.settings.min_accuracy, self.settings.max_accuracy)
        return SimulatedWorker(f"{self.name}-w{index}", accuracy, self.settings.mean_service_s, rng)

    # -- the work ------------------------------------------------------------------------

    async def label(self, request: LabelRequest, on_answer: AnswerSink) -> None:
        """Queue ``request`` by priority and wait until ``overlap`` workers answered it."""
        # The dispatcher may get its first request before the app's startup task ran.
        await self.start()
        overlap = min(request.overlap or self.settings.overlap, max(1, self._target_workers))
        loop = asyncio.get_running_loop()
        task = _Task(request, overlap, on_answer, loop.create_future(), (-request.priority, next(self._seq)))
        bisect.insort(self._pending, (task.sort_key, task))
        self._arrivals.add(self._now_s())
        self._notify()
        await task.done

    def _notify(self) -> None:
        wakeup = self._wakeup
        if wakeup is None:
            return

        async def notify() -> None:
            async with wakeup:
                wakeup.notify_all()

        asyncio.get_running_loop().create_task(notify())

    def _take(self, worker: SimulatedWorker) -> _Task | None:
        """The highest-priority task this worker has not answered yet."""
        if self._paused:
            return None
        for position, (_, task) in enumerate(self._pending):
            if worker.worker_id not in task.assigned:
                task.assigned.add(worker.worker_id)
                if len(task.assigned) >= task.overlap:
                    del self._pending[position]
                return task
        return None

    async def _work(self, worker: SimulatedWorker) -> None:
        assert self._wakeup is not None
        while not worker.retired:
            async with self._wakeup:
                task = self._take(worker)
                while task is None and not worker.retired:
                    await self._wakeup.wait()
                    task = self._take(worker)
            if task is None:
                break
            self._in_progress += 1
            try:
                time_spent_s = worker.service_time_s()
                await self._sleep(time_spent_s)
                truth = await self._true_label(task.request)
                classes = sorted(task.request.prediction.scores)
                answer = CrowdAnswer(
                    event_id=task.request.event_id,
                    task_id=f"{task.request.event_id}/{self.name}",
                    pool=self.name,
                    tier="crowd",
                    worker_id=worker.worker_id,
                    label=worker.answer(truth, classes),
                    time_spent_s=round(time_spent_s, 4),
                    answered_at=self._clock(),
                    overlap=task.overlap,
                )
                await task.on_answer(answer)
                self._answers_total += 1
                task.answered += 1
                if task.answered >= task.overlap and not task.done.done():
                    self._tasks_done += 1
                    task.done.set_result(None)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the sink failed: the request fails, the worker goes on
                if not task.done.done():
                    task.done.set_exception(error)
            finally:
                self._in_progress -= 1
        self._worker_tasks.pop(worker.worker_id, None)

    async def _true_label(self, request: LabelRequest) -> str:
        deadline = self._now_s() + self.settings.truth_wait_s
        while True:
            truth = self._truth.true_label(request.event_id)
            if truth is not None:
                return truth
            if self._now_s() >= deadline:
                self.truth_missing += 1
                log.warning(
                    "no side-channel truth for %s: simulating against the model's label",
                    request.event_id,
                )
                return request.prediction.predicted_label
            await self._sleep(0.05)

    # -- status --------------------------------------------------------------------------

    def _now_s(self) -> float:
        return self._monotonic() if self._monotonic else asyncio.get_running_loop().time()

    @property
    def workers(self) -> int:
        """Workers currently serving."""
        return sum(1 for worker in self._workers if not worker.retired)

    @property
    def backlog(self) -> int:
        """Requests still waiting for at least one worker."""
        return len(self._pending)

    def status(self, now: datetime) -> PoolStatus:
        """The crowd's state: backlog, rates, capacity, cost."""
        workers = self.workers
        capacity = 0.0 if self._paused else workers * 60.0 / self.settings.mean_service_s
        return PoolStatus(
            pool=self.name,
            backend="simulated",
            tier="crowd",
            workers=workers,
            active=not self._paused,
            backlog=self.backlog,
            in_progress=self._in_progress,
            arrival_rate_per_min=self._arrivals.per_min(self._now_s()),
            capacity_per_min=capacity,
            overlap=self.settings.overlap,
            answers_total=self._answers_total,
            tasks_done=self._tasks_done,
            cost_per_label=self.settings.cost_per_label,
            reported_at=now,
        )
