"""A worker restart resumes the online model from its checkpoint on disk, not from an untrained model."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from agents.simulation.stream import StreamSettings, simulate
from schemas import Label, ModelMetrics
from streams.sdk import PredictionPublisher
from streams.topics import topic_names
from tests.integration.conftest import LoopUnderTest, TopicWatcher, publish_with_truth

pytestmark = pytest.mark.kafka

LEARNED_BEFORE_RESTART = 200
BEFORE_RESTART = 300


def test_a_restarted_worker_resumes_the_online_model_from_its_checkpoint(
    loop_under_test: Callable[..., LoopUnderTest],
) -> None:
    loop = loop_under_test(
        # Every event goes to humans: the online model gets hundreds of labels quickly.
        LABELLOOP_ROUTER__ACCEPT_THRESHOLD="1.0",
        # No timer checkpoint during the test: what the new worker resumes from is the one
        # written on shutdown.
        LABELLOOP_LEARNER__CHECKPOINT_EVERY_S="600",
        # Tasks a simulated worker abandoned go to someone else soon (30 s by default): the first
        # part is fully labeled quickly, so the graceful stop has nothing in flight to wait for.
        LABELLOOP_POOLS__SIMULATED__ASSIGNMENT_TIMEOUT_S="2",
    )
    names = topic_names(loop.settings)
    stream = list(
        simulate(StreamSettings(events=600, train_size=300, drift_at=2.0, run_id=loop.settings.app_id))
    )
    watcher = TopicWatcher(loop.settings, names.model_metrics, names.labels)

    def online() -> list[ModelMetrics]:
        snapshots = (
            ModelMetrics.from_json_bytes(r.value or b"") for r in watcher.records[names.model_metrics]
        )
        # One key, so one partition: these are in the order they were published.
        return [snapshot for snapshot in snapshots if snapshot.model_name == "online-default"]

    def labeled() -> int:
        return len({Label.from_json_bytes(r.value or b"").event_id for r in watcher.records[names.labels]})

    def labels_seen(snapshot: ModelMetrics) -> int:
        return snapshot.metrics["prequential_accuracy"].n

    try:
        first = loop.start_worker()
        with PredictionPublisher(loop.settings) as publisher:
            publish_with_truth(publisher, names.truth, stream[:BEFORE_RESTART])
        # Stop once the first part is labeled: with label requests still in the pools' hands, a
        # graceful stop waits for them (stream_wait_empty) for up to a minute.
        watcher.wait_for(
            lambda: (
                labeled() >= BEFORE_RESTART
                and any(labels_seen(s) >= LEARNED_BEFORE_RESTART for s in online())
            ),
            90,
            f"the first part labeled, the online model learning from {LEARNED_BEFORE_RESTART} of them",
            loop.worker_logs,
        )
        assert loop.stop_worker(first) == 0, loop.worker_logs()
        for _ in range(5):  # whatever the old worker published last
            watcher.poll()
        before = online()
        last_before = before[-1]

        models = loop.settings.data_dir / "models" / "default"
        sidecars = sorted(models.glob("v*.json"))
        assert sidecars, f"no checkpoint under {models}\n{loop.worker_logs()[-4_000:]}"
        meta = json.loads(sidecars[-1].read_text())
        assert (models / meta["pickle"]).is_file()
        checkpointed = meta["labels_seen"]
        assert checkpointed >= labels_seen(last_before) >= LEARNED_BEFORE_RESTART

        loop.start_worker()
        with PredictionPublisher(loop.settings) as publisher:
            publish_with_truth(publisher, names.truth, stream[BEFORE_RESTART:])
        watcher.wait_for(
            lambda: len(online()) > len(before), 90, "online metrics from the new worker", loop.worker_logs
        )
    finally:
        watcher.close()

    first_after = online()[len(before)]
    # An untrained model would report the few labels it saw since the restart, at chance or worse.
    assert labels_seen(first_after) >= checkpointed, (first_after, meta)
    accuracy_before = last_before.metrics["prequential_accuracy"].value
    accuracy_after = first_after.metrics["prequential_accuracy"].value
    assert accuracy_before > 0.6, last_before
    assert accuracy_after == pytest.approx(accuracy_before, abs=0.1), (last_before, first_after)
    assert first_after.metrics["rolling_accuracy"].n >= min(checkpointed, 100)
