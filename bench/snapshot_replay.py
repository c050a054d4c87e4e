"""[L3] A label snapshot replayed into a fresh topic and exported again is byte-identical.

On the bench broker (the one ``bench/throughput.py`` uses: 127.0.0.1:29092,
started here if nothing answers there, and then stopped again): 5,000 events'
Labels, 10% of them corrected by a later revision (5,500 records), are
published to a fresh prefix's ``labels`` topic; ``export`` snapshots it;
``replay`` republishes the snapshot into a fresh compacted topic; ``export``
snapshots that topic. The goal holds when both snapshots have the same
``content_hash`` (sha256 of the Parquet bytes) and the same rows hash.

Rows: the second export's time against the first's (it reads 5,000 records
instead of 5,500), and the replay's time against the first publish.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import Goal, Row
from bench.workers import BENCH_BROKER
from schemas import Label, LabelProvenance, LabelSource
from streams.broker import LocalBroker, is_reachable
from streams.settings import KafkaSettings, Settings, TopicSettings
from streams.snapshot import DATA_FILE, export_topic, publish_labels, replay
from streams.topic_admin import create_topics, delete_topics
from streams.topics import topic_names

EVENTS = 5_000
CORRECTED_EVERY = 10
START = datetime(2026, 1, 1, tzinfo=UTC)


def labels(events: int = EVENTS) -> list[Label]:
    """``events`` first revisions and a correcting revision 2 for every ``CORRECTED_EVERY``-th event."""
    classes = ("ok", "fraud", "spam", "chargeback")
    sources: tuple[LabelSource, ...] = ("model", "model", "crowd", "expert")
    out: list[Label] = []
    for number in range(events):
        provenance = LabelProvenance(
            model_name="fraud-model",
            model_version="3",
            model_label=classes[number % 4],
            model_confidence=0.5 + (number % 50) / 100,
            n_answers=0 if number % 4 < 2 else 3,
            pool=None if number % 4 < 2 else "simulated",
        )
        first = Label(
            event_id=f"ev-{number:06d}",
            label=classes[(number * 7) % 4],
            source=sources[number % 4],
            confidence=0.5 + (number % 37) / 100,
            route="accepted" if number % 4 < 2 else "low_confidence",
            decided_at=START + timedelta(milliseconds=37 * number),
            prediction_created_at=START + timedelta(milliseconds=37 * number - 5),
            provenance=provenance,
        )
        out.append(first)
        if number % CORRECTED_EVERY == 0:
            out.append(
                first.model_copy(
                    update={
                        "revision": 2,
                        "supersedes": 1,
                        "source": "expert",
                        "route": "audit",
                        "label": "fraud",
                        "decided_at": first.decided_at + timedelta(hours=1),
                    }
                )
            )
    return out


def run(events: int = EVENTS) -> tuple[list[Row], list[Goal]]:
    """Export, replay, export again on the bench broker; topics deleted, broker stopped if started here."""
    for name in ("aiokafka", "kafka"):
        logging.getLogger(name).setLevel(logging.ERROR)
    broker = LocalBroker(BENCH_BROKER)
    started_here = not is_reachable(broker.bootstrap)
    bootstrap = broker.start()
    stamp = f"{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}"
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap),
        topics=TopicSettings(prefix=f"bench-l3-{stamp}.", partitions=4),
        app_id=f"bench-l3-{stamp}",
    )
    fresh = f"{settings.topics.prefix}replayed"
    records = labels(events)
    try:
        create_topics(settings)
        with tempfile.TemporaryDirectory(prefix="labelloop-l3-") as folder:
            out = Path(folder)
            started = time.perf_counter()
            publish_labels(settings, topic_names(settings).labels, records)
            publish_s = time.perf_counter() - started
            started = time.perf_counter()
            first_path, first = export_topic(settings, out / "first")
            first_s = time.perf_counter() - started
            started = time.perf_counter()
            replayed = replay(settings, first_path.parent, fresh, create=True)
            replay_s = time.perf_counter() - started
            started = time.perf_counter()
            second_path, second = export_topic(settings, out / "second", topic=fresh)
            second_s = time.perf_counter() - started
            same_bytes = (first_path.parent / DATA_FILE).read_bytes() == (
                second_path.parent / DATA_FILE
            ).read_bytes()
    finally:
        # A failed cleanup must not hide the run's error.
        with contextlib.suppress(Exception):
            delete_topics(settings)
        with contextlib.suppress(Exception):
            _delete_topic(settings, fresh)
        if started_here:
            broker.stop()
    rows = [
        Row("snapshot export after replay (s)", second_s, first_s, "s", "first export"),
        Row("snapshot replay (s)", replay_s, publish_s, "s", "publishing the labels"),
    ]
    holds = (
        same_bytes
        and first.content_hash == second.content_hash
        and first.manifest["rows_hash"] == second.manifest["rows_hash"]
        and first.manifest["label_count"] == events
        and replayed.published == events
    )
    goal = Goal(
        "L3",
        f"{first.manifest['label_count']:,} labels ({len(records):,} records): export "
        f"{first.content_hash[:16]} in {first_s:.2f}s, replay {replayed.published:,} in {replay_s:.2f}s, "
        f"export again {second.content_hash[:16]} in {second_s:.2f}s; "
        f"{'same' if same_bytes else 'different'} Parquet bytes",
        "the second snapshot's content hash equals the first's (byte-identical Parquet)",
        holds,
    )
    return rows, [goal]


def _delete_topic(settings: Settings, topic: str) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(client_id="labelloop-bench", **settings.kafka.kafka_python_options())
    try:
        admin.delete_topics([topic])
    finally:
        admin.close()


if __name__ == "__main__":
    from bench.harness import report

    print(report(*run()))
