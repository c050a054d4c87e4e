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
    app.flow_control.resume()  # as once the worker runs
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


def test_a_message_acked_while_flow_control_is_off_is_not_committable(tmp_path: Path) -> None:
    """During a rebalance's recovery streams drop what reaches them: it is delivered again after."""
    app = create_app(Settings(data_dir=tmp_path))
    app.topics._acking_topics.add("t.predictions")
    consumer = app.consumer
    app.consumer_generation_id = 3
    tp = TP("t.predictions", 0)
    app.flow_control.suspend()
    assert consumer.ack(message(20, generation_id=3)) is False
    app.flow_control.resume()
    assert consumer.ack(message(21, generation_id=3)) is True
    assert list(consumer._acked[tp]) == [21]
