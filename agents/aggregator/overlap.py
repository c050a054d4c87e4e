"""Dynamic overlap: how many answers a task needs, given the answers it has.

One pure rule serves the pools and the aggregator: a pool asks for one more
answer while :meth:`DynamicOverlap.target` says the task needs more, and
stamps each answer it reports with the target *after* counting that answer
(``CrowdAnswer.overlap``); the aggregator decides a task once it holds as many
answers as the latest target. So the pool is the one place that decides when
to stop, and the aggregator never waits for an answer that will not come.

The rule is a one-coin model (Dawid & Skene, 1979, with one accuracy per
worker): each worker is right with probability ``a_w`` and otherwise picks one
of the other classes at random. The posterior of class ``c`` given the votes
is proportional to the product of ``a_w`` over the votes for ``c`` and
``(1 - a_w) / (K - 1)`` over the rest. A task stops at ``minimum`` answers
when the leading class is already that probable, and grows by one answer at a
time up to ``maximum`` otherwise. Fixed overlap ``n`` is ``minimum = maximum = n``.

References
----------
Dawid, A. P. & Skene, A. M. (1979). Maximum likelihood estimation of observer
error-rates using the EM algorithm. JRSS C 28(1), 20–28.

Ipeirotis, P., Provost, F., Sheng, V. & Wang, J. (2014). Repeated labeling using
multiple noisy labelers. Data Mining and Knowledge Discovery 28, 402–441.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: A worker's estimated accuracy, or None when nothing is known of the worker yet.
AccuracyOf = Callable[[str], float | None]
#: Accuracies are kept away from 0 and 1 so one vote never decides a task alone.
_LOWEST, _HIGHEST = 0.01, 0.99


class OverlapSettings(BaseModel):
    """Dynamic overlap (``LABELLOOP_AGGREGATOR__OVERLAP__*``)."""

    model_config = ConfigDict(frozen=True)

    #: Answers every task gets before the rule may stop it.
    minimum: int = Field(default=2, ge=1, le=50)
    #: Answers no task goes past; the aggregator escalates what is still unsure then.
    maximum: int = Field(default=5, ge=1, le=50)
    #: Posterior of the leading class at which a task stops.
    confidence: float = Field(default=0.9, gt=0.0, lt=1.0)
    #: Accuracy assumed for a worker with no estimate yet.
    prior_accuracy: float = Field(default=0.8, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> OverlapSettings:
        if self.minimum > self.maximum:
            raise ValueError(f"overlap minimum {self.minimum} exceeds maximum {self.maximum}")
        return self

    @classmethod
    def fixed(cls, answers: int) -> OverlapSettings:
        """Fixed overlap: every task gets exactly ``answers`` answers."""
        return cls(minimum=answers, maximum=answers)


def posterior(
    votes: Sequence[tuple[str, str]], classes: int, accuracy_of: AccuracyOf, prior_accuracy: float
) -> dict[str, float]:
    """P(true class | votes) under the one-coin model, for every voted class (uniform prior).

    ``votes`` are ``(worker_id, label)`` pairs; ``classes`` is the number of
    classes K (at least the number of distinct labels voted). Classes nobody
    voted for share the remaining mass and are not listed.

    >>> votes = [("w1", "cat"), ("w2", "cat"), ("w3", "dog")]
    >>> p = posterior(votes, 2, lambda worker: None, 0.8)
    >>> round(p["cat"], 3), round(p["dog"], 3)
    (0.8, 0.2)
    """
    labels = {label for _, label in votes}
    k = max(classes, len(labels), 2)
    log_score = dict.fromkeys(labels, 0.0)
    unvoted = 0.0
    for worker, label in votes:
        known = accuracy_of(worker)
        a = min(max(prior_accuracy if known is None else known, _LOWEST), _HIGHEST)
        right, wrong = math.log(a), math.log((1.0 - a) / (k - 1))
        for candidate in log_score:
            log_score[candidate] += right if candidate == label else wrong
        unvoted += wrong
    top = max([*log_score.values(), unvoted])
    weights = {label: math.exp(score - top) for label, score in log_score.items()}
    total = sum(weights.values()) + (k - len(labels)) * math.exp(unvoted - top)
    return {label: weight / total for label, weight in weights.items()}


class DynamicOverlap:
    """The stopping rule of a task (see the module docstring).

    Examples
    --------
    >>> rule = DynamicOverlap(OverlapSettings(minimum=2, maximum=5, confidence=0.9))
    >>> rule.target([], classes=2)
    2
    >>> rule.target([("w1", "cat"), ("w2", "cat")], classes=2)   # agree: 0.94 >= 0.9, stop
    2
    >>> rule.target([("w1", "cat"), ("w2", "dog")], classes=2)   # disagree: ask a third
    3
    >>> DynamicOverlap(OverlapSettings.fixed(3)).target([("w1", "cat"), ("w2", "cat")], classes=2)
    3
    """

    def __init__(
        self, settings: OverlapSettings | None = None, accuracy_of: AccuracyOf | None = None
    ) -> None:
        self.settings = settings or OverlapSettings()
        self.accuracy_of: AccuracyOf = accuracy_of or (lambda worker: None)

    def posterior(self, votes: Sequence[tuple[str, str]], classes: int) -> dict[str, float]:
        """The one-coin posterior of the voted classes, with this rule's accuracies."""
        return posterior(votes, classes, self.accuracy_of, self.settings.prior_accuracy)

    def done(self, votes: Sequence[tuple[str, str]], classes: int) -> bool:
        """Whether the task has all the answers it needs."""
        return self.target(votes, classes) <= len(votes)

    def target(self, votes: Sequence[tuple[str, str]], classes: int) -> int:
        """The number of answers the task needs in total, given ``votes`` so far."""
        settings = self.settings
        have = len(votes)
        if have < settings.minimum:
            return settings.minimum
        if have >= settings.maximum:
            return have
        if max(self.posterior(votes, classes).values()) >= settings.confidence:
            return have
        return have + 1
