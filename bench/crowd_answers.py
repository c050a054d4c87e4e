"""The crowd of the aggregation bench: seeded workers, and the answers they give in the order they come.

:class:`Crowd` draws the workers (spammers, careless and good ones; :data:`PROFILE`) and each
task's true class; :func:`pulled` is the pull-based crowd of
:mod:`agents.simulation.simulated_crowd` (a backlog, workers taking the oldest task they have
not had, the dynamic-overlap rule deciding when a task has enough), :func:`drawn` a fixed overlap.
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agents.aggregator.overlap import DynamicOverlap
from agents.simulation.crowd import CrowdProfile, WorkerProfile, workers
from agents.simulation.crowd import worker as worker_profile
from schemas import LabelRequest, PredictionEvent, PredictionInput

CLASSES = ("cat", "dog", "fox")
PRIOR = (0.5, 0.3, 0.2)
WORKERS = 60
TASKS = 1_500
SPAMMER_SHARE = 0.2
CARELESS_SHARE = 0.1
GOLDEN_RATE = 0.05
#: Seconds a newcomer (a banned worker's replacement) needs before its first task: the pool's default.
WARMUP_S = 5.0
START = datetime(2026, 1, 1, tzinfo=UTC)
PROFILE = CrowdProfile(
    spammer_share=SPAMMER_SHARE,
    careless_share=CARELESS_SHARE,
    confusable_pairs=(("dog", "fox"),),
    abandon_probability=0.0,
    session_mean_s=None,
)


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer as the pool reports it: when, to which task, by whom, and the overlap stamped on it."""

    at_s: float
    task: int
    worker: str
    label: str
    overlap: int
    spent_s: float
    #: The truth of a golden task (``task`` is then the real task it followed), else None.
    golden: str | None = None


@dataclass
class Crowd:
    """The seeded crowd and the task stream: workers, truths, and the random draws of the answers."""

    seed: int
    tasks: int = TASKS
    #: Every worker who ever joined: the initial crowd, then the newcomers who replaced banned workers.
    profiles: list[WorkerProfile] = field(init=False)
    truths: list[str] = field(init=False)
    rng: random.Random = field(init=False)
    #: The workers the ban rule removed, in ban order.
    banned: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.profiles = workers(WORKERS, self.seed, PROFILE)
        self.rng = random.Random(f"{self.seed}/stream")
        self.truths = self.rng.choices(CLASSES, weights=PRIOR, k=self.tasks)

    def newcomer(self) -> WorkerProfile:
        """A worker replacing a banned one: its kind drawn with the crowd's shares, as the pool does."""
        profile = worker_profile(f"n{len(self.profiles) - WORKERS}", self.seed, PROFILE)
        self.profiles.append(profile)
        return profile

    def answer(self, worker: WorkerProfile, truth: str) -> str:
        return worker.answer(truth, CLASSES, self.rng)

    def golden(self) -> str | None:
        """The truth of a golden task the worker answers after a real answer, or None."""
        return self.rng.choices(CLASSES, weights=PRIOR)[0] if self.rng.random() < GOLDEN_RATE else None


def pulled(
    crowd: Crowd, rule: DynamicOverlap, is_banned: Callable[[str], bool] | None = None
) -> Iterator[Answer]:
    """The answers of the pull-based crowd of :mod:`agents.simulation.simulated_crowd`, as they come.

    Every task waits in one queue from the start (a backlog, oldest first). A
    free worker takes the oldest task that needs more workers (its rule's
    target exceeds its answers in hand and in progress) and that it has not
    had; with none, it waits until an answer puts a task back in the queue.
    An answer takes the worker's service time, and after it the worker does
    a golden task with probability ``GOLDEN_RATE`` (that takes its time too).
    The rule's target is computed when an answer comes in, with the skills
    known then: the consumer of this generator updates them between answers.

    With ``is_banned`` (the pool's ban rule), a worker it flags takes no new
    task (its answer in hand counted): it leaves, and a newcomer drawn from the
    crowd's profile (a spammer with the spammers' share) starts after ``WARMUP_S``.
    """
    n = len(crowd.truths)
    speed: dict[str, random.Random] = {}
    assigned: list[set[str]] = [set() for _ in range(n)]
    votes: list[list[tuple[str, str]]] = [[] for _ in range(n)]
    in_progress = [0] * n
    target = [0] * n
    complete = [False] * n
    pending: list[int] = []  # tasks started that need more workers, oldest first
    fresh = 0  # the oldest task nobody took yet
    #: (when, order, worker, task, golden truth, time spent); task -1: a newcomer ready to work.
    events: list[tuple[float, int, WorkerProfile, int, str | None, float]] = []
    sequence = 0
    idle: list[WorkerProfile] = []

    def need(task: int) -> int:
        return 0 if complete[task] else target[task] - len(votes[task]) - in_progress[task]

    def service_time(worker: WorkerProfile) -> float:
        rng = speed.get(worker.worker_id)
        if rng is None:
            rng = speed[worker.worker_id] = random.Random(f"{crowd.seed}/{worker.worker_id}/speed")
        return worker.service_time_s(rng)

    def take(worker: WorkerProfile, now: float) -> bool:
        nonlocal fresh, sequence
        task = next((t for t in pending if worker.worker_id not in assigned[t]), None)
        if task is None:
            if fresh >= n:
                return False
            task, fresh = fresh, fresh + 1
            target[task] = rule.target([], len(CLASSES))
            bisect.insort(pending, task)
        assigned[task].add(worker.worker_id)
        in_progress[task] += 1
        if need(task) <= 0:
            pending.remove(task)
        spent = service_time(worker)
        heapq.heappush(events, (now + spent, sequence, worker, task, None, spent))
        sequence += 1
        return True

    def free(worker: WorkerProfile, now: float) -> None:
        nonlocal sequence
        if is_banned is not None and is_banned(worker.worker_id):
            crowd.banned.append(worker.worker_id)
            heapq.heappush(events, (now + WARMUP_S, sequence, crowd.newcomer(), -1, None, 0.0))
            sequence += 1
        elif not take(worker, now):
            idle.append(worker)

    for worker in list(crowd.profiles):
        free(worker, 0.0)
    while events:
        at, _, worker, task, golden, spent = heapq.heappop(events)
        if task < 0:
            free(worker, at)  # a newcomer, warmed up
            continue
        if golden is not None:
            yield Answer(at, task, worker.worker_id, crowd.answer(worker, golden), 1, spent, golden)
        else:
            label = crowd.answer(worker, crowd.truths[task])
            in_progress[task] -= 1
            votes[task].append((worker.worker_id, label))
            if complete[task]:
                stamp = len(votes[task])  # asked for no more: complete with this answer in
            else:
                target[task] = stamp = rule.target(votes[task], len(CLASSES))
                if len(votes[task]) >= stamp:
                    complete[task] = True
                    if task in pending:
                        pending.remove(task)
                elif need(task) > 0 and task not in pending:
                    bisect.insort(pending, task)
            yield Answer(at, task, worker.worker_id, label, stamp, spent)
            truth = crowd.golden()
            if truth is not None:
                spent = service_time(worker)
                heapq.heappush(events, (at + spent, sequence, worker, task, truth, spent))
                sequence += 1
                continue
        free(worker, at)
        waiting, idle[:] = list(idle), []
        for other in waiting:
            free(other, at)


def drawn(crowd: Crowd, overlap: int) -> Iterator[Answer]:
    """The uniform-draw crowd: each answer's worker drawn uniformly among those who have not answered."""
    for task, truth in enumerate(crowd.truths):
        had: set[str] = set()
        for _ in range(overlap):
            worker = crowd.rng.choice([w for w in crowd.profiles if w.worker_id not in had])
            had.add(worker.worker_id)
            at = float(task)
            yield Answer(at, task, worker.worker_id, crowd.answer(worker, truth), overlap, 1.0)
            golden = crowd.golden()
            if golden is not None:
                yield Answer(at, task, worker.worker_id, crowd.answer(worker, golden), 1, 1.0, golden)


def _request(index: int) -> LabelRequest:
    event = PredictionEvent(
        event_id=f"e{index}",
        model_name="bench",
        model_version="1",
        created_at=START,
        input=PredictionInput(text=f"task {index}"),
        predicted_label=CLASSES[0],
        scores={label: 1.0 / len(CLASSES) for label in CLASSES},
    )
    return LabelRequest(
        prediction=event,
        route="low_confidence",
        reason="bench",
        priority=0.5,
        uncertainty=0.5,
        overlap=None,
        requested_at=START,
    )
