"""The transport's consumer: a message fetched before a rebalance never gets its offset committed."""

from __future__ import annotations

from pathlib import Path

from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.app import create_app
from streams.settings import Settings
from streams.transport import GenerationSafeConsumer


def message(offset: int, generation_id: int) -> ConsumerMessage:
    return ConsumerMessage(
        "t.predictions", 0, offset, 0.0, 0, [], b"k", b"v", None, generation_id=generation_id
    )


def test_an_old_generations_message_is_acked_without_becoming_committable(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    app.topics._acking_topics.add("t.predictions")  # as for a topic an agent subscribes to
    consumer = app.consumer
    assert isinstance(consumer, GenerationSafeConsumer)
    app.consumer_generation_id = 3
    tp = TP("t.predictions", 0)
    stale, fresh = message(16, generation_id=2), message(17, generation_id=3)
    consumer._unacked_messages.add(stale)

    assert consumer.ack(stale) is False
    assert stale.acked
    assert stale not in consumer._unacked_messages  # nothing (stream_wait_empty) waits for it
    assert list(consumer._acked[tp]) == []

    assert consumer.ack(fresh) is True
    assert list(consumer._acked[tp]) == [17]
