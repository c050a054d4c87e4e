"""The L2 bench's world: the drifting stream, its hold-outs, and the labels each side of the bench gets."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from agents.aggregator.majority import MajorityVoteAggregator, TaskState
from agents.learner.model import (
    LearnerSettings,
    OnlineLearner,
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
