"""The router's body per event with Kafka taken away: decode + decide + encode vs the sum of its parts."""

from __future__ import annotations

from datetime import UTC, datetime

from agents.router.policy import Router, RouterSettings, label_request, model_label
from agents.simulation.stream import StreamSettings, simulate
from bench.harness import Row, per_call_s
from schemas import PredictionEvent
from streams.codec import decode, encode


def run() -> list[Row]:
    """Measure one body per event, and each part alone, over the same recorded events."""
    events = [simulated.event for simulated in simulate(StreamSettings(events=500, train_size=200))]
    wire = [encode(event) for event in events]
    policy = Router(RouterSettings(accept_threshold=0.7), clock=lambda: 0.0)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    decisions = [policy.decide(event, now) for event in events]
    outputs = [
        model_label(event, decision, now)
        if decision.action == "accept"
        else label_request(event, decision, now)
        for event, decision in zip(events, decisions, strict=True)
    ]
    index = iter(range(10**9))

    def body() -> None:
        i = next(index) % len(wire)
        event = decode(PredictionEvent, wire[i])
        decision = policy.decide(event, now)
        made = (
            model_label(event, decision, now)
            if decision.action == "accept"
            else label_request(event, decision, now)
        )
        encode(made)

    def decode_only() -> None:
        decode(PredictionEvent, wire[next(index) % len(wire)])

    def decide_only() -> None:
        policy.decide(events[next(index) % len(events)], now)

    def build_only() -> None:
        i = next(index) % len(events)
        if decisions[i].action == "accept":
            model_label(events[i], decisions[i], now)
        else:
            label_request(events[i], decisions[i], now)

    def encode_only() -> None:
        encode(outputs[next(index) % len(outputs)])

    whole = per_call_s(body)
    parts = sum(per_call_s(part) for part in (decode_only, decide_only, build_only, encode_only))
    return [
        Row("router body per event (no Kafka)", whole * 1e6, parts * 1e6, "us", "sum of its parts"),
    ]
