"""[L2] After an abrupt drift, how many human labels until the online model is as good as before?

The stream is the demo's (:func:`agents.simulation.stream.simulate`): SEA,
threshold 8 -> 7 half way (``ConceptDriftStream``, the narrowest width River
allows at that position), 5% label noise, scored by the frozen production
model. Each seeded run plays :data:`EVENTS` events twice, through the
product's code on both sides:

- **uncertainty routing**: the product's :class:`Router` (default threshold
  0.8 on max-probability; no control group, no capacity limit) decides each
  event; the online model (:class:`OnlineLearner` over
  :func:`build_model` ``"linear"``, the learner agent's core) learns only from
  the human labels of reviewed (``low_confidence``) events;
- **random labels**: the same number of labels over the run, each event
  drawn with probability reviews / events (seeded), learned by a fresh
  learner of the same kind.

Human labels are the truth (perfect labelers: the comparison is about which
events are labeled, not how well), learned with weight 1 on both sides (both
samples have one inclusion probability each, so the importance weight only
rescales the step; the agent's clipped 1/π weights would give the random
sample 10x steps). The online model is scored prequentially on **every**
event (predict before any label of it is learned), over a rolling window of
:data:`WINDOW` events, so both sides are measured on the same population.

- **pre-drift level**: the rolling accuracy at the drift's start (the
  transition's first event), averaged with the one ``WINDOW`` events earlier;
- **recovered**: the first event after the transition whose rolling window
  lies wholly after it with accuracy >= level - 2 points; its cost is the
  human labels learned from the drift's start up to that event.

Goal L2: the online model recovers in every run, and uncertainty routing needs
at most half the labels random labels need (the medians over the seeds,
fixed as :data:`SEEDS` before any run was looked at).
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from agents.learner.model import OnlineLearner, build_model, features_of
from agents.router.capacity import CapacitySettings
from agents.router.policy import Router, RouterSettings
from agents.simulation.stream import SimulatedEvent, StreamSettings, simulate
from bench.harness import Goal, Row

EVENTS = 20_000
DRIFT_AT = 0.5
WINDOW = 500
WITHIN_POINTS = 0.02
GOAL_RATIO = 0.5
SEEDS = tuple(range(1, 11))
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def stream(seed: int) -> list[SimulatedEvent]:
    """The demo's drifting stream for ``seed`` (created_at fixed: the router's age term is constant)."""
    settings = StreamSettings(events=EVENTS, drift_at=DRIFT_AT, seed=seed, run_id=f"l2-{seed}")
    return list(simulate(settings, clock=lambda: NOW))


def transition(events: int = EVENTS) -> tuple[int, int]:
    """The drift's first and last event (the stream's ConceptDriftStream width, as simulate sets it)."""
    position = int(events * DRIFT_AT)
    width = max(StreamSettings().drift_width, position // 150 + 1)
    return position - width // 2, position + width // 2


def reviewed(events: Sequence[SimulatedEvent]) -> list[bool]:
    """Which events the product's router sends for review (uncertainty routing only)."""
    router = Router(
        RouterSettings(control_share=0.0, capacity=CapacitySettings(enabled=False)), clock=lambda: 0.0
    )
    return [router.decide(simulated.event, NOW).route == "low_confidence" for simulated in events]


@dataclass(frozen=True, slots=True)
class Recovery:
    """One strategy on one run: the pre-drift level and what recovery took (inf: never)."""

    labels_total: int
    level: float
    lowest: float
    recovered_at: float
    labels_to_recover: float


def learn(events: Sequence[SimulatedEvent], labeled: Sequence[bool]) -> Recovery:
    """Score the online model on every event, then learn the labeled ones; when it recovered."""
    learner = OnlineLearner(build_model("linear"), window=WINDOW)
    start, end = transition(len(events))
    recent: deque[bool] = deque(maxlen=WINDOW)
    rolling: list[float] = []
    labels_since_drift = 0
    recovered_at, labels_to_recover = math.inf, math.inf
    level = math.nan
    for index, (simulated, human) in enumerate(zip(events, labeled, strict=True)):
        x = features_of(simulated.event.input, "linear")
        guess = learner.predict(x)
        recent.append(guess is not None and guess[0] == simulated.truth)
        rolling.append(sum(recent) / len(recent))
        if index == start:
            level = (rolling[index - 1] + rolling[index - 1 - WINDOW]) / 2
        if human:
            learner.observe(x, simulated.truth)
            labels_since_drift += index >= start
        if math.isinf(recovered_at) and index >= end + WINDOW and rolling[index] >= level - WITHIN_POINTS:
            recovered_at, labels_to_recover = index, labels_since_drift
    return Recovery(
        labels_total=sum(labeled),
        level=level,
        lowest=min(rolling[start:]),
        recovered_at=recovered_at,
        labels_to_recover=labels_to_recover,
    )


@dataclass(frozen=True, slots=True)
class Run:
    seed: int
    uncertainty: Recovery
    random: Recovery


def one_run(seed: int) -> Run:
    """Both strategies on ``seed``'s stream, with the same number of labels."""
    events = stream(seed)
    by_router = reviewed(events)
    share = sum(by_router) / len(by_router)
    rng = random.Random(10_000 + seed)
    at_random = [rng.random() < share for _ in events]
    return Run(seed, learn(events, by_router), learn(events, at_random))


def _labels(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:,.0f}"


def run(seeds: Sequence[int] = SEEDS) -> tuple[list[Row], list[Goal]]:
    """Measure L2 over ``seeds``."""
    started = time.perf_counter()
    runs = [one_run(seed) for seed in seeds]
    uncertainty = [r.uncertainty.labels_to_recover for r in runs]
    at_random = [r.random.labels_to_recover for r in runs]
    median_u, median_r = statistics.median(uncertainty), statistics.median(at_random)
    recovered = sum(not math.isinf(value) for value in uncertainty)
    rows = [
        Row(
            "L2 labels to recover, uncertainty routing",
            median_u,
            median_r,
            "",
            f"random labels (same number); median of {len(runs)} runs",
        ),
        Row(
            "L2   runs recovered within 2 points",
            recovered,
            len(runs),
            "",
            "runs",
        ),
        Row(
            "L2   pre-drift rolling accuracy (uncertainty)",
            statistics.fmean(r.uncertainty.level for r in runs),
            statistics.fmean(r.random.level for r in runs),
            "",
            "random labels",
        ),
        Row(
            "L2   lowest rolling accuracy after drift",
            statistics.fmean(r.uncertainty.lowest for r in runs),
            statistics.fmean(r.random.lowest for r in runs),
            "",
            "random labels",
        ),
        Row(
            "L2   human labels in the run",
            statistics.fmean(r.uncertainty.labels_total for r in runs),
            EVENTS,
            "",
            "events",
        ),
    ]
    ratio = median_u / median_r if not math.isinf(median_r) and median_r else math.inf
    holds = recovered == len(runs) and ratio <= GOAL_RATIO
    per_run = ", ".join(
        f"{_labels(r.uncertainty.labels_to_recover)}/{_labels(r.random.labels_to_recover)}" for r in runs
    )
    figure = (
        f"after the drift the online model is back within {100 * WITHIN_POINTS:.0f} points of its "
        f"pre-drift accuracy ({statistics.fmean(r.uncertainty.level for r in runs):.3f}) in {recovered} of "
        f"{len(runs)} runs; median human labels to get there: uncertainty routing {_labels(median_u)}, "
        f"random labels {_labels(median_r)} (ratio {ratio:.2f}; per run uncertainty/random: {per_run})"
    )
    goal = Goal(
        "L2",
        figure,
        f"recovers within {100 * WITHIN_POINTS:.0f} points; uncertainty routing needs <= {GOAL_RATIO:g}x "
        "the labels of random labels",
        holds,
    )
    rows.append(Row("L2   bench wall time", time.perf_counter() - started, 60.0, "s", "budget"))
    return rows, [goal]


if __name__ == "__main__":
    from bench.harness import report

    print(report(*run()))
