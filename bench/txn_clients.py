"""The batch path's client, measured bare: consume → copy → transactional produce + commit, per library.

Not part of ``make bench``: the measurement behind the choice of client in ``streams/batches.py``
(``python -m bench.txn_clients``, on the bench broker). Each loop runs in a process of its own
(its CPU is that process's, librdkafka's C threads included) and copies a 4-partition topic to
another, committing the input offsets in the transactions that hold the copies:

- ``aiokafka``: what the batch path did with aiokafka 0.14 (no KIP-447): ``getmany``, then one
  transactional producer and one transaction per partition batch, the partitions side by side;
- ``confluent``: confluent-kafka (librdkafka): ``consume``, then ONE transaction for the whole
  poll over every partition, fenced by the group's generation
  (``send_offsets_to_transaction(offsets, consumer_group_metadata())``, KIP-447).

Two figures per loop: CPU per record and rate over a backlog of ``BACKLOG`` records, and the
latency from a paced producer (``PACED_PER_S``) to the copy at a read-committed reader (p50, p95),
with the loop's CPU per record at that rate.

Measured here on 2026-12-04 (2 shared cores, load 4-6 from other benchmarks: noisy; one run each,
both clients at retry backoff 5 ms):

====================  ============  ===========  ===================  ===================
client                backlog rate  CPU/record   p50 / p95 at 1k/s    CPU/record at 1k/s
====================  ============  ===========  ===================  ===================
aiokafka, per part.   15,086/s      20.1 us      73.7 / 184.1 ms      269 us
confluent, per poll   161,982/s     4.0 us       12.6 / 54.3 ms       138 us
====================  ============  ===========  ===================  ===================

With librdkafka's default retry backoff (100 ms) the confluent loop's p50 was 143 ms: a
transaction begun right after the previous commit is refused (CONCURRENT_TRANSACTIONS) until the
coordinator wrote its markers, and retried after the backoff. Gathering a poll's records for
``TXN_LINGER_MS`` before its transaction (confluent, 1k/s): 0 ms: 120 us per record, p50 15 ms;
10 ms: 117 us, p50 16 ms; 25 ms: 87 us, p50 28 ms. The batch path gathers nothing by default
(``LABELLOOP_BATCH__GATHER_MS=0``): under load a poll grows by itself while the previous
transaction commits, and a gather buys little CPU for latency the F5 budget (50 ms) cannot spare.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

BACKLOG = 40_000
PACED_PER_S = 1_000
PACED_S = 15
PARTITIONS = 4
VALUE = b"x" * 420
#: Both clients' default of 100 ms is what a transaction begun right after the last one's commit
#: waits for the coordinator's CONCURRENT_TRANSACTIONS to clear (Java's client uses 20 ms there).
RETRY_BACKOFF_MS = 5
#: confluent only: after a poll's first record, gather more this long (``TXN_LINGER_MS``, in the
#: loop's process) before the transaction.
LINGER_ENV = "TXN_LINGER_MS"


def _loop_aiokafka(
    bootstrap: str, source: str, target: str, group: str, stop_after: int, idle_s: float
) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    async def main() -> None:
        consumer = AIOKafkaConsumer(
            source,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        producers: dict[int, Any] = {}
        copied = 0
        started = cpu0 = 0.0
        last_s = time.monotonic()
        while copied < stop_after and time.monotonic() - last_s < idle_s:
            fetched = await consumer.getmany(timeout_ms=200, max_records=4_000)
            if not fetched:
                continue
            last_s = time.monotonic()
            if not started:
                started, cpu0 = time.perf_counter(), time.process_time()

            async def one(tp: Any, messages: list[Any]) -> None:
                producer = producers.get(tp.partition)
                if producer is None:
                    producer = producers[tp.partition] = AIOKafkaProducer(
                        bootstrap_servers=bootstrap,
                        transactional_id=f"{group}-{tp.partition}",
                        acks="all",
                        enable_idempotence=True,
                        retry_backoff_ms=RETRY_BACKOFF_MS,
                    )
                    await producer.start()
                await producer.begin_transaction()
                for message in messages:
                    await producer.send(target, message.value, key=message.key)
                position = await consumer.position(tp)
                await producer.send_offsets_to_transaction(
                    {TopicPartition(tp.topic, tp.partition): position}, group
                )
                await producer.commit_transaction()

            await asyncio.gather(*(one(tp, messages) for tp, messages in fetched.items()))
            copied += sum(len(m) for m in fetched.values())
        print(
            json.dumps(
                {"copied": copied, "s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu0}
            )
        )
        await consumer.stop()
        for producer in producers.values():
            await producer.stop()

    asyncio.run(main())


def _loop_confluent(
    bootstrap: str, source: str, target: str, group: str, stop_after: int, idle_s: float
) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.subscribe([source])
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": f"{group}-worker",
            "linger.ms": 1,
            "acks": "all",
            "retry.backoff.ms": RETRY_BACKOFF_MS,
        }
    )
    producer.init_transactions()
    linger_ms = float(os.environ.get(LINGER_ENV, "0"))
    copied = 0
    started = cpu0 = 0.0
    last_s = time.monotonic()
    while copied < stop_after and time.monotonic() - last_s < idle_s:
        messages = _fetch(consumer, 4_000, 0.2)
        if not messages:
            continue
        linger_until = time.monotonic() + linger_ms / 1000
        while len(messages) < 4_000 and (wait := linger_until - time.monotonic()) > 0:
            messages += consumer.consume(4_000 - len(messages), wait)
        last_s = time.monotonic()
        if not started:
            started, cpu0 = time.perf_counter(), time.process_time()
        producer.begin_transaction()
        upto: dict[tuple[str, int], int] = {}
        for message in messages:
            if message.error():
                continue
            producer.produce(target, message.value(), message.key())
            upto[(message.topic(), message.partition())] = message.offset() + 1
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in upto.items()]
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata())
        producer.commit_transaction()
        copied += len(messages)
    print(
        json.dumps(
            {"copied": copied, "s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu0}
        )
    )
    consumer.close()


def _fetch(consumer: Any, most: int, timeout_s: float) -> list[Any]:
    """What is buffered, up to ``most``, waiting at most ``timeout_s`` for the first record only.

    (``consume(n, timeout)`` alone waits for all ``n`` or the whole timeout: a latency floor.)
    """
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    return [first, *consumer.consume(most - 1, 0)]


def _topics(bootstrap: str, *names: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names]).values():
        future.result()
    time.sleep(1.0)


def _produce(bootstrap: str, topic: str, count: int, per_s: float | None) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0 if per_s else 20, "acks": "all"})
    start = time.monotonic()
    for index in range(count):
        if per_s:
            wait = start + index / per_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            value = json.dumps({"sent_s": time.time(), "i": index}).encode() + VALUE
        else:
            value = VALUE
        producer.produce(topic, value, f"k-{index}".encode())
        producer.poll(0)
    producer.flush()


def _read_latencies(
    bootstrap: str, topic: str, count: int, deadline_s: float, ready: threading.Event
) -> list[float]:
    from confluent_kafka import Consumer, TopicPartition

    reader = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4()}", "isolation.level": "read_committed"}
    )
    reader.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    reader.consume(timeout=1.0)
    ready.set()
    latencies: list[float] = []
    end = time.monotonic() + deadline_s
    while len(latencies) < count and time.monotonic() < end:
        for message in _fetch(reader, 1_000, 0.1):
            if message.error():
                continue
            now = time.time()
            sent = json.loads(message.value()[: -len(VALUE)])["sent_s"]
            latencies.append(now - sent)
    reader.close()
    return latencies


def _child(
    client: str, bootstrap: str, source: str, target: str, group: str, stop_after: int, idle_s: float
) -> Any:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.txn_clients",
            "loop",
            client,
            bootstrap,
            source,
            target,
            group,
            str(stop_after),
            str(idle_s),
        ],
        stdout=subprocess.PIPE,
    )


def _pct(values: list[float], share: float) -> float:
    if not values:
        return math.inf
    values = sorted(values)
    return values[max(0, math.ceil(share * len(values)) - 1)]


def measure(bootstrap: str, client: str) -> dict[str, float]:
    run = f"txnbench-{client}-{uuid.uuid4().hex[:8]}"
    src, dst, src2, dst2 = (f"{run}.{n}" for n in ("in", "out", "pin", "pout"))
    _topics(bootstrap, src, dst, src2, dst2)
    _produce(bootstrap, src, BACKLOG, None)
    child = _child(client, bootstrap, src, dst, f"{run}-g", BACKLOG, 10.0)
    backlog = json.loads(child.communicate(timeout=300)[0].splitlines()[-1])
    paced_count = PACED_PER_S * PACED_S
    child = _child(client, bootstrap, src2, dst2, f"{run}-g2", paced_count, 15.0)
    time.sleep(6.0)  # joined its group and fenced its producers
    ready = threading.Event()
    found: list[float] = []
    reader = threading.Thread(
        target=lambda: found.extend(_read_latencies(bootstrap, dst2, paced_count, PACED_S + 60, ready))
    )
    reader.start()
    ready.wait()
    _produce(bootstrap, src2, paced_count, PACED_PER_S)
    reader.join()
    paced = json.loads(child.communicate(timeout=300)[0].splitlines()[-1])
    return {
        "backlog_per_s": backlog["copied"] / backlog["s"],
        "backlog_cpu_us": backlog["cpu_s"] / backlog["copied"] * 1e6,
        "paced_p50_ms": _pct(found, 0.5) * 1e3,
        "paced_p95_ms": _pct(found, 0.95) * 1e3,
        "paced_cpu_us": paced["cpu_s"] / max(paced["copied"], 1) * 1e6,
        "paced_missing": paced_count - len(found),
    }


if __name__ == "__main__":
    if sys.argv[1] == "loop":
        client, bootstrap, source, target, group, stop_after, idle_s = sys.argv[2:9]
        loop = _loop_aiokafka if client == "aiokafka" else _loop_confluent
        loop(bootstrap, source, target, group, int(stop_after), float(idle_s))
    else:
        bootstrap = sys.argv[1] if len(sys.argv) > 1 else "localhost:29092"
        for name in sys.argv[2:] or ("aiokafka", "confluent"):
            print(name, json.dumps({k: round(v, 1) for k, v in measure(bootstrap, name).items()}), flush=True)
