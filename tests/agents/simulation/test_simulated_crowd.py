"""The simulated crowd: overlap from distinct workers, seeded accuracy, priorities, status."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import pytest

from agents.aggregator.overlap import DynamicOverlap, OverlapSettings
from agents.aggregator.skills import SkillBook
from agents.pools.base import LabelingBackend
from agents.rates import WindowRate
from agents.simulation.crowd import WorkerProfile
from agents.simulation.simulated_crowd import SimulatedCrowd, SimulatedCrowdSettings, ban_rule
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


def virtual_time_loop() -> asyncio.AbstractEventLoop:
    """An event loop on a virtual clock: when nothing is ready, time jumps to the next timer.

    Service times, deadlines, sessions and warm-ups then take no wall time and
    happen in an exact order, however busy the machine running the tests is.
    """
    loop = asyncio.new_event_loop()
    now = [0.0]
    selector = loop._selector  # type: ignore[attr-defined]
    poll = selector.select

    def select(timeout: float | None) -> object:
        events = poll(0)
        if not events:
            if timeout is None:
                raise RuntimeError("virtual time: nothing scheduled, the scenario is stuck")
            now[0] += timeout
        return events

    selector.select = select
    loop.time = lambda: now[0]  # type: ignore[method-assign]
    return loop


def with_crowd(crowd: SimulatedCrowd, scenario: Callable[[SimulatedCrowd], Awaitable[T]]) -> T:
    """Run ``scenario`` against a started crowd in virtual time, then stop it; under a time limit."""

    async def main() -> T:
        await crowd.start()
        try:
            return await asyncio.wait_for(scenario(crowd), timeout=3_600.0)
        finally:
            await crowd.stop()

    with asyncio.Runner(loop_factory=virtual_time_loop) as runner:
        return runner.run(main())


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


# --- the realistic crowd: dynamic overlap, deadlines, churn, make-up ------------------------


def perfect(worker_id: str, mean_service_s: float = 0.001, **changes: object) -> WorkerProfile:
    """A good worker who is always right (``changes`` tweak its profile)."""
    profile = WorkerProfile(worker_id, "good", 1.0, mean_service_s, service_sigma=0.0)
    return dataclasses.replace(profile, **changes)  # type: ignore[arg-type]


def says(worker_id: str, label: str) -> WorkerProfile:
    """A spammer who always answers ``label`` (the pets' classes sort as cat, dog)."""
    return WorkerProfile(
        worker_id,
        "spammer",
        0.0,
        0.001,
        service_sigma=0.0,
        spammer="constant",
        favourite=["cat", "dog"].index(label),
    )


def run_one(crowd: SimulatedCrowd, sink: Answers, *, settle_s: float = 0.0) -> PoolStatus:
    """Label one request, wait ``settle_s`` for stragglers, return the status then."""

    async def scenario(crowd: SimulatedCrowd) -> PoolStatus:
        await crowd.label(request("e1"), sink)
        await asyncio.sleep(settle_s)
        return crowd.status(WHEN)

    return with_crowd(crowd, scenario)


def test_dynamic_overlap_stops_at_two_when_workers_agree() -> None:
    sink = Answers()
    crowd = SimulatedCrowd(
        settings(overlap_min=2, overlap=5), Truth("cat"), crowd_profiles=[perfect(f"w{i}") for i in range(5)]
    )

    async def scenario(crowd: SimulatedCrowd) -> PoolStatus:
        await asyncio.gather(*(crowd.label(request(f"e{index}"), sink) for index in range(4)))
        return crowd.status(WHEN)

    status = with_crowd(crowd, scenario)
    assert len(sink.received) == 8
    assert {answer.overlap for answer in sink.received} == {2}
    assert status.overlap == 2  # what the tasks took lately, for the capacity in events


def test_dynamic_overlap_asks_more_workers_while_they_disagree() -> None:
    sink = Answers()
    # The spammer takes the task first; the rule wants more until "cat" is 0.9 likely.
    profiles = [says("w0", "dog"), *(perfect(f"w{i}") for i in range(1, 5))]
    crowd = SimulatedCrowd(settings(overlap_min=2, overlap=5), Truth("cat"), crowd_profiles=profiles)
    run_one(crowd, sink)
    votes = [(answer.worker_id, answer.label) for answer in sink.received]
    assert sorted(votes) == [("w0", "dog"), ("w1", "cat"), ("w2", "cat"), ("w3", "cat")]
    rule = DynamicOverlap(OverlapSettings(minimum=2, maximum=5, confidence=0.9))
    ordered = [(answer.worker_id, answer.label) for answer in sink.received]
    # Each answer carries the rule's target after counting it; the last one closes the task.
    assert [answer.overlap for answer in sink.received] == [
        rule.target(ordered[: index + 1], classes=2) for index in range(len(ordered))
    ]
    assert sink.received[-1].overlap == 4


def test_dynamic_overlap_stops_at_the_maximum() -> None:
    sink = Answers()
    profiles = [says("w0", "dog"), perfect("w1"), says("w2", "dog"), perfect("w3"), perfect("w4")]
    crowd = SimulatedCrowd(settings(overlap_min=2, overlap=3), Truth("cat"), crowd_profiles=profiles)
    run_one(crowd, sink)
    assert len(sink.received) == 3
    assert sink.received[-1].overlap == 3
    assert len({answer.worker_id for answer in sink.received}) == 3


def test_a_request_overlap_means_fixed_overlap() -> None:
    sink = Answers()
    crowd = SimulatedCrowd(
        settings(overlap_min=2, overlap=5), Truth("cat"), crowd_profiles=[perfect(f"w{i}") for i in range(5)]
    )

    async def scenario(crowd: SimulatedCrowd) -> None:
        await crowd.label(request("e1", overlap=4), sink)

    with_crowd(crowd, scenario)
    assert [answer.overlap for answer in sink.received] == [4, 4, 4, 4]


def test_an_abandoned_assignment_expires_and_the_task_goes_to_another_worker() -> None:
    sink = Answers()
    quitter = perfect("w0", abandon_probability=1.0)
    crowd = SimulatedCrowd(
        settings(overlap=1, overlap_min=1, assignment_timeout_s=0.02), Truth("cat"), crowd_profiles=[quitter]
    )

    async def scenario(crowd: SimulatedCrowd) -> tuple[int, int]:
        pending = asyncio.create_task(crowd.label(request("e1"), sink))
        await asyncio.sleep(0.07)  # alone, the quitter gets the task again, and quits again
        assert sink.received == []
        assert crowd.backlog + crowd.in_progress == 1  # never dropped
        crowd.resize(2)  # a newcomer joins: it gets the task, the quitter no longer does
        await pending
        return crowd.status(WHEN).tasks_done, crowd.abandoned

    tasks_done, abandoned = with_crowd(crowd, scenario)
    assert tasks_done == 1
    assert abandoned >= 2
    assert crowd.expired_assignments >= 2
    assert [(answer.worker_id, answer.label) for answer in sink.received] == [("simulated-w1", "cat")]


def test_a_late_answer_after_reassignment_is_used_once() -> None:
    sink = Answers()
    slow, fast = perfect("slow", mean_service_s=0.15), perfect("fast", mean_service_s=0.001)
    crowd = SimulatedCrowd(
        settings(overlap=1, overlap_min=1, assignment_timeout_s=0.03),
        Truth("cat"),
        crowd_profiles=[slow, fast],
    )
    status = run_one(crowd, sink, settle_s=0.3)  # label() returns with fast's answer; slow's comes later
    assert [(answer.worker_id, answer.overlap) for answer in sink.received] == [("fast", 1), ("slow", 2)]
    assert (crowd.expired_assignments, crowd.late_answers) == (1, 1)
    assert (status.answers_total, status.tasks_done, status.in_progress) == (2, 1, 0)


def test_a_late_answer_before_the_task_completes_counts_towards_it() -> None:
    sink = Answers()
    # Both answers are needed; the slow one expires, goes to "other", and still arrives first.
    slow = perfect("slow", mean_service_s=0.15)
    other = perfect("other", mean_service_s=0.09)  # takes over at 0.1, answers in time at 0.19
    crowd = SimulatedCrowd(
        settings(overlap=2, overlap_min=2, assignment_timeout_s=0.1),
        Truth("cat"),
        crowd_profiles=[slow, perfect("fast"), other],
    )
    run_one(crowd, sink, settle_s=0.15)
    assert [answer.worker_id for answer in sink.received] == ["fast", "slow", "other"]
    # slow's late answer completed the task (stamp 2); other's came after and says 3 were counted.
    assert [answer.overlap for answer in sink.received] == [2, 2, 3]
    assert crowd.late_answers == 1


def test_churn_keeps_the_headcount_and_newcomers_answer() -> None:
    sink = Answers()
    crowd = SimulatedCrowd(
        settings(workers=4, session_mean_s=0.03, warmup_s=0.005, assignment_timeout_s=0.05, overlap_min=2),
        Truth("cat"),
    )

    async def scenario(crowd: SimulatedCrowd) -> list[int]:
        headcounts = []
        for index in range(40):
            await crowd.label(request(f"e{index}"), sink)
            headcounts.append(crowd.workers)
        return headcounts

    headcounts = with_crowd(crowd, scenario)
    assert set(headcounts) == {4}
    assert crowd.departed > 4  # every seat turned over at least once
    by_event: dict[str, list[CrowdAnswer]] = {}
    for answer in sink.received:
        by_event.setdefault(answer.event_id, []).append(answer)
    assert len(by_event) == 40  # a leaver's task went to someone else
    assert all(len({a.worker_id for a in answers}) == len(answers) for answers in by_event.values())
    newcomers = {answer.worker_id for answer in sink.received} - {f"simulated-w{i}" for i in range(4)}
    assert newcomers


def test_a_worker_leaving_mid_task_never_answers_and_its_task_is_reassigned() -> None:
    sink = Answers()
    # Its session (about 1 s) ends long before its 10 s answer; newcomers come from the plain settings.
    leaver = perfect("leaver", mean_service_s=10.0, session_mean_s=1.0)
    crowd = SimulatedCrowd(
        settings(overlap=1, overlap_min=1, assignment_timeout_s=20.0, warmup_s=5.0),
        Truth("cat"),
        crowd_profiles=[leaver],
    )
    status = run_one(crowd, sink, settle_s=30.0)
    assert [answer.worker_id for answer in sink.received] == ["simulated-w1"]
    assert (crowd.departed, crowd.expired_assignments, crowd.late_answers) == (1, 1, 0)
    assert (status.workers, status.tasks_done) == (1, 1)


def test_a_newcomer_warms_up_before_it_answers() -> None:
    crowd = SimulatedCrowd(settings(workers=1, warmup_s=0.1), Truth())

    async def scenario(crowd: SimulatedCrowd) -> tuple[float, float, int, int]:
        crowd.resize(3)
        warming = crowd.status(WHEN).capacity_per_min
        counted = crowd.warming
        await asyncio.sleep(0.15)
        return warming, crowd.status(WHEN).capacity_per_min, counted, crowd.warming

    warming, warm, counted, left = with_crowd(crowd, scenario)
    assert (counted, left) == (2, 0)
    assert warming == pytest.approx(60 / 0.001)
    assert warm == pytest.approx(3 * 60 / 0.001)


class Flagging(Answers):
    """An answer sink that flags a worker once it has its answer (as a SkillBook would)."""

    def __init__(self, *flag: str) -> None:
        super().__init__()
        self.flag = set(flag)
        self.flagged: set[str] = set()

    async def __call__(self, answer: CrowdAnswer) -> None:
        await super().__call__(answer)
        if answer.worker_id in self.flag:
            self.flagged.add(answer.worker_id)


def test_a_banned_worker_gets_no_new_task_and_a_newcomer_takes_its_seat(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Flagging("w0")
    crowd = SimulatedCrowd(
        settings(overlap=1, overlap_min=1, warmup_s=0.01),
        Truth("cat"),
        crowd_profiles=[perfect("w0"), perfect("w1", mean_service_s=0.002)],
        is_banned=sink.flagged.__contains__,
    )

    async def scenario(crowd: SimulatedCrowd) -> list[int]:
        headcounts = []
        for index in range(12):
            await crowd.label(request(f"e{index}"), sink)
            headcounts.append(crowd.workers)
        return headcounts

    with caplog.at_level("INFO", logger="agents.simulation"):
        headcounts = with_crowd(crowd, scenario)
    # Its answer in hand counted; it got nothing after it was flagged.
    assert [answer.worker_id for answer in sink.received].count("w0") == 1
    assert len(sink.received) == 12
    assert set(headcounts) == {2}
    assert crowd.banned == 1
    assert "w0" not in {profile.worker_id for profile in crowd.profiles}
    assert "simulated-w2" in {answer.worker_id for answer in sink.received}  # the newcomer answers
    assert [record.getMessage() for record in caplog.records if "banned" in record.getMessage()] == [
        "simulated worker w0 banned by the quality rule: replaced by a newcomer"
    ]


def test_bans_draw_newcomers_with_the_crowd_shares_and_count_each_ban() -> None:
    sink = Answers()
    spammers: set[str] = set()

    def is_banned(worker_id: str) -> bool:  # every spammer is flagged on sight
        kinds = {profile.worker_id: profile.kind for profile in crowd.profiles}
        if kinds[worker_id] == "spammer":
            spammers.add(worker_id)
        return worker_id in spammers

    crowd = SimulatedCrowd(
        settings(workers=10, spammer_share=0.2, overlap=2, overlap_min=2, warmup_s=0.01),
        Truth("cat"),
        is_banned=is_banned,
    )

    async def scenario(crowd: SimulatedCrowd) -> list[int]:
        headcounts = []
        for index in range(60):
            await crowd.label(request(f"e{index}"), sink)
            headcounts.append(crowd.workers)
        return headcounts

    assert set(with_crowd(crowd, scenario)) == {10}
    # The initial two, and newcomers drawn with the shares: some of them spammers too.
    assert len(spammers) > 2
    assert crowd.banned == len(spammers)
    assert not spammers & {answer.worker_id for answer in sink.received}
    assert len(sink.received) == 120


def test_the_ban_rule_on_a_skill_book_bans_a_worker_too_fast_to_read() -> None:
    book = SkillBook()

    class Observed(Answers):
        async def __call__(self, answer: CrowdAnswer) -> None:
            await super().__call__(answer)
            book.observe_answer(answer.worker_id, answer.pool, answer.answered_at, answer.time_spent_s)

    sink = Observed()
    rusher = dataclasses.replace(says("rush", "dog"), mean_service_s=0.0001)
    crowd = SimulatedCrowd(
        settings(overlap=2, overlap_min=2, mean_service_s=0.01),  # newcomers as fast as the good workers
        Truth("cat"),
        crowd_profiles=[rusher, *(perfect(f"w{i}", mean_service_s=0.01) for i in range(5))],
        is_banned=ban_rule(book),
    )

    async def scenario(crowd: SimulatedCrowd) -> None:
        for index in range(60):
            await crowd.label(request(f"e{index}"), sink)

    with_crowd(crowd, scenario)
    assert book.is_too_fast("rush")
    assert crowd.banned == 1
    assert crowd.workers == 6
    assert sum(answer.worker_id == "rush" for answer in sink.received) < 60


def test_without_a_ban_rule_nobody_is_banned() -> None:
    sink = Answers()
    crowd = SimulatedCrowd(settings(workers=5, spammer_share=0.4), Truth("cat"))
    run_one(crowd, sink)
    assert (crowd.banned, crowd.workers) == (0, 5)


def test_the_crowd_has_spammers_and_careless_workers_at_the_configured_shares() -> None:
    crowd = SimulatedCrowd(settings(workers=20, spammer_share=0.2, careless_share=0.1), Truth())

    async def scenario(crowd: SimulatedCrowd) -> list[str]:
        return [profile.kind for profile in crowd.profiles]

    kinds = with_crowd(crowd, scenario)
    assert (kinds.count("spammer"), kinds.count("careless"), kinds.count("good")) == (4, 2, 14)
    again = SimulatedCrowd(settings(workers=20, spammer_share=0.2, careless_share=0.1), Truth())
    assert with_crowd(again, scenario) == [
        profile.kind for profile in crowd.profiles
    ]  # same seed, same crowd


def test_the_default_crowd_labels_a_stream_with_dynamic_overlap() -> None:
    # The demo's defaults (spammers, careless workers, abandonment, 30 s deadlines, warm-up), in
    # virtual time, with sessions shortened so that seats turn over during the run.
    sink = Answers()
    crowd = SimulatedCrowd(SimulatedCrowdSettings(session_mean_s=60.0), Truth("cat"))

    async def scenario(crowd: SimulatedCrowd) -> PoolStatus:
        pending = []
        for index in range(300):  # 3 requests a second against ~5 a second of capacity
            pending.append(asyncio.create_task(crowd.label(request(f"e{index}"), sink)))
            await asyncio.sleep(1 / 3)
        await asyncio.gather(*pending)
        return crowd.status(WHEN)

    status = with_crowd(crowd, scenario)
    by_event: dict[str, list[CrowdAnswer]] = {}
    for answer in sink.received:
        by_event.setdefault(answer.event_id, []).append(answer)
    assert len(by_event) == 300
    assert status.tasks_done == 300
    assert status.workers == 12
    assert crowd.departed > 12
    assert crowd.expired_assignments > 0  # some took a task and walked away (or left mid-task)
    sizes = [len(answers) for answers in by_event.values()]
    assert min(sizes) >= 2
    assert 2.0 < sum(sizes) / len(sizes) < 2.6  # most pairs agree; the rest get a third
    for answers in by_event.values():
        assert len({answer.worker_id for answer in answers}) == len(answers)
    # Fast spammers and careless workers give many of the answers; a plain majority still mostly holds.
    right = sum(answer.label == "cat" for answer in sink.received) / len(sink.received)
    majority = [sum(a.label == "cat" for a in answers) > len(answers) / 2 for answers in by_event.values()]
    assert 0.6 < right < 0.85
    assert sum(majority) / len(majority) > 0.75


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
