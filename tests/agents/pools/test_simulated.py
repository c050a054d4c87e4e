"""The simulated crowd: overlap from distinct workers, seeded accuracy, priorities, status."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import pytest

from agents.pools.base import LabelingBackend
from agents.pools.rates import WindowRate
from agents.pools.simulated import SimulatedCrowd, SimulatedCrowdSettings
from schemas import CrowdAnswer, LabelRequest, PoolStatus, PredictionEvent, PredictionInput

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
T = TypeVar("T")


class Truth:
    """A TruthSource that knows every event's label (or none)."""

    def __init__(self, label: str | None = "cat") -> None:
        self.label = label
        self.asked: list[str] = []

    def true_label(self, event_id: str) -> str | None:
        self.asked.append(event_id)
        return self.label


def request(event_id: str, *, priority: float = 0.5, overlap: int | None = None) -> LabelRequest:
    event = PredictionEvent(
        event_id=event_id,
        model_name="pets",
        model_version="1",
        created_at=WHEN,
        input=PredictionInput(text="meow"),
        predicted_label="dog",
        scores={"dog": 0.6, "cat": 0.4},
    )
    return LabelRequest(
        prediction=event,
        route="low_confidence",
        reason="low",
        priority=priority,
        uncertainty=0.4,
        overlap=overlap,
        requested_at=WHEN,
    )


#: A plain crowd: good workers only, no per-class spread, same speed, nobody abandons or leaves,
#: fixed overlap 3. Tests of the realistic crowd turn on what they exercise.
PLAIN: dict[str, object] = {
    "workers": 3,
    "mean_service_s": 0.001,
    "overlap": 3,
    "overlap_min": 3,
    "truth_wait_s": 0.01,
    "spammer_share": 0.0,
    "careless_share": 0.0,
    "class_accuracy_spread": 0.0,
    "speed_spread": 0.0,
    "abandon_probability": 0.0,
    "session_mean_s": None,
    "warmup_s": 0.0,
}


def settings(**changes: object) -> SimulatedCrowdSettings:
    return SimulatedCrowdSettings.model_validate(PLAIN | changes)


def with_crowd(crowd: SimulatedCrowd, scenario: Callable[[SimulatedCrowd], Awaitable[T]]) -> T:
    """Run ``scenario`` against a started crowd, stopping it afterwards, under a time limit."""

    async def main() -> T:
        await crowd.start()
        try:
            return await asyncio.wait_for(scenario(crowd), timeout=5.0)
        finally:
            await crowd.stop()

    return asyncio.run(main())


class Answers:
    """An answer sink that keeps what it got."""

    def __init__(self) -> None:
        self.received: list[CrowdAnswer] = []

    async def __call__(self, answer: CrowdAnswer) -> None:
        self.received.append(answer)


def test_the_simulated_crowd_is_a_labeling_backend() -> None:
    assert isinstance(SimulatedCrowd(settings(), Truth()), LabelingBackend)


def test_each_request_gets_overlap_answers_from_distinct_workers() -> None:
    sink = Answers()

    async def scenario(crowd: SimulatedCrowd) -> None:
        await asyncio.gather(*(crowd.label(request(f"e{index}"), sink) for index in range(6)))

    with_crowd(SimulatedCrowd(settings(workers=4), Truth()), scenario)
    by_event: dict[str, list[CrowdAnswer]] = {}
    for received in sink.received:
        by_event.setdefault(received.event_id, []).append(received)
    assert sorted(by_event) == [f"e{index}" for index in range(6)]
    for answers in by_event.values():
        assert len(answers) == 3
        assert len({answer.worker_id for answer in answers}) == 3
        assert {(answer.overlap, answer.pool, answer.tier) for answer in answers} == {
            (3, "simulated", "crowd")
        }


def test_the_request_overlap_is_capped_by_the_workers() -> None:
    sink = Answers()

    async def scenario(crowd: SimulatedCrowd) -> None:
        await crowd.label(request("e1", overlap=5), sink)

    with_crowd(SimulatedCrowd(settings(workers=2), Truth()), scenario)
    assert sorted(answer.worker_id for answer in sink.received) == ["simulated-w0", "simulated-w1"]


def test_perfect_workers_always_answer_the_truth() -> None:
    sink = Answers()

    async def scenario(crowd: SimulatedCrowd) -> None:
        await asyncio.gather(*(crowd.label(request(f"e{index}"), sink) for index in range(5)))

    with_crowd(SimulatedCrowd(settings(min_accuracy=1.0, max_accuracy=1.0), Truth("cat")), scenario)
    assert len(sink.received) == 15
    assert {answer.label for answer in sink.received} == {"cat"}


def test_hopeless_workers_always_answer_the_other_class() -> None:
    sink = Answers()

    async def scenario(crowd: SimulatedCrowd) -> None:
        await asyncio.gather(*(crowd.label(request(f"e{index}"), sink) for index in range(5)))

    with_crowd(SimulatedCrowd(settings(min_accuracy=0.0, max_accuracy=0.0), Truth("cat")), scenario)
    assert len(sink.received) == 15
    assert {answer.label for answer in sink.received} == {"dog"}


def accuracies(seed: int) -> list[float]:
    async def scenario(crowd: SimulatedCrowd) -> list[float]:
        return [worker.accuracy for worker in crowd._workers]

    return with_crowd(SimulatedCrowd(settings(workers=5, seed=seed), Truth()), scenario)


def test_workers_are_reproducible_for_a_seed() -> None:
    first, again, other = accuracies(seed=11), accuracies(seed=11), accuracies(seed=12)
    assert first == again
    assert first != other
    assert all(0.75 <= accuracy <= 0.95 for accuracy in first)


def answer_sequence(seed: int) -> list[str]:
    sink = Answers()

    async def scenario(crowd: SimulatedCrowd) -> None:
        for index in range(30):  # one worker, one request at a time: a deterministic order
            await crowd.label(request(f"e{index}"), sink)

    crowd_settings = settings(workers=1, seed=seed, min_accuracy=0.5, max_accuracy=0.5)
    with_crowd(SimulatedCrowd(crowd_settings, Truth("cat")), scenario)
    return [answer.label for answer in sink.received]


def test_answers_are_reproducible_for_a_seed() -> None:
    first = answer_sequence(seed=3)
    assert len(first) == 30
    assert set(first) == {"cat", "dog"}
    assert answer_sequence(seed=3) == first
    assert answer_sequence(seed=4) != first


def test_higher_priority_requests_are_served_first() -> None:
    sink = Answers()
    priorities = {"low": 0.1, "high": 0.9, "middle": 0.5, "also-low": 0.1}

    async def scenario(crowd: SimulatedCrowd) -> int:
        crowd.pause()
        pending = [
            asyncio.create_task(crowd.label(request(event_id, priority=priority), sink))
            for event_id, priority in priorities.items()
        ]
        await asyncio.sleep(0.01)
        queued = crowd.backlog
        assert sink.received == []  # paused: nobody works
        crowd.resume()
        await asyncio.gather(*pending)
        return queued

    assert with_crowd(SimulatedCrowd(settings(workers=1), Truth()), scenario) == 4
    # Equal priorities keep their arrival order.
    assert [answer.event_id for answer in sink.received] == ["high", "middle", "low", "also-low"]


def test_resize_grows_and_shrinks_the_crowd() -> None:
    async def scenario(crowd: SimulatedCrowd) -> list[int]:
        sizes = [crowd.workers]
        crowd.resize(7)
        sizes.append(crowd.workers)
        crowd.resize(2)
        sizes.append(crowd.workers)
        await asyncio.sleep(0.01)  # retired workers leave
        crowd.resize(0)
        sizes.append(crowd.workers)
        return sizes

    assert with_crowd(SimulatedCrowd(settings(workers=3), Truth()), scenario) == [3, 7, 2, 0]


def test_a_shrunk_crowd_still_answers_with_its_remaining_workers() -> None:
    sink = Answers()

    async def scenario(crowd: SimulatedCrowd) -> None:
        crowd.resize(2)
        await asyncio.sleep(0.01)
        await crowd.label(request("e1"), sink)

    with_crowd(SimulatedCrowd(settings(workers=4), Truth()), scenario)
    assert sorted(answer.worker_id for answer in sink.received) == ["simulated-w0", "simulated-w1"]


def test_status_reports_backlog_workers_and_capacity() -> None:
    crowd = SimulatedCrowd(settings(workers=4, mean_service_s=0.5, cost_per_label=0.03), Truth())

    async def scenario(crowd: SimulatedCrowd) -> tuple[int, float, float, int, bool]:
        running = crowd.status(WHEN)
        crowd.pause()
        pending = [asyncio.create_task(crowd.label(request(f"e{index}"), Answers())) for index in range(3)]
        await asyncio.sleep(0.01)
        paused = crowd.status(WHEN)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return (
            paused.backlog,
            running.capacity_per_min,
            paused.capacity_per_min,
            paused.workers,
            paused.active,
        )

    assert with_crowd(crowd, scenario) == (3, 4 * 60 / 0.5, 0.0, 4, False)


def test_status_counts_answers_and_tasks() -> None:
    sink = Answers()

    async def scenario(crowd: SimulatedCrowd) -> PoolStatus:
        await asyncio.gather(crowd.label(request("e1"), sink), crowd.label(request("e2"), sink))
        return crowd.status(WHEN)

    status = with_crowd(SimulatedCrowd(settings(workers=3, cost_per_label=0.03), Truth()), scenario)
    assert (status.answers_total, status.tasks_done, status.backlog, status.in_progress) == (6, 2, 0, 0)
    assert (status.pool, status.backend, status.overlap) == ("simulated", "simulated", 3)
    assert (status.cost_per_label, status.reported_at) == (0.03, WHEN)
    assert status.arrival_rate_per_min > 0


def test_missing_truth_falls_back_to_the_model_label() -> None:
    sink = Answers()
    truth = Truth(label=None)
    crowd = SimulatedCrowd(settings(workers=2, overlap=2, min_accuracy=1.0, max_accuracy=1.0), truth)

    async def scenario(crowd: SimulatedCrowd) -> None:
        await crowd.label(request("e1"), sink)

    with_crowd(crowd, scenario)
    assert [answer.label for answer in sink.received] == ["dog", "dog"]
    assert crowd.truth_missing == 2
    assert set(truth.asked) == {"e1"}


def test_a_failing_answer_sink_fails_the_request() -> None:
    async def broken_sink(answer: CrowdAnswer) -> None:
        raise RuntimeError(f"cannot produce the answer of {answer.event_id}")

    async def scenario(crowd: SimulatedCrowd) -> None:
        await crowd.label(request("e1"), broken_sink)

    with pytest.raises(RuntimeError, match="cannot produce the answer of e1"):
        with_crowd(SimulatedCrowd(settings(), Truth()), scenario)


def test_label_before_start_starts_the_crowd() -> None:
    # The dispatcher can receive its first request before the app's startup task ran.
    crowd = SimulatedCrowd(settings(), Truth())
    answers = Answers()

    async def scenario() -> None:
        await crowd.label(request("e1"), answers)
        await crowd.stop()

    asyncio.run(scenario())
    assert crowd.workers == settings().workers
    assert len(answers.received) == settings().overlap


# --- WindowRate ----------------------------------------------------------------------------


def test_window_rate_is_events_per_minute_over_the_window() -> None:
    rate = WindowRate(window_s=10.0)
    for second in range(10):
        rate.add(float(second), count=2)
    assert rate.per_min(now=9.5) == pytest.approx(20 * 60 / 10)  # never over less than min_span_s
    assert rate.per_min(now=10.0) == pytest.approx(18 * 60 / 10)  # the two at 0.0 have left
    assert rate.per_min(now=15.0) == pytest.approx(8 * 60 / 10)  # 6, 7, 8, 9 remain
    assert rate.per_min(now=100.0) == 0.0


def test_window_rate_while_the_window_fills() -> None:
    rate = WindowRate(window_s=60.0)
    assert rate.per_min(now=0.0) == 0.0
    rate.add(0.0, count=3)
    assert rate.per_min(now=0.5) == pytest.approx(18.0)  # spans count at least min_span_s (10 s)
    rate.add(30.0)
    assert rate.per_min(now=30.0) == pytest.approx(4 * 60 / 30)
