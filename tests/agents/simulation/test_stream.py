"""The simulated stream: reproducible, valid on the wire, and the frozen model degrades after the drift."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.simulation.stream import CLASSES, SimulatedEvent, StreamSettings, simulate
from schemas import PredictionEvent
from streams.codec import decode

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def fixed_clock() -> datetime:
    return WHEN


def run(**options: object) -> list[SimulatedEvent]:
    settings = StreamSettings.model_validate({"events": 300, "train_size": 200} | options)
    return list(simulate(settings, clock=fixed_clock))


def error_rate(events: list[SimulatedEvent]) -> float:
    return sum(item.event.predicted_label != item.truth for item in events) / len(events)


@pytest.fixture(scope="module")
def drifting() -> list[SimulatedEvent]:
    return run(events=3_000, drift_at=0.5)


def test_a_seed_gives_the_same_stream() -> None:
    first, again = run(seed=42), run(seed=42)
    assert [item.event for item in first] == [item.event for item in again]
    assert [item.truth for item in first] == [item.truth for item in again]
    other = run(seed=43)
    assert [item.event.scores for item in other] != [item.event.scores for item in first]


def test_the_stream_has_the_requested_length_and_ids(drifting: list[SimulatedEvent]) -> None:
    assert [item.index for item in drifting] == list(range(3_000))
    assert drifting[0].event.event_id == "run-0000000"
    assert len({item.event.event_id for item in drifting}) == 3_000
    assert [item.event.event_id for item in run(events=2, run_id="demo")] == ["demo-0000000", "demo-0000001"]


def test_every_event_is_valid_on_the_wire(drifting: list[SimulatedEvent]) -> None:
    for item in drifting:
        event = item.event
        assert decode(PredictionEvent, event.to_json_bytes()) == event
        assert set(event.scores) == set(CLASSES)
        assert event.predicted_label == max(event.scores, key=lambda name: event.scores[name])
        assert event.created_at == WHEN
        assert event.input.features is not None
        assert sorted(event.input.features) == ["x0", "x1", "x2"]


def test_the_truth_is_one_of_the_classes(drifting: list[SimulatedEvent]) -> None:
    assert {item.truth for item in drifting} == set(CLASSES)


def test_the_production_model_degrades_after_the_drift(drifting: list[SimulatedEvent]) -> None:
    half = len(drifting) // 2
    before, after = error_rate(drifting[:half]), error_rate(drifting[half:])
    assert before < 0.1
    assert after > before + 0.02


def test_without_drift_the_model_stays_as_good() -> None:
    events = run(events=3_000, drift_at=1.0)
    half = len(events) // 2
    assert abs(error_rate(events[half:]) - error_rate(events[:half])) < 0.02


def test_the_model_settings_are_on_every_event() -> None:
    [item] = run(events=1, model_name="sea", model_version="7", task="demo")
    assert (item.event.model_name, item.event.model_version, item.event.task) == ("sea", "7", "demo")
