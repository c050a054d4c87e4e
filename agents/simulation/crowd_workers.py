"""The simulated crowd's people: its settings, its workers, the truth they ask, the ban rule.

Workers come from :mod:`agents.simulation.crowd` (good workers with per-class confusion,
careless fast answerers and spammers, each with its own speed); :class:`SimulatedWorker` is one
seat of the crowd. Workers never read the true label from the event: they ask a
:class:`TruthSource` (the simulation's side-channel).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import Field

from agents.aggregator.overlap import OverlapSettings
from agents.simulation import crowd
from agents.simulation.crowd import CrowdProfile, WorkerKind, WorkerProfile

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


class CrowdRoster:
    """The seats of a simulated crowd: who is present, joins, warms up, leaves, is banned or replaced.

    The base of :class:`~agents.simulation.simulated_crowd.SimulatedCrowd`, which owns the state
    (set in its ``__init__``) and the work a seat does (``_work``, ``_notify``).
    """

    name: str
    settings: SimulatedCrowdSettings
    _sleep: Callable[[float], Awaitable[None]]
    _workers: list[SimulatedWorker]
    _worker_tasks: dict[str, asyncio.Task[None]]
    _timers: set[asyncio.Task[None]]
    _wakeup: asyncio.Condition | None
    _paused: bool
    _next_index: int
    _target_workers: int
    departed: int
    banned: int

    async def _work(self, worker: SimulatedWorker) -> None:  # pragma: no cover - the crowd's
        raise NotImplementedError

    def _notify(self) -> None:  # pragma: no cover - the crowd's
        raise NotImplementedError

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
