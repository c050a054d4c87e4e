"""The routing policy changes live: a PolicyCommand on `commands` is applied, published and routed by."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from agents.simulation.stream import StreamSettings, simulate
from schemas import Label, ModelMetrics, PolicyCommand, PolicyStatus
from streams.codec import encode
from streams.sdk import PredictionPublisher
from streams.topics import topic_names
from tests.integration.conftest import LoopUnderTest, TopicWatcher

pytestmark = pytest.mark.kafka


def test_a_policy_command_changes_routing_and_is_published(
    loop_under_test: Callable[..., LoopUnderTest],
) -> None:
    loop = loop_under_test(LABELLOOP_ROUTER__ACCEPT_THRESHOLD="0.7", LABELLOOP_ROUTER__CONTROL_SHARE="0.2")
    names = topic_names(loop.settings)
    stream = list(simulate(StreamSettings(events=600, train_size=300, run_id=loop.settings.app_id)))
    watcher = TopicWatcher(loop.settings, names.labels, names.policy_status, names.model_metrics)
    try:
        loop.start_worker()
        watcher.wait_for(
            lambda: watcher.count(names.policy_status) >= 1, 90, "the policy at start", loop.worker_logs
        )
        with PredictionPublisher(loop.settings) as publisher:
            for simulated in stream[:300]:
                event = simulated.event
                publisher.publish_raw(
                    event.event_id.encode(), json.dumps(simulated.truth).encode(), names.truth
                )
                publisher.publish(event)
            publisher.flush()
            watcher.wait_for(
                lambda: watcher.count(names.labels) >= 300, 120, "the first labels", loop.worker_logs
            )
            # Nothing is auto-accepted from now on: every event is reviewed or in the control group.
            command = PolicyCommand(
                accept_threshold=1.0,
                issued_by="operator",
                issued_at=datetime.now(UTC),
                reason="incident: humans check everything",
            )
            publisher.publish_raw(b"policy", encode(command), names.commands)
            publisher.flush()
            watcher.wait_for(
                lambda: watcher.count(names.policy_status) >= 2, 60, "the new policy", loop.worker_logs
            )
            for simulated in stream[300:]:
                event = simulated.event
                publisher.publish_raw(
                    event.event_id.encode(), json.dumps(simulated.truth).encode(), names.truth
                )
                publisher.publish(event)
        later = {simulated.event.event_id for simulated in stream[300:]}

        def later_labels() -> list[Label]:
            labels = [Label.from_json_bytes(r.value or b"") for r in watcher.records[names.labels]]
            return [label for label in labels if label.event_id in later and label.revision == 1]

        watcher.wait_for(
            lambda: len(later_labels()) >= len(later), 180, "labels after the change", loop.worker_logs
        )
        watcher.wait_for(
            lambda: any(
                ModelMetrics.from_json_bytes(r.value or b"").kind == "production"
                for r in watcher.records[names.model_metrics]
            ),
            60,
            "production precision estimates",
            loop.worker_logs,
        )
    finally:
        watcher.close()

    statuses = [PolicyStatus.from_json_bytes(r.value or b"") for r in watcher.records[names.policy_status]]
    assert statuses[-1].accept_threshold == 1.0
    assert statuses[-1].version == statuses[0].version + 1
    assert statuses[-1].reason == "incident: humans check everything"
    after = later_labels()
    sure = {s.event.event_id for s in stream[300:] if s.event.confidence >= 1.0}
    auto = [label for label in after if label.event_id not in sure and label.source != "crowd"]
    assert not auto, f"auto-accepted after the change: {auto[:3]}"
    assert {label.routing.policy_version for label in after if label.routing} == {statuses[-1].version}
    production = [
        snapshot
        for snapshot in (
            ModelMetrics.from_json_bytes(r.value or b"") for r in watcher.records[names.model_metrics]
        )
        if snapshot.kind == "production"
    ]
    precision = production[-1].metrics["auto_accept_precision"]
    assert precision.lower is not None
    assert precision.upper is not None
    assert 0.0 <= precision.lower <= precision.value <= precision.upper <= 1.0
    assert precision.n > 0
