"""Aggregation that knows who to trust: seeded simulated crowds with spammers, goals C2 and C3.

Two goals of the issue "Aggregation that knows who to trust":

- **C2**: with 20% spammers in the crowd, the label accuracy of skill-weighted
  votes (:class:`WeightedVoteAggregator` with a :class:`SkillBook`) and of
  Dawid–Skene is at least 5 points above majority vote, at the same answers
  per task (overlap 3; overlap 5 is reported too).
- **C3**: dynamic overlap (:class:`DynamicOverlap` with skills learned online)
  reaches the accuracy of fixed overlap 3 within 1 point with at least 25%
  fewer answers.

**Bans (C3 only).** The simulated pool, as a crowd platform does, bans the
workers its quality rule flags (:func:`agents.simulation.crowd_workers.ban_rule` on the
aggregator's SkillBook: flagged as spammers, or answering too fast): a banned
worker takes no new task and a newcomer drawn from the same crowd profile (a
spammer with the spammers' share) takes its seat after ``WARMUP_S``. Both C3
arms, dynamic and fixed 3, run under that rule, so they differ only in the
overlap rule; the rows print the bans per run and who was banned. C2 compares
aggregators on the same answers, without bans. The rule includes the speed
rule because, on the tuning seeds, it bans every spammer within a few answers,
some careless workers and no good worker (0-1 per run on the measured seeds),
and fixed 3 gains 6 points over banning flagged workers only (0.888 vs 0.827);
with flags only, no rule of the grid reached C3 on the tuning seeds.

The crowd is :mod:`agents.simulation.crowd`: ``WORKERS`` workers, 20%
spammers (half answer uniformly at random, half always one class), 10%
careless workers (accuracy 0.55–0.75), the rest good (0.75–0.95, with
per-class accuracy and crowd-wide confusable class pairs). Tasks have three
classes with a skewed prior.

**Who answers** follows the product's simulated pool
(:mod:`agents.simulation.simulated_crowd`), because that is the crowd the labels come
from: the tasks wait in one queue (a backlog, in stream order), and a worker
who is free takes the oldest task that still needs an answer and that it has
not had; an answer takes the worker's ``service_time_s`` (log-normal around its
own mean). So a worker's share of the answers is proportional to its speed,
and spammers, five times faster than good workers, give about half of all
answers though they are a fifth of the headcount (careless workers, 2.5 times
faster, another eighth). A dynamic-overlap task asks for one more answer
while the rule's target exceeds the answers in hand and in progress, as the
pool does. The rows marked "uniform draw" draw each answer's worker uniformly
among those who have not answered the task (every worker answers as often);
they are printed for comparison only: that crowd is not the product's.

Skills are learned online, in answer order, never from the truth of the
tasks being labeled: from golden tasks (after each real answer the worker
answers a golden task with probability ``GOLDEN_RATE``, taking its time as
for any task; **those answers count in the answer budget** of every method
that uses them), from the answers' speed (``CrowdAnswer.time_spent_s``), from
agreement with confident aggregates, and from Dawid–Skene refits over a
sliding window. Majority vote uses no golden answers, so its budget is the
bare overlap. The batch Dawid–Skene row is one fit over all the answers
(golden truths clamped), the batch form of the refit. Accuracy is that of the
latest revision of every label (after healing), and of the first revision in
separate rows.

Every figure is the mean over the ``SEEDS`` crowds (``TASKS`` tasks each); the
spread (min–max over the seeds) is printed with it. The C3 rule was chosen on
the ``TUNING_SEEDS`` crowds (``python -m bench.crowd_aggregation --tune``
prints that search), which are not among the measured ``SEEDS``; the skill
settings' defaults were chosen on them too.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from agents.aggregator.dawid_skene import DawidSkeneRefit, DawidSkeneSettings, WindowAnswer, fit_dawid_skene
from agents.aggregator.majority import majority
from agents.aggregator.overlap import DynamicOverlap, OverlapSettings
from agents.aggregator.skills import SkillBook
from agents.aggregator.weighted import WeightedSettings, WeightedTaskState, WeightedVoteAggregator
from agents.simulation.crowd import CrowdProfile, WorkerProfile, workers
from agents.simulation.crowd import worker as worker_profile
from agents.simulation.simulated_crowd import ban_rule
from bench.harness import Goal, Row
from schemas import CrowdAnswer, LabelRequest, PredictionEvent, PredictionInput

CLASSES = ("cat", "dog", "fox")
PRIOR = (0.5, 0.3, 0.2)
WORKERS = 60
TASKS = 1_500
#: The measured crowds; the C3 rule and the skill defaults were chosen on TUNING_SEEDS.
SEEDS = (21, 22, 23)
TUNING_SEEDS = (11, 12, 13)
#: The dynamic-overlap rule of C3 (chosen on TUNING_SEEDS).
C3_RULE = OverlapSettings(minimum=1, maximum=6, confidence=0.82)
SPAMMER_SHARE = 0.2
CARELESS_SHARE = 0.1
GOLDEN_RATE = 0.05
#: Seconds a newcomer (a banned worker's replacement) needs before its first task: the pool's default.
WARMUP_S = 5.0
#: The numpy engine of the Dawid–Skene fit: crowd-kit's EM to 1e-9 (a test holds them equal), ~100x faster.
ENGINE: Literal["numpy"] = "numpy"
C2_POINTS = 0.05
C3_POINTS = 0.01
C3_SAVING = 0.25
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


@dataclass
class Run:
    """One method's labels and the answers it paid for (real and golden)."""

    tasks: int
    labels: dict[str, str] = field(default_factory=dict)
    first: dict[str, str] = field(default_factory=dict)
    real_answers: int = 0
    golden_answers: int = 0
    revisions: int = 0
    flagged: int = 0
    #: Workers the pool banned: all of them, then the careless and the good ones among them.
    bans: int = 0
    careless_bans: int = 0
    good_bans: int = 0
    #: The share of real answers that came from spammers.
    spammer_share: float = 0.0

    def accuracy(self, truths: Sequence[str], *, first: bool = False) -> float:
        labels = self.first if first else self.labels
        return sum(labels.get(f"e{i}") == truth for i, truth in enumerate(truths)) / len(truths)

    @property
    def answers(self) -> int:
        return self.real_answers + self.golden_answers

    @property
    def per_task(self) -> float:
        return self.answers / self.tasks


class Labeled:
    """Feeds a WeightedVoteAggregator answer by answer and keeps the latest revision of every label."""

    def __init__(self, tasks: int, *, use_golden: bool = True) -> None:
        refit = DawidSkeneRefit(DawidSkeneSettings(window_answers=3_000, refit_every=500, engine=ENGINE))
        self.aggregator = WeightedVoteAggregator(
            WeightedSettings(escalate_below=0.0, audit_share=0.0), SkillBook(), refit
        )
        self.use_golden = use_golden
        self.states: dict[str, WeightedTaskState] = {}
        self.run = Run(tasks)
        self.goldens = 0

    def feed(self, answer: Answer) -> None:
        now = START + timedelta(seconds=answer.at_s)
        if answer.golden is not None:
            if not self.use_golden:
                return
            self.goldens += 1
            event_id = f"g{self.goldens}"
            self.run.golden_answers += 1
        else:
            event_id = f"e{answer.task}"
            self.run.real_answers += 1
            if event_id not in self.states:
                self._step(event_id, _request(answer.task), now)
        crowd_answer = CrowdAnswer(
            event_id=event_id,
            task_id=event_id,
            pool="sim",
            worker_id=answer.worker,
            label=answer.label,
            time_spent_s=max(answer.spent_s, 1e-3),
            answered_at=now,
            overlap=answer.overlap,
            golden_label=answer.golden,
        )
        self._step(event_id, crowd_answer, now)

    def _step(self, event_id: str, item: LabelRequest | CrowdAnswer, now: datetime) -> None:
        state = self.states.get(event_id, WeightedTaskState())
        if isinstance(item, LabelRequest):
            state, outcome = self.aggregator.step_request(state, item, now)
        else:
            state, outcome = self.aggregator.step_answer(state, item, event_id, now)
        if not (isinstance(item, CrowdAnswer) and item.is_golden):
            self.states[event_id] = state
        for label in outcome.labels:
            self.run.labels[label.event_id] = label.label
            self.run.first.setdefault(label.event_id, label.label)
        self.run.flagged += len(outcome.flagged)
        for revisit, reason in outcome.revisit:
            known = self.states.get(revisit)
            if known is None:
                continue
            healed, again = self.aggregator.reaggregate(known, revisit, now, reason)
            self.states[revisit] = healed
            for label in again.labels:
                self.run.labels[label.event_id] = label.label
                self.run.revisions += 1


def weighted_run(answers: Sequence[Answer], tasks: int, *, use_golden: bool = True) -> Run:
    labeled = Labeled(tasks, use_golden=use_golden)
    for answer in answers:
        labeled.feed(answer)
    return labeled.run


def dynamic_run(crowd: Crowd, settings: OverlapSettings, *, bans: bool = True) -> Run:
    """The pull crowd under the rule, with the skills the aggregator learns as the answers come in.

    With ``bans``, the pool bans workers by its rule (:func:`agents.simulation.crowd_workers.ban_rule`) on the
    aggregator's SkillBook: flagged as spammers, or too fast.
    """
    labeled = Labeled(len(crowd.truths))
    book = labeled.aggregator.book
    rule = DynamicOverlap(settings, book.accuracy_of)
    answers = []
    for answer in pulled(crowd, rule, ban_rule(book) if bans else None):
        labeled.feed(answer)
        answers.append(answer)
    run = labeled.run
    kinds = {worker.worker_id: worker.kind for worker in crowd.profiles}
    run.bans = len(crowd.banned)
    run.careless_bans = sum(kinds[worker] == "careless" for worker in crowd.banned)
    run.good_bans = sum(kinds[worker] == "good" for worker in crowd.banned)
    run.spammer_share = spammer_share(crowd, answers)
    return run


def votes_of(answers: Sequence[Answer], tasks: int) -> list[list[tuple[str, str]]]:
    votes: list[list[tuple[str, str]]] = [[] for _ in range(tasks)]
    for answer in answers:
        if answer.golden is None:
            votes[answer.task].append((answer.worker, answer.label))
    return votes


def majority_run(answers: Sequence[Answer], tasks: int) -> Run:
    run = Run(tasks)
    for index, task_votes in enumerate(votes_of(answers, tasks)):
        run.labels[f"e{index}"] = majority([label for _, label in task_votes])[0]
        run.real_answers += len(task_votes)
    run.first = run.labels
    return run


def dawid_skene_run(answers: Sequence[Answer], tasks: int, *, use_golden: bool = True) -> Run:
    window = [
        WindowAnswer(f"e{a.task}" if a.golden is None else f"g{n}", a.worker, a.label, a.golden)
        for n, a in enumerate(answers)
        if use_golden or a.golden is None
    ]
    fit = fit_dawid_skene(window, settings=DawidSkeneSettings(engine=ENGINE))
    run = Run(tasks)
    run.real_answers = sum(a.golden is None for a in answers)
    run.golden_answers = len(window) - run.real_answers
    for index in range(tasks):
        label = fit.label_of(f"e{index}")
        if label is not None:
            run.labels[f"e{index}"] = label
    run.first = run.labels
    return run


def oracle_run(crowd: Crowd, answers: Sequence[Answer]) -> Run:
    """The Bayes-optimal label given the answers: every worker's true confusion and the true prior."""
    profiles = {worker.worker_id: worker for worker in crowd.profiles}
    run = Run(len(crowd.truths))
    for index, task_votes in enumerate(votes_of(answers, len(crowd.truths))):
        run.real_answers += len(task_votes)
        scores = {
            truth: math.log(prior)
            + sum(
                math.log(max(profiles[worker].confusion_row(truth, CLASSES)[label], 1e-9))
                for worker, label in task_votes
            )
            for truth, prior in zip(CLASSES, PRIOR, strict=True)
        }
        run.labels[f"e{index}"] = max(scores, key=scores.__getitem__)
    run.first = run.labels
    return run


def spammer_share(crowd: Crowd, answers: Sequence[Answer]) -> float:
    """The share of real answers that came from spammers."""
    kinds = {worker.worker_id: worker.kind for worker in crowd.profiles}
    real = [a for a in answers if a.golden is None]
    return sum(kinds[a.worker] == "spammer" for a in real) / len(real)


@dataclass
class Figures:
    """One figure per seed, printed as the mean and the min–max spread."""

    values: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def spread(self) -> str:
        if len(self.values) < 2:
            return ""
        return f" [{min(self.values):.3f}-{max(self.values):.3f}]"


def measure(seeds: Sequence[int], tasks: int, rule: OverlapSettings) -> dict[str, Figures]:
    """Every method's accuracy and answers per task, per seed; keys name the method and the crowd."""
    figures: dict[str, Figures] = {}

    def put(key: str, value: float) -> None:
        figures.setdefault(key, Figures()).values.append(value)

    for seed in seeds:
        for overlap in (3, 5):
            crowd = Crowd(seed, tasks)
            answers = list(pulled(crowd, DynamicOverlap(OverlapSettings.fixed(overlap))))
            truths = crowd.truths
            runs = {
                "majority": majority_run(answers, tasks),
                "skill-weighted": weighted_run(answers, tasks),
                "Dawid-Skene": dawid_skene_run(answers, tasks),
                "oracle (true confusions)": oracle_run(crowd, answers),
            }
            if overlap == 3:
                runs["Dawid-Skene, no golden"] = dawid_skene_run(answers, tasks, use_golden=False)
                put("spammer share", spammer_share(crowd, answers))
            for name, result in runs.items():
                put(f"{overlap}/{name}", result.accuracy(truths))
                put(f"{overlap}/{name}/answers", result.per_task)
            weighted = runs["skill-weighted"]
            put(f"{overlap}/skill-weighted/first", weighted.accuracy(truths, first=True))
        crowd = Crowd(seed, tasks)
        answers = list(drawn(crowd, 3))
        for name, result in {
            "majority": majority_run(answers, tasks),
            "skill-weighted": weighted_run(answers, tasks),
            "Dawid-Skene": dawid_skene_run(answers, tasks),
        }.items():
            put(f"uniform/{name}", result.accuracy(crowd.truths))
            put(f"uniform/{name}/answers", result.per_task)
        # C3: both arms under the pool's ban rule; they differ only in the overlap rule.
        for key, settings in (("fixed", OverlapSettings.fixed(3)), ("dynamic", rule)):
            crowd = Crowd(seed, tasks)
            result = dynamic_run(crowd, settings)
            put(key, result.accuracy(crowd.truths))
            put(f"{key}/first", result.accuracy(crowd.truths, first=True))
            put(f"{key}/answers", result.per_task)
            put(f"{key}/bans", result.bans)
            put(f"{key}/careless bans", result.careless_bans)
            put(f"{key}/good bans", result.good_bans)
            put(f"{key}/spammer share", result.spammer_share)
    return figures


def run(*, tasks: int = TASKS, seeds: Sequence[int] = SEEDS) -> tuple[list[Row], list[Goal]]:
    figures = measure(seeds, tasks, C3_RULE)

    def mean(key: str) -> float:
        return figures[key].mean

    def row(name: str, key: str, baseline: str, baseline_name: str) -> Row:
        return Row(f"{name}{figures[key].spread}", mean(key), mean(baseline), "", baseline_name)

    where = f"mean of seeds {', '.join(map(str, seeds))}, {tasks} tasks each"
    rows = [
        Row(
            f"C2 share of answers by spammers{figures['spammer share'].spread}",
            mean("spammer share"),
            SPAMMER_SHARE,
            "",
            "their share of the headcount (pull crowd: they are fast)",
        )
    ]
    for overlap in (3, 5):
        names = ["skill-weighted", "Dawid-Skene", "oracle (true confusions)"]
        if overlap == 3:
            names[2:2] = ["Dawid-Skene, no golden"]
        for name in names:
            rows.append(
                row(
                    f"C2 accuracy, overlap {overlap}: {name}",
                    f"{overlap}/{name}",
                    f"{overlap}/majority",
                    f"majority vote ({mean(f'{overlap}/{name}/answers'):.2f} vs {overlap} answers/task)",
                )
            )
        rows.append(
            row(
                f"C2 accuracy, overlap {overlap}: skill-weighted, first revisions",
                f"{overlap}/skill-weighted/first",
                f"{overlap}/majority",
                "majority vote",
            )
        )
    for name in ("skill-weighted", "Dawid-Skene"):
        rows.append(
            row(
                f"C2 accuracy, uniform draw (not the product's crowd), overlap 3: {name}",
                f"uniform/{name}",
                "uniform/majority",
                f"majority vote, uniform draw ({mean(f'uniform/{name}/answers'):.2f} vs 3 answers/task)",
            )
        )
    mv3, sw3, ds3, best3 = (
        mean(f"3/{name}")
        for name in ("majority", "skill-weighted", "Dawid-Skene", "oracle (true confusions)")
    )
    golden3 = mean("3/skill-weighted/answers") - 3.0
    goals = [
        Goal(
            "C2",
            f"pull crowd (as the simulated pool), overlap 3, 20% spammers giving "
            f"{100 * mean('spammer share'):.0f}% of the answers, {where}: skill-weighted {sw3:.3f}"
            f"{figures['3/skill-weighted'].spread}, Dawid-Skene {ds3:.3f}{figures['3/Dawid-Skene'].spread}, "
            f"majority {mv3:.3f}{figures['3/majority'].spread} (+{100 * (sw3 - mv3):.1f} / "
            f"+{100 * (ds3 - mv3):.1f} points; golden answers add {golden3:.2f}/task; the true confusions "
            f"give +{100 * (best3 - mv3):.1f})",
            f">= +{100 * C2_POINTS:.0f} points for both",
            sw3 - mv3 >= C2_POINTS and ds3 - mv3 >= C2_POINTS,
        )
    ]
    rule = f"dynamic overlap {C3_RULE.minimum}-{C3_RULE.maximum} at {C3_RULE.confidence}"
    fixed, fixed_answers = mean("fixed"), mean("fixed/answers")
    dynamic, dynamic_answers = mean("dynamic"), mean("dynamic/answers")
    saving = 1.0 - dynamic_answers / fixed_answers
    arms = {"fixed": "fixed 3", "dynamic": rule}
    rows += [
        row(f"C3 answers/task: {rule}", "dynamic/answers", "fixed/answers", "fixed 3, skill-weighted"),
        row(f"C3 accuracy: {rule}", "dynamic", "fixed", "fixed 3, skill-weighted"),
        row(
            f"C3 accuracy: {rule}, first revisions",
            "dynamic/first",
            "fixed/first",
            "fixed 3, skill-weighted, first revisions",
        ),
        row("C3 accuracy: fixed 3 with bans", "fixed", "3/skill-weighted", "fixed 3 without bans (C2's run)"),
    ]
    for key, name in arms.items():
        rows += [
            Row(
                f"C3 bans per run: {name}{figures[f'{key}/bans'].spread}",
                mean(f"{key}/bans"),
                WORKERS * SPAMMER_SHARE,
                "",
                f"the initial spammers; of the bans, careless workers "
                f"{'/'.join(f'{v:.0f}' for v in figures[f'{key}/careless bans'].values)}, good workers "
                f"{'/'.join(f'{v:.0f}' for v in figures[f'{key}/good bans'].values)}",
            ),
            row(
                f"C3 share of answers by spammers, with bans: {name}",
                f"{key}/spammer share",
                "spammer share",
                "without bans (C2's run)",
            ),
        ]
    bans = "/".join(f"{value:.0f}" for value in figures["dynamic/bans"].values)
    fixed_bans = "/".join(f"{value:.0f}" for value in figures["fixed/bans"].values)
    goals.append(
        Goal(
            "C3",
            f"pull crowd, the pool banning flagged and too-fast workers in both arms ({bans} vs "
            f"{fixed_bans} bans), "
            f"{where}, rule chosen on seeds {', '.join(map(str, TUNING_SEEDS))}: {rule}: "
            f"{dynamic:.3f}{figures['dynamic'].spread} at {dynamic_answers:.2f} answers/task vs fixed 3 "
            f"{fixed:.3f}{figures['fixed'].spread} at {fixed_answers:.2f} ({100 * saving:.0f}% "
            f"fewer, golden included)",
            f"accuracy within {100 * C3_POINTS:.0f} point, >= {100 * C3_SAVING:.0f}% fewer answers",
            dynamic >= fixed - C3_POINTS and saving >= C3_SAVING,
        )
    )
    return rows, goals


def tune(seeds: Sequence[int] = TUNING_SEEDS, tasks: int = TASKS) -> None:
    """Print C3 on the tuning crowds for a grid of rules (how C3_RULE was chosen), bans in both arms."""
    crowds = [Crowd(seed, tasks) for seed in seeds]
    fixed = [dynamic_run(crowd, OverlapSettings.fixed(3)) for crowd in crowds]
    base_accuracy = statistics.fmean(r.accuracy(c.truths) for r, c in zip(fixed, crowds, strict=True))
    base_answers = statistics.fmean(r.per_task for r in fixed)
    print(f"fixed 3: {base_accuracy:.3f} at {base_answers:.2f} answers/task, bans {[r.bans for r in fixed]}")
    for minimum, maximum, confidence in _grid():
        settings = OverlapSettings(minimum=minimum, maximum=maximum, confidence=confidence)
        crowds = [Crowd(seed, tasks) for seed in seeds]
        results = [dynamic_run(crowd, settings) for crowd in crowds]
        accuracy = statistics.fmean(r.accuracy(c.truths) for r, c in zip(results, crowds, strict=True))
        per_task = statistics.fmean(r.per_task for r in results)
        print(
            f"{minimum}-{maximum} at {confidence}: {accuracy:.3f} ({100 * (accuracy - base_accuracy):+.1f}) "
            f"at {per_task:.2f} answers/task ({100 * (1 - per_task / base_answers):.0f}% fewer), "
            f"bans {[r.bans for r in results]}"
        )


def _grid() -> Iterator[tuple[int, int, float]]:
    for minimum in (1, 2):
        for maximum in (3, 4, 5, 6, 7):
            for confidence in (0.7, 0.75, 0.8, 0.81, 0.82, 0.83, 0.85, 0.9):
                if minimum < maximum:
                    yield minimum, maximum, confidence


if __name__ == "__main__":
    if "--tune" in sys.argv:
        tune()
    else:
        from bench.harness import report

        print(report(*run()))
