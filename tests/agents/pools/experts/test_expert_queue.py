"""The expert queue without HTTP: priority order, leases, expiry and re-lease, late answers, counters."""

from __future__ import annotations

import pytest

from agents.pools.experts import AnswerRefusedError, ExpertQueue
from tests.agents.pools.experts.expert_builders import expert_request


def queue_with(*priorities: float, overlap: int = 1, lease_s: float = 60.0) -> ExpertQueue:
    queue = ExpertQueue(lease_s=lease_s, active_window_s=120.0)
    for index, priority in enumerate(priorities):
        assert queue.add(expert_request(f"e{index}", priority=priority), overlap=overlap, now_s=0.0)
    return queue


def drain(queue: ExpertQueue, expert: str, now_s: float = 1.0) -> list[str]:
    """Lease and answer until nothing is left for ``expert``; the event ids in the order shown."""
    shown = []
    while (lease := queue.lease(expert, now_s)) is not None:
        shown.append(lease.event_id)
        queue.answer(expert, lease.event_id, "fraud", now_s)
    return shown


def test_highest_priority_first_and_first_come_first_served_among_equals() -> None:
    queue = queue_with(0.2, 0.9, 0.5, 0.9, 0.2)

    assert drain(queue, "ada") == ["e1", "e3", "e2", "e0", "e4"]


def test_the_same_event_is_queued_once() -> None:
    queue = queue_with(0.5)

    assert not queue.add(expert_request("e0", priority=0.9), overlap=1, now_s=0.0)
    assert queue.backlog(now_s=0.0) == 1


def test_overlap_goes_to_distinct_experts_and_never_twice_to_one() -> None:
    queue = queue_with(0.5, overlap=2)

    first = queue.lease("ada", now_s=1.0)
    assert first is not None
    assert queue.answer("ada", "e0", "fraud", now_s=2.0).completes is False
    assert queue.lease("ada", now_s=3.0) is None  # ada answered it: never shown again
    second = queue.lease("bob", now_s=3.0)
    assert second is not None
    assert second.event_id == "e0"
    assert queue.lease("cyd", now_s=3.0) is None  # both slots taken
    assert queue.answer("bob", "e0", "ok", now_s=4.0).completes is True
    assert "e0" not in queue
    assert queue.tasks_done == 1
    assert queue.answers_total == 2


def test_asking_again_gives_back_the_lease_held_with_its_original_time() -> None:
    queue = queue_with(0.9, 0.5)

    first = queue.lease("ada", now_s=1.0)
    again = queue.lease("ada", now_s=20.0)

    assert again == first
    assert queue.answer("ada", "e0", "spam", now_s=31.0).time_spent_s == pytest.approx(30.0)


def test_an_expired_lease_returns_the_task_to_the_queue_for_someone_else() -> None:
    queue = queue_with(0.9, 0.5, lease_s=60.0)
    queue.lease("ada", now_s=0.0)
    assert queue.backlog(now_s=59.0) == 1

    assert queue.backlog(now_s=60.0) == 2  # the lease ran out: e0 waits again
    assert queue.in_progress(now_s=60.0) == 0
    assert queue.lease("bob", now_s=61.0).event_id == "e0"  # type: ignore[union-attr]
    # ada is never shown e0 again: she gets the next task
    assert queue.lease("ada", now_s=61.0).event_id == "e1"  # type: ignore[union-attr]


def test_a_late_answer_is_used_once_while_the_task_is_open_then_the_task_is_closed() -> None:
    queue = queue_with(0.9, lease_s=60.0)
    queue.lease("ada", now_s=0.0)
    queue.lease("bob", now_s=70.0)  # ada's lease expired, bob took it

    late = queue.answer("ada", "e0", "fraud", now_s=80.0)

    assert late.late
    assert late.completes
    assert late.time_spent_s == pytest.approx(80.0)
    with pytest.raises(AnswerRefusedError) as refused:
        queue.answer("bob", "e0", "ok", now_s=81.0)
    assert refused.value.kind == "closed"
    with pytest.raises(AnswerRefusedError) as again:
        queue.answer("ada", "e0", "fraud", now_s=82.0)
    assert again.value.kind == "closed"
    assert queue.answers_total == 1
    assert queue.in_progress(now_s=82.0) == 0  # bob's lease went with the task


def test_a_late_answer_with_overlap_two_counts_once_and_the_task_never_gets_a_third() -> None:
    queue = queue_with(0.9, overlap=2, lease_s=60.0)
    queue.lease("ada", now_s=0.0)
    queue.lease("cyd", now_s=50.0)
    queue.lease("bob", now_s=70.0)  # ada's slot, re-leased

    assert not queue.answer("ada", "e0", "fraud", now_s=75.0).completes
    with pytest.raises(AnswerRefusedError) as duplicate:
        queue.answer("ada", "e0", "fraud", now_s=76.0)
    assert duplicate.value.kind == "duplicate"
    assert queue.answer("bob", "e0", "fraud", now_s=77.0).completes
    with pytest.raises(AnswerRefusedError) as closed:
        queue.answer("cyd", "e0", "ok", now_s=78.0)
    assert closed.value.kind == "closed"


def test_answers_that_cannot_be_used_say_why() -> None:
    queue = queue_with(0.9)
    queue.lease("ada", now_s=0.0)

    with pytest.raises(AnswerRefusedError) as unknown:
        queue.answer("ada", "e0", "cat", now_s=1.0)
    assert unknown.value.kind == "unknown_label"
    assert "'cat'" in unknown.value.message
    assert "fraud" in unknown.value.message
    with pytest.raises(AnswerRefusedError) as not_shown:
        queue.answer("bob", "e0", "ok", now_s=1.0)
    assert not_shown.value.kind == "not_shown"
    with pytest.raises(AnswerRefusedError) as missing:
        queue.answer("ada", "nope", "ok", now_s=1.0)
    assert missing.value.kind == "closed"
    # a refused answer leaves the lease in place
    assert queue.answer("ada", "e0", "ok", now_s=2.0).completes


def test_paused_hands_out_nothing_new_but_keeps_what_is_on_screen() -> None:
    queue = queue_with(0.9, 0.5)
    held = queue.lease("ada", now_s=0.0)
    queue.paused = True

    assert queue.lease("bob", now_s=1.0) is None
    assert queue.lease("ada", now_s=1.0) == held
    assert queue.answer("ada", "e0", "ok", now_s=2.0).completes
    queue.paused = False
    assert queue.lease("bob", now_s=3.0).event_id == "e1"  # type: ignore[union-attr]


def test_withdraw_drops_the_task_and_its_leases() -> None:
    queue = queue_with(0.9, 0.5)
    queue.lease("ada", now_s=0.0)

    assert queue.withdraw("e0")
    assert not queue.withdraw("e0")
    assert queue.in_progress(now_s=1.0) == 0
    assert queue.lease("ada", now_s=1.0).event_id == "e1"  # type: ignore[union-attr]


def test_counters_active_experts_and_service_time() -> None:
    queue = queue_with(0.9, 0.8, 0.7, 0.6, overlap=1)
    assert queue.service_time_s() is None

    for expert, spent_s in (("ada", 10.0), ("bob", 20.0), ("ada", 400.0)):
        lease = queue.lease(expert, now_s=0.0)
        assert lease is not None
        queue.answer(expert, lease.event_id, "ok", now_s=spent_s)

    assert queue.service_time_s() == pytest.approx(20.0)  # the median shrugs off the 400 s answer
    assert queue.answered_by("ada") == 2
    assert queue.waiting_for("ada", now_s=400.0) == 1
    queue.seen("cyd", now_s=450.0)
    assert queue.active_experts(now_s=450.0) == 2  # ada (400 s) and cyd; bob was last seen at 20 s
    assert queue.active_experts(now_s=600.0) == 0
    assert queue.arrivals.per_min(now=0.0) > 0
