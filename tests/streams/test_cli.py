"""The `labelloop` command without a broker: catalogue listing, status of a broker that is not there."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from labelloop.broker_commands import _local_broker
from labelloop.cli import app
from streams.broker import BrokerSettings, LocalBroker

RUNNER = CliRunner()


@pytest.fixture(autouse=True)
def _no_developer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LABELLOOP_BROKER_PORT", "LABELLOOP_BROKER_HOME", "LABELLOOP_TOPICS__PREFIX"):
        monkeypatch.delenv(name, raising=False)


def test_topics_list_shows_the_catalogue_under_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELLOOP_TOPICS__PREFIX", "acme.")
    result = RUNNER.invoke(app, ["topics", "list"])
    assert result.exit_code == 0, result.output
    assert "acme.predictions" in result.output
    assert "compact" in result.output


def test_a_broker_that_is_not_there_is_reported_and_exits_1() -> None:
    result = RUNNER.invoke(app, ["broker", "status", "--port", "29192"])
    assert result.exit_code == 1
    assert "not reachable" in result.output


def test_another_port_never_shares_the_default_broker_s_folder() -> None:
    default = BrokerSettings()
    other = _local_broker(19092)
    assert isinstance(other, LocalBroker)
    assert other.settings.port == 19092
    assert other.settings.home != default.home
    same = _local_broker(default.port)
    assert isinstance(same, LocalBroker)
    assert same.settings.home == default.home


def test_deleting_topics_needs_yes() -> None:
    result = RUNNER.invoke(app, ["topics", "delete"])
    assert result.exit_code != 0
    assert "--yes" in result.output
