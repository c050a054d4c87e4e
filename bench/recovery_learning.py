"""The L2 bench's learners: the online model on the labels, scored on the hold-outs; when it recovers."""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agents.learner.model import (
    OnlineLearner,
    build_model,
    features_of,
)
from agents.simulation.stream import (
    SimulatedEvent,
)
from bench.recovery_stream import (
    EVAL_EVERY,
    LEVEL_CHECKS,
    WINDOW,
    WITHIN_POINTS,
    Holdout,
    Labeling,
    in_flipped_band,
    transition,
)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The online model scored on the second concept's hold-out."""

    event: int
    #: Labels learned from the transition's first event up to this point.
    labels: int
    #: Of those, labels in the band the drift flipped.
    band_labels: int
    accuracy: float


@dataclass(frozen=True, slots=True)
class Recovery:
    """When a trace reached a target and stayed (inf: never) and what it took."""

    recovered_at: float
    labels_to_recover: float
    #: Of those labels, the share in the band where the two concepts disagree.
    band_share: float


NEVER = Recovery(math.inf, math.inf, 0.0)


def recover(checkpoints: Sequence[Checkpoint], target: float) -> Recovery:
    """The first checkpoint at >= ``target`` from which every one over the next WINDOW events stays there."""
    candidate: Checkpoint | None = None
    for point in checkpoints:
        if point.accuracy < target:
            candidate = None
            continue
        if candidate is None:
            candidate = point
        if point.event - candidate.event >= WINDOW:
            break
    if candidate is None:
        return NEVER
    share = candidate.band_labels / candidate.labels if candidate.labels else 0.0
    return Recovery(candidate.event, candidate.labels, share)


@dataclass(frozen=True, slots=True)
class Trace:
    """One side on one run: the hold-out scorings, and the rolling prequential accuracy per event."""

    level: float
    checkpoints: list[Checkpoint]
    rolling: list[float]
    #: Human labels learned from the transition's first event up to and including each event.
    labels_since_drift: list[int]
    labels_total: int

    @property
    def lowest(self) -> float:
        return min(point.accuracy for point in self.checkpoints)

    def longest_at(self, target: float) -> int:
        """The longest stretch of events after the drift over which every scoring was >= ``target``."""
        longest, since = 0, None
        for point in self.checkpoints:
            if point.accuracy < target:
                since = None
                continue
            since = point.event if since is None else since
            longest = max(longest, point.event - since)
        return longest

    @property
    def rolling_level(self) -> float:
        """The earlier measure's level: the rolling accuracy at the transition's start and a window before."""
        start, _ = transition(len(self.rolling))
        return (self.rolling[start - 1] + self.rolling[start - 1 - WINDOW]) / 2

    def rolling_recovery(self) -> float:
        """The earlier measure: labels to the first rolling window after the transition within 2 points."""
        _, end = transition(len(self.rolling))
        target = self.rolling_level - WITHIN_POINTS
        for index in range(end + WINDOW, len(self.rolling)):
            if self.rolling[index] >= target:
                return float(self.labels_since_drift[index])
        return math.inf


def product_learner() -> OnlineLearner:
    """The learner agent's core as it is configured by default."""
    return OnlineLearner(build_model("linear"), window=WINDOW)


def learn(
    events: Sequence[SimulatedEvent],
    labeling: Labeling,
    held_out: tuple[Holdout, Holdout],
    make_learner: Callable[[], OnlineLearner] = product_learner,
) -> Trace:
    """Score the online model on every event (prequential) and on the hold-outs, learning the labeled ones.

    Scoring on the second concept's hold-out stops once the model has recovered
    to its own target and stayed there for a window (a lower target is decided
    by then too). ``make_learner`` is for bench.learner_tuning's candidates.
    """
    learner = make_learner()
    start, _ = transition(len(events))
    before, after = held_out
    level_at = {start - WINDOW + step * WINDOW // LEVEL_CHECKS for step in range(LEVEL_CHECKS)}
    levels: list[float] = []
    level = math.nan
    checkpoints: list[Checkpoint] = []
    candidate: Checkpoint | None = None
    scoring = True
    recent: deque[bool] = deque(maxlen=WINDOW)
    rolling: list[float] = []
    since: list[int] = []
    labels = band_labels = 0

    def score(index: int) -> None:
        nonlocal candidate, scoring
        point = Checkpoint(index, labels, band_labels, after.accuracy(learner))
        checkpoints.append(point)
        if point.accuracy < level - WITHIN_POINTS:
            candidate = None
        elif candidate is None:
            candidate = point
        if candidate is not None and index - candidate.event >= WINDOW:
            scoring = False

    for index, (simulated, weight) in enumerate(zip(events, labeling.weights, strict=True)):
        if index in level_at:
            levels.append(before.accuracy(learner))
        if index == start:
            level = statistics.fmean(levels)
            score(index)
        x = features_of(simulated.event.input, "linear")
        guess = learner.predict(x)
        recent.append(guess is not None and guess[0] == simulated.truth)
        rolling.append(sum(recent) / len(recent))
        if weight > 0.0:
            learner.observe(x, simulated.truth, weight)
            if index >= start:
                labels += 1
                band_labels += in_flipped_band(simulated)
                if scoring and labels % EVAL_EVERY == 0:
                    score(index)
        since.append(labels)
    return Trace(level, checkpoints, rolling, since, labeling.total)
