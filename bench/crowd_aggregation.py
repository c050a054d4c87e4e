"""Aggregation that knows who to trust: seeded simulated crowds with spammers, goals C2 and C3.

Two goals of the issue "Aggregation that knows who to trust":

- **C2**: with 20% spammers in the crowd, the label accuracy of skill-weighted
  votes (:class:`WeightedVoteAggregator` with a :class:`SkillBook`) and of
  Dawid–Skene (crowd-kit) is at least 5 points above majority vote, at the
  same answers per task (overlap 3; overlap 5 is reported too).
- **C3**: dynamic overlap (:class:`DynamicOverlap` with skills learned online)
  reaches the accuracy of fixed overlap 3 within 1 point with at least 25%
  fewer answers.

The crowd is :mod:`agents.simulation.crowd`: ``WORKERS`` workers, 20%
spammers (half answer uniformly at random, half always one class), 10%
careless workers (accuracy 0.55–0.75), the rest good (0.75–0.95, with
per-class accuracy and crowd-wide confusable class pairs). Tasks have three
classes with a skewed prior; each answer comes from a worker drawn uniformly
among those who have not answered the task yet.

Skills are learned online, in stream order, never from the truth of the
tasks being labeled: from golden tasks (after each real answer the worker
answers a golden task with probability ``GOLDEN_RATE``; **those answers count
in the answer budget** of every method that uses them), from agreement with
confident aggregates, and from Dawid–Skene refits over a sliding window.
Majority vote uses no golden answers, so its budget is the bare overlap.
Dawid–Skene is fitted once over all the answers (golden truths clamped), the
batch form of the refit. Accuracy is that of the latest revision of every
label (after healing), and of the first revision in a separate row.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from agents.aggregator.dawid_skene import DawidSkeneRefit, DawidSkeneSettings, WindowAnswer, fit_dawid_skene
from agents.aggregator.majority import majority
from agents.aggregator.overlap import DynamicOverlap, OverlapSettings
from agents.aggregator.skills import SkillBook
from agents.aggregator.weighted import WeightedSettings, WeightedTaskState, WeightedVoteAggregator
from agents.simulation.crowd import CrowdProfile, WorkerProfile, workers
from bench.harness import Goal, Row
from schemas import CrowdAnswer, LabelRequest, PredictionEvent, PredictionInput

CLASSES = ("cat", "dog", "fox")
PRIOR = (0.5, 0.3, 0.2)
WORKERS = 60
TASKS = 3_000
#: C2's answers; C3 runs on a seed the rule below was not chosen on (it was chosen on seed 11).
C2_SEED = 14
C3_SEED = 111
#: The dynamic-overlap rule of C3: a worker trusted at 0.85 or more may settle a task alone;
#: others need agreement; at most 5 answers.
C3_RULE = OverlapSettings(minimum=1, maximum=5, confidence=0.85)
SPAMMER_SHARE = 0.2
CARELESS_SHARE = 0.1
GOLDEN_RATE = 0.05
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


@dataclass
class Crowd:
    """The seeded crowd and the task stream: truths, who answers, what they answer."""

    seed: int
    profiles: list[WorkerProfile] = field(init=False)
    truths: list[str] = field(init=False)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.profiles = workers(WORKERS, self.seed, PROFILE)
        self.rng = random.Random(f"{self.seed}/stream")
        self.truths = self.rng.choices(CLASSES, weights=PRIOR, k=TASKS)

    def ask(self, exclude: set[str]) -> tuple[WorkerProfile, Callable[[str], str]]:
        """A worker who has not answered the task yet, and how they answer a truth."""
        worker = self.rng.choice([w for w in self.profiles if w.worker_id not in exclude])
        return worker, lambda truth: worker.answer(truth, CLASSES, self.rng)

    def golden(self) -> str | None:
        """The truth of a golden task the worker answers after a real answer, or None."""
        return self.rng.choices(CLASSES, weights=PRIOR)[0] if self.rng.random() < GOLDEN_RATE else None


def _request(index: int, overlap: int | None) -> LabelRequest:
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
        overlap=overlap,
        requested_at=START,
    )


def _answer(
    event_id: str, worker_id: str, label: str, overlap: int, at: datetime, golden: str | None = None
) -> CrowdAnswer:
    return CrowdAnswer(
        event_id=event_id,
        task_id=event_id,
        pool="sim",
        worker_id=worker_id,
        label=label,
        time_spent_s=1.0,
        answered_at=at,
        overlap=overlap,
        golden_label=golden,
    )


@dataclass
class Run:
    """One method's labels and the answers it paid for (real and golden)."""

    labels: dict[str, str] = field(default_factory=dict)
    first: dict[str, str] = field(default_factory=dict)
    real_answers: int = 0
    golden_answers: int = 0
    revisions: int = 0
    flagged: int = 0

    def accuracy(self, truths: list[str], *, first: bool = False) -> float:
        labels = self.first if first else self.labels
        return sum(labels.get(f"e{i}") == truth for i, truth in enumerate(truths)) / len(truths)

    @property
    def answers(self) -> int:
        return self.real_answers + self.golden_answers


class _Labeled:
    """Feeds a WeightedVoteAggregator and keeps the latest revision of every label, healing as it goes."""

    def __init__(self, refit: bool) -> None:
        dawid_skene = DawidSkeneRefit(DawidSkeneSettings(window_answers=3_000, refit_every=1_500))
        self.aggregator = WeightedVoteAggregator(
            WeightedSettings(escalate_below=0.0, audit_share=0.0), SkillBook(), dawid_skene if refit else None
        )
        self.states: dict[str, WeightedTaskState] = {}
        self.run = Run()

    def step(self, event_id: str, item: LabelRequest | CrowdAnswer, now: datetime) -> None:
        state = self.states.get(event_id, WeightedTaskState())
        if isinstance(item, LabelRequest):
            state, outcome = self.aggregator.step_request(state, item, now)
        else:
            state, outcome = self.aggregator.step_answer(state, item, event_id, now)
        if item.__class__ is not CrowdAnswer or not item.is_golden:
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


def fixed_overlap(
    crowd: Crowd, overlap: int
) -> tuple[list[list[tuple[str, str]]], list[list[tuple[str, str, str]]]]:
    """Per task: ``overlap`` (worker, answer) votes, and the golden (worker, truth, answer) after each."""
    votes, golden = [], []
    for truth in crowd.truths:
        task_votes: list[tuple[str, str]] = []
        task_golden: list[tuple[str, str, str]] = []
        for _ in range(overlap):
            worker, answer = crowd.ask({w for w, _ in task_votes})
            task_votes.append((worker.worker_id, answer(truth)))
            golden_truth = crowd.golden()
            if golden_truth is not None:
                task_golden.append((worker.worker_id, golden_truth, answer(golden_truth)))
        votes.append(task_votes)
        golden.append(task_golden)
    return votes, golden


def majority_run(votes: list[list[tuple[str, str]]]) -> Run:
    run = Run()
    for index, task_votes in enumerate(votes):
        run.labels[f"e{index}"] = majority([label for _, label in task_votes])[0]
        run.real_answers += len(task_votes)
    run.first = run.labels
    return run


def weighted_run(
    votes: list[list[tuple[str, str]]],
    golden: list[list[tuple[str, str, str]]],
    *,
    use_golden: bool,
    refit: bool,
) -> Run:
    labeled = _Labeled(refit)
    for index, (task_votes, task_golden) in enumerate(zip(votes, golden, strict=True)):
        event_id, now = f"e{index}", START + timedelta(seconds=index)
        labeled.step(event_id, _request(index, None), now)
        for worker, label in task_votes:
            labeled.step(event_id, _answer(event_id, worker, label, len(task_votes), now), now)
            labeled.run.real_answers += 1
        if use_golden:
            for n, (worker, truth, label) in enumerate(task_golden):
                golden_id = f"g{index}-{n}"
                labeled.step(golden_id, _answer(golden_id, worker, label, 1, now, truth), now)
                labeled.run.golden_answers += 1
    return labeled.run


def dawid_skene_run(
    votes: list[list[tuple[str, str]]], golden: list[list[tuple[str, str, str]]], *, use_golden: bool
) -> Run:
    window = [WindowAnswer(f"e{i}", worker, label) for i, task in enumerate(votes) for worker, label in task]
    if use_golden:
        window += [
            WindowAnswer(f"g{i}-{n}", worker, label, truth)
            for i, task in enumerate(golden)
            for n, (worker, truth, label) in enumerate(task)
        ]
    fit = fit_dawid_skene(window)
    run = Run(real_answers=sum(len(task) for task in votes))
    run.golden_answers = sum(len(task) for task in golden) if use_golden else 0
    for index in range(len(votes)):
        label = fit.label_of(f"e{index}")
        if label is not None:
            run.labels[f"e{index}"] = label
    run.first = run.labels
    return run


def dynamic_run(crowd: Crowd, settings: OverlapSettings, *, refit: bool) -> Run:
    """Each task asks one answer at a time while the rule (with the online skills) says so."""
    labeled = _Labeled(refit)
    rule = DynamicOverlap(settings, labeled.aggregator.book.accuracy_of)
    for index, truth in enumerate(crowd.truths):
        event_id, now = f"e{index}", START + timedelta(seconds=index)
        labeled.step(event_id, _request(index, None), now)
        votes: list[tuple[str, str]] = []
        while len(votes) < rule.target(votes, len(CLASSES)):
            worker, answer = crowd.ask({w for w, _ in votes})
            votes.append((worker.worker_id, answer(truth)))
            stamped = rule.target(votes, len(CLASSES))
            labeled.step(event_id, _answer(event_id, worker.worker_id, votes[-1][1], stamped, now), now)
            labeled.run.real_answers += 1
            golden_truth = crowd.golden()
            if golden_truth is not None:
                golden_id = f"g{index}-{len(votes)}"
                golden_answer = _answer(
                    golden_id, worker.worker_id, answer(golden_truth), 1, now, golden_truth
                )
                labeled.step(golden_id, golden_answer, now)
                labeled.run.golden_answers += 1
    return labeled.run


def oracle_run(crowd: Crowd, votes: list[list[tuple[str, str]]]) -> Run:
    """The Bayes-optimal label given the answers: every worker's true confusion and the true prior."""
    profiles = {worker.worker_id: worker for worker in crowd.profiles}
    run = Run(real_answers=sum(len(task) for task in votes))
    for index, task_votes in enumerate(votes):
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


def run() -> tuple[list[Row], list[Goal]]:
    rows: list[Row] = []
    # C2: every method on the same answers (seed C2_SEED), at overlap 3 and 5.
    c2: dict[int, dict[str, float]] = {}
    golden_per_task = 0.0
    for overlap in (3, 5):
        crowd = Crowd(C2_SEED)
        votes, golden = fixed_overlap(crowd, overlap)
        runs = {
            "skill-weighted": weighted_run(votes, golden, use_golden=True, refit=True),
            "Dawid-Skene": dawid_skene_run(votes, golden, use_golden=True),
        }
        if overlap == 3:
            runs["skill-weighted, no golden"] = weighted_run(votes, golden, use_golden=False, refit=True)
            runs["Dawid-Skene, no golden"] = dawid_skene_run(votes, golden, use_golden=False)
            golden_per_task = runs["skill-weighted"].golden_answers / TASKS
        runs["oracle (true confusions)"] = oracle_run(crowd, votes)
        baseline = majority_run(votes).accuracy(crowd.truths)
        c2[overlap] = {"majority": baseline}
        for name, result in runs.items():
            c2[overlap][name] = result.accuracy(crowd.truths)
            rows.append(
                Row(
                    f"C2 accuracy, overlap {overlap}: {name}",
                    result.accuracy(crowd.truths),
                    baseline,
                    "",
                    f"majority vote ({result.answers / TASKS:.2f} vs {overlap} answers/task)",
                )
            )
    at3 = c2[3]
    mv3, sw3, ds3, best3 = (
        at3["majority"],
        at3["skill-weighted"],
        at3["Dawid-Skene"],
        at3["oracle (true confusions)"],
    )
    goals = [
        Goal(
            "C2",
            f"overlap 3, 20% spammers: skill-weighted {sw3:.3f}, Dawid-Skene {ds3:.3f}, majority {mv3:.3f} "
            f"(+{100 * (sw3 - mv3):.1f} / +{100 * (ds3 - mv3):.1f} points; golden answers add "
            f"{golden_per_task:.2f}/task; even the true confusions give only +{100 * (best3 - mv3):.1f})",
            f">= +{100 * C2_POINTS:.0f} points for both",
            sw3 - mv3 >= C2_POINTS and ds3 - mv3 >= C2_POINTS,
        )
    ]
    # C3, on a seed the rule was not chosen on: the same aggregator at fixed overlap 3 vs dynamic overlap.
    crowd = Crowd(C3_SEED)
    votes, golden = fixed_overlap(crowd, 3)
    fixed = weighted_run(votes, golden, use_golden=True, refit=True)
    fixed_accuracy = fixed.accuracy(crowd.truths)
    majority_accuracy = majority_run(votes).accuracy(crowd.truths)
    dynamic = dynamic_run(Crowd(C3_SEED), C3_RULE, refit=True)
    dynamic_accuracy = dynamic.accuracy(crowd.truths)
    saving = 1.0 - dynamic.answers / fixed.answers
    rule = f"dynamic overlap {C3_RULE.minimum}-{C3_RULE.maximum} at {C3_RULE.confidence}"
    rows += [
        Row(
            f"C3 answers/task: {rule}",
            dynamic.answers / TASKS,
            fixed.answers / TASKS,
            "",
            "fixed 3, skill-weighted",
        ),
        Row(f"C3 accuracy: {rule}", dynamic_accuracy, fixed_accuracy, "", "fixed 3, skill-weighted"),
        Row(
            f"C3 accuracy: {rule}",
            dynamic_accuracy,
            majority_accuracy,
            "",
            "fixed 3, majority (3.00 answers/task)",
        ),
        Row(
            f"C3 accuracy: {rule}, first revisions",
            dynamic.accuracy(crowd.truths, first=True),
            fixed.accuracy(crowd.truths, first=True),
            "",
            "fixed 3, skill-weighted, first revisions",
        ),
    ]
    goals.append(
        Goal(
            "C3",
            f"{rule}: {dynamic_accuracy:.3f} at {dynamic.answers / TASKS:.2f} answers/task vs fixed 3 "
            f"{fixed_accuracy:.3f} at {fixed.answers / TASKS:.2f} ({100 * saving:.0f}% fewer, golden "
            f"included; majority at fixed 3: {majority_accuracy:.3f} at 3.00)",
            f"accuracy within {100 * C3_POINTS:.0f} point, >= {100 * C3_SAVING:.0f}% fewer answers",
            dynamic_accuracy >= fixed_accuracy - C3_POINTS and saving >= C3_SAVING,
        )
    )
    return rows, goals


if __name__ == "__main__":
    from bench.harness import report

    print(report(*run()))
