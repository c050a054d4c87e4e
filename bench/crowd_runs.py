"""The aggregators of the aggregation bench, each run over the same answers: one :class:`Run` each.

Majority vote, skill-weighted votes, Dawid–Skene, dynamic overlap with skills learned online, and
the oracle that knows who the spammers are; :mod:`bench.crowd_aggregation` compares them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from agents.aggregator.dawid_skene import DawidSkeneRefit, DawidSkeneSettings, WindowAnswer, fit_dawid_skene
from agents.aggregator.majority import majority
from agents.aggregator.overlap import DynamicOverlap, OverlapSettings
from agents.aggregator.skills import SkillBook
from agents.aggregator.weighted import WeightedSettings, WeightedTaskState, WeightedVoteAggregator
from agents.simulation.simulated_crowd import ban_rule
from bench.crowd_answers import (
    CLASSES,
    PRIOR,
    START,
    Answer,
    Crowd,
    _request,
    pulled,
)
from schemas import CrowdAnswer, LabelRequest

#: The numpy engine of the Dawid–Skene fit: crowd-kit's EM to 1e-9 (a test holds them equal), ~100x faster.
ENGINE: Literal["numpy"] = "numpy"


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
