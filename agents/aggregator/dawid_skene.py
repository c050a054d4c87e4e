"""Dawid–Skene refits over a sliding window of recent answers, folded into the workers' skills.

Golden answers and expert verdicts make a worker's skill exact but are few;
most answers have no known truth. Dawid & Skene (1979) estimate every
worker's confusion matrix from the answers alone, by EM over the latent true
classes. :class:`DawidSkeneRefit` keeps the last ``window_answers`` answers,
refits every ``refit_every`` answers, with the truths it knows (golden tasks,
expert verdicts) clamped, and folds each worker's fitted accuracy and
confusion into the :class:`~agents.aggregator.skills.SkillBook`.

The fit is crowd-kit's :class:`~crowdkit.aggregation.DawidSkene` EM step for
step in numpy (the default, ``engine="numpy"``: ~0.2 s for 100k answers at 20
iterations, the agent runs it in a thread), or crowd-kit's class itself
(``engine="crowd-kit"``, about 7x slower: it rebuilds pandas frames in every
iteration). ``tests/agents/aggregator/test_dawid_skene.py`` holds the two to
each other's posteriors, confusions and priors. crowd-kit 1.4.2 calls pandas APIs that pandas 3.1
deprecates (see PITFALLS.md): its warnings are silenced around the fit only.

References
----------
Dawid, A. P. & Skene, A. M. (1979). Maximum likelihood estimation of observer
error-rates using the EM algorithm. JRSS C 28(1), 20–28.

Ustalov, D., Pavlichenko, N. & Tseitlin, B. (2024). Learning from crowds with
Crowd-Kit. JOSS 9(96), 6227.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
from numpy.typing import NDArray
from pandas.errors import Pandas4Warning  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field

from agents.aggregator.skills import SkillBook
from schemas import CrowdAnswer

#: crowd-kit's floor for confusion entries, priors and posteriors.
_EPS = 1e-10


class DawidSkeneSettings(BaseModel):
    """The refit (``LABELLOOP_AGGREGATOR__DAWID_SKENE__*``)."""

    model_config = ConfigDict(frozen=True)

    #: Answers the window holds (the oldest fall out).
    window_answers: int = Field(default=5_000, ge=10, le=1_000_000)
    #: Refit after this many new answers.
    refit_every: int = Field(default=1_000, ge=1)
    #: EM iterations at most, and the change of the evidence bound (per answer) at which EM stops.
    #: An iteration costs ~12 ms (crowd-kit) or ~1 ms (numpy) per thousand answers; 20 is near convergence.
    max_iterations: int = Field(default=20, ge=1, le=1_000)
    tolerance: float = Field(default=1e-4, gt=0.0)
    #: crowd-kit's EM in numpy (the default), or crowd-kit's DawidSkene itself (equal to 1e-9, ~7x slower
    #: on 100k answers: ``python -m bench.aggregation_cost``).
    engine: Literal["crowd-kit", "numpy"] = "numpy"


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
    """Fit Dawid–Skene to ``answers``, with the truths in ``known`` (task -> class) clamped.

    ``settings.engine`` picks the implementation: crowd-kit's EM step for step
    in numpy over integer codes (the default: majority-vote start, golden rows
    clamped after every E-step, confusion entries of answered labels kept above
    1e-10, the same evidence bound and stopping rule), or crowd-kit's
    ``DawidSkene`` itself: the same fit to 1e-9 (a test holds them to each
    other), the numpy one several times faster.

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
    if settings.engine == "crowd-kit":
        return _fit_crowd_kit(answers, known, settings)
    return _fit_numpy(answers, known, settings)


def _fit_numpy(
    answers: Sequence[WindowAnswer],
    known: Mapping[str, str] | None,
    settings: DawidSkeneSettings,
) -> DawidSkeneFit:
    """crowd-kit's EM in numpy (see :func:`fit_dawid_skene`)."""
    tasks = list(dict.fromkeys(answer.task for answer in answers))
    workers = list(dict.fromkeys(answer.worker for answer in answers))
    classes = sorted({answer.label for answer in answers})
    task_of = {task: index for index, task in enumerate(tasks)}
    worker_of = {worker: index for index, worker in enumerate(workers)}
    class_of = {label: index for index, label in enumerate(classes)}
    t = np.fromiter((task_of[answer.task] for answer in answers), dtype=np.intp, count=len(answers))
    w = np.fromiter((worker_of[answer.worker] for answer in answers), dtype=np.intp, count=len(answers))
    label = np.fromiter((class_of[answer.label] for answer in answers), dtype=np.intp, count=len(answers))
    n_tasks, n_workers, k = len(tasks), len(workers), len(classes)
    truths = dict(known or {})
    truths.update({answer.task: answer.truth for answer in answers if answer.truth is not None})
    # Only classes somebody answered, on tasks in the window, can be clamped (as in crowd-kit).
    clamped = [
        (task_of[task], class_of[truth])
        for task, truth in truths.items()
        if task in task_of and truth in class_of
    ]
    clamp_rows = np.array([row for row, _ in clamped], dtype=np.intp)
    clamp = np.zeros((len(clamped), k))
    clamp[np.arange(len(clamped)), [column for _, column in clamped]] = 1.0
    cell = w * k + label  # (worker, answered class)
    answered = np.bincount(cell, minlength=n_workers * k).reshape(n_workers, k, 1) > 0

    def clamped_rows(probas: NDArray[np.float64]) -> NDArray[np.float64]:
        if len(clamped):
            probas[clamp_rows] = clamp
        return probas

    def m_step(probas: NDArray[np.float64]) -> NDArray[np.float64]:
        """errors[worker, answered, truth]: P(answered | truth), over the classes the worker answered."""
        rows = probas[t]
        counts = np.stack([np.bincount(cell, rows[:, c], n_workers * k) for c in range(k)], axis=1)
        errors = np.where(answered, np.maximum(counts.reshape(n_workers, k, k), _EPS), 0.0)
        return np.asarray(errors / errors.sum(axis=1, keepdims=True), dtype=np.float64)

    def e_step(priors: NDArray[np.float64], errors: NDArray[np.float64]) -> NDArray[np.float64]:
        logs = np.log2(errors[w, label])  # (answers, truth)
        scores = np.stack([np.bincount(t, logs[:, c], n_tasks) for c in range(k)], axis=1)
        scores += np.log2(np.maximum(priors, _EPS))
        scaled = np.exp2(scores - scores.max(axis=1, keepdims=True))
        return np.asarray(scaled / scaled.sum(axis=1, keepdims=True), dtype=np.float64)

    def bound(probas: NDArray[np.float64], priors: NDArray[np.float64], errors: NDArray[np.float64]) -> float:
        with np.errstate(divide="ignore"):
            logs = np.log(errors[w, label]) + np.log(np.maximum(priors, _EPS))
        joint = float((probas[t] * logs).sum())
        floored = np.maximum(probas, _EPS)
        return joint - float((np.log(floored) * floored).sum())

    votes = np.stack([np.bincount(t, label == c, n_tasks) for c in range(k)], axis=1).astype(np.float64)
    probas = clamped_rows(votes / votes.sum(axis=1, keepdims=True))
    priors = probas.mean(axis=0)
    errors = m_step(probas)
    loss = -math.inf
    for _ in range(settings.max_iterations):
        probas = clamped_rows(e_step(priors, errors))
        priors = probas.mean(axis=0)
        errors = m_step(probas)
        new_loss = bound(probas, priors, errors) / len(answers)
        probas = np.maximum(probas, _EPS)  # crowd-kit floors the posteriors in place in its bound
        if new_loss - loss < settings.tolerance:
            break
        loss = new_loss
    prior_of = {label_: float(p) for label_, p in zip(classes, np.maximum(priors, _EPS), strict=True)}
    counts = Counter(answer.worker for answer in answers)
    fitted: dict[str, WorkerFit] = {}
    for index, worker in enumerate(workers):
        mine = [c for c in range(k) if answered[index, c, 0]]
        confusion = {
            truth: {classes[c]: float(errors[index, c, j]) for c in mine} for j, truth in enumerate(classes)
        }
        fitted[worker] = WorkerFit(
            accuracy=sum(prior_of[truth] * confusion[truth].get(truth, 0.0) for truth in classes),
            answers=counts[worker],
            confusion=confusion,
        )
    probabilities = {
        task: dict(zip(classes, map(float, row), strict=True))
        for task, row in zip(tasks, probas, strict=True)
    }
    return DawidSkeneFit(fitted, probabilities, prior_of)


def _fit_crowd_kit(
    answers: Sequence[WindowAnswer],
    known: Mapping[str, str] | None,
    settings: DawidSkeneSettings,
) -> DawidSkeneFit:
    """The fit by crowd-kit's own ``DawidSkene`` on pandas."""
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

    def snapshot(self) -> tuple[list[WindowAnswer], dict[str, str]]:
        """The window and the verdicts on its tasks, copied (a fit may run elsewhere meanwhile).

        Forgets verdicts on tasks that left the window and restarts the refit count.
        """
        self.since_refit = 0
        window = list(self.window)
        tasks = {answer.task for answer in window}
        self.known = {task: label for task, label in self.known.items() if task in tasks}
        return window, dict(self.known)

    def refit(self) -> DawidSkeneFit:
        """Fit the window now."""
        window, known = self.snapshot()
        return fit_dawid_skene(window, known, self.settings)

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
