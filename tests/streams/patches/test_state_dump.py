"""The SIGUSR1 state dump reads a consumer that never started without raising."""

from __future__ import annotations

from pathlib import Path

from streams.app import create_app
from streams.patches.faust_state_dump import consumer_state
from streams.settings import Settings


def test_the_dump_of_an_unstarted_worker_says_what_it_could_not_read(tmp_path: Path) -> None:
    lines = consumer_state(create_app(Settings(data_dir=tmp_path)))
    assert lines[0].startswith("flow_active=")
    assert lines[1:] == ["no aiokafka state: ConsumerNotStarted('Consumer thread not yet started')"]
