"""A realistic simulated crowd: seeded worker profiles the simulated pool and the Toloka stand-in share.

Three kinds of workers answer tasks (the mix follows Vuurens, Larson & de Vries,
2011, and Kazai, Kamps & Milic-Frayling, 2011, who found sloppy and spamming
workers to be a sizeable minority on open crowdsourcing platforms):

- **good** workers answer the true class with their accuracy, drawn uniformly
  from ``[min_accuracy, max_accuracy]``. Their accuracy varies a little per
  class (``class_accuracy_spread``, centred so the mean over classes stays the
  worker's accuracy) and their mistakes are not uniform: every pair of classes
  has a crowd-wide *affinity* (log-normal with sigma ``confusion_spread``,
  times ``confusable_weight`` for the ``confusable_pairs`` named), and a
  mistake on class ``c`` picks wrong class ``j`` in proportion to the
  affinity of ``{c, j}``. So the whole crowd confuses the same pairs more
  often, as real labelers do.
- **careless** workers rush: accuracy from ``[careless_min_accuracy,
  careless_max_accuracy]``, mistakes uniform over the wrong classes, and a mean
  service time ``careless_speedup`` times a good worker's.
- **spammers** ignore the task: ``constant_spammer_share`` of them always
  answer one class (their favourite), the rest answer uniformly at random;
  they are fastest (``spammer_speedup``).

Every worker has its own mean service time (log-normal across workers with
sigma ``speed_spread``, mean ``mean_service_s`` for good workers), and each
answer takes a log-normal time around it (sigma ``service_sigma``). A worker
abandons a task it took (never answers it) with ``abandon_probability`` and
works for an exponential session of mean ``session_mean_s`` before leaving
(``None``: it never leaves).

Everything is a pure function of a seed: :func:`workers` builds a crowd with
the configured shares exactly, :func:`worker` one named worker (its kind drawn
with the shares), and :func:`answer` is the plain deterministic answer of a
named worker to a task, for servers that only know ids.

References
----------
Vuurens, J., Larson, M. & de Vries, A. (2011). How much spam can you take? An
analysis of crowdsourcing results to increase accuracy. SIGIR CIR workshop.

Kazai, G., Kamps, J. & Milic-Frayling, N. (2011). Worker types and personality
traits in crowdsourcing relevance labels. CIKM, 1941–1944.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

WorkerKind = Literal["good", "careless", "spammer"]
SpammerKind = Literal["uniform", "constant"]
_NORMAL = statistics.NormalDist()


class CrowdProfile(BaseModel):
    """Who is in the crowd and how they answer (see the module docstring for the model).

    Examples
    --------
    >>> profile = CrowdProfile(spammer_share=0.2, careless_share=0.1)
    >>> profile.good_share
    0.7
    """

    model_config = ConfigDict(frozen=True)

    #: Share of workers who rush: faster and less accurate.
    careless_share: float = Field(default=0.1, ge=0.0, le=1.0)
    #: Share of workers who ignore the task (uniform random or always one class).
    spammer_share: float = Field(default=0.1, ge=0.0, le=1.0)
    #: Of the spammers, the share that always answer the same class.
    constant_spammer_share: float = Field(default=0.5, ge=0.0, le=1.0)
    #: A good worker's accuracy is drawn uniformly from [min_accuracy, max_accuracy].
    min_accuracy: float = Field(default=0.75, ge=0.0, le=1.0)
    max_accuracy: float = Field(default=0.95, ge=0.0, le=1.0)
    #: A careless worker's accuracy is drawn uniformly from this range.
    careless_min_accuracy: float = Field(default=0.55, ge=0.0, le=1.0)
    careless_max_accuracy: float = Field(default=0.75, ge=0.0, le=1.0)
    #: How far a good worker's accuracy on one class strays from its overall accuracy (+-, centred).
    class_accuracy_spread: float = Field(default=0.05, ge=0.0, le=0.5)
    #: Sigma of the log-normal crowd-wide affinity of each class pair (0: mistakes are uniform).
    confusion_spread: float = Field(default=1.0, ge=0.0, le=5.0)
    #: Class pairs every good worker confuses more often (their affinity times ``confusable_weight``).
    confusable_pairs: tuple[tuple[str, str], ...] = ()
    confusable_weight: float = Field(default=5.0, ge=1.0)
    #: Mean seconds a good worker spends on one answer (averaged over workers).
    mean_service_s: float = Field(default=2.0, gt=0.0)
    #: Sigma of the log-normal spread of the workers' own mean service times.
    speed_spread: float = Field(default=0.5, ge=0.0, le=3.0)
    #: Sigma of the log-normal time of one answer around the worker's mean.
    service_sigma: float = Field(default=0.5, ge=0.0, le=3.0)
    #: A careless worker's mean service time as a share of a good worker's.
    careless_speedup: float = Field(default=0.4, gt=0.0, le=1.0)
    #: A spammer's mean service time as a share of a good worker's.
    spammer_speedup: float = Field(default=0.2, gt=0.0, le=1.0)
    #: Probability that a worker takes a task and never answers it.
    abandon_probability: float = Field(default=0.02, ge=0.0, le=1.0)
    #: Mean seconds a worker stays before leaving (exponential); None: workers never leave.
    session_mean_s: float | None = Field(default=900.0, gt=0.0)

    @model_validator(mode="after")
    def _consistent(self) -> CrowdProfile:
        if self.min_accuracy > self.max_accuracy:
            raise ValueError(f"min_accuracy {self.min_accuracy} exceeds max_accuracy {self.max_accuracy}")
        if self.careless_min_accuracy > self.careless_max_accuracy:
            raise ValueError("careless_min_accuracy exceeds careless_max_accuracy")
        if self.careless_share + self.spammer_share > 1.0 + 1e-9:
            raise ValueError("careless_share + spammer_share exceed 1")
        return self

    @property
    def good_share(self) -> float:
        """The share of good workers (what careless workers and spammers leave)."""
        return round(max(0.0, 1.0 - self.careless_share - self.spammer_share), 12)


@dataclass(frozen=True)
class WorkerProfile:
    """One simulated labeler: how it answers, how fast, whether it abandons, how long it stays.

    Build them with :func:`workers` or :func:`worker`; every method takes the
    random generator it draws from, so the caller owns the reproducibility.

    Examples
    --------
    >>> rng = random.Random(1)
    >>> perfect = WorkerProfile("w0", "good", accuracy=1.0, mean_service_s=2.0)
    >>> {perfect.answer("cat", ["cat", "dog"], rng) for _ in range(20)}
    {'cat'}
    >>> spammer = WorkerProfile("w1", "spammer", accuracy=0.0, mean_service_s=0.4,
    ...                         spammer="constant", favourite=1)
    >>> {spammer.answer(truth, ["cat", "dog"], rng) for truth in ("cat", "dog")}
    {'dog'}
    """

    worker_id: str
    kind: WorkerKind
    #: Probability of answering the true class (good and careless workers; spammers ignore it).
    accuracy: float
    #: This worker's mean seconds per answer.
    mean_service_s: float
    service_sigma: float = 0.5
    abandon_probability: float = 0.0
    session_mean_s: float | None = None
    spammer: SpammerKind | None = None
    #: A constant spammer's class: index into the sorted classes (modulo their number).
    favourite: int = 0
    class_accuracy_spread: float = 0.0
    confusion_spread: float = 0.0
    confusable_pairs: tuple[tuple[str, str], ...] = ()
    confusable_weight: float = 1.0
    #: Seeds the crowd-wide class-pair affinities (shared by every worker of one crowd).
    crowd_seed: int = 0

    # -- answering -----------------------------------------------------------------------

    def class_accuracy(self, true_label: str, classes: Sequence[str]) -> float:
        """Probability of answering ``true_label`` when it is the truth.

        >>> worker = WorkerProfile("w0", "good", accuracy=0.8, mean_service_s=1.0,
        ...                        class_accuracy_spread=0.1)
        >>> classes = ["a", "b", "c"]
        >>> round(sum(worker.class_accuracy(c, classes) for c in classes) / 3, 6)
        0.8
        """
        if self.kind == "spammer":
            return self.confusion_row(true_label, classes)[true_label]
        if self.kind == "careless" or self.class_accuracy_spread == 0.0:
            return self.accuracy
        labels = _with(classes, true_label)
        offsets = {
            label: self.class_accuracy_spread * (2.0 * _unit(self.crowd_seed, self.worker_id, label) - 1.0)
            for label in labels
        }
        centre = sum(offsets.values()) / len(offsets)
        return min(1.0, max(0.0, self.accuracy + offsets[true_label] - centre))

    def confusion_row(self, true_label: str, classes: Sequence[str]) -> dict[str, float]:
        """P(answer | truth = ``true_label``) over ``classes`` (plus the truth if missing); sums to 1.

        >>> worker = WorkerProfile("w0", "good", accuracy=0.9, mean_service_s=1.0)
        >>> {label: round(p, 3) for label, p in worker.confusion_row("cat", ["cat", "dog", "fox"]).items()}
        {'cat': 0.9, 'dog': 0.05, 'fox': 0.05}
        """
        labels = _with(classes, true_label)
        if self.kind == "spammer":
            if self.spammer == "constant":
                favourite = self._favourite(labels)
                return {label: float(label == favourite) for label in labels}
            return dict.fromkeys(labels, 1.0 / len(labels))
        wrong = [label for label in labels if label != true_label]
        if not wrong:
            return {true_label: 1.0}
        right = self.class_accuracy(true_label, labels)
        weights = self._mistake_weights(true_label, wrong)
        total = sum(weights)
        row = {label: (1.0 - right) * weight / total for label, weight in zip(wrong, weights, strict=True)}
        row[true_label] = right
        return {label: row[label] for label in labels}

    def confusion(self, classes: Sequence[str]) -> dict[str, dict[str, float]]:
        """The worker's whole confusion matrix: ``confusion(classes)[truth][answer]``."""
        return {truth: self.confusion_row(truth, classes) for truth in classes}

    def answer(self, true_label: str, classes: Sequence[str], rng: random.Random) -> str:
        """One answer to a task whose true class is ``true_label``."""
        labels = _with(classes, true_label)
        if self.kind == "spammer":
            return self._favourite(labels) if self.spammer == "constant" else rng.choice(labels)
        wrong = [label for label in labels if label != true_label]
        if not wrong or rng.random() < self.class_accuracy(true_label, labels):
            return true_label
        weights = self._mistake_weights(true_label, wrong)
        if len(set(weights)) == 1:
            return rng.choice(wrong)
        return rng.choices(wrong, weights=weights)[0]

    def _favourite(self, labels: Sequence[str]) -> str:
        ordered = sorted(labels)
        return ordered[self.favourite % len(ordered)]

    def _mistake_weights(self, true_label: str, wrong: Sequence[str]) -> list[float]:
        if self.kind != "good":
            return [1.0] * len(wrong)
        return [self._affinity(true_label, label) for label in wrong]

    def _affinity(self, first: str, second: str) -> float:
        pair = tuple(sorted((first, second)))
        weight = 1.0
        if any(tuple(sorted(named)) == pair for named in self.confusable_pairs):
            weight = self.confusable_weight
        if self.confusion_spread > 0.0:
            u = min(max(_unit(self.crowd_seed, "pair", *pair), 1e-9), 1.0 - 1e-9)
            weight *= math.exp(self.confusion_spread * _NORMAL.inv_cdf(u))
        return weight

    # -- time ----------------------------------------------------------------------------

    def service_time_s(self, rng: random.Random) -> float:
        """Seconds one answer takes: log-normal with the worker's mean."""
        sigma = self.service_sigma
        return rng.lognormvariate(math.log(self.mean_service_s) - sigma**2 / 2, sigma)

    def abandons(self, rng: random.Random) -> bool:
        """Whether the worker walks away from the task it just took (draws nothing when it never does)."""
        return self.abandon_probability > 0.0 and rng.random() < self.abandon_probability

    def session_s(self, rng: random.Random) -> float:
        """Seconds the worker stays before leaving (``inf`` when it never leaves)."""
        if self.session_mean_s is None:
            return math.inf
        return rng.expovariate(1.0 / self.session_mean_s)


def _with(classes: Sequence[str], true_label: str) -> list[str]:
    labels = list(classes)
    return labels if true_label in labels else [*labels, true_label]


def _unit(*key: object) -> float:
    """A uniform number in [0, 1) that depends only on ``key`` (stable across processes)."""
    digest = hashlib.blake2b("/".join(map(str, key)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _kind(rng: random.Random, profile: CrowdProfile) -> WorkerKind:
    draw = rng.random()
    if draw < profile.spammer_share:
        return "spammer"
    if draw < profile.spammer_share + profile.careless_share:
        return "careless"
    return "good"


@functools.lru_cache(maxsize=4096)
def worker(
    worker_id: str, seed: int = 0, profile: CrowdProfile | None = None, kind: WorkerKind | None = None
) -> WorkerProfile:
    """The profile of the worker named ``worker_id`` in the crowd of ``seed``.

    Its kind is drawn with the profile's shares unless given; the same
    arguments always give the same worker.

    >>> worker("alice", seed=3) == worker("alice", seed=3)
    True
    >>> worker("bob", kind="spammer").kind
    'spammer'
    """
    profile = profile or CrowdProfile()
    rng = random.Random(f"{seed}/{worker_id}/profile")
    drawn_kind = _kind(rng, profile)
    kind = kind or drawn_kind
    # A mean-preserving log-normal factor: the crowd's average mean service time is mean_service_s.
    speed = math.exp(rng.gauss(0.0, profile.speed_spread) - profile.speed_spread**2 / 2)
    common = WorkerProfile(
        worker_id,
        kind,
        accuracy=0.0,
        mean_service_s=profile.mean_service_s * speed,
        service_sigma=profile.service_sigma,
        abandon_probability=profile.abandon_probability,
        session_mean_s=profile.session_mean_s,
        crowd_seed=seed,
    )
    if kind == "good":
        return dataclasses.replace(
            common,
            accuracy=rng.uniform(profile.min_accuracy, profile.max_accuracy),
            class_accuracy_spread=profile.class_accuracy_spread,
            confusion_spread=profile.confusion_spread,
            confusable_pairs=profile.confusable_pairs,
            confusable_weight=profile.confusable_weight,
        )
    if kind == "careless":
        return dataclasses.replace(
            common,
            accuracy=rng.uniform(profile.careless_min_accuracy, profile.careless_max_accuracy),
            mean_service_s=common.mean_service_s * profile.careless_speedup,
        )
    constant = rng.random() < profile.constant_spammer_share
    return dataclasses.replace(
        common,
        mean_service_s=common.mean_service_s * profile.spammer_speedup,
        spammer="constant" if constant else "uniform",
        favourite=rng.randrange(2**31),
    )


def _share_count(n: int, share: float) -> int:
    return min(n, math.floor(n * share + 0.5))


def workers(
    n: int, seed: int = 0, profile: CrowdProfile | None = None, *, prefix: str = "w"
) -> list[WorkerProfile]:
    """A crowd of ``n`` workers named ``{prefix}0`` .. ``{prefix}{n-1}``, with the shares exactly.

    The numbers of spammers and careless workers are ``n`` times their shares,
    rounded half up; who is which is shuffled by ``seed``.

    >>> crowd = workers(20, seed=1, profile=CrowdProfile(spammer_share=0.1, careless_share=0.2))
    >>> sorted({kind: sum(w.kind == kind for w in crowd) for kind in ("good", "careless", "spammer")}.items())
    [('careless', 4), ('good', 14), ('spammer', 2)]
    >>> workers(3, seed=1) == workers(3, seed=1)
    True
    """
    profile = profile or CrowdProfile()
    spammers = _share_count(n, profile.spammer_share)
    careless = min(n - spammers, _share_count(n, profile.careless_share))
    counts: dict[WorkerKind, int] = {
        "spammer": spammers,
        "careless": careless,
        "good": n - spammers - careless,
    }
    kinds = [kind for kind, count in counts.items() for _ in range(count)]
    random.Random(f"{seed}/kinds/{n}").shuffle(kinds)
    return [worker(f"{prefix}{index}", seed, profile, kind) for index, kind in enumerate(kinds)]


def answer(
    worker_id: str,
    task_input: Mapping[str, object] | str,
    true_label: str,
    classes: Sequence[str],
    *,
    seed: int = 0,
    profile: CrowdProfile | None = None,
) -> str:
    """The answer worker ``worker_id`` gives to a task: a pure function of its arguments.

    For servers that know only ids (the Toloka stand-in): the worker's profile
    comes from :func:`worker`, and the draw is seeded by the worker, the task's
    input and its truth, so asking again gives the same answer.

    >>> first = answer("w7", {"text": "meow"}, "cat", ["dog", "cat"], seed=5)
    >>> first == answer("w7", {"text": "meow"}, "cat", ["cat", "dog"], seed=5)
    True
    >>> first in {"cat", "dog"}
    True
    """
    profile_of_worker = worker(worker_id, seed, profile)
    text = task_input if isinstance(task_input, str) else json.dumps(task_input, sort_keys=True, default=str)
    rng = random.Random(f"{seed}/{worker_id}/{text}/{true_label}")
    return profile_of_worker.answer(true_label, sorted(classes), rng)
