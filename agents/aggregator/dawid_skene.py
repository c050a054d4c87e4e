"""Dawid–Skene refits over a sliding window of recent answers, folded into the workers' skills.

Golden answers and expert verdicts make a worker's skill exact but are few;
most answers have no known truth. Dawid & Skene (1979) estimate every
worker's confusion matrix from the answers alone, by EM over the latent true
classes. :class:`DawidSkeneRefit` keeps the last ``window_answers`` answers,
refits crowd-kit's :class:`~crowdkit.aggregation.DawidSkene` every
``refit_every`` answers, with the truths it knows (golden tasks, expert
verdicts) clamped, and folds each worker's fitted accuracy and confusion into
the :class:`~agents.aggregator.skills.SkillBook`.

A refit costs about 0.25 s per thousand answers at 20 EM iterations (crowd-kit on pandas): the
agent should run :meth:`DawidSkeneRefit.refit` off the event loop (a thread
executor) and fold the result when it is back. crowd-kit 1.4.2 calls pandas
APIs that pandas 3.1 deprecates; those warnings are silenced around the fit
only (see PITFALLS.md; only MajorityVote and DawidSkene are safe with
scikit-learn 1.9, so nothing else of crowd-kit is used).

References
----------
Dawid, A. P. & Skene, A. M. (1979). Maximum likelihood estimation of observer
error-rates using the EM algorithm. JRSS C 28(1), 20–28.

Ustalov, D., Pavlichenko, N. & Tseitlin, B. (2024). Learning from crowds with
Crowd-Kit. JOSS 9(96), 6227.
"""

from __future__ import annotations

import warnings
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd  # type: ignore[import-untyped]
from pandas.errors import Pandas4Warning  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field

from agents.aggregator.skills import SkillBook
from schemas import CrowdAnswer


class DawidSkeneSettings(BaseModel):
    """The refit (``LABELLOOP_AGGREGATOR__DAWID_SKENE__*``)."""

    model_config = ConfigDict(frozen=True)

    #: Answers the window holds (the oldest fall out).
    window_answers: int = Field(default=5_000, ge=10, le=1_000_000)
    #: Refit after this many new answers.
    refit_every: int = Field(default=1_000, ge=1)
    #: EM iterations at most, and the change of the evidence bound at which EM stops.
    #: crowd-kit's EM costs ~25 ms per iteration per thousand answers (pandas); 20 is near convergence.
    max_iterations: int = Field(default=20, ge=1, le=1_000)
    tolerance: float = Field(default=1e-4, gt=0.0)


@dataclass(frozen=True, slots=True)
class WindowAnswer:
    """One answer as the window keeps it; ``truth`` is set for golden tasks."""

    task: str
    worker: str
    label: str
    truth: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerFit:
    """One worker's fitted skill: accuracy under the fitted class prior, answers behind it, confusion."""

    accuracy: float
    answers: int
    #: true class -> answered class -> probability.
    confusion: dict[str, dict[str, float]]


@dataclass(frozen=True, slots=True)
class DawidSkeneFit:
    """A refit's result: per-worker skills and per-task posteriors."""

    workers: dict[str, WorkerFit]
    probabilities: dict[str, dict[str, float]]
    priors: dict[str, float]

    def label_of(self, task: str) -> str | None:
        """The most probable class of ``task`` (ties go to the smallest label), or None if unseen."""
        row = self.probabilities.get(task)
        return None if not row else min(row, key=lambda label: (-row[label], label))


def fit_dawid_skene(
    answers: Sequence[WindowAnswer],
    known: Mapping[str, str] | None = None,
    settings: DawidSkeneSettings | None = None,
) -> DawidSkeneFit:
    """Fit Dawid–Skene (crowd-kit) to ``answers``, with the truths in ``known`` (task -> class) clamped.

    Examples
    --------
    >>> answers = [WindowAnswer(f"t{i}", worker, label)
    ...            for i, truth in enumerate(["cat", "dog"] * 10)
    ...            for worker, label in [("good1", truth), ("good2", truth), ("spam", "cat")]]
    >>> fit = fit_dawid_skene(answers)
    >>> round(fit.workers["good1"].accuracy, 2), round(fit.workers["spam"].accuracy, 2)
    (1.0, 0.5)
    >>> fit.label_of("t1")
    'dog'
    """
    settings = settings or DawidSkeneSettings()
    if not answers:
        return DawidSkeneFit({}, {}, {})
    frame = pd.DataFrame(
        {
            "task": [answer.task for answer in answers],
            "worker": [answer.worker for answer in answers],
            "label": [answer.label for answer in answers],
        }
    )
    truths = dict(known or {})
    truths.update({answer.task: answer.truth for answer in answers if answer.truth is not None})
    labels = set(frame["label"])
    tasks = set(frame["task"])
    # crowd-kit can clamp only to classes somebody answered, on tasks in the frame.
    clamped = {task: truth for task, truth in truths.items() if task in tasks and truth in labels}
    # Imported here: crowd-kit pulls in scikit-learn and more (seconds), needed only by a refit.
    from crowdkit.aggregation import DawidSkene

    model = DawidSkene(n_iter=settings.max_iterations, tol=settings.tolerance)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Pandas4Warning)
        warnings.simplefilter("ignore", FutureWarning)
        model.fit(frame, true_labels=pd.Series(clamped, dtype=object) if clamped else None)
    assert model.errors_ is not None
    assert model.probas_ is not None
    assert model.priors_ is not None
    classes = [str(label) for label in model.probas_.columns]
    priors = {str(label): float(p) for label, p in model.priors_.items()}
    counts = Counter(answer.worker for answer in answers)
    confusions: dict[str, dict[str, dict[str, float]]] = {}
    for (worker, answered), row in model.errors_.iterrows():
        confusion = confusions.setdefault(str(worker), {truth: {} for truth in classes})
        for truth in classes:
            confusion[truth][str(answered)] = float(row[truth])
    workers = {
        worker: WorkerFit(
            accuracy=sum(priors.get(truth, 0.0) * confusion[truth].get(truth, 0.0) for truth in classes),
            answers=counts[worker],
            confusion=confusion,
        )
        for worker, confusion in confusions.items()
    }
    probabilities = {
        str(task): {str(label): float(p) for label, p in row.items()}
        for task, row in model.probas_.iterrows()
    }
    return DawidSkeneFit(workers, probabilities, priors)


class DawidSkeneRefit:
    """A sliding window of answers, refit every ``refit_every`` answers and folded into a SkillBook.

    Parameters
    ----------
    settings
        Window size, refit period, EM limits.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> when = datetime(2026, 1, 1, tzinfo=UTC)
    >>> refit = DawidSkeneRefit(DawidSkeneSettings(window_answers=100, refit_every=90))
    >>> due = [refit.observe(f"t{i}", worker, truth if worker != "spam" else "cat")
    ...        for i, truth in enumerate(["cat", "dog"] * 15) for worker in ["w1", "w2", "spam"]]
    >>> due.index(True), len(refit.window)
    (89, 90)
    >>> book = SkillBook()
    >>> refit.fold(refit.refit(), book, when)   # the spammer is newly flagged
    ['spam']
    >>> book.accuracy_of("w1") > 0.9 > book.accuracy_of("spam")
    True
    """

    def __init__(self, settings: DawidSkeneSettings | None = None) -> None:
        self.settings = settings or DawidSkeneSettings()
        self.window: deque[WindowAnswer] = deque(maxlen=self.settings.window_answers)
        #: Expert verdicts (task -> class) for tasks in the window.
        self.known: dict[str, str] = {}
        self.since_refit = 0

    def observe(self, task: str, worker: str, label: str, truth: str | None = None) -> bool:
        """Add one answer; True when a refit is due."""
        self.window.append(WindowAnswer(task, worker, label, truth))
        self.since_refit += 1
        return self.since_refit >= self.settings.refit_every

    def observe_answer(self, answer: CrowdAnswer) -> bool:
        """Add a crowd answer (golden ones with their truth); expert answers are verdicts, not votes."""
        if answer.tier == "expert":
            self.observe_verdict(answer.event_id, answer.label)
            return False
        return self.observe(answer.event_id, answer.worker_id, answer.label, answer.golden_label)

    def observe_verdict(self, task: str, label: str) -> None:
        """An expert's label for ``task``: clamped as its truth in the next refits."""
        self.known[task] = label

    def refit(self) -> DawidSkeneFit:
        """Fit the window now (and forget verdicts on tasks that left it)."""
        self.since_refit = 0
        tasks = {answer.task for answer in self.window}
        self.known = {task: label for task, label in self.known.items() if task in tasks}
        return fit_dawid_skene(list(self.window), self.known, self.settings)

    @staticmethod
    def fold(fit: DawidSkeneFit, book: SkillBook, now: datetime) -> list[str]:
        """Write the fitted skills and class prior into ``book``; the workers this newly flags."""
        if fit.priors:
            book.class_prior = dict(fit.priors)
        return [
            worker
            for worker, skill in sorted(fit.workers.items())
            if book.observe_dawid_skene(worker, skill.accuracy, skill.answers, skill.confusion, now)
        ]


def window_of(answers: Iterable[CrowdAnswer]) -> list[WindowAnswer]:
    """Crowd answers as window entries (expert answers left out)."""
    return [
        WindowAnswer(answer.event_id, answer.worker_id, answer.label, answer.golden_label)
        for answer in answers
        if answer.tier != "expert"
    ]
