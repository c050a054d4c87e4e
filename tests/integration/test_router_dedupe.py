"""The router remembers each event it routed once (its seen changelog) and drops a duplicate of it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from agents.simulation.stream import StreamSettings, simulate
from schemas import Label
from streams.batch_state import seen_keys
from streams.sdk import PredictionPublisher
from streams.topics import topic_names
from tests.integration.conftest import LoopUnderTest, TopicWatcher

pytestmark = pytest.mark.kafka

EVENTS = 300
FRESH = 40


def test_routed_events_are_remembered_once_per_batch_and_their_duplicates_are_dropped(
    loop_under_test: Callable[..., LoopUnderTest],
) -> None:
    # Every event accepted: no control group, (almost) no audit.
    loop = loop_under_test(
        LABELLOOP_ROUTER__ACCEPT_THRESHOLD="0.01",
        LABELLOOP_ROUTER__CONTROL_SHARE="0",
        LABELLOOP_ROUTER__AUDIT__RATE="0.000001",
    )
    names = topic_names(loop.settings)
    app_id = loop.settings.app_id
    stream = [s.event for s in simulate(StreamSettings(events=EVENTS + FRESH, train_size=200, run_id=app_id))]
    watcher = TopicWatcher(loop.settings, names.labels, names.batch_state)
    try:
        loop.start_worker()
        with PredictionPublisher(loop.settings) as publisher:
            for event in stream[:EVENTS]:
                publisher.publish(event)
            publisher.flush()
            watcher.wait_for(
                lambda: watcher.count(names.labels) >= EVENTS, 120, "the first labels", loop.worker_logs
            )
            # Every event again, then fresh ones behind them on every partition: once the fresh
            # ones are labeled, the duplicates ahead of them were handled.
            for event in stream:
                publisher.publish(event)
        fresh = {event.event_id for event in stream[EVENTS:]}

        def labeled() -> set[str]:
            return {Label.from_json_bytes(r.value or b"").event_id for r in watcher.records[names.labels]}

        watcher.wait_for(lambda: fresh <= labeled(), 120, "the fresh events' labels", loop.worker_logs)
        for _ in range(10):  # a doubled Label would arrive now
            watcher.poll()
    finally:
        watcher.close()
    counts = Counter(Label.from_json_bytes(r.value or b"").event_id for r in watcher.records[names.labels])
    assert set(counts) == {event.event_id for event in stream}
    assert max(counts.values()) == 1, [event_id for event_id, n in counts.items() if n > 1][:5]
    # One changelog record per batch (not per event), naming each routed event once: the set a
    # partition's next owner rebuilds, committed in the same transactions as the Labels.
    remembered = Counter(
        key for record in watcher.records[names.batch_state] for key in seen_keys(record.value)
    )
    assert remembered == Counter({event.event_id: 1 for event in stream})
    assert watcher.count(names.batch_state) < len(stream)
