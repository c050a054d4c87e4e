"""A simulated crowd for local runs: realistic seeded workers, dynamic overlap and deadlines.

Workers come from :mod:`agents.simulation.crowd`: good workers with per-class
confusion, careless fast answerers and spammers, each with its own speed; they
abandon a task now and then, and leave after a session, replaced by newcomers
who warm up before they answer. Workers never read the true label from the
event: they ask a :class:`TruthSource` (the simulation's side-channel).

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
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import Field

from agents.aggregator.overlap import AccuracyOf, DynamicOverlap, OverlapSettings
from agents.pools.base import AnswerSink
from agents.pools.rates import WindowRate
from agents.simulation import crowd
from agents.simulation.crowd import CrowdProfile, WorkerKind, WorkerProfile
from schemas import CrowdAnswer, LabelRequest, PoolStatus, Tier, utc_now

log = logging.getLogger(__name__)


class SimulatedCrowdSettings(CrowdProfile):
    """The simulated crowd (``LABELLOOP_POOLS__SIMULATED__*``).

    The crowd's make-up (shares of good, careless and spamming workers,
    accuracies, confusion, speeds, abandonment, sessions) is the
    :class:`~agents.simulation.crowd.CrowdProfile` this extends; ``min_accuracy``
    and ``max_accuracy`` bound the good workers' accuracy.
    """

    name: str = "simulated"
    #: Headcount: leavers are replaced to keep it, resize() changes it.
    workers: int = Field(default=12, ge=0, le=10_000)
    #: The dynamic overlap's maximum (answers no task goes past), capped by the headcount.
    overlap: int = Field(default=3, ge=1, le=50)
    #: The dynamic overlap's minimum (capped by ``overlap``; equal to it for fixed overlap).
    overlap_min: int = Field(default=2, ge=1, le=50)
    #: Posterior of the leading class at which a task stops before its maximum.
    overlap_confidence: float = Field(default=0.9, gt=0.0, lt=1.0)
    cost_per_label: float = Field(default=0.02, ge=0.0)
    seed: int = 7
    #: How long a worker waits for the side-channel truth before using the model's label.
    truth_wait_s: float = Field(default=30.0, ge=0.0)
    #: Seconds a worker has to answer a task it took before the task goes to someone else.
    assignment_timeout_s: float = Field(default=30.0, gt=0.0)
    #: Seconds a worker who joins (by resize or to replace a leaver) needs before its first task.
    warmup_s: float = Field(default=5.0, ge=0.0)

    def overlap_settings(self, workers: int) -> OverlapSettings:
        """The dynamic-overlap rule for a crowd of ``workers`` (the maximum capped by the headcount)."""
        maximum = min(self.overlap, max(1, workers))
        return OverlapSettings(
            minimum=min(self.overlap_min, maximum), maximum=maximum, confidence=self.overlap_confidence
        )


class QualityEvidence(Protocol):
    """What the ban rule reads: the aggregator's SkillBook."""

    def is_flagged(self, worker_id: str) -> bool: ...  # pragma: no cover - protocol

    def is_too_fast(self, worker_id: str) -> bool: ...  # pragma: no cover - protocol


def ban_rule(skills: QualityEvidence) -> Callable[[str], bool]:
    """The pool's quality control: ban a worker flagged as a spammer, or answering too fast to read.

    The two rules a platform like Toloka applies (low golden accuracy, fast
    responses), on the SkillBook's evidence: ``is_flagged`` (graded answers or
    a Dawid–Skene confusion that carry no information) or ``is_too_fast``
    (typical answer time under ``fast_share`` of the crowd's). On the crowd
    bench (``bench.crowd_aggregation``) the speed rule bans every spammer
    within a few answers, some careless workers and now and then a fast good
    worker (0-1 of ~45 per run); fixed overlap 3 then gains about 6 points
    over banning flagged workers only.

    >>> class Book:
    ...     def is_flagged(self, worker_id): return worker_id == "spam"
    ...     def is_too_fast(self, worker_id): return worker_id == "rush"
    >>> [ban_rule(Book())(w) for w in ("spam", "rush", "good")]
    [True, True, False]
    """

    def is_banned(worker_id: str) -> bool:
        return skills.is_flagged(worker_id) or skills.is_too_fast(worker_id)

    return is_banned


class TruthSource(Protocol):
    """The simulation's side-channel: the true label of an event, if known yet."""

    def true_label(self, event_id: str) -> str | None: ...  # pragma: no cover - protocol


@dataclass(eq=False)
class SimulatedWorker:
    """One simulated labeler in the pool: its profile, its own random generator and its state.

    Built from an accuracy alone (a good worker with uniform mistakes), as
    benches do, or from a :class:`~agents.simulation.crowd.WorkerProfile`.

    >>> worker = SimulatedWorker("w0", 1.0, 2.0, random.Random(1))
    >>> worker.answer("cat", ["cat", "dog"]), worker.kind
    ('cat', 'good')
    """

    worker_id: str
    accuracy: float
    mean_service_s: float
    rng: random.Random
    #: Removed by resize(): finishes the answer in hand, then goes.
    retired: bool = False
    profile: WorkerProfile | None = None
    #: Left at the end of its session: never answers the task in hand.
    left: bool = False
    #: False while a newcomer warms up.
    productive: bool = True
    #: Banned by the quality rule: takes no new task (the answer in hand still counts), then goes.
    banned: bool = False

    def __post_init__(self) -> None:
        if self.profile is None:
            self.profile = WorkerProfile(self.worker_id, "good", self.accuracy, self.mean_service_s)

    @classmethod
    def of(cls, profile: WorkerProfile, rng: random.Random) -> SimulatedWorker:
        """The pool's worker for ``profile``."""
        return cls(profile.worker_id, profile.accuracy, profile.mean_service_s, rng, profile=profile)

    @property
    def the_profile(self) -> WorkerProfile:
        """The worker's profile (always set after construction)."""
        assert self.profile is not None
        return self.profile

    @property
    def kind(self) -> WorkerKind:
        """Good, careless or spammer."""
        return self.the_profile.kind

    @property
    def active(self) -> bool:
        """Still part of the crowd (neither retired, left nor banned)."""
        return not (self.retired or self.left or self.banned)

    def service_time_s(self) -> float:
        """A log-normal service time with the worker's mean."""
        return self.the_profile.service_time_s(self.rng)

    def answer(self, truth: str, classes: list[str]) -> str:
        """The worker's answer when ``truth`` is the true class."""
        return self.the_profile.answer(truth, classes, self.rng)


@dataclass(eq=False)
class _Task:
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


class SimulatedCrowd:
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
        self._pending: list[tuple[tuple[float, int], _Task]] = []
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

    def resize(self, workers: int) -> None:
        """Set the headcount: the newest go first (after their answer in hand); newcomers warm up."""
        self._target_workers = max(0, workers)
        if self._wakeup is None:
            return
        active = [worker for worker in self._workers if worker.active]
        for worker in active[self._target_workers :]:
            worker.retired = True
        for _ in range(self._target_workers - len(active)):
            self._join(self._newcomer(), warmup=True)
        self._notify()

    def pause(self) -> None:
        """Hand out no new tasks until :meth:`resume`."""
        self._paused = True

    def resume(self) -> None:
        """Hand out tasks again."""
        self._paused = False
        self._notify()

    def _newcomer(self) -> WorkerProfile:
        """A worker joining later: its kind drawn with the configured shares."""
        return crowd.worker(f"{self.name}-w{self._next_index}", self.settings.seed, self.settings)

    def _join(self, profile: WorkerProfile, *, warmup: bool) -> None:
        self._next_index += 1
        rng = random.Random(f"{self.settings.seed}/{self.name}/{profile.worker_id}")
        worker = SimulatedWorker.of(profile, rng)
        worker.productive = not (warmup and self.settings.warmup_s > 0)
        self._workers.append(worker)
        loop = asyncio.get_running_loop()
        self._worker_tasks[worker.worker_id] = loop.create_task(
            self._work(worker), name=f"labelloop-{worker.worker_id}"
        )
        session_s = profile.session_s(rng)
        if math.isfinite(session_s):
            self._timer(self._leave_after(worker, session_s))

    def _timer(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        timer = asyncio.get_running_loop().create_task(coroutine)
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)
        return timer

    async def _leave_after(self, worker: SimulatedWorker, session_s: float) -> None:
        """End the worker's session: it leaves (mid-task or not) and a newcomer takes its seat."""
        await self._sleep(session_s)
        if not worker.active:
            return
        worker.left = True
        self.departed += 1
        log.debug("simulated worker %s left after %.1f s", worker.worker_id, session_s)
        self._replace()

    def _ban(self, worker: SimulatedWorker) -> None:
        """The quality rule flagged the worker: it goes (after any answer in hand) and a newcomer comes."""
        worker.banned = True
        self.banned += 1
        log.info("simulated worker %s banned by the quality rule: replaced by a newcomer", worker.worker_id)
        self._replace()

    def _replace(self) -> None:
        """Fill a seat that a leaver or a banned worker left, if the headcount wants it."""
        if self.workers < self._target_workers:
            self._join(self._newcomer(), warmup=True)
        self._notify()

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
        task = _Task(request, rule, classes, on_answer, loop.create_future(), sort_key)
        task.target = rule.target([], len(classes))
        self._queue(task)
        self._arrivals.add(self._now_s())
        self._notify()
        try:
            await task.done
        except asyncio.CancelledError:
            # Nobody waits for it any more: workers stop taking it (the request is not acknowledged).
            task.complete = True
            self._dequeue(task)
            raise

    def _queue(self, task: _Task) -> None:
        if not task.queued and task.need > 0:
            bisect.insort(self._pending, (task.sort_key, task))
            task.queued = True

    def _dequeue(self, task: _Task) -> None:
        if task.queued:
            position = bisect.bisect_left(self._pending, (task.sort_key,))
            del self._pending[position]
            task.queued = False

    def _notify(self) -> None:
        wakeup = self._wakeup
        if wakeup is None:
            return

        async def notify() -> None:
            async with wakeup:
                wakeup.notify_all()

        asyncio.get_running_loop().create_task(notify())

    def _take(self, worker: SimulatedWorker) -> _Task | None:
        """The highest-priority task this worker has not had; else one it let expire, if nobody else can."""
        if worker.active and self._is_banned is not None and self._is_banned(worker.worker_id):
            self._ban(worker)
        if self._paused or not worker.active:  # one who just left, retired or was banned takes nothing more
            return None
        for _, task in self._pending:
            if worker.worker_id not in task.assigned:
                return self._assign(task, worker)
        present: set[str] | None = None  # made only when a task this worker let expire is pending
        for _, task in self._pending:
            if worker.worker_id in task.expired and worker.worker_id not in task.answered:
                if present is None:
                    present = {member.worker_id for member in self._workers if member.active}
                if present <= task.assigned:
                    return self._assign(task, worker)
        return None

    def _assign(self, task: _Task, worker: SimulatedWorker) -> _Task:
        task.assigned.add(worker.worker_id)
        task.expired.discard(worker.worker_id)
        task.open[worker.worker_id] = self._timer(self._expire_after(task, worker.worker_id))
        self._open += 1
        if task.need <= 0:
            self._dequeue(task)
        return task

    async def _expire_after(self, task: _Task, worker_id: str) -> None:
        """The assignment's deadline: unanswered by then, the task goes back to the queue."""
        await self._sleep(self.settings.assignment_timeout_s)
        if task.open.pop(worker_id, None) is None:
            return
        self._open -= 1
        task.expired.add(worker_id)
        self.expired_assignments += 1
        log.debug("assignment of %s to %s expired", task.request.event_id, worker_id)
        self._queue(task)
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

    async def _serve(self, worker: SimulatedWorker, task: _Task) -> None:
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

    async def _deliver(self, task: _Task, worker: SimulatedWorker, label: str, time_spent_s: float) -> None:
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
                self._dequeue(task)
            else:
                self._queue(task)
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
    def workers(self) -> int:
        """Headcount: workers present, warming up or productive."""
        return sum(1 for worker in self._workers if worker.active)

    @property
    def warming(self) -> int:
        """Workers present but still warming up (not yet answering)."""
        return sum(1 for worker in self._workers if worker.active and not worker.productive)

    @property
    def profiles(self) -> list[WorkerProfile]:
        """The profiles of the workers present."""
        return [worker.the_profile for worker in self._workers if worker.active]

    @property
    def backlog(self) -> int:
        """Requests still waiting for at least one more worker."""
        return len(self._pending)

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
