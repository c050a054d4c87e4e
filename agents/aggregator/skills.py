"""Who to trust: per-worker skill estimates from golden tasks, expert audits, agreement and Dawid–Skene.

The aggregator weighs each vote by what the :class:`SkillBook` knows of its
worker. Evidence comes in four kinds, strongest first:

- **golden answers** (``CrowdAnswer.golden_label`` set): the truth is known;
- **expert audits**: an expert's label on an event is the truth for the crowd
  votes on it (the Chimera arrangement: experts audit the crowd, Sun et al., 2014);
- **Dawid–Skene refits** over a recent window (:mod:`agents.aggregator.dawid_skene`):
  an EM estimate of every worker's confusion matrix from the answers alone;
- **agreement** with confident aggregates, used only until a Dawid–Skene
  estimate exists (it is the poor man's version of the same thing).

A worker's accuracy is the mean of a Beta posterior: a prior of
``prior_strength`` pseudo-answers at ``prior_accuracy``, plus graded answers
(golden, audits) at full weight, plus agreement or Dawid–Skene evidence at a
reduced weight (it is estimated, not observed). A new worker starts at the
prior. Per class, a Dirichlet posterior gives the worker's confusion matrix:
its prior rows are the worker's one-coin accuracy (or the Dawid–Skene rows
when known), updated by the graded answers, so a worker who always answers
one class is seen as such once the golden tasks cover two classes.

A worker is **flagged as a spammer** when the evidence says their answers
carry (almost) no information about the truth: graded accuracy credibly near
chance, or a confusion matrix whose rows are nearly identical (the answer does
not depend on the true class; the spammer score of Raykar & Yu, 2012).

References
----------
Dawid, A. P. & Skene, A. M. (1979). Maximum likelihood estimation of observer
error-rates using the EM algorithm. JRSS C 28(1), 20–28.

Sun, C., Rampalli, N., Yang, F. & Doan, A. (2014). Chimera: Large-scale
classification using machine learning, rules, and crowdsourcing. PVLDB 7(13).

Ipeirotis, P., Provost, F. & Wang, J. (2010). Quality management on Amazon
Mechanical Turk. HCOMP (golden data and EM-estimated confusion matrices; spammers).

Raykar, V. C. & Yu, S. (2012). Eliminating spammers and ranking annotators for
crowdsourced labeling tasks. JMLR 13, 491–518.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from pydantic import BaseModel

from agents.aggregator.settings import SkillSettings as SkillSettings  # importable from here too
from agents.aggregator.worker_record import WorkerRecord as WorkerRecord  # importable from here too
from agents.aggregator.worker_record import mean_total_variation, share
from schemas import WorkerSkill

#: Confusion entries are kept away from 0 so one vote never rules a class out for good.
_FLOOR = 0.005
#: Timed answers between two recomputations of the crowd's typical answer time.
_TYPICAL_EVERY = 50


class SkillBook:
    """Per-worker skill estimates; the aggregator's answer to "how much is this vote worth".

    Parameters
    ----------
    settings
        Priors, evidence weights and the spammer rule.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> when = datetime(2026, 1, 1, tzinfo=UTC)
    >>> book = SkillBook()
    >>> book.accuracy_of("new") is None
    True
    >>> for truth in ["cat", "dog"] * 5:
    ...     _ = book.observe_golden("good", "sim", truth, truth, when)
    ...     _ = book.observe_golden("lazy", "sim", truth, "cat", when)   # always says cat
    >>> round(book.accuracy_of("good"), 3), round(book.skill("lazy").accuracy, 3)
    (0.914, 0.557)
    >>> book.is_flagged("good"), book.is_flagged("lazy")
    (False, True)
    >>> p = book.posterior([("good", "dog"), ("lazy", "cat")], ["cat", "dog"])
    >>> max(p, key=p.__getitem__)
    'dog'
    """

    def __init__(self, settings: SkillSettings | None = None) -> None:
        self.settings = settings or SkillSettings()
        self.workers: dict[str, WorkerRecord] = {}
        self.classes: set[str] = set()
        #: P(class) from the latest Dawid–Skene refit; None: uniform.
        self.class_prior: dict[str, float] | None = None
        #: Confusion matrices already computed: (worker, classes) -> (record, its revision, matrix).
        self._confusions: dict[
            tuple[str, tuple[str, ...]], tuple[WorkerRecord, int, dict[str, dict[str, float]]]
        ] = {}
        #: Bumped whenever a worker's evidence changes (what the cached matrices depend on).
        self._revisions: dict[str, int] = {}
        #: The crowd's typical log answer time, recomputed every ``_TYPICAL_EVERY`` timed answers.
        self._timed_answers = 0
        self._typical: tuple[int, float | None] | None = None

    # -- evidence ------------------------------------------------------------------------

    def record(self, worker_id: str, pool: str = "") -> WorkerRecord:
        """The worker's record (created at the prior when new)."""
        record = self.workers.get(worker_id)
        if record is None:
            record = self.workers[worker_id] = WorkerRecord(pool=pool)
        elif pool and not record.pool:
            record.pool = pool
        return record

    def observe_answer(
        self, worker_id: str, pool: str, now: datetime, time_spent_s: float | None = None
    ) -> None:
        """Count one (non-golden) answer of the worker, and how long it took when known."""
        record = self.record(worker_id, pool)
        record.answers += 1
        record.updated_at = now
        if time_spent_s is not None and time_spent_s > 0.0:
            record = self._changing(worker_id, pool)
            record.timed += 1
            record.log_time_sum += math.log(time_spent_s)
            self._timed_answers += 1

    def observe_golden(self, worker_id: str, pool: str, truth: str, answered: str, now: datetime) -> bool:
        """Grade a golden answer; True when this flags the worker (it was not flagged before)."""
        record = self._grade(worker_id, pool, truth, answered, now)
        record.golden_total += 1
        record.golden_right += truth == answered
        return self._reflag(record)

    def observe_audit(self, worker_id: str, pool: str, truth: str, answered: str, now: datetime) -> bool:
        """Grade a crowd answer against an expert's label; True when this newly flags the worker."""
        record = self._grade(worker_id, pool, truth, answered, now)
        record.audit_total += 1
        record.audit_right += truth == answered
        return self._reflag(record)

    def observe_agreement(self, worker_id: str, pool: str, agreed: bool, now: datetime) -> None:
        """Record whether the worker's vote agreed with a confident aggregate."""
        record = self._changing(worker_id, pool)
        record.agreement_total += 1
        record.agreed += agreed
        record.updated_at = now

    def observe_dawid_skene(
        self,
        worker_id: str,
        accuracy: float,
        answers: int,
        confusion: Mapping[str, Mapping[str, float]] | None,
        now: datetime,
    ) -> bool:
        """Replace the worker's Dawid–Skene estimate with a new refit's; True when this newly flags them."""
        record = self._changing(worker_id)
        record.dawid_skene_accuracy = min(max(accuracy, 0.0), 1.0)
        record.dawid_skene_answers = answers
        record.dawid_skene_confusion = (
            None if confusion is None else {c: dict(row) for c, row in confusion.items()}
        )
        if confusion is not None:
            self.classes.update(confusion)
        record.updated_at = now
        return self._reflag(record)

    def _grade(self, worker_id: str, pool: str, truth: str, answered: str, now: datetime) -> WorkerRecord:
        self.classes.update((truth, answered))
        record = self._changing(worker_id, pool)
        row = record.graded.setdefault(truth, {})
        row[answered] = row.get(answered, 0) + 1
        record.updated_at = now
        return record

    def _changing(self, worker_id: str, pool: str = "") -> WorkerRecord:
        """The worker's record, about to change: its cached confusion matrices go stale."""
        self._revisions[worker_id] = self._revisions.get(worker_id, 0) + 1
        return self.record(worker_id, pool)

    def _reflag(self, record: WorkerRecord) -> bool:
        was = record.flagged
        record.flagged = self._spammer(record)
        return record.flagged and not was

    # -- estimates -----------------------------------------------------------------------

    def _typical_log_time(self) -> float | None:
        """The median over timed workers of their mean log answer time (None: too few timed workers)."""
        if self._typical is None or self._timed_answers - self._typical[0] >= _TYPICAL_EVERY:
            means = sorted(
                record.log_time_sum / record.timed
                for record in self.workers.values()
                if record.timed >= self.settings.fast_min_answers
            )
            typical = statistics.median(means) if len(means) >= self.settings.fast_min_workers else None
            self._typical = (self._timed_answers, typical)
        return self._typical[1]

    def is_too_fast(self, worker_id: str) -> bool:
        """Whether the worker answers too fast to have read the tasks (see ``SkillSettings.fast_share``)."""
        record = self.workers.get(worker_id)
        return record is not None and self._too_fast(record)

    def _too_fast(self, record: WorkerRecord) -> bool:
        settings = self.settings
        if settings.fast_share <= 0.0 or record.timed < settings.fast_min_answers:
            return False
        typical = self._typical_log_time()
        return typical is not None and record.log_time_sum / record.timed < typical + math.log(
            settings.fast_share
        )

    def _beta(self, record: WorkerRecord, *, graded: bool) -> tuple[float, float]:
        """(right, wrong) pseudo-counts of the worker's accuracy posterior."""
        settings = self.settings
        prior = settings.suspect_prior_accuracy if self._too_fast(record) else settings.prior_accuracy
        right = prior * settings.prior_strength
        wrong = (1.0 - prior) * settings.prior_strength
        if graded:
            right += record.graded_right
            wrong += record.graded_total - record.graded_right
        if record.dawid_skene_accuracy is not None:
            weight = settings.dawid_skene_weight * min(record.dawid_skene_answers, settings.dawid_skene_cap)
            right += weight * record.dawid_skene_accuracy
            wrong += weight * (1.0 - record.dawid_skene_accuracy)
        else:
            right += settings.agreement_weight * record.agreed
            wrong += settings.agreement_weight * (record.agreement_total - record.agreed)
        return right, wrong

    def accuracy_of(self, worker_id: str) -> float | None:
        """What the worker's vote is worth, for the dynamic-overlap rule (an ``AccuracyOf``).

        None for a worker never seen; chance (1/K) for a flagged worker, whose
        answers carry no information; the estimated accuracy otherwise.
        """
        record = self.workers.get(worker_id)
        if record is None:
            return None
        if record.flagged:
            return 1.0 / max(len(self.classes), 2)
        return self.estimated_accuracy(record)

    def estimated_accuracy(self, record: WorkerRecord) -> float:
        """The mean of the worker's accuracy posterior (flagged or not)."""
        right, wrong = self._beta(record, graded=True)
        return right / (right + wrong)

    def is_flagged(self, worker_id: str) -> bool:
        """Whether the worker is currently flagged as a spammer."""
        record = self.workers.get(worker_id)
        return record is not None and record.flagged

    def confusion_of(self, worker_id: str, classes: Sequence[str]) -> dict[str, dict[str, float]]:
        """P(answer | true class) over ``classes``: prior rows (one-coin or Dawid–Skene) plus graded answers.

        >>> book = SkillBook(SkillSettings(prior_accuracy=0.8))
        >>> {answer: round(p, 3) for answer, p in book.confusion_of("new", ["cat", "dog"])["cat"].items()}
        {'cat': 0.8, 'dog': 0.2}
        """
        record = self.workers.get(worker_id)
        key = (worker_id, tuple(classes))
        # A worker's matrix changes with its evidence, and with the crowd's speed (the suspect prior).
        revision = 2 * self._revisions.get(worker_id, 0) + (record is not None and self._too_fast(record))
        cached = self._confusions.get(key)
        if record is not None and cached is not None and cached[0] is record and cached[1] == revision:
            return cached[2]
        confusion = self._confusion(record, classes)
        if record is not None:
            self._confusions[key] = (record, revision, confusion)
        return confusion

    def _confusion(self, record: WorkerRecord | None, classes: Sequence[str]) -> dict[str, dict[str, float]]:
        k = max(len(classes), 2)
        if record is None:
            a = self.settings.prior_accuracy
            graded: dict[str, dict[str, int]] = {}
            fitted: dict[str, dict[str, float]] | None = None
        else:
            right, wrong = self._beta(record, graded=False)
            a = right / (right + wrong)
            graded, fitted = record.graded, record.dawid_skene_confusion
        strength = self.settings.confusion_strength
        confusion: dict[str, dict[str, float]] = {}
        for truth in classes:
            prior_row = fitted.get(truth) if fitted is not None else None
            if prior_row is None:
                prior = {k_: a if k_ == truth else (1.0 - a) / (k - 1) for k_ in classes}
            else:
                floored = {k_: max(prior_row.get(k_, 0.0), _FLOOR) for k_ in classes}
                total = sum(floored.values())
                prior = {k_: value / total for k_, value in floored.items()}
            counts = graded.get(truth, {})
            n = sum(counts.get(k_, 0) for k_ in classes)
            confusion[truth] = {
                k_: max((strength * prior[k_] + counts.get(k_, 0)) / (strength + n), _FLOOR) for k_ in classes
            }
        return confusion

    def posterior(self, votes: Sequence[tuple[str, str]], classes: Iterable[str]) -> dict[str, float]:
        """P(true class | votes) over ``classes`` and every voted label, with each worker's confusion.

        Votes of flagged workers are left out. The class prior is the latest
        refit's (``class_prior``), uniform before the first: then, with every
        worker at the same one-coin accuracy above chance, this ranks classes
        exactly as a majority vote does.

        >>> book = SkillBook()
        >>> p = book.posterior([("w1", "cat"), ("w2", "cat"), ("w3", "dog")], ["cat", "dog"])
        >>> round(p["cat"], 3)
        0.7
        """
        candidates = sorted(set(classes) | {label for _, label in votes})
        if len(candidates) < 2:
            return dict.fromkeys(candidates, 1.0)
        terms: dict[str, list[float]] = {truth: [] for truth in candidates}
        for worker, label in votes:
            if self.is_flagged(worker):
                continue  # a spammer's answer says nothing about the truth
            confusion = self.confusion_of(worker, candidates)
            for truth in candidates:
                terms[truth].append(math.log(confusion[truth][label]))
        if self.class_prior is not None:
            for truth in candidates:
                terms[truth].append(math.log(max(self.class_prior.get(truth, 0.0), _FLOOR)))
        # fsum is exactly rounded: classes with the same multiset of terms tie exactly, whatever the order.
        log_score = {truth: math.fsum(values) for truth, values in terms.items()}
        top = max(log_score.values())
        weights = {label: math.exp(score - top) for label, score in log_score.items()}
        total = sum(weights.values())
        return {label: weight / total for label, weight in weights.items()}

    def informativeness(self, worker_id: str) -> float | None:
        """How much the worker's answers depend on the truth (1 perfect, 0 a spammer), from graded answers.

        The mean total-variation distance between the rows of the graded
        confusion matrix (add-one smoothed), over the classes with at least
        ``min_graded_per_class`` graded answers; None with fewer than two such classes.
        """
        record = self.workers.get(worker_id)
        return None if record is None else self._graded_informativeness(record)

    def _graded_informativeness(self, record: WorkerRecord) -> float | None:
        classes = sorted(self.classes)
        rows = []
        for counts in record.graded.values():
            n = sum(counts.values())
            if n >= self.settings.min_graded_per_class:
                rows.append({k: (counts.get(k, 0) + 1) / (n + len(classes)) for k in classes})
        return mean_total_variation(rows, classes) if len(rows) >= 2 else None

    def _spammer(self, record: WorkerRecord) -> bool:
        settings = self.settings
        chance = 1.0 / max(len(self.classes), 2)
        if record.graded_total >= settings.min_graded:
            right, wrong = record.graded_right + 1, record.graded_total - record.graded_right + 1
            mean = right / (right + wrong)
            sd = math.sqrt(mean * (1.0 - mean) / (right + wrong + 1))
            if mean + settings.spam_z * sd < chance + settings.spam_margin:
                return True
        graded = self._graded_informativeness(record)
        if graded is not None and graded < settings.spam_informativeness:
            return True
        fitted = record.dawid_skene_confusion
        if fitted is not None and record.dawid_skene_answers >= settings.min_dawid_skene_answers:
            classes = sorted(self.classes | set(fitted))
            if mean_total_variation(list(fitted.values()), classes) < settings.spam_informativeness:
                return True
        return False

    # -- publication and storage ---------------------------------------------------------

    def skill(self, worker_id: str) -> WorkerSkill:
        """The worker's skill as published on ``worker-skills``."""
        known = self.workers.get(worker_id)
        record = known or WorkerRecord()
        return WorkerSkill(
            worker_id=worker_id,
            pool=record.pool,
            accuracy=self.settings.prior_accuracy if known is None else self.estimated_accuracy(known),
            n_golden=record.golden_total,
            golden_accuracy=share(record.golden_right, record.golden_total),
            n_audited=record.audit_total,
            audited_accuracy=share(record.audit_right, record.audit_total),
            n_answers=record.answers,
            agreement=share(record.agreed, record.agreement_total),
            dawid_skene_accuracy=record.dawid_skene_accuracy,
            flagged_spammer=record.flagged,
            updated_at=record.updated_at,
        )

    def merge(self, other: SkillBook) -> None:
        """Add another book's evidence to this one (counts add; the newer refit wins)."""
        self.classes |= other.classes
        if self.class_prior is None:
            self.class_prior = other.class_prior
        for worker_id, theirs in other.workers.items():
            mine = self.record(worker_id, theirs.pool)
            for name in (
                "answers", "golden_right", "golden_total", "audit_right", "audit_total", "agreed",
                "agreement_total", "timed", "log_time_sum",
            ):  # fmt: skip
                setattr(mine, name, getattr(mine, name) + getattr(theirs, name))
            for truth, counts in theirs.graded.items():
                row = mine.graded.setdefault(truth, {})
                for answered, count in counts.items():
                    row[answered] = row.get(answered, 0) + count
            newer = mine.updated_at is None or (
                theirs.updated_at is not None and theirs.updated_at > mine.updated_at
            )
            if theirs.dawid_skene_accuracy is not None and (mine.dawid_skene_accuracy is None or newer):
                mine.dawid_skene_accuracy = theirs.dawid_skene_accuracy
                mine.dawid_skene_answers = theirs.dawid_skene_answers
                mine.dawid_skene_confusion = theirs.dawid_skene_confusion
            if newer:
                mine.updated_at = theirs.updated_at
        self._confusions.clear()
        self._timed_answers += sum(theirs.timed for theirs in other.workers.values())
        self._typical = None
        for record in self.workers.values():
            record.flagged = self._spammer(record)

    def to_json(self) -> str:
        """Compact JSON of the evidence (settings are configuration, not state)."""
        return _Snapshot(
            classes=sorted(self.classes), class_prior=self.class_prior, workers=self.workers
        ).model_dump_json(exclude_defaults=True)

    @classmethod
    def from_json(cls, text: str | None, settings: SkillSettings | None = None) -> SkillBook:
        """A stored book, or an empty one."""
        book = cls(settings)
        if text:
            snapshot = _Snapshot.model_validate_json(text)
            book.classes = set(snapshot.classes)
            book.class_prior = snapshot.class_prior
            book.workers = snapshot.workers
            book._timed_answers = sum(record.timed for record in book.workers.values())
        return book


class _Snapshot(BaseModel):
    classes: list[str] = []
    class_prior: dict[str, float] | None = None
    workers: dict[str, WorkerRecord] = {}
