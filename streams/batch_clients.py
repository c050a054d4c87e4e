"""The batch path's librdkafka clients: the consumer's and the transactional producer's settings, and calls.

Every function here that calls into librdkafka blocks, so
:class:`~streams.batches.TransactionalBatches` runs it in its one Kafka thread, never on faust's
event loop (``bench/cpu_shares.py`` counts a sample inside :func:`fetch` or :func:`produce` as
the client's work).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

from streams.settings import Settings


def transactional_id(settings: Settings, stage: str, group_id: str) -> str:
    """A worker's transactional id: ``<group>-<id kept in its data dir>``.

    One per worker, not per partition (KIP-447 fences a zombie by its group generation). It
    is kept in the worker's data dir, so a worker restarted there (after a SIGKILL) takes the
    same id back, and ``init_transactions`` aborts what its predecessor left open at once. A
    worker that never comes back leaves its open transaction to the broker's
    ``transaction.timeout.ms`` (:attr:`~streams.settings.BatchSettings.transaction_timeout_s`).
    """
    path = settings.data_dir / "batches" / f"{stage}.transactional-id"
    with contextlib.suppress(OSError):
        kept = path.read_text().strip()
        if kept:
            return f"{group_id}-{kept}"
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = uuid.uuid4().hex[:12]
    path.write_text(kept + "\n")
    return f"{group_id}-{kept}"


def consumer_config(settings: Settings, group_id: str) -> dict[str, Any]:
    """The batch path's consumer: no auto commit (offsets go with the transaction), range, read committed."""
    batch = settings.batch
    return {
        **settings.kafka.confluent_options(),
        "group.id": group_id,
        "client.id": f"{group_id}-{os.getpid()}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # Range over co-partitioned topics: a member gets the same partitions of each.
        "partition.assignment.strategy": "range",
        # Labels come in transactions (ours) and from faust's producer: committed ones only.
        "isolation.level": "read_committed",
        "max.partition.fetch.bytes": batch.max_partition_fetch_bytes,
        "queued.max.messages.kbytes": batch.prefetch_kbytes,
        # librdkafka's default, 100,000 records per partition, is another bound on the same queue:
        # a few polls' worth per partition keeps one poll always ready.
        "queued.min.messages": max(5 * batch.max_records, 10_000),
        "fetch.wait.max.ms": batch.fetch_max_wait_ms,
        "session.timeout.ms": int(settings.session_timeout_s * 1000),
        "heartbeat.interval.ms": int(min(3.0, settings.session_timeout_s / 3) * 1000),
    }


def new_producer(settings: Settings, group_id: str, transactional: str, timeout_s: float) -> Any:
    """The worker's transactional producer, its transactions initialised (call it in the Kafka thread)."""
    from confluent_kafka import Producer

    batch = settings.batch
    producer = Producer(
        {
            **settings.kafka.confluent_options(),
            "client.id": f"{group_id}-{os.getpid()}",
            "transactional.id": transactional,
            "transaction.timeout.ms": int(batch.transaction_timeout_s * 1000),
            # librdkafka refuses a request timeout past the transaction's.
            "socket.timeout.ms": min(
                settings.kafka.request_timeout_ms, int(batch.transaction_timeout_s * 1000)
            ),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": batch.linger_ms,
            # Keys go where every other client of the loop puts them (Java's, kafka-python's,
            # aiokafka's murmur2): a Label lands on its prediction's partition.
            "partitioner": "murmur2_random",
            "message.max.bytes": 1024**2,
            # A transaction begun right after the last one's commit is refused with
            # CONCURRENT_TRANSACTIONS until the coordinator has written the markers, and retried
            # after this backoff: librdkafka's 100 ms default was most of an event's latency
            # (a probe at 500 events/s: send_offsets_to_transaction p50 87 ms, 7 ms with 5).
            "retry.backoff.ms": 5,
        }
    )
    # Aborts what a predecessor with this id left open, and fences it.
    producer.init_transactions(timeout_s)
    return producer


def fetch(consumer: Any, most: int, timeout_s: float, gather_s: float = 0.0) -> list[Any]:
    """In the Kafka thread: up to ``most`` records, the first awaited ``timeout_s`` at most, then
    what arrives within ``gather_s`` of it (:attr:`~streams.settings.BatchSettings.gather_ms`).

    ``consume(most, timeout)`` alone returns only once it has ``most`` records or the timeout
    passed: at a low rate every batch would wait the whole timeout.
    """
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    messages = [first]
    until_s = time.monotonic() + gather_s
    while len(messages) < most:
        wait_s = max(0.0, until_s - time.monotonic())
        more = consumer.consume(most - len(messages), wait_s)
        messages += more
        if wait_s == 0.0 or not more:
            break
    return messages


def produce(producer: Any, topic: str, value: bytes | None, key: bytes | None, **options: Any) -> None:
    """In the Kafka thread: ``producer.produce``, letting the client send some while its queue is full."""
    while True:
        try:
            producer.produce(topic, value, key, **options)
            return
        except BufferError:  # the client's queue is full: let it send some
            producer.poll(0.05)


async def end_offsets(settings: Settings, places: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The end offsets (read committed: the last stable offset) of ``places``, by a reader of its own."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    reader = AIOKafkaConsumer(group_id=None, **settings.kafka.reader_options())
    await reader.start()
    try:
        ends = await reader.end_offsets([TopicPartition(topic, partition) for topic, partition in places])
    finally:
        await reader.stop()
    return {(tp.topic, tp.partition): int(end) for tp, end in ends.items()}
