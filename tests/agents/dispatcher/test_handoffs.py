"""The dispatcher's hand-off bookkeeping: what runs here, what to start again, what to stop."""

from __future__ import annotations

from datetime import UTC, datetime

from agents.dispatcher.handoffs import Handoffs, OpenTask, TaskDone
from tests.factories import label_request


def test_a_task_runs_once_here_until_its_done_record_closes_it() -> None:
    handoffs: Handoffs[object] = Handoffs()
    first = object()
    handoffs.started("e1", 0, first)
    assert handoffs.busy("e1")
    assert handoffs.to_recover([("e1", 0)], actives={0}) == []
    handoffs.finished("e1", first)
    # Finished but still in the table (its delete is on its way): never started again.
    assert handoffs.to_recover([("e1", 0)], actives={0}) == []
    handoffs.closed("e1")
    assert not handoffs.busy("e1")


def test_open_tasks_of_owned_partitions_nobody_runs_are_recovered() -> None:
    handoffs: Handoffs[object] = Handoffs()
    handoffs.started("running", 0, object())
    table = [("running", 0), ("orphan", 0), ("elsewhere", 3), ("other", 1)]
    assert handoffs.to_recover(table, actives={0, 1}) == ["orphan", "other"]


def test_revoking_partitions_returns_their_handles_and_forgets_them() -> None:
    handoffs: Handoffs[str] = Handoffs()
    handoffs.started("a", 0, "task-a")
    handoffs.started("b", 1, "task-b")
    handoffs.started("c", 1, "task-c")
    handoffs.finished("c", "task-c")
    assert handoffs.outside({0}) == {1}
    assert sorted(handoffs.revoke({1})) == ["task-b"]
    assert not handoffs.busy("b")
    assert not handoffs.busy("c")
    assert handoffs.busy("a")


def test_the_end_of_an_old_handle_never_touches_the_task_started_again() -> None:
    handoffs: Handoffs[str] = Handoffs()
    handoffs.started("e1", 0, "old")
    assert handoffs.revoke({0}) == ["old"]
    handoffs.started("e1", 0, "new")  # the partition came back and the task started again
    handoffs.stopped("e1", "old")  # the old one's cancellation lands late
    handoffs.finished("e1", "old")
    assert handoffs.running["e1"] == (0, "new")
    handoffs.finished("e1", "new")
    assert handoffs.done == {"e1": 0}


def test_open_tasks_and_done_records_round_trip_as_json() -> None:
    request = label_request()
    task = OpenTask(partition=2, offset=41, request=request)
    assert OpenTask.from_json_bytes(task.to_json_bytes()) == task
    done = TaskDone(
        event_id=request.event_id, outcome="answered", finished_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert TaskDone.from_json_bytes(done.to_json_bytes()) == done
