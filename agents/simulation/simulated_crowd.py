"""A simulated crowd for local runs: realistic seeded workers, dynamic overlap and deadlines.

Workers come from :mod:`agents.simulation.crowd`: good workers with per-class
confusion, careless fast answerers and spammers, each with its own speed; they
abandon a task now and then, and leave after a session, replaced by newcomers
who warm up before they answer. Workers never read the true label from the
event: they ask a :class:`~agents.simulation.crowd_workers.TruthSource` (the simulation's side-channel).

A task asks for answers by the shared dynamic-overlap rule
(:class:`~agents.aggregator.overlap.DynamicOverlap`): it starts with the rule's
minimum, and after each answer the rule's target (computed with that answer
counted) is stamped on the answer; while the target exceeds the answers in
hand and in progress, the task goes to another worker, up to the maximum.

Every assignment has a deadline (``assignment_timeout_s``). A worker that
abandons the task, or leaves mid-task, never answers; at the deadline the
assignment expires and the task goes back to the queue for a worker who has
not had it (the expired worker gets it again only when every worker present
already had it, so a task is never stuck and never dropped). An answer that
comes after its assignment expired is still reported, once, and counted; one
that comes after the task completed is stamped with the number of answers
including it, so the aggregator never waits for an answer that will not come.

Like a real platform's quality-control rules (Toloka bans on low golden
accuracy and on too-fast answers), the pool can ban workers: given
``is_banned`` (the worker wiring passes :func:`ban_rule` of the aggregator's
SkillBook), a worker it flags is never handed another task. An answer it has
in progress still counts; then it leaves the crowd and a newcomer, drawn with
the configured shares, takes its seat and warms up.

Its people (settings, workers, the truth, the ban rule) are :mod:`agents.simulation.crowd_workers`;
its backlog (tasks by priority, who takes which next) is :mod:`agents.simulation.crowd_backlog`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from agents.aggregator.overlap import AccuracyOf, DynamicOverlap, OverlapSettings
from agents.pools.base import AnswerSink
from agents.rates import WindowRate
from agents.simulation import crowd
from agents.simulation.crowd import WorkerProfile
from agents.simulation.crowd_backlog import Backlog, CrowdTask
from agents.simulation.crowd_workers import (
    CrowdRoster,
    QualityEvidence,
    SimulatedCrowdSettings,
    SimulatedWorker,
    TruthSource,
    ban_rule,
)
from schemas import CrowdAnswer, LabelRequest, PoolStatus, Tier, utc_now

__all__ = [
    "QualityEvidence",
    "SimulatedCrowd",
    "SimulatedCrowdSettings",
    "SimulatedWorker",
    "TruthSource",
    "ban_rule",
]

log = logging.getLogger(__name__)


class SimulatedCrowd(CrowdRoster):
    """A crowd of simulated workers serving a priority-ordered backlog.

    Parameters
    ----------
    settings
        Headcount, crowd profile, overlap rule, deadlines, warm-up, seed.
    truth
        The side-channel that knows each event's true label.
    clock
        Wall clock for answer timestamps (tz-aware UTC).
    monotonic
        Seconds for rates (``asyncio`` loop time by default).
    sleep
        How simulated time passes: service times, deadlines, sessions, warm-up.
    accuracy_of
        Workers' estimated accuracies for the overlap rule (a SkillBook); the
        rule's prior accuracy for everyone by default.
    overlap
        The overlap rule's settings, when shared with the aggregator; derived
        from ``settings`` (``overlap_min``, ``overlap``, ``overlap_confidence``) by default.
    crowd_profiles
        The initial workers, instead of drawing ``settings.workers`` of them from the seed.
    is_banned
        The quality rule: a worker it flags (by id) gets no new task and is
        replaced by a newcomer (:func:`ban_rule` of the SkillBook); nobody is banned by default.

    Examples
    --------
    >>> import asyncio
    >>> from datetime import datetime, UTC
    >>> from schemas import PredictionEvent, PredictionInput
    >>> class Truth:
    ...     def true_label(self, event_id): return "cat"
    >>> async def demo():
    ...     crowd = SimulatedCrowd(SimulatedCrowdSettings(workers=3, mean_service_s=0.001,
    ...                                                   min_accuracy=1.0, max_accuracy=1.0,
    ...                                                   spammer_share=0.0, careless_share=0.0,
    ...                                                   class_accuracy_spread=0.0),
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
    ...     return [(a.label, a.overlap) for a in answers]
    >>> asyncio.run(demo())   # two workers agree: the task stops at the minimum
    [('cat', 2), ('cat', 2)]
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
        accuracy_of: AccuracyOf | None = None,
        overlap: OverlapSettings | None = None,
        crowd_profiles: Sequence[WorkerProfile] | None = None,
        is_banned: Callable[[str], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self._truth = truth
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self.accuracy_of = accuracy_of
        self._overlap = overlap
        self._is_banned = is_banned
        self._initial = list(crowd_profiles) if crowd_profiles is not None else None
        self._backlog = Backlog()
        self._seq = itertools.count()
        self._next_index = 0
        self._workers: list[SimulatedWorker] = []
        self._worker_tasks: dict[str, asyncio.Task[None]] = {}
        self._timers: set[asyncio.Task[None]] = set()
        self._wakeup: asyncio.Condition | None = None
        self._paused = False
        self._open = 0
        self._answers_total = 0
        self._tasks_done = 0
        self._answers_per_task: deque[int] = deque(maxlen=200)
        self._arrivals = WindowRate()
        self._target_workers = len(self._initial) if self._initial is not None else settings.workers
        self.truth_missing = 0
        #: Assignments whose deadline passed without an answer (each task went back to the queue).
        self.expired_assignments = 0
        #: Answers that came after their assignment had expired (reported and counted once).
        self.late_answers = 0
        #: Tasks workers took and walked away from.
        self.abandoned = 0
        #: Workers who left at the end of their session (each replaced by a newcomer).
        self.departed = 0
        #: Workers banned by ``is_banned`` (each replaced by a newcomer).
        self.banned = 0

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the initial crowd (idempotent); it is productive at once, no warm-up."""
        if self._wakeup is not None:
            return
        self._wakeup = asyncio.Condition()
        prefix = f"{self.name}-w"
        initial = self._initial
        if initial is None:
            initial = crowd.workers(self._target_workers, self.settings.seed, self.settings, prefix=prefix)
        for profile in initial:
            self._join(profile, warmup=False)
        self._notify()

    async def stop(self) -> None:
        """Cancel every worker and timer; unfinished requests stay unanswered (and unacknowledged)."""
        tasks = [*self._worker_tasks.values(), *self._timers]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._worker_tasks.clear()
        self._timers.clear()

    # -- the work ------------------------------------------------------------------------

    def _rule(self, request: LabelRequest) -> DynamicOverlap:
        headcount = max(1, self._target_workers)
        if request.overlap is not None:
            settings = OverlapSettings.fixed(min(request.overlap, headcount))
        elif self._overlap is not None:
            maximum = min(self._overlap.maximum, headcount)
            minimum = min(self._overlap.minimum, maximum)
            settings = self._overlap.model_copy(update={"minimum": minimum, "maximum": maximum})
        else:
            settings = self.settings.overlap_settings(headcount)
        return DynamicOverlap(settings, self.accuracy_of)

    async def label(self, request: LabelRequest, on_answer: AnswerSink) -> None:
        """Queue ``request`` by priority and wait until the overlap rule has all its answers."""
        # The dispatcher may get its first request before the app's startup task ran.
        await self.start()
        loop = asyncio.get_running_loop()
        classes = sorted(request.prediction.scores)
        rule = self._rule(request)
        sort_key = (-request.priority, next(self._seq))
        task = CrowdTask(request, rule, classes, on_answer, loop.create_future(), sort_key)
        task.target = rule.target([], len(classes))
        self._backlog.queue(task)
        self._arrivals.add(self._now_s())
        self._notify()
        try:
            await task.done
        except asyncio.CancelledError:
            # Nobody waits for it any more: workers stop taking it (the request is not acknowledged).
            task.complete = True
            self._backlog.dequeue(task)
            raise

    def _notify(self) -> None:
        wakeup = self._wakeup
        if wakeup is None:
            return

        async def notify() -> None:
            async with wakeup:
                wakeup.notify_all()

        asyncio.get_running_loop().create_task(notify())

    def _take(self, worker: SimulatedWorker) -> CrowdTask | None:
        """The highest-priority task this worker has not had; else one it let expire, if nobody else can."""
        if worker.active and self._is_banned is not None and self._is_banned(worker.worker_id):
            self._ban(worker)
        if self._paused or not worker.active:  # one who just left, retired or was banned takes nothing more
            return None
        task = self._backlog.next_for(
            worker.worker_id, lambda: {member.worker_id for member in self._workers if member.active}
        )
        return self._assign(task, worker) if task is not None else None

    def _assign(self, task: CrowdTask, worker: SimulatedWorker) -> CrowdTask:
        task.assigned.add(worker.worker_id)
        task.expired.discard(worker.worker_id)
        task.open[worker.worker_id] = self._timer(self._expire_after(task, worker.worker_id))
        self._open += 1
        if task.need <= 0:
            self._backlog.dequeue(task)
        return task

    async def _expire_after(self, task: CrowdTask, worker_id: str) -> None:
        """The assignment's deadline: unanswered by then, the task goes back to the queue."""
        await self._sleep(self.settings.assignment_timeout_s)
        if task.open.pop(worker_id, None) is None:
            return
        self._open -= 1
        task.expired.add(worker_id)
        self.expired_assignments += 1
        log.debug("assignment of %s to %s expired", task.request.event_id, worker_id)
        self._backlog.queue(task)
        self._notify()

    async def _work(self, worker: SimulatedWorker) -> None:
        assert self._wakeup is not None
        if not worker.productive:
            await self._sleep(self.settings.warmup_s)
            worker.productive = True
        while worker.active:
            async with self._wakeup:
                task = self._take(worker)
                while task is None and worker.active:
                    await self._wakeup.wait()
                    task = self._take(worker)
            if task is None:
                break
            await self._serve(worker, task)
        # Gone for good (retired, left or banned); a stopped crowd keeps its roster.
        self._worker_tasks.pop(worker.worker_id, None)
        self._workers.remove(worker)

    async def _serve(self, worker: SimulatedWorker, task: CrowdTask) -> None:
        profile = worker.the_profile
        time_spent_s = worker.service_time_s()
        abandons = profile.abandons(worker.rng)
        await self._sleep(time_spent_s)
        if abandons:  # it looked, and walked away: the deadline will hand the task on
            self.abandoned += 1
            return
        if worker.left:  # the session ended mid-task
            return
        truth = await self._true_label(task.request)
        await self._deliver(task, worker, worker.answer(truth, task.classes), time_spent_s)

    async def _deliver(
        self, task: CrowdTask, worker: SimulatedWorker, label: str, time_spent_s: float
    ) -> None:
        """Count one answer, stamp it with the overlap target and report it."""
        timer = task.open.pop(worker.worker_id, None)
        if timer is None:
            self.late_answers += 1
        else:
            timer.cancel()
            self._open -= 1
        task.answered.add(worker.worker_id)
        task.votes.append((worker.worker_id, label))
        if task.complete:
            # Asked for no more: say the task is complete with this answer in.
            stamp = len(task.votes)
        else:
            task.target = stamp = task.rule.target(task.votes, len(task.classes))
            if len(task.votes) >= task.target:
                task.complete = True
                self._backlog.dequeue(task)
            else:
                self._backlog.queue(task)
                self._notify()
        answer = CrowdAnswer(
            event_id=task.request.event_id,
            task_id=f"{task.request.event_id}/{self.name}",
            pool=self.name,
            tier="crowd",
            worker_id=worker.worker_id,
            label=label,
            time_spent_s=round(time_spent_s, 4),
            answered_at=self._clock(),
            overlap=min(stamp, 50),
        )
        task.reporting += 1
        try:
            await task.on_answer(answer)
            self._answers_total += 1
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the sink failed: the request fails, the worker goes on
            if not task.done.done():
                task.done.set_exception(error)
        finally:
            task.reporting -= 1
        if task.complete and task.reporting == 0 and not task.done.done():
            self._tasks_done += 1
            self._answers_per_task.append(len(task.votes))
            task.done.set_result(None)

    async def _true_label(self, request: LabelRequest) -> str:
        deadline = self._now_s() + self.settings.truth_wait_s
        while True:
            truth = self._truth.true_label(request.event_id)
            if truth is not None:
                return truth
            if self._now_s() >= deadline:
                self.truth_missing += 1
                # The first, then every 1,000th: a run without a truth topic (the latency bench) has
                # this for every answer, and a log line each cost more than the answer.
                if self.truth_missing % 1000 == 1:
                    log.warning(
                        "no side-channel truth for %s (%d answers so far): simulating against the"
                        " model's label",
                        request.event_id,
                        self.truth_missing,
                    )
                return request.prediction.predicted_label
            await self._sleep(0.05)

    # -- status --------------------------------------------------------------------------

    def _now_s(self) -> float:
        return self._monotonic() if self._monotonic else asyncio.get_running_loop().time()

    @property
    def backlog(self) -> int:
        """Requests still waiting for at least one more worker."""
        return len(self._backlog)

    @property
    def in_progress(self) -> int:
        """Assignments handed out and neither answered nor expired."""
        return self._open

    def capacity_per_min(self) -> float:
        """Answers per minute the productive workers give (abandoned tasks do not count)."""
        if self._paused:
            return 0.0
        return sum(
            (1.0 - worker.the_profile.abandon_probability) * 60.0 / worker.the_profile.mean_service_s
            for worker in self._workers
            if worker.active and worker.productive
        )

    def mean_overlap(self) -> int:
        """Answers per finished task lately (the rule's maximum before any task finished)."""
        if not self._answers_per_task:
            return self.settings.overlap_settings(self._target_workers).maximum
        return max(1, math.floor(sum(self._answers_per_task) / len(self._answers_per_task) + 0.5))

    def status(self, now: datetime) -> PoolStatus:
        """The crowd's state: backlog, rates, capacity, cost."""
        return PoolStatus(
            pool=self.name,
            backend="simulated",
            tier="crowd",
            workers=self.workers,
            active=not self._paused,
            backlog=self.backlog,
            in_progress=self.in_progress,
            arrival_rate_per_min=self._arrivals.per_min(self._now_s()),
            capacity_per_min=self.capacity_per_min(),
            overlap=self.mean_overlap(),
            answers_total=self._answers_total,
            tasks_done=self._tasks_done,
            cost_per_label=self.settings.cost_per_label,
            reported_at=now,
        )
