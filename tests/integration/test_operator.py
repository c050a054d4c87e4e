"""Operator controls on a real broker: `pools scale` lands on commands, `pools status` shows the pool."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from labelloop.cli import app
from schemas import PoolCommand, PoolStatus
from streams.codec import decode
from streams.sdk import PredictionPublisher
from streams.topics import topic_names
from tests.integration.conftest import LoopUnderTest, TopicWatcher

pytestmark = pytest.mark.kafka


def test_the_cli_scales_through_commands_and_shows_the_published_status(
    loop_under_test: Callable[..., LoopUnderTest], monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = loop_under_test()
    names = topic_names(loop.settings)
    for name in ("LABELLOOP_KAFKA__BOOTSTRAP_SERVERS", "LABELLOOP_TOPICS__PREFIX", "LABELLOOP_APP_ID"):
        monkeypatch.setenv(name, loop.env[name])
    reported = PoolStatus(
        pool="simulated", backend="simulated", tier="crowd", workers=5, active=True, backlog=42,
        in_progress=3, arrival_rate_per_min=20.0, capacity_per_min=60.0, overlap=3, answers_total=9,
        tasks_done=3, cost_per_label=0.05, reported_at=datetime.now(UTC),
    )  # fmt: skip
    with PredictionPublisher(loop.settings) as publisher:
        publisher.publish_raw(b"simulated", reported.to_json_bytes(), topic=names.pool_status)

    runner = CliRunner()
    scaled = runner.invoke(app, ["pools", "scale", "simulated", "7", "--reason", "test", "--operator", "ci"])
    assert scaled.exit_code == 0, scaled.output

    watcher = TopicWatcher(loop.settings, names.commands)
    try:
        watcher.wait_for(lambda: watcher.count(names.commands) >= 1, 20, "the scale command")
        (record,) = watcher.records[names.commands]
    finally:
        watcher.close()
    assert record.key == b"simulated"
    command = decode(PoolCommand, record.value)
    assert (command.action, command.workers, command.issued_by, command.reason) == (
        "scale",
        7,
        "operator:ci",
        "test",
    )

    shown = runner.invoke(app, ["pools", "status", "--once"])
    assert shown.exit_code == 0, shown.output
    (row,) = [line for line in shown.output.splitlines() if "simulated" in line]
    assert "42" in row  # backlog
    assert "operator:ci scale 7" in row  # the command just sent is in force
    as_json = runner.invoke(app, ["pools", "status", "--once", "--json"])
    (document,) = [json.loads(line) for line in as_json.output.splitlines() if line.startswith("{")]
    assert (document["pool"], document["backlog"], document["workers"]) == ("simulated", 42, 5)
    assert document["control"] == "operator:ci scale 7"
