"""The operator API over HTTP (aiohttp TestServer): the token guards every call; actions send commands."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from agents.operator_api import DISABLED, OperatorApi, OperatorApiSettings
from schemas import PoolCommand, PoolStatus
from streams.operator import PoolBoard

WHEN = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TOKEN = "op-s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def run(
    token: str | None, scenario: Callable[[TestClient[Any, Any], list[PoolCommand]], Awaitable[None]]
) -> list[PoolCommand]:
    """Serve an OperatorApi on a free port, run ``scenario`` against it; the commands it sent."""
    sent: list[PoolCommand] = []

    async def send(command: PoolCommand) -> None:
        sent.append(command)

    board = PoolBoard()
    board.observe_status(
        PoolStatus(pool="simulated", backend="simulated", tier="crowd", workers=10, active=True, backlog=30,
                   in_progress=5, arrival_rate_per_min=12.0, capacity_per_min=90.0, overlap=3,
                   answers_total=0, tasks_done=0, cost_per_label=0.05, reported_at=WHEN)
    )  # fmt: skip
    api = OperatorApi(send, board, token=None if token is None else SecretStr(token), clock=lambda: WHEN)

    async def main() -> None:
        async with TestClient(TestServer(api.app)) as client:
            await scenario(client, sent)

    asyncio.run(main())
    return sent


def test_a_request_without_the_token_is_refused_and_logged_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(client: TestClient[Any, Any], sent: list[PoolCommand]) -> None:
        missing = await client.post("/operator/pools/simulated/scale", json={"workers": 50})
        assert missing.status == 401
        assert "operator token is required" in (await missing.json())["error"]
        wrong = await client.get("/operator/pools", headers={"Authorization": "Bearer guess"})
        assert wrong.status == 401
        header_only = await client.get("/operator/pools?token=" + TOKEN)  # never from the address
        assert header_only.status == 401

    with caplog.at_level(logging.WARNING, logger="agents.operator_api"):
        sent = run(TOKEN, scenario)
    assert sent == []
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(refusals) == 3
    assert "refused POST /operator/pools/simulated/scale" in refusals[0]
    assert "no token" in refusals[0]
    assert "wrong token" in refusals[1]
    assert all(TOKEN not in message and "guess" not in message for message in caplog.messages)


def test_with_no_token_configured_every_call_is_refused() -> None:
    async def scenario(client: TestClient[Any, Any], sent: list[PoolCommand]) -> None:
        for headers in ({}, AUTH, {"Authorization": "Bearer "}):
            response = await client.post("/operator/pools/simulated/pause", headers=headers)
            assert response.status == 503
            assert (await response.json())["error"] == DISABLED

    assert run(None, scenario) == []


def test_with_the_token_each_action_sends_its_command() -> None:
    async def scenario(client: TestClient[Any, Any], sent: list[PoolCommand]) -> None:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("scale", {"workers": 7, "reason": "surge", "operator": "ada"}),
            ("pause", {}),
            ("resume", {"reason": "back"}),
            ("set", {"min_workers": 2, "max_workers": 40, "sla_p95_s": 120, "budget_per_hour": 25.5}),
            ("release", {}),
        ]
        for action, body in calls:
            response = await client.post(f"/operator/pools/simulated/{action}", json=body, headers=AUTH)
            assert response.status == 202, await response.text()
            assert (await response.json())["sent"]["action"] == action
        # The other header works too, and an empty body is an empty command.
        response = await client.post("/operator/pools/experts/pause", headers={"X-Labelloop-Token": TOKEN})
        assert response.status == 202

    sent = run(TOKEN, scenario)
    assert [(c.pool, c.action) for c in sent] == [
        ("simulated", "scale"), ("simulated", "pause"), ("simulated", "resume"),
        ("simulated", "set"), ("simulated", "release"), ("experts", "pause"),
    ]  # fmt: skip
    scale, pause, resume, limits, release, _ = sent
    assert (scale.workers, scale.issued_by, scale.reason, scale.issued_at) == (
        7,
        "operator:ada",
        "surge",
        WHEN,
    )
    assert (pause.issued_by, pause.reason) == ("operator:api", "via the operator API")
    assert resume.reason == "back"
    assert (limits.min_workers, limits.max_workers, limits.sla_p95_s, limits.budget_per_hour) == (
        2,
        40,
        120.0,
        25.5,
    )
    assert release.by_operator


def test_a_bad_command_is_a_400_with_the_reason_and_nothing_is_sent() -> None:
    async def scenario(client: TestClient[Any, Any], sent: list[PoolCommand]) -> None:
        cases = [
            ("scale", {}, "scale needs the number of workers"),
            ("set", {"min_workers": 9, "max_workers": 3}, "min_workers (9) is above max_workers (3)"),
            ("reboot", {}, "unknown action 'reboot'"),
            ("scale", {"workers": 5, "colour": "red"}, "invalid: colour"),
            ("scale", {"workers": "many"}, "invalid: workers"),
        ]
        for action, body, message in cases:
            response = await client.post(f"/operator/pools/simulated/{action}", json=body, headers=AUTH)
            assert response.status == 400
            assert message in (await response.json())["error"]
        garbled = await client.post("/operator/pools/simulated/pause", data=b"{", headers=AUTH)
        assert garbled.status == 400

    assert run(TOKEN, scenario) == []


def test_the_pools_table_as_json() -> None:
    async def scenario(client: TestClient[Any, Any], sent: list[PoolCommand]) -> None:
        response = await client.get("/operator/pools", headers=AUTH)
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        (row,) = (await response.json())["pools"]
        assert (row["pool"], row["workers"], row["backlog"], row["control"]) == (
            "simulated",
            10,
            30,
            "autoscaler",
        )
        assert (row["capacity_per_min"], row["wait_s"], row["sla_state"]) == (30.0, 60.0, "no SLA")

    run(TOKEN, scenario)


def test_the_token_comes_from_its_file_and_an_empty_one_means_none(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n", encoding="utf-8")
    secret = OperatorApiSettings(token="ignored", token_file=token_file).secret
    assert secret is not None
    assert secret.get_secret_value() == TOKEN
    assert OperatorApiSettings(token="").secret is None
    assert OperatorApiSettings().secret is None


def test_the_settings_read_the_documented_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class Stages(BaseSettings):  # how agents.settings.StageSettings nests it
        model_config = SettingsConfigDict(env_prefix="LABELLOOP_", env_nested_delimiter="__")
        operator: OperatorApiSettings = OperatorApiSettings()

    monkeypatch.setenv("LABELLOOP_OPERATOR__TOKEN", TOKEN)
    monkeypatch.setenv("LABELLOOP_OPERATOR__PORT", "0")
    stages = Stages()
    assert stages.operator.port == 0
    assert stages.operator.secret is not None
    assert TOKEN not in repr(stages)
