"""A crowd outside the worker process labels the loop's reviews through the topics alone."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable

import pytest

from agents.simulation.stream import StreamSettings, simulate
from schemas import CrowdAnswer, Label
from streams.sdk import PredictionPublisher
from streams.topics import topic_names
from tests.integration.conftest import LoopUnderTest, TopicWatcher

pytestmark = pytest.mark.kafka

EVENTS = 400


def test_every_review_is_labelled_by_the_crowd_process_and_the_worker_answers_nothing(
    loop_under_test: Callable[..., LoopUnderTest],
) -> None:
    loop = loop_under_test(
        LABELLOOP_POOLS__REMOTE__ENABLED="true",
        LABELLOOP_POOLS__EXPERTS_ENABLED="false",
        LABELLOOP_POOLS__SIMULATED_EXPERTS__EXPERTS="0",
        LABELLOOP_ROUTER__ACCEPT_THRESHOLD="0.8",
    )
    names = topic_names(loop.settings)
    stream = [
        s.event for s in simulate(StreamSettings(events=EVENTS, train_size=200, run_id=loop.settings.app_id))
    ]
    watcher = TopicWatcher(loop.settings, names.labels, names.crowd_answers)
    crowd = subprocess.Popen(
        [sys.executable, "-m", "agents.simulation.remote_crowd"],
        env=loop.env,
        stdout=(loop.log_dir / "crowd.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        loop.start_worker()
        with PredictionPublisher(loop.settings) as publisher:
            for event in stream:
                publisher.publish(event)
            publisher.flush()

        def first_labels() -> dict[str, Label]:
            found = (Label.from_json_bytes(r.value or b"") for r in watcher.records[names.labels])
            return {label.event_id: label for label in found if label.revision == 1}

        watcher.wait_for(lambda: len(first_labels()) >= EVENTS, 120, "every event's label", loop.worker_logs)
    finally:
        watcher.close()
        crowd.terminate()
        crowd.wait(timeout=30)
    labels = first_labels()
    by_source = Counter(label.source for label in labels.values())
    assert by_source["crowd"] > 20, by_source  # the reviews (and control group) came back labelled
    answers = [CrowdAnswer.from_json_bytes(r.value or b"") for r in watcher.records[names.crowd_answers]]
    # Every answer is the remote crowd's: the worker labelled nothing itself.
    assert {answer.pool for answer in answers} == {"remote"}
    humans = {event_id for event_id, label in labels.items() if label.is_human}
    assert humans <= {answer.event_id for answer in answers}
    assert max(Counter((label.event_id, label.revision) for label in labels.values()).values()) == 1
