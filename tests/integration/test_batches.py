"""The router's batch path a poison record inside a batch; a SIGKILL inside a transaction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from kafka.partitioner.default import murmur2

from agents.simulation.poison import poison_records
from agents.simulation.stream import StreamSettings, simulate
from schemas import Label, PredictionEvent
from streams.codec import H_ERROR_KIND, H_SOURCE_OFFSET
from streams.sdk import PredictionPublisher
from streams.topics import topic_names
from tests.integration.conftest import LoopUnderTest, TopicWatcher

pytestmark = pytest.mark.kafka

PARTITIONS = 4
#: Every event accepted, none audited: one Label per event, and nothing waits on the crowd.
ACCEPT_ALL = {
    "LABELLOOP_ROUTER__ACCEPT_THRESHOLD": "0.01",
    "LABELLOOP_ROUTER__CONTROL_SHARE": "0",
    "LABELLOOP_ROUTER__AUDIT__RATE": "0.000001",
}


def _on_partition_zero(run_id: str, count: int) -> list[PredictionEvent]:
    """``count`` events whose keys the producer puts on partition 0 (murmur2, as every client does)."""
    events = (s.event for s in simulate(StreamSettings(events=count * 8, train_size=200, run_id=run_id)))
    chosen = [e for e in events if (murmur2(e.event_id.encode()) & 0x7FFFFFFF) % PARTITIONS == 0]
    assert len(chosen) >= count
    return chosen[:count]


def _labels(watcher: TopicWatcher, topic: str) -> Counter[tuple[str, int]]:
    return Counter(
        (label.event_id, label.revision)
        for label in (Label.from_json_bytes(r.value or b"") for r in watcher.records[topic])
    )


def test_a_poison_record_inside_a_batch_goes_to_the_dlq_alone_and_the_rest_is_labelled_once(
    loop_under_test: Callable[..., LoopUnderTest],
) -> None:
    loop = loop_under_test(**ACCEPT_ALL)
    names = topic_names(loop.settings)
    events = _on_partition_zero(loop.settings.app_id, 60)
    poison = poison_records(events[0])[:12]
    # One partition, published before the worker starts: the router fetches them as one batch,
    # the poison records between good ones.
    with PredictionPublisher(loop.settings) as publisher:
        for index, event in enumerate(events):
            publisher.publish(event)
            if index % 5 == 2 and index // 5 < len(poison):
                bad = poison[index // 5]
                publisher.publish_raw(bad.key, bad.value, partition=0)
        publisher.flush()
    watcher = TopicWatcher(loop.settings, names.labels, names.dlq, names.label_requests)
    try:
        loop.start_worker()
        watcher.wait_for(
            lambda: watcher.count(names.labels) >= len(events) and watcher.count(names.dlq) >= len(poison),
            120,
            "every good event's Label and every poison record in the DLQ",
            loop.worker_logs,
        )
        for _ in range(10):  # a doubled Label or DLQ record would arrive now
            watcher.poll()
    finally:
        watcher.close()
    logs = loop.worker_logs()
    assert "reading it again" not in logs, logs[-3_000:]  # no batch was aborted or re-read
    assert _labels(watcher, names.labels) == Counter({(event.event_id, 1): 1 for event in events})
    assert watcher.count(names.label_requests) == 0
    dead = watcher.records[names.dlq]
    assert len(dead) == len(poison)
    kinds = Counter(dict(record.headers)[H_ERROR_KIND].decode() for record in dead)
    assert kinds == Counter(bad.expected_error for bad in poison)
    # Each poison record once, by its own offset: none of them replayed the batch.
    assert len({dict(record.headers)[H_SOURCE_OFFSET] for record in dead}) == len(poison)


def test_a_worker_killed_between_a_batch_produce_and_its_commit_leaves_every_event_labelled_once(
    loop_under_test: Callable[..., LoopUnderTest],
) -> None:
    # Small batches, so the kill comes after some batches were committed and before the rest.
    loop = loop_under_test(**ACCEPT_ALL, LABELLOOP_BATCH__MAX_RECORDS="50")
    names = topic_names(loop.settings)
    events = [
        s.event for s in simulate(StreamSettings(events=1_000, train_size=200, run_id=loop.settings.app_id))
    ]
    with PredictionPublisher(loop.settings) as publisher:
        for event in events:
            publisher.publish(event)
        publisher.flush()
    uncommitted = TopicWatcher(loop.settings, names.labels, committed=False)
    committed = TopicWatcher(loop.settings, names.labels)
    try:
        # The first worker kills itself with its third transaction's records on the broker, uncommitted.
        loop.env["LABELLOOP_BATCH__KILL_BEFORE_COMMIT_AFTER"] = "3"
        killed = loop.start_worker()
        del loop.env["LABELLOOP_BATCH__KILL_BEFORE_COMMIT_AFTER"]  # the next worker runs normally
        assert killed.wait(timeout=120) == -9, loop.worker_logs()[-3_000:]
        assert "drill: SIGKILL between produce and commit" in loop.worker_logs(), loop.worker_logs()[-3_000:]
        # The killed batch's Labels reached the broker, in a transaction never committed.
        uncommitted.wait_for(lambda: uncommitted.count(names.labels) > 0, 30, "the killed batch's Labels")
        committed.poll()
        assert committed.count(names.labels) < uncommitted.count(names.labels)
        loop.start_worker()
        committed.wait_for(
            lambda: committed.count(names.labels) >= len(events), 120, "every event's Label", loop.worker_logs
        )
        for _ in range(10):
            committed.poll()
    finally:
        uncommitted.close()
        committed.close()
    assert _labels(committed, names.labels) == Counter({(event.event_id, 1): 1 for event in events})
