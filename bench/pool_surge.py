"""[P1] A 10x arrival surge against a labeling pool: autoscaled, fixed for normal load, and an oracle.

A seeded discrete-event simulation of one crowd pool. Tasks arrive as a
Poisson process: ``BASE_PER_MIN`` a minute, ten times that for ``SURGE_S``
seconds, then back. Each task needs ``OVERLAP`` answers from distinct workers;
a free worker takes the oldest task it has not answered (FIFO). Workers are
good workers of :mod:`agents.simulation.crowd` (log-normal mean service times
across workers, log-normal answer times around each mean); spammers, careless
workers, abandonment and sessions are left out, so the bench measures
staffing, not quality control. A worker who joins answers only after the
pool's warm-up (``SimulatedCrowdSettings().warmup_s``); one who is let go
finishes the answer in hand (the newest go first, as in the simulated crowd).

Every ``STATUS_EVERY_S`` the pool reports a PoolStatus as the simulated crowd
does: arrivals per minute over a 60 s window
(:class:`~agents.rates.WindowRate`), capacity of the productive
workers, headcount, backlog (tasks still needing a worker). The arms:

- **autoscaled**: :class:`~agents.pools.autoscaler.Autoscaler` decides on
  every report and its command resizes the pool;
- **fixed**: the smallest pool meeting the SLA at normal load, all along;
- **oracle**: knows the arrival curve and its workers' true service rates;
  it staffs the same queueing model's minimum for each phase (:func:`staff`),
  hiring the surge staff one warm-up before the surge and letting it go when
  the surge ends.

Worker-minutes count from hiring to leaving (warm-up included).

P1 is measured over :data:`SEEDS` (1-8: every seed of the first look at the
spread across seeds, fixed before the per-seed results and kept whatever
they show). A row per seed gives the autoscaled p95 (overall and in the
surge), the fixed pool's p95, the tasks unfinished at the end and the
worker-minutes against the oracle's. The goal holds only if on every seed
the autoscaled p95 is within the SLA and the backlog drains, the fixed pool
breaks the SLA on every seed, and the mean worker-minutes ratio is at most
1.25x; the line names the worst seed's ratio and says so when it is above.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from agents.pools.autoscaler import Autoscaler, AutoscalerSettings, workers_for_sla
from agents.rates import WindowRate
from agents.simulation import crowd
from agents.simulation.crowd import CrowdProfile, WorkerProfile
from agents.simulation.crowd_workers import SimulatedCrowdSettings
from bench.harness import Goal, Row
from schemas import PoolStatus

BASE_PER_MIN = 30.0
SURGE_FACTOR = 10.0
OVERLAP = 3
MEAN_SERVICE_S = 6.0
SLA_S = 60.0
WARM_S, SURGE_S, AFTER_S = 300.0, 600.0, 600.0
STATUS_EVERY_S = 2.0
WARMUP_S = SimulatedCrowdSettings().warmup_s
PROFILE = CrowdProfile(
    careless_share=0.0,
    spammer_share=0.0,
    abandon_probability=0.0,
    session_mean_s=None,
    mean_service_s=MEAN_SERVICE_S,
)
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(eq=False)
class _Worker:
    profile: WorkerProfile
    hired_s: float
    productive: bool = False
    busy: bool = False
    retired: bool = False
    left_s: float | None = None


@dataclass(eq=False)
class _Task:
    arrived_s: float
    assigned: set[int] = field(default_factory=set)
    answers: int = 0
    done_s: float | None = None


@dataclass
class ArmResult:
    """What one arm of the surge showed."""

    p95_s: float
    p95_in_surge_s: float
    max_backlog: int
    end_backlog: int
    worker_minutes: float
    max_workers: int
    commands: int = 0
    reasons: list[str] = field(default_factory=list)


class _Pool:
    """The simulated pool: FIFO tasks, distinct workers per task, warm-up, resize."""

    def __init__(self, workers: int, seed: int) -> None:
        self.rng = random.Random(f"{seed}/service")
        self.seed = seed
        self.names = itertools.count()
        self.events: list[tuple[float, int, str, int]] = []
        self.order = itertools.count()
        self.workers: dict[int, _Worker] = {}
        self.idle: list[int] = []
        self.pending: deque[_Task] = deque()
        self.tasks: list[_Task] = []
        self.arrivals = WindowRate()
        #: Worker id -> the task whose answer it is giving.
        self.serving: dict[int, _Task] = {}
        for _ in range(workers):
            self._hire(0.0, warm=True)

    def _hire(self, now_s: float, *, warm: bool = False) -> None:
        worker_id = next(self.names)
        profile = crowd.worker(f"w{worker_id}", self.seed, PROFILE, kind="good")
        self.workers[worker_id] = _Worker(profile, now_s, productive=warm)
        if warm:
            self.idle.append(worker_id)
        else:
            self._at(now_s + WARMUP_S, "warm", worker_id)

    def _at(self, when_s: float, kind: str, worker_id: int) -> None:
        heapq.heappush(self.events, (when_s, next(self.order), kind, worker_id))

    def active(self) -> list[int]:
        return [i for i, w in self.workers.items() if w.left_s is None and not w.retired]

    def resize(self, target: int, now_s: float) -> None:
        active = self.active()
        if target < len(active):
            # The newest go first (as in the simulated crowd); a busy one after its answer.
            ranked = sorted(active, reverse=True)
            for worker_id in ranked[: len(active) - target]:
                worker = self.workers[worker_id]
                worker.retired = True
                if not worker.busy:
                    worker.left_s = now_s
                    if worker_id in self.idle:
                        self.idle.remove(worker_id)
            return
        missing = target - len(active)
        for worker in self.workers.values():  # keep the leaving who are still here
            if missing and worker.retired and worker.left_s is None:
                worker.retired = False
                missing -= 1
        for _ in range(missing):
            self._hire(now_s)

    def arrive(self, now_s: float) -> None:
        task = _Task(now_s)
        self.tasks.append(task)
        self.pending.append(task)
        self.arrivals.add(now_s)
        self._dispatch(now_s)

    def _dispatch(self, now_s: float) -> None:
        for worker_id in list(self.idle):
            task = next((t for t in self.pending if worker_id not in t.assigned), None)
            if task is None:
                continue
            self.idle.remove(worker_id)
            task.assigned.add(worker_id)
            if len(task.assigned) >= OVERLAP:
                self.pending.remove(task)
            worker = self.workers[worker_id]
            worker.busy = True
            self._at(now_s + worker.profile.service_time_s(self.rng), "done", worker_id)
            self.serving[worker_id] = task
            if not self.pending:
                break

    def run_until(self, until_s: float) -> None:
        while self.events and self.events[0][0] <= until_s:
            now_s, _, kind, worker_id = heapq.heappop(self.events)
            worker = self.workers[worker_id]
            if kind == "warm":
                if worker.retired or worker.left_s is not None:
                    continue
                worker.productive = True
            else:
                worker.busy = False
                task = self.serving.pop(worker_id)
                task.answers += 1
                if task.answers >= OVERLAP:
                    task.done_s = now_s
                if worker.retired:
                    worker.left_s = now_s
                    continue
            self.idle.append(worker_id)
            self._dispatch(now_s)

    def status(self, now_s: float) -> PoolStatus:
        active = self.active()
        capacity = sum(
            60.0 / self.workers[i].profile.mean_service_s for i in active if self.workers[i].productive
        )
        return PoolStatus(
            pool="crowd",
            backend="simulated",
            tier="crowd",
            workers=len(active),
            active=True,
            backlog=len(self.pending),
            in_progress=len(self.serving),
            arrival_rate_per_min=self.arrivals.per_min(now_s),
            capacity_per_min=capacity,
            overlap=OVERLAP,
            answers_total=0,
            tasks_done=0,
            cost_per_label=0.02,
            reported_at=START + timedelta(seconds=now_s),
        )


def _arrivals(seed: int, warm_s: float, surge_s: float, after_s: float) -> list[float]:
    rng = random.Random(f"{seed}/arrivals")
    times, now_s = [], 0.0
    for length_s, per_min in (
        (warm_s, BASE_PER_MIN),
        (surge_s, BASE_PER_MIN * SURGE_FACTOR),
        (after_s, BASE_PER_MIN),
    ):
        end_s, t = now_s + length_s, now_s
        while True:
            t += rng.expovariate(per_min / 60.0)
            if t >= end_s:
                break
            times.append(t)
        now_s = end_s
    return times


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] if ordered else 0.0


def staff(per_min: float, seed: int) -> int:
    """The queueing model's minimum for a known arrival rate, with the true rates of the workers it gets.

    The pool names its workers in order and lets the newest go first, so the
    ``c`` workers of a pool of ``c`` are always ``w0`` .. ``w{c-1}``: the
    smallest ``c`` that meets the SLA with their mean service rate.
    """
    for servers in itertools.count(1):
        rates = [
            60.0 / crowd.worker(f"w{i}", seed, PROFILE, kind="good").mean_service_s for i in range(servers)
        ]
        service_per_s = sum(rates) / len(rates) / 60.0
        needed = workers_for_sla(per_min / 60.0, service_per_s, OVERLAP, SLA_S, limit=servers)
        if needed is not None and needed <= servers:
            return servers
    raise AssertionError("unreachable")


def run_arm(
    arm: str,
    *,
    seed: int = 1,
    warm_s: float = WARM_S,
    surge_s: float = SURGE_S,
    after_s: float = AFTER_S,
    settings: AutoscalerSettings | None = None,
) -> ArmResult:
    """One arm (``autoscaled``, ``fixed`` or ``oracle``) of the surge."""
    normal, surge = staff(BASE_PER_MIN, seed), staff(BASE_PER_MIN * SURGE_FACTOR, seed)
    pool = _Pool(normal, seed)
    end_s = warm_s + surge_s + after_s
    scaler = Autoscaler(
        settings
        or AutoscalerSettings(
            min_workers=1, max_workers=500, sla_p95_s=SLA_S, warmup_s=WARMUP_S, prior_service_s=MEAN_SERVICE_S
        )
    )
    # The oracle's schedule: (when, headcount).
    schedule = deque([(warm_s - WARMUP_S, surge), (warm_s + surge_s, normal)]) if arm == "oracle" else deque()
    arrivals = deque(_arrivals(seed, warm_s, surge_s, after_s))
    result = ArmResult(0.0, 0.0, 0, 0, 0.0, normal)
    now_s = 0.0
    while now_s < end_s:
        tick_end = min(end_s, now_s + STATUS_EVERY_S)
        while arrivals and arrivals[0] < tick_end:
            at_s = arrivals.popleft()
            pool.run_until(at_s)
            pool.arrive(at_s)
        pool.run_until(tick_end)
        now_s = tick_end
        while schedule and schedule[0][0] <= now_s:
            pool.resize(schedule.popleft()[1], now_s)
        if arm == "autoscaled":
            command = scaler.decide(pool.status(now_s), now_s)
            if command is not None and command.workers is not None:
                pool.resize(command.workers, now_s)
                result.commands += 1
                result.reasons.append(f"t={now_s:.0f}s {command.reason}")
        result.max_backlog = max(result.max_backlog, len(pool.pending))
        result.max_workers = max(result.max_workers, len(pool.active()))
    times = [(t.arrived_s, (t.done_s if t.done_s is not None else end_s) - t.arrived_s) for t in pool.tasks]
    result.p95_s = _quantile([spent for _, spent in times], 0.95)
    result.p95_in_surge_s = _quantile(
        [spent for arrived, spent in times if warm_s <= arrived < warm_s + surge_s], 0.95
    )
    result.end_backlog = sum(t.done_s is None for t in pool.tasks)
    result.worker_minutes = sum(((w.left_s or end_s) - w.hired_s) / 60.0 for w in pool.workers.values())
    return result


#: The seeds P1 is measured over: every seed of the first look at its spread (1-8, chosen before the
#: per-seed results; seed 6 then failed the 1.25x bound), none dropped since.
SEEDS = (1, 2, 3, 4, 5, 6, 7, 8)


@dataclass(frozen=True)
class SeedResult:
    """The three arms of one seed."""

    seed: int
    autoscaled: ArmResult
    fixed: ArmResult
    oracle: ArmResult

    @property
    def ratio(self) -> float:
        """Autoscaled worker-minutes over the oracle's."""
        return self.autoscaled.worker_minutes / self.oracle.worker_minutes

    @property
    def drained(self) -> bool:
        """Whether the autoscaled pool ends with at most a minute of normal arrivals unfinished."""
        return self.autoscaled.end_backlog <= BASE_PER_MIN * SLA_S / 60.0


def run(
    *,
    seeds: tuple[int, ...] = SEEDS,
    warm_s: float = WARM_S,
    surge_s: float = SURGE_S,
    after_s: float = AFTER_S,
) -> tuple[list[Row], list[Goal]]:
    """The three arms on every seed, a row per seed and figure, and the P1 goal line."""
    results = [
        SeedResult(
            seed,
            *(
                run_arm(arm, seed=seed, warm_s=warm_s, surge_s=surge_s, after_s=after_s)
                for arm in ("autoscaled", "fixed", "oracle")
            ),
        )
        for seed in seeds
    ]
    rows: list[Row] = []
    for r in results:
        auto, fixed = r.autoscaled, r.fixed
        rows += [
            Row(f"P1 seed {r.seed} p95, autoscaled", auto.p95_s, SLA_S, "s", "SLA"),
            Row(f"P1 seed {r.seed} p95 in the surge, autoscaled", auto.p95_in_surge_s, SLA_S, "s", "SLA"),
            Row(f"P1 seed {r.seed} p95, fixed", fixed.p95_s, SLA_S, "s", "SLA"),
            Row(
                f"P1 seed {r.seed} unfinished at the end, autoscaled",
                auto.end_backlog,
                BASE_PER_MIN * SLA_S / 60.0,
                "ts",
                "drained",
            ),
            Row(
                f"P1 seed {r.seed} worker-minutes, autoscaled",
                auto.worker_minutes,
                r.oracle.worker_minutes,
                "wm",
                "oracle",
            ),
        ]
    ratios = [r.ratio for r in results]
    mean_ratio = sum(ratios) / len(ratios)
    worst = max(results, key=lambda r: r.ratio)
    within = [r for r in results if r.autoscaled.p95_s <= SLA_S and r.autoscaled.p95_in_surge_s <= SLA_S]
    drained = [r for r in results if r.drained]
    broken = [r for r in results if r.fixed.p95_s > SLA_S]
    n = len(results)
    holds = len(within) == n and len(drained) == n and len(broken) == n and mean_ratio <= 1.25
    seed_list = ",".join(str(r.seed) for r in results)
    figure = (
        f"{SURGE_FACTOR:.0f}x surge for {surge_s:.0f}s, seeds {seed_list}: p95 time-to-label autoscaled "
        f"<= {max(r.autoscaled.p95_s for r in results):.1f}s (surge "
        f"<= {max(r.autoscaled.p95_in_surge_s for r in results):.1f}s) within the SLA on {len(within)}/{n}, "
        f"backlog drained on {len(drained)}/{n}; fixed >= {min(r.fixed.p95_s for r in results):.0f}s, "
        f"breaks the SLA on {len(broken)}/{n}; worker-minutes autoscaled/oracle mean {mean_ratio:.2f}x, "
        f"worst {worst.ratio:.2f}x (seed {worst.seed})"
    )
    if worst.ratio > 1.25:
        figure += f", above 1.25x on seed {worst.seed}"
    goal = (
        "every seed: autoscaled p95 <= SLA 60s overall and in the surge, backlog drained, fixed > SLA; "
        "mean worker-minutes <= 1.25x oracle"
    )
    return rows, [Goal("P1", figure, goal, holds)]


if __name__ == "__main__":
    from bench.harness import report

    print(report(*run()))
