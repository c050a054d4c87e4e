"""[L2] After an abrupt drift, how many human labels until the online model is as good as before?

The stream is the demo's (:func:`agents.simulation.stream.simulate`): SEA,
threshold 8 -> 7 half way (``ConceptDriftStream``, the narrowest width River
allows at that position), 5% label noise, scored by the frozen production
model. Each seeded run plays :data:`EVENTS` events through the product's code
and decides which events humans label, then teaches an online model
(:class:`OnlineLearner` over :func:`build_model` ``"linear"``, the learner
agent's core) from those labels only:

- **product routing** (the goal's side): the product as it is configured by
  default. The :class:`Router` with default :class:`RouterSettings` (threshold
  0.8 on max-probability, a 5% control group, the 2% recall audit, the
  capacity gate with no pool status, so every review is admitted); each
  request goes through the aggregator (:class:`MajorityVoteAggregator`, one
  answer: the truth) to a Label; the learner learns each first human label
  (reviews, control, audits) with the agent's importance weight
  (:func:`importance_weight`: 1 for every label under the default clip);
  every Label also feeds the monitor's detectors
  (:class:`TaskMonitor`) and every alert the :class:`ResponsePolicy`, whose
  commands the router applies as the agents do over ``commands`` and
  ``policy-status`` (raise the control share to 0.2, tighten auto-accept by
  0.05). Time runs at the demo's rate (:data:`RATE_PER_S` events a second):
  it drives the response's windows and the monitor's ticks. The router's
  disagreement and age terms only rank reviews when the capacity gate sheds
  some; with every review admitted they change nothing, so the bench asks
  the online model for no suggestion;
- **random labels**: as many labels, at the same times, chosen at random:
  each event is labeled with the product side's labeled share over the
  :data:`WINDOW` events centred on it (seeded draw), learned with weight 1
  (a uniform sample has one inclusion probability: the weight would only
  rescale the step) by a fresh learner of the same kind;
- **reviews only** (a row, not the goal): the earlier bench's side, the
  router without control group, audit labels or drift response, learning
  from reviews alone, against its own random labels.

Human labels are the truth (perfect labelers: the comparison is about which
events are labeled, not how well).

How "labels to recover" is measured, and why. The online model's prequential
outcome on an event (predict it, then learn it if labeled) is a coin whose
chance of heads is the model's accuracy on the concept in force at that
moment. The earlier measure averaged those coins over a 500-event window and
counted a recovery at the first window wholly after the transition that was
back within 2 points: the window lags, and its noise (about 1.1 points over
500 events at 94%) is the size of the margin, so it could not see a recovery
sooner than the review share times ~600 events (263 labels), which is where
random labels recovered. Any finer window trades lag for noise at that scale
(200 events: 1.7 points). So the bench measures the coin's chance itself:

- each run holds out :data:`HOLDOUT` labeled inputs of each concept, drawn
  from generators of their own (:func:`concept_sample`; same noise), never
  learned: the expected prequential accuracy of the model at any moment;
- **pre-drift level**: the mean accuracy on the first concept's hold-out at
  :data:`LEVEL_CHECKS` points over the :data:`WINDOW` events before the
  transition's first event;
- after the transition's first event the model is scored on the second
  concept's hold-out at that event and after every :data:`EVAL_EVERY`
  labels it learns; **recovered**: the first such point at >= level - 2
  points from which every later point over the next :data:`WINDOW` events
  stays there (one lucky SGD step is not a recovery); its cost is the
  labels learned from the transition's first event up to that point, to a
  resolution of :data:`EVAL_EVERY` labels.

The design (hold-out size, steps, the stay rule) was fixed before it was run
on :data:`SEEDS`. The earlier measure is kept as a row, with its floor.

Goal L2: the online model recovers in every run, and with the product's
routing it needs at most half the labels random labels need (the medians over
the seeds, fixed as :data:`SEEDS` before any run was looked at).
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from agents.aggregator.majority import MajorityVoteAggregator, TaskState
from agents.learner.model import (
    LearnerSettings,
    OnlineLearner,
    build_model,
    features_of,
    first_human_label,
    importance_weight,
)
from agents.monitor.detectors import MonitorSettings
from agents.monitor.response import Reaction, ResponsePolicy
from agents.monitor.signals import TaskMonitor
from agents.router.capacity import CapacitySettings
from agents.router.policy import Router, RouterSettings, label_request, model_label
from agents.simulation.demo import DemoSettings
from agents.simulation.stream import (
    SimulatedEvent,
    StreamSettings,
    concept_sample,
    drift_window,
    simulate,
)
from bench.harness import Goal, Row
from schemas import CrowdAnswer, Label, LabelRequest

EVENTS = 20_000
DRIFT_AT = 0.5
WINDOW = 500
WITHIN_POINTS = 0.02
GOAL_RATIO = 0.5
SEEDS = tuple(range(1, 11))
NOW = datetime(2026, 1, 1, tzinfo=UTC)
TASK = StreamSettings().task
#: The demo's event rate: the bench's clock (the drift response's windows, the monitor's ticks).
RATE_PER_S = DemoSettings().rate_per_s
#: Labeled inputs held out of each concept per run.
HOLDOUT = 2_000
#: Labels between two scorings on the hold-out after the drift.
EVAL_EVERY = 10
#: Scorings on the first concept's hold-out over the window before the drift.
LEVEL_CHECKS = 10
#: Seed offsets of the two hold-outs (the stream uses seed, seed + 1 and seed + 2).
HOLDOUT_SEEDS = (50_000, 60_000)
#: The earlier bench's side: reviews only, nothing else.
REVIEWS_ONLY = RouterSettings(control_share=0.0, capacity=CapacitySettings(enabled=False))


def stream_settings(seed: int) -> StreamSettings:
    return StreamSettings(events=EVENTS, drift_at=DRIFT_AT, seed=seed, run_id=f"l2-{seed}")


def stream(seed: int) -> list[SimulatedEvent]:
    """The demo's drifting stream for ``seed`` (created_at fixed: the router's age term is constant)."""
    return list(simulate(stream_settings(seed), clock=lambda: NOW))


def transition(events: int = EVENTS) -> tuple[int, int]:
    """The drift's first and last event (as the stream places it)."""
    return drift_window(StreamSettings(events=events, drift_at=DRIFT_AT))


def in_flipped_band(simulated: SimulatedEvent) -> bool:
    """Whether the drift flipped this event's class: SEA's label is x0 + x1 <= threshold, 8 then 7."""
    features = simulated.event.input.features or {}
    return 7.0 < features["x0"] + features["x1"] <= 8.0


@dataclass(frozen=True, slots=True)
class Holdout:
    """Labeled inputs of one concept that no learner ever sees: the model's expected accuracy on it."""

    frame: pd.DataFrame
    truth: np.ndarray[Any, Any]

    @classmethod
    def of(cls, sample: Sequence[tuple[dict[str, float], str]]) -> Holdout:
        return cls(pd.DataFrame([x for x, _ in sample]), np.array([y for _, y in sample]))

    def accuracy(self, learner: OnlineLearner) -> float:
        predicted = learner.model.predict_many(self.frame)
        return float(np.mean(predicted.to_numpy() == self.truth))


def holdouts(seed: int) -> tuple[Holdout, Holdout]:
    """The run's hold-outs of the concept before and after the drift."""
    settings = stream_settings(seed)
    return (
        Holdout.of(concept_sample(settings, after=False, size=HOLDOUT, seed=HOLDOUT_SEEDS[0] + seed)),
        Holdout.of(concept_sample(settings, after=True, size=HOLDOUT, seed=HOLDOUT_SEEDS[1] + seed)),
    )


@dataclass(frozen=True, slots=True)
class Labeling:
    """Which events humans labeled on one side, and the weight the learner gives each (0: none)."""

    weights: list[float]
    #: Learned labels by route.
    routes: dict[str, int]
    #: Event index of the first drift response that changed the policy (None: none).
    responded_at: int | None = None

    @property
    def labeled(self) -> list[bool]:
        return [weight > 0.0 for weight in self.weights]

    @property
    def total(self) -> int:
        return sum(self.labeled)


def _clock(index: int) -> datetime:
    return NOW + timedelta(seconds=index / RATE_PER_S)


def _human_label(
    aggregator: MajorityVoteAggregator, simulated: SimulatedEvent, request: LabelRequest, now: datetime
) -> Label:
    """The aggregator's Label for ``request`` after one answer, the truth."""
    state, _ = aggregator.observe_request(TaskState(), request, now)
    event_id = simulated.event.event_id
    answer = CrowdAnswer(
        event_id=event_id,
        task_id=event_id,
        pool="bench",
        tier=request.tier,
        worker_id="truth",
        label=simulated.truth,
        time_spent_s=0.0,
        answered_at=now,
        overlap=1,
    )
    _, label = aggregator.observe_answer(state, answer, event_id, now)
    if label is None:  # pragma: no cover - one answer of overlap 1 always decides
        raise RuntimeError(f"no label for {event_id}")
    return label


def product_labels(
    events: Sequence[SimulatedEvent],
    settings: RouterSettings | None = None,
    *,
    respond: bool = True,
    routes: Iterable[str] = ("low_confidence", "control", "audit"),
    max_weight: float | None = None,
) -> Labeling:
    """Route ``events`` as the product does and say which human labels the learner learns, with their weight.

    ``respond`` feeds every Label to the monitor and lets its response policy
    change the router's policy, as the agents do through ``commands`` and
    ``policy-status``; ``routes`` are the human routes the learner learns from.
    """
    seconds = [0.0]
    router = Router(settings or RouterSettings(), clock=lambda: seconds[0])
    aggregator = MajorityVoteAggregator(default_overlap=1)
    max_weight = LearnerSettings().max_weight if max_weight is None else max_weight
    learned = set(routes)
    monitor = TaskMonitor(MonitorSettings(), TASK) if respond else None
    response = ResponsePolicy(MonitorSettings().response, router.status(TASK, NOW, "worker started"))
    weights: list[float] = []
    counts: Counter[str] = Counter()
    responded_at: list[int] = []

    def react(reaction: Reaction | None, index: int, now: datetime) -> None:
        if reaction is None or reaction.command is None:
            return
        router.apply(reaction.command)
        response.observe_policy(router.status(reaction.command.task, now, reaction.command.reason))
        if reaction.kind == "raise" and not responded_at:
            responded_at.append(index)

    tick_every = max(1, round(RATE_PER_S * MonitorSettings().tick_every_s))
    for index, simulated in enumerate(events):
        now = _clock(index)
        seconds[0] = index / RATE_PER_S
        if monitor is not None and index % tick_every == 0:
            for alert in monitor.tick(now):
                react(response.observe(alert, now), index, now)
            react(response.tick(now), index, now)
        if monitor is not None:  # the monitor reads every prediction, as its agent does
            for alert in monitor.observe_prediction(simulated.event, now):
                react(response.observe(alert, now), index, now)
        decision = router.decide(simulated.event, now)
        found: list[Label] = []
        weight = 0.0
        if decision.action == "accept":
            found.append(model_label(simulated.event, decision, now))
        if decision.action == "review" or decision.audit is not None:
            request = label_request(
                simulated.event, decision, now, measurement_tier=router.settings.measurement_tier
            )
            if monitor is not None:
                for alert in monitor.observe_request(request, now):
                    react(response.observe(alert, now), index, now)
            label = _human_label(aggregator, simulated, request, now)
            found.append(label)
            if first_human_label(label) and label.route in learned:
                weight = importance_weight(label, max_weight)
                counts[label.route] += 1
        weights.append(weight)
        if monitor is not None:
            for label in found:
                for alert in monitor.observe_label(label, now):
                    react(response.observe(alert, now), index, now)
    return Labeling(weights, dict(counts), responded_at[0] if responded_at else None)


def at_random(like: Labeling, seed: int) -> Labeling:
    """As many labels as ``like``, at the same times, on events drawn at random (weight 1)."""
    labeled = like.labeled
    total = [0]
    for flag in labeled:
        total.append(total[-1] + flag)
    half = WINDOW // 2
    rng = random.Random(10_000 + seed)
    weights = []
    for index in range(len(labeled)):
        low, high = max(0, index - half), min(len(labeled), index + half)
        share = (total[high] - total[low]) / (high - low)
        weights.append(1.0 if rng.random() < share else 0.0)
    return Labeling(weights, {"random": sum(weight > 0.0 for weight in weights)})


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


@dataclass(frozen=True, slots=True)
class Side:
    labeling: Labeling
    trace: Trace

    @property
    def recovery(self) -> Recovery:
        return recover(self.trace.checkpoints, self.trace.level - WITHIN_POINTS)

    def miss(self, seed: int) -> str:
        """Why a side that never recovered did not: where it sits after the drift, and for how long."""
        target = self.trace.level - WITHIN_POINTS
        median = statistics.median(point.accuracy for point in self.trace.checkpoints)
        return (
            f"seed {seed} sits at a median {median:.3f} against its target {target:.3f}, at most "
            f"{self.trace.longest_at(target):,} events in a row"
        )


@dataclass(frozen=True, slots=True)
class Run:
    """One seed: the product's routing and random labels (the goal), reviews only and its random labels."""

    seed: int
    product: Side
    random: Side
    reviews: Side
    reviews_random: Side

    @property
    def shared_target(self) -> float:
        """The lower pre-drift level of the two goal sides, less 2 points: one accuracy both must reach."""
        return min(self.product.trace.level, self.random.trace.level) - WITHIN_POINTS

    def to_shared_target(self) -> tuple[Recovery, Recovery]:
        return (
            recover(self.product.trace.checkpoints, self.shared_target),
            recover(self.random.trace.checkpoints, self.shared_target),
        )


def one_run(
    seed: int, *, reviews_only: bool = True, make_learner: Callable[[], OnlineLearner] = product_learner
) -> Run:
    """Both goal sides on ``seed``'s stream (and the reviews-only pair), each pair with as many labels."""
    events = stream(seed)
    held_out = holdouts(seed)

    def side(labeling: Labeling) -> Side:
        return Side(labeling, learn(events, labeling, held_out, make_learner))

    product = product_labels(events)
    random_side = at_random(product, seed)
    if reviews_only:
        reviews = product_labels(events, REVIEWS_ONLY, respond=False, routes=("low_confidence",))
        reviews_random = at_random(reviews, seed + 1)
        return Run(seed, side(product), side(random_side), side(reviews), side(reviews_random))
    product_side, random_labels = side(product), side(random_side)
    return Run(seed, product_side, random_labels, product_side, random_labels)


def _labels(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:,.0f}"


def _spread(values: Sequence[float]) -> str:
    """The smallest and largest finite values."""
    finite = [value for value in values if not math.isinf(value)]
    return f"{_labels(min(finite))} to {_labels(max(finite))}" if finite else "never"


def _median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def _ratio(figure: float, baseline: float) -> float:
    return figure / baseline if not math.isinf(baseline) and baseline else math.inf


def run(seeds: Sequence[int] = SEEDS) -> tuple[list[Row], list[Goal]]:
    """Measure L2 over ``seeds``."""
    started = time.perf_counter()
    runs = [one_run(seed) for seed in seeds]
    n = len(runs)
    median_u = _median(r.product.recovery.labels_to_recover for r in runs)
    median_r = _median(r.random.recovery.labels_to_recover for r in runs)
    shared = [r.to_shared_target() for r in runs]
    shared_u = _median(u.labels_to_recover for u, _ in shared)
    shared_r = _median(r.labels_to_recover for _, r in shared)
    recovered = sum(not math.isinf(r.product.recovery.labels_to_recover) for r in runs)
    recovered_r = sum(not math.isinf(r.random.recovery.labels_to_recover) for r in runs)
    level_u = statistics.fmean(r.product.trace.level for r in runs)
    level_r = statistics.fmean(r.random.trace.level for r in runs)
    start, end = transition()
    responded = [r.product.labeling.responded_at for r in runs if r.product.labeling.responded_at is not None]
    response_delay = _median(at - start for at in responded) if responded else math.inf
    routes: Counter[str] = Counter()
    for r in runs:
        routes.update(r.product.labeling.routes)
    reviews_u = _median(r.reviews.recovery.labels_to_recover for r in runs)
    reviews_r = _median(r.reviews_random.recovery.labels_to_recover for r in runs)
    rolling_u = _median(r.product.trace.rolling_recovery() for r in runs)
    rolling_r = _median(r.random.trace.rolling_recovery() for r in runs)
    floor = statistics.fmean(r.product.trace.labels_since_drift[end + WINDOW] for r in runs)
    rows = [
        Row(
            "L2 labels to recover, product routing",
            median_u,
            median_r,
            "",
            f"random labels (as many, same times); median of {n} runs",
        ),
        Row("L2   runs recovered within 2 points", recovered, recovered_r, "", "random labels' runs"),
        Row("L2   pre-drift accuracy (held out)", level_u, level_r, "", "random labels"),
        Row(
            "L2   lowest accuracy after drift (held out)",
            statistics.fmean(r.product.trace.lowest for r in runs),
            statistics.fmean(r.random.trace.lowest for r in runs),
            "",
            "random labels",
        ),
        Row(
            "L2   labels to a shared target (lower level - 2)",
            shared_u,
            shared_r,
            "",
            "random labels (not the goal's target)",
        ),
        Row(
            "L2   labels until recovery in the flipped band",
            statistics.fmean(r.product.recovery.band_share for r in runs),
            statistics.fmean(r.random.recovery.band_share for r in runs),
            "",
            "random labels (share of post-drift labels)",
        ),
        Row(
            "L2   drift response: events from drift start",
            response_delay,
            float(end - start),
            "ev",
            f"the transition's width; {len(responded)} of {n} runs responded",
        ),
        Row(
            "L2   human labels in the run",
            statistics.fmean(r.product.labeling.total for r in runs),
            EVENTS,
            "",
            "events; "
            + ", ".join(f"{route} {count / n:,.0f}" for route, count in sorted(routes.items()))
            + " a run",
        ),
        Row(
            "L2 reviews only (no control, audit, response)",
            reviews_u,
            reviews_r,
            "",
            "random labels (as many, same times); not the goal",
        ),
        Row(
            "L2 earlier measure: 500-event rolling window",
            rolling_u,
            rolling_r,
            "",
            f"random labels; its floor ~{floor:,.0f} labels; not the goal",
        ),
    ]
    ratio = _ratio(median_u, median_r)
    own_u = [r.product.recovery.labels_to_recover for r in runs]
    own_r = [r.random.recovery.labels_to_recover for r in runs]
    holds = recovered == n and ratio <= GOAL_RATIO
    per_run = ", ".join(
        f"{_labels(r.product.recovery.labels_to_recover)}/{_labels(r.random.recovery.labels_to_recover)}"
        for r in runs
    )
    why = []
    if recovered < n:
        never = ", ".join(
            r.product.miss(r.seed) for r in runs if math.isinf(r.product.recovery.labels_to_recover)
        )
        why.append(
            f"the product's online model held within {100 * WITHIN_POINTS:.0f} points for {WINDOW} events "
            f"in {recovered} of {n} runs only ({never})"
        )
    if ratio > GOAL_RATIO:
        why.append(
            f"ratio {ratio:.2f} > {GOAL_RATIO:g}, with runs from {_spread(own_u)} labels (random labels "
            f"{_spread(own_r)}): constant-step SGD "
            f"hovers about its level, and whether it holds for {WINDOW} events is partly chance; to one "
            f"shared target {_labels(shared_u)} vs {_labels(shared_r)}; reviews only {_labels(reviews_u)} "
            f"vs {_labels(reviews_r)}"
        )
    figure = (
        f"after the drift the online model is back within {100 * WITHIN_POINTS:.0f} points of its "
        f"pre-drift accuracy ({level_u:.3f}, held out) and stays there in {recovered} of {n} runs; median "
        f"human labels to get there: product routing {_labels(median_u)}, random labels {_labels(median_r)} "
        f"(ratio {ratio:.2f}; per run product/random: {per_run})"
    ) + (f" [fails: {'; '.join(why)}]" if why else "")
    goal = Goal(
        "L2",
        figure,
        f"recovers within {100 * WITHIN_POINTS:.0f} points; the product's routing needs <= {GOAL_RATIO:g}x "
        "the labels of random labels",
        holds,
    )
    rows.append(Row("L2   bench wall time", time.perf_counter() - started, 180.0, "s", "budget"))
    return rows, [goal]


if __name__ == "__main__":
    from bench.harness import report

    print(report(*run()))
