"""Shared pytest fixtures; each block below belongs to one part of the project."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker import BrokerSettings, LocalBroker, is_reachable, wait_until_reachable

REPO_ROOT = Path(__file__).resolve().parent.parent

# --- Kafka broker (streams/broker.py) ---------------------------------------------------
# One real broker per session for tests marked `kafka` (deselect them with -m "not kafka").
# LABELLOOP_TEST_BOOTSTRAP=host:port uses an external broker (e.g. docker compose's
# localhost:29092); otherwise a local broker runs on 19092/19093 from .labelloop/test-kafka,
# apart from a demo broker on 9092. It is stopped at the end only if this session started it.

TEST_BOOTSTRAP_ENV = "LABELLOOP_TEST_BOOTSTRAP"


@pytest.fixture(scope="session")
def local_broker() -> LocalBroker:
    """The launcher of the session's own test broker (not started by this fixture)."""
    settings = BrokerSettings(port=19092, controller_port=19093, home=REPO_ROOT / ".labelloop" / "test-kafka")
    return LocalBroker(settings)


@pytest.fixture(scope="session")
def kafka_bootstrap(local_broker: LocalBroker) -> Iterator[str]:
    """Bootstrap servers of a reachable Kafka broker."""
    external = os.environ.get(TEST_BOOTSTRAP_ENV)
    if external:
        wait_until_reachable(external, timeout_s=60)
        yield external
        return
    started_here = not is_reachable(local_broker.bootstrap)
    yield local_broker.start()
    if started_here:
        local_broker.stop()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `kafka` get the broker; tests asking for the broker get the mark."""
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        wants_broker = "kafka_bootstrap" in item.fixturenames
        if item.get_closest_marker("kafka") is not None:
            if not wants_broker:
                item.fixturenames.append("kafka_bootstrap")
        elif wants_broker:
            item.add_marker(pytest.mark.kafka)
