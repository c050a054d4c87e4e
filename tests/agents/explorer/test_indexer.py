"""The indexer against a real broker: a redelivered record changes nothing, a rebuild equals the live one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from agents.explorer.indexer import Indexer, indexed_topics, rebuild
from agents.explorer.store import IndexStore
from schemas import WireModel
from streams.codec import encode
from streams.settings import KafkaSettings, Settings, TopicSettings
from streams.topic_admin import create_topics, delete_topics
from streams.topics import topic_names
from tests.agents.explorer.scenario import scenario

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Settings]:
    run = uuid.uuid4().hex[:8]
    made = Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
        topics=TopicSettings(prefix=f"test.{run}.", partitions=2),
        app_id=f"labelloop-test-{run}",
        data_dir=tmp_path / "worker",
    )
    create_topics(made)
    yield made
    delete_topics(made)


def topic_of(settings: Settings, record: WireModel) -> tuple[str, str]:
    names = topic_names(settings)
    by_model = {model: topic for topic, model in indexed_topics(settings).items()}
    topic = by_model[type(record)]
    key = getattr(record, "event_id", None) or getattr(record, "worker_id", None) or "detector"
    assert topic.startswith(names.prefix)
    return topic, str(key)


def produce(settings: Settings, records: Sequence[tuple[str, str, bytes | None]]) -> None:
    from aiokafka import AIOKafkaProducer

    async def send() -> None:
        producer = AIOKafkaProducer(**settings.kafka.aiokafka_options(), enable_idempotence=True)
        await producer.start()
        try:
            for topic, key, value in records:
                await producer.send_and_wait(topic, value, key=key.encode())
        finally:
            await producer.stop()

    asyncio.run(send())


def test_redelivery_changes_nothing_and_a_rebuild_equals_the_live_index(settings: Settings) -> None:
    records = [(*topic_of(settings, record), encode(record)) for record in scenario()]
    names = topic_names(settings)
    half = len(records) // 2
    produce(settings, records[:half])
    produce(settings, [(names.predictions, "bad", b"{not json"), (names.labels, "gone", None)])
    live = IndexStore(f"sqlite:///{settings.data_dir.parent / 'live.sqlite3'}")
    first = asyncio.run(Indexer(settings, live).run(until_end=True))
    assert first.skipped == {"not_json": 1, "tombstone": 1}
    produce(settings, records[half:])
    asyncio.run(Indexer(settings, live).run(until_end=True))  # resumes at the stored offsets
    assert live.count() == 12
    indexed = live.dump()
    # Every record delivered again (a producer retry, a replay): the index is the same.
    produce(settings, records)
    again = asyncio.run(Indexer(settings, live).run(until_end=True))
    assert again.records == len(records)
    assert again.rows_changed == 0
    assert live.dump() == indexed
    # A rebuild from the topics (every record twice now, in one pass) equals the live index.
    rebuilt = IndexStore(f"sqlite:///{settings.data_dir.parent / 'rebuilt.sqlite3'}")
    stats = rebuild(settings, rebuilt)
    assert stats.records == 2 * len(records) + 2
    assert rebuilt.dump() == indexed
    assert rebuilt.offsets() == live.offsets()
