"""The operator core without Kafka: commands are built and checked, the board folds topics into table rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from labelloop.cli import app
from schemas import PolicyCommand, PoolCommand, PoolStatus
from streams.errors import ContractError
from streams.operator import COLUMNS, OperatorCommandError, PoolBoard, build_command, cost_per_hour
from streams.runtime import Record

WHEN = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def status(**changes: Any) -> PoolStatus:
    fields: dict[str, Any] = {
        "pool": "simulated",
        "backend": "simulated",
        "tier": "crowd",
        "workers": 10,
        "active": True,
        "backlog": 0,
        "in_progress": 4,
        "arrival_rate_per_min": 10.0,
        "capacity_per_min": 90.0,
        "overlap": 3,
        "answers_total": 0,
        "tasks_done": 0,
        "cost_per_label": 0.05,
        "reported_at": WHEN,
    }
    return PoolStatus(**(fields | changes))


def command(action: str, **fields: Any) -> PoolCommand:
    return build_command("simulated", action, operator="ada", reason="test", now=WHEN, **fields)


# --- building commands --------------------------------------------------------------------


def test_each_action_builds_the_command_the_autoscaler_reads() -> None:
    scale = command("scale", workers=7)
    assert (scale.action, scale.workers, scale.issued_by, scale.reason) == (
        "scale",
        7,
        "operator:ada",
        "test",
    )
    assert scale.by_operator
    limits = command("set", min_workers=2, max_workers=30, sla_p95_s=120.0, budget_per_hour=9.5)
    assert (limits.min_workers, limits.max_workers, limits.sla_p95_s, limits.budget_per_hour) == (
        2,
        30,
        120.0,
        9.5,
    )
    for action in ("pause", "resume", "release"):
        plain = command(action)
        assert plain.action == action
        assert plain.workers is None
        assert plain.min_workers is None


@pytest.mark.parametrize(
    ("action", "fields", "message"),
    [
        ("scale", {}, "scale needs the number of workers"),
        ("scale", {"workers": -1}, "workers must be between 0 and 100000, got -1"),
        ("scale", {"workers": 7, "sla_p95_s": 60.0}, "scale takes no limits (sla_p95_s); use set"),
        ("pause", {"workers": 3}, "pause takes no number of workers (use scale)"),
        ("set", {}, "set needs at least one of --min, --max, --sla, --budget"),
        ("set", {"min_workers": 9, "max_workers": 3}, "min_workers (9) is above max_workers (3)"),
        ("set", {"sla_p95_s": 0.0}, "sla_p95_s: input should be greater than 0"),
        ("set", {"budget_per_hour": -2.0}, "budget_per_hour: input should be greater than or equal to 0"),
        ("reboot", {}, "unknown action 'reboot': use one of scale, pause, resume, set, release"),
    ],
)
def test_a_bad_command_is_refused_with_a_clear_reason(
    action: str, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(OperatorCommandError) as caught:
        command(action, **fields)
    assert caught.value.message == message
    assert caught.value.kind == "bad_command"


def test_names_are_checked_and_named_as_the_operator_typed_them() -> None:
    with pytest.raises(OperatorCommandError, match=r"^pool name: string should match pattern"):
        build_command("my pool", "pause", operator="ada", reason="x", now=WHEN)
    with pytest.raises(OperatorCommandError, match=r"^operator name: string should have at most 64"):
        build_command("simulated", "pause", operator="a" * 60, reason="x", now=WHEN)
    with pytest.raises(OperatorCommandError, match=r"^reason: string should have at least 1"):
        build_command("simulated", "pause", operator="ada", reason="", now=WHEN)


# --- the board and its rows ---------------------------------------------------------------


def test_rows_show_rates_sla_state_cost_and_control() -> None:
    board = PoolBoard()
    board.observe_status(status(backlog=60, arrival_rate_per_min=40.0))
    board.observe_command(command("set", sla_p95_s=100.0, budget_per_hour=300.0))
    board.observe_command(command("scale", workers=12))
    (row,) = board.rows(WHEN + timedelta(seconds=3))
    # 90 labels/min over overlap 3 = 30 events/min; 60 waiting -> 120 s > SLA 100 s.
    assert (row.capacity_per_min, row.wait_s, row.sla_state) == (30.0, 120.0, "breach")
    # A backlog keeps every worker busy: 90 labels/min * 60 * 0.05.
    assert row.cost_per_hour == pytest.approx(270.0)
    assert row.control == "operator:ada scale 12"
    assert row.cells() == (
        "simulated", "crowd", "active", "10", "60", "40.0", "30.0", "120",
        "breach (100)", "270.00 / 300.00", "operator:ada scale 12", "3",
    )  # fmt: skip
    assert len(row.cells()) == len(COLUMNS)


@pytest.mark.parametrize(
    ("changes", "sla", "expected"),
    [
        ({"backlog": 20}, 100.0, "ok"),  # 40 s
        ({"backlog": 45}, 100.0, "at risk"),  # 90 s: over 80 % of the SLA
        ({"backlog": 5, "arrival_rate_per_min": 50.0}, 100.0, "at risk"),  # arrivals outrun capacity
        ({"active": False, "backlog": 500}, 100.0, "paused"),
        ({"capacity_per_min": 0.0, "backlog": 3}, 100.0, "stalled"),
        ({"arrival_rate_per_min": 50.0}, None, "growing"),
        ({}, None, "no SLA"),
    ],
)
def test_sla_state(changes: dict[str, Any], sla: float | None, expected: str) -> None:
    board = PoolBoard()
    board.observe_status(status(**changes))
    if sla is not None:
        board.observe_command(command("set", sla_p95_s=sla))
    assert board.rows(WHEN)[0].sla_state == expected


def test_without_a_backlog_the_pool_is_paid_for_the_labels_that_arrive() -> None:
    # 10 events/min * overlap 3 = 30 labels/min (capacity 90): 30 * 60 * 0.05.
    assert cost_per_hour(status()) == pytest.approx(90.0)


def test_release_hands_back_to_the_autoscaler_and_autoscaler_commands_do_not_take_control() -> None:
    board = PoolBoard()
    board.observe_status(status())
    board.observe_command(command("pause"))
    assert board.control("simulated") == "operator:ada pause"
    board.observe_command(command("release"))
    board.observe_command(
        PoolCommand(
            pool="simulated", action="scale", workers=3, issued_by="autoscaler", issued_at=WHEN, reason="x"
        )
    )
    assert board.control("simulated") == "autoscaler"


def test_the_newest_report_wins_and_an_old_one_is_shown_stale() -> None:
    board = PoolBoard()
    board.observe_status(status(workers=8, reported_at=WHEN + timedelta(seconds=5)))
    board.observe_status(status(workers=3))  # older, arrives late from another partition
    (row,) = board.rows(WHEN + timedelta(minutes=5))
    assert (row.workers, row.state) == (8, "stale")


def test_raw_records_are_folded_by_topic_and_policy_commands_are_skipped() -> None:
    board = PoolBoard()

    def record(topic: str, value: bytes) -> Record:
        return Record(key=b"simulated", value=value, topic=topic, partition=0, offset=0)

    board.observe(record("t.pool-status", status().to_json_bytes()), "t.pool-status")
    board.observe(record("t.commands", command("scale", workers=4).to_json_bytes()), "t.pool-status")
    policy = PolicyCommand(accept_threshold=0.9, issued_by="monitor", issued_at=WHEN, reason="drift")
    board.observe(record("t.commands", policy.to_json_bytes()), "t.pool-status")
    assert board.control("simulated") == "operator:ada scale 4"
    with pytest.raises(ContractError):
        board.observe(record("t.commands", b"{"), "t.pool-status")
    (document,) = board.as_json(WHEN)
    assert document["pool"] == "simulated"
    assert document["control"] == "operator:ada scale 4"


# --- the CLI refuses a bad command before reaching Kafka ----------------------------------


def test_the_cli_refuses_a_bad_command_without_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELLOOP_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing there: must not be used
    result = CliRunner().invoke(
        app, ["pools", "set", "simulated", "--min", "5", "--max", "2", "--reason", "t"]
    )
    assert result.exit_code == 2
    assert "min_workers (5) is above max_workers (2)" in result.output


def test_one_pool_reported_by_several_workers_is_one_row_of_their_sums() -> None:
    board = PoolBoard()
    board.observe_status(status(workers=4, backlog=10, reporter="w1", workers_needed=6))
    board.observe_status(status(workers=6, backlog=5, reporter="w2", workers_needed=7))
    board.observe_status(status(workers=9, reporter="w3", reported_at=WHEN - timedelta(minutes=5)))  # gone
    (row,) = board.rows(WHEN + timedelta(seconds=1))
    assert (row.workers, row.backlog, row.workers_needed, row.reporters, row.state) == (
        10,
        15,
        13,
        2,
        "active",
    )
    assert row.capacity_per_min == pytest.approx(60.0)  # 2 x 90 labels/min at overlap 3
    assert "10 (needs 13)" in row.cells()
