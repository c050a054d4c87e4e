"""[R3] Share of events sent to humans for a 95 % precision target, against an oracle threshold.

A binary stream whose model confidence c is drawn from 0.5 + 0.5·Beta(4, 1)
and whose prediction is right with probability c**1.2 (an over-confident
model). The Router starts at threshold 0.9 with a 5 % control group and a 2 %
recall audit, and its tuner re-sets the threshold from the human labels it
gets (reviews and control, weighted by 1 / inclusion probability) toward 95 %
precision of the accepted events. The oracle knows every true label and picks
the lowest threshold whose accepted events reach 95 % precision on the same
stream; it needs no control group.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from agents.router.policy import Router, RouterSettings, provenance
from agents.router.sampling import AuditSettings
from agents.router.tuning import TuningSettings
from bench.harness import Goal, Row
from schemas import Label, PredictionEvent, PredictionInput

TARGET = 0.95
EVENTS = 30_000


@dataclass(frozen=True)
class Scored:
    """One event of the R3 stream and its truth."""

    event: PredictionEvent
    truth: str


def overconfident_stream(events: int, seed: int) -> list[Scored]:
    """Binary predictions whose confidence overstates their accuracy (right with probability c**1.2)."""
    rng = random.Random(seed)
    created = datetime(2026, 1, 1, tzinfo=UTC)
    stream = []
    for index in range(events):
        confidence = round(0.5 + 0.5 * rng.betavariate(4.0, 1.0), 6)
        predicted, other = ("positive", "negative") if rng.random() < 0.5 else ("negative", "positive")
        truth = predicted if rng.random() < confidence**1.2 else other
        stream.append(
            Scored(
                PredictionEvent(
                    event_id=f"r3-{index}",
                    model_name="overconfident",
                    model_version="1",
                    created_at=created,
                    input=PredictionInput(features={"x": float(index)}),
                    predicted_label=predicted,
                    scores={predicted: confidence, other: round(1.0 - confidence, 6)},
                ),
                truth,
            )
        )
    return stream


def oracle_share(confidences: list[float], right: list[bool], target: float) -> tuple[float, float]:
    """The smallest share below a threshold such that the events above reach ``target`` precision."""
    order = sorted(range(len(confidences)), key=lambda i: confidences[i], reverse=True)
    correct = 0
    best_accepted = 0
    for accepted, index in enumerate(order, start=1):
        correct += right[index]
        if correct / accepted >= target:
            best_accepted = accepted
    threshold = confidences[order[best_accepted - 1]] if best_accepted else 1.0
    return 1.0 - best_accepted / len(order), threshold


def run() -> tuple[list[Row], list[Goal]]:
    """One tuned run against the oracle on the same stream (and, for comparison, without a safety margin)."""
    stream = overconfident_stream(EVENTS, seed=11)
    ours, precision, threshold = tuned_run(stream, z=TuningSettings().z)
    bare, bare_precision, _ = tuned_run(stream, z=0.0)
    confidences = [s.event.confidence for s in stream]
    oracle, oracle_threshold = oracle_share(
        confidences, [s.event.predicted_label == s.truth for s in stream], TARGET
    )
    ratio = ours / oracle if oracle else float("inf")
    rows = [
        Row("R3 share sent to humans, tuned to 95% precision", ours, oracle, "", "oracle threshold's share"),
        Row("R3 precision of what was accepted", precision, TARGET, "", "target"),
        Row("R3   same, tuner without safety margin (z=0)", bare, oracle, "", "oracle threshold's share"),
        Row("R3   precision accepted with z=0", bare_precision, TARGET, "", "target"),
    ]
    figure = (
        f"{ours:.3f} of events to humans vs the oracle's {oracle:.3f} = {ratio:.2f}x "
        f"(final threshold {threshold:.2f}, oracle {oracle_threshold:.2f}; "
        f"accepted precision {precision:.3f})"
    )
    return rows, [Goal("R3", figure, "<= 1.2x", ratio <= 1.2)]


def tuned_run(stream: list[Scored], z: float) -> tuple[float, float, float]:
    """Share sent to humans, precision of the accepted events and the final threshold of one run."""
    router = Router(
        RouterSettings(
            accept_threshold=0.9,
            control_share=0.05,
            audit=AuditSettings(rate=0.02),
            tuning=TuningSettings(target_precision=TARGET, every=200, z=z),
        ),
        clock=lambda: 0.0,
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    to_humans = accepted = accepted_right = 0
    for simulated in stream:
        event = simulated.event
        decision = router.decide(event, now)
        right = event.predicted_label == simulated.truth
        if decision.action == "review" or decision.audit is not None:
            to_humans += 1
        if decision.action == "accept":
            accepted += 1
            accepted_right += right
        if decision.action == "review":
            label = Label(
                event_id=event.event_id,
                task=event.task,
                label=simulated.truth,
                source="crowd",
                confidence=1.0,
                route=decision.route,
                inclusion_probability=decision.inclusion_probability,
                routing=decision.trace,
                decided_at=now,
                prediction_created_at=event.created_at,
                provenance=provenance(event),
            )
            command = router.learn_from(label, now)
            if command is not None:
                router.apply(command)
    return to_humans / len(stream), accepted_right / max(1, accepted), router.settings.accept_threshold
