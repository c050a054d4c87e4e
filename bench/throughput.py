"""[F1] The router on a real broker against a plain consume→produce passthrough on the same client.

Both read the same 200k ``PredictionEvent`` records (~450 bytes of JSON: a
short text and three features, two classes; keyed by ``event_id``, 4
partitions) from one pre-filled ``predictions`` topic on the bench broker
(Kafka 4.1 on 127.0.0.1:29092, started here if nothing answers there, and
then stopped again):

- **baseline**: one confluent-kafka (librdkafka) ``Consumer`` + ``Producer`` in
  this process, the client the router's batch path uses (``streams/batches.py``),
  copying every record to another 4-partition topic, read committed, with
  acks=all, idempotence, the batch path's fetch size and linger, murmur2 keys,
  and a commit every second, without transactions (the router's cost of them
  is part of its figure); timed from the first record consumed to the last
  copy acknowledged, CPU of every thread of this process (librdkafka's too);
- **figure**: the real worker (``python -m streams.cli worker``, every stage
  registered, as deployed) in a subprocess. Its rate is that of the growth
  of the offsets its batch path committed on ``predictions`` (each batch's
  are committed in the transaction that holds its Labels and LabelRequests:
  :class:`~bench.workers.RoutedOffsets`), polled every 0.5 s, from the first
  poll that sees one to the one that sees all.

The worker routes by the product's default policy with ``accept_threshold=0.52``
(as F5): about 10 % of the events are below it, plus the 5 % control group
and the 2 % audit, so ~15 % go to humans as LabelRequests, which the
dispatcher hands to the simulated crowd. The crowd is one slow simulated
worker, so its answers cost next to nothing here: in production the crowd
is remote, and labelling is F5's and F8's to measure. The capacity gate is
off (it would shed reviews once that crowd's backlog grew). The other stages
that read ``labels`` (the router's estimators, the learner, the monitor) run
as they do in production, on the same batch path.

The CPU time of each side per record (``/proc`` of the worker, the process
time of the passthrough) is printed as a second row.

A third side shows the ceiling faust itself sets: :mod:`bench.faust_forward`, a faust worker made
by the same app factory whose one agent forwards each record's bytes unchanged (no decode, no
decision, no table), over its own copy of the pre-filled topic. The goal line prints its rate
against the passthrough and the router's against it.

[F2] The goal line of the router's body without Kafka (``bench/router_body.py``)
is decided here too, from its row (:func:`body_goal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from agents.simulation.stream import StreamSettings, simulate
from bench.harness import Goal, Row
from bench.workers import (
    PARTITIONS,
    BenchLoop,
    OutputOffsets,
    RoutedOffsets,
    bench_broker,
    bench_settings,
    cpu_s,
    run_name,
)
from streams.codec import encode
from streams.sdk import read_records
from streams.settings import Settings
from streams.topic_admin import create_topics, delete_topics
from streams.topics import topic_names

RECORDS = 200_000
#: Distinct simulated events; the 200k records are these with fresh event ids.
TEMPLATES = 2_000
POLL_EVERY_S = 0.5
#: The worker must start producing within this. Its rate is read over at most ROUTER_WINDOW_S
#: after that (a worker at the goal's 10k/s routes all 200k in 20 s; a slower one is cut off
#: so ``make bench`` stays short, and the goal line says how many it routed).
STARTUP_DEADLINE_S = 90.0
ROUTER_WINDOW_S = 60.0
GOAL_RATIO = 0.5
GOAL_RATE_PER_S = 10_000.0
BODY_GOAL_RATIO = 2.0
COMMIT_EVERY_S = 1.0
#: A worker that accepts (nearly) every event: the crowd, dispatcher and aggregator stay idle (F6, F7).
ACCEPT_ALL_ENV = {
    "LABELLOOP_ROUTER__ACCEPT_THRESHOLD": "0.01",
    "LABELLOOP_ROUTER__CAPACITY__ENABLED": "false",
    "LABELLOOP_ROUTER__CONTROL_SHARE": "0",
    "LABELLOOP_ROUTER__AUDIT__RATE": "0.000001",
}
#: F1's worker: the default policy at F5's threshold (~15 % to humans), one slow simulated labeler.
ROUTER_ENV = {
    "LABELLOOP_ROUTER__ACCEPT_THRESHOLD": "0.52",
    "LABELLOOP_ROUTER__CAPACITY__ENABLED": "false",
    "LABELLOOP_POOLS__SIMULATED__WORKERS": "1",
    "LABELLOOP_POOLS__SIMULATED__MEAN_SERVICE_S": "3600",
    "LABELLOOP_POOLS__SIMULATED_EXPERTS__EXPERTS": "0",
}


@dataclass(frozen=True)
class Rate:
    """Records moved per second, and the CPU seconds the mover spent per record."""

    per_s: float
    cpu_s_per_record: float
    records: int
    #: The share of the routed events sent to humans (LabelRequests / events), where measured.
    reviewed: float = 0.0


def run() -> tuple[list[Row], list[Goal]]:
    """Measure both on the bench broker; topics are deleted and the broker stopped if started here."""
    with bench_broker() as broker:
        name = run_name("f1")
        router_loop = BenchLoop(bench_settings(broker.bootstrap, name), ROUTER_ENV)
        passthrough_settings = bench_settings(broker.bootstrap, f"{name}-passthrough")
        try:
            router_loop.create()
            create_topics(passthrough_settings)
            asyncio.run(prefill(router_loop.settings))
            source = topic_names(router_loop.settings).predictions
            target = topic_names(passthrough_settings).labels
            baseline = passthrough(passthrough_settings, source, target, passthrough_settings.app_id)
            figure = router_rate(router_loop)
            forward_loop = BenchLoop(bench_settings(broker.bootstrap, f"{name}-forward"), {})
            try:
                forward_loop.create()
                asyncio.run(prefill(forward_loop.settings))
                forward = forward_rate(forward_loop)
            finally:
                forward_loop.close()
        finally:
            router_loop.close()
            with contextlib.suppress(Exception):  # a failed cleanup must not hide the run's error
                delete_topics(passthrough_settings)
    rows = [
        Row("router on Kafka (events/s)", figure.per_s, baseline.per_s, "/s", "confluent-kafka passthrough"),
        Row(
            "router on Kafka, CPU per event",
            figure.cpu_s_per_record * 1e6,
            baseline.cpu_s_per_record * 1e6,
            "us",
            "confluent-kafka passthrough",
        ),
        Row(
            "bare faust agent (events/s)", forward.per_s, baseline.per_s, "/s", "confluent-kafka passthrough"
        ),
        Row(
            "bare faust agent, CPU per event",
            forward.cpu_s_per_record * 1e6,
            baseline.cpu_s_per_record * 1e6,
            "us",
            "confluent-kafka passthrough",
        ),
        Row("router vs bare faust (events/s)", figure.per_s, forward.per_s, "/s", "bare faust agent"),
        Row("router, share sent to humans", figure.reviewed * 100, 15.0, "%", "the goal's ~15 %"),
    ]
    ratio = figure.per_s / baseline.per_s
    done = figure.records >= RECORDS
    goal = Goal(
        "F1",
        f"router {figure.per_s:,.0f} events/s = {ratio:.2f}x passthrough {baseline.per_s:,.0f}/s"
        + ("" if done else f" (over {figure.records:,} of {RECORDS:,}: cut off after {ROUTER_WINDOW_S:g} s)")
        + f"; a bare faust agent only forwarding the records: {forward.per_s:,.0f}/s ="
        f" {forward.per_s / baseline.per_s:.2f}x passthrough, the router"
        f" {figure.per_s / forward.per_s:.2f}x of it",
        f">= {GOAL_RATIO}x passthrough and >= {GOAL_RATE_PER_S:,.0f}/s",
        done and ratio >= GOAL_RATIO and figure.per_s >= GOAL_RATE_PER_S,
    )
    return rows, [goal]


def body_goal(rows: list[Row]) -> Goal:
    """[F2] The router's body per event (``bench/router_body.py``) is at most 2x the sum of its parts."""
    body = next(row for row in rows if row.name.startswith("router body per event"))
    return Goal(
        "F2",
        f"router body {body.figure:.1f} us/event = {body.ratio:.2f}x "
        f"the sum of its parts {body.baseline:.1f} us",
        f"<= {BODY_GOAL_RATIO:g}x",
        body.ratio <= BODY_GOAL_RATIO,
    )


def prediction_records(count: int = RECORDS) -> Iterator[tuple[bytes, bytes]]:
    """``count`` valid PredictionEvents as (key, value): simulated, with a short text, each id unique.

    The text is what a card-payment or ticket model would have seen beside its features (the
    bench's realistic event: text + features, two classes).

    >>> key, value = next(prediction_records(1))
    >>> key, b'"event_id":"bench-0000000"' in value, b'"text":"card payment' in value, 380 < len(value) < 520
    (b'bench-0000000', True, True, True)
    """
    stream = StreamSettings(events=min(count, TEMPLATES), train_size=200, run_id="tmpl")
    templates = []
    for index, simulated in enumerate(simulate(stream)):
        event = simulated.event
        text = (
            f"card payment {index:05d} at merchant m-{index % 97:02d} ({_CITIES[index % len(_CITIES)]}),"
            f" device {'new' if index % 7 == 0 else 'known'}, {1 + index % 5} attempts,"
            f" note: order #{index * 37:07d}"
        )
        event = event.model_copy(update={"input": event.input.model_copy(update={"text": text})})
        templates.append((event.event_id.encode(), encode(event)))
    for index in range(count):
        template_id, value = templates[index % len(templates)]
        event_id = f"bench-{index:07d}".encode()
        yield event_id, value.replace(b'"' + template_id + b'"', b'"' + event_id + b'"', 1)


_CITIES = ("Lisbon", "Tallinn", "Leipzig", "Porto", "Gdansk", "Utrecht", "Tartu")


async def prefill(settings: Settings, count: int = RECORDS) -> None:
    """Write ``count`` records to ``predictions`` in big batches, each on its key's partition."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    topic = topic_names(settings).predictions
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        acks="all",
        max_batch_size=512 * 1024,
        max_request_size=2 * 1024**2,
    )
    await producer.start()
    try:
        partitions = list(range(PARTITIONS))
        partition_of = DefaultPartitioner()  # murmur2 of the key, as every Kafka producer does
        batches = [producer.create_batch() for _ in partitions]
        sent: list[asyncio.Future[Any]] = []
        for key, value in prediction_records(count):
            partition = partition_of(key, partitions, partitions)
            if batches[partition].append(key=key, value=value, timestamp=None) is None:
                sent.append(await producer.send_batch(batches[partition], topic, partition=partition))
                batches[partition] = producer.create_batch()
                batches[partition].append(key=key, value=value, timestamp=None)
        for partition, batch in enumerate(batches):
            if batch.record_count():
                sent.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def passthrough(settings: Settings, source: str, target: str, group: str) -> Rate:
    """Copy every record of ``source`` to ``target`` with the batch path's client, and time it."""
    from confluent_kafka import Consumer, Producer

    batch = settings.batch
    kafka = settings.kafka.confluent_options()
    consumer = Consumer(
        {
            **kafka,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "max.partition.fetch.bytes": batch.max_partition_fetch_bytes,
            "fetch.wait.max.ms": batch.fetch_max_wait_ms,
        }
    )
    producer = Producer(
        {
            **kafka,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": batch.linger_ms,
            "partitioner": "murmur2_random",
        }
    )
    consumer.subscribe([source])
    try:
        copied = 0
        first_s = first_cpu_s = 0.0
        committed_s = time.monotonic()
        while copied < RECORDS:
            for record in consumer.consume(batch.max_records, 1.0):
                if record.error() is not None:
                    continue
                if copied == 0:
                    first_s, first_cpu_s = time.perf_counter(), time.process_time()
                while True:
                    try:
                        producer.produce(target, record.value(), record.key())
                        break
                    except BufferError:  # its queue is full: let it send
                        producer.poll(0.05)
                copied += 1
            producer.poll(0)
            if time.monotonic() - committed_s >= COMMIT_EVERY_S:
                consumer.commit(asynchronous=True)
                committed_s = time.monotonic()
        producer.flush()
        elapsed_s = time.perf_counter() - first_s
        cpu_s = time.process_time() - first_cpu_s
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return Rate(per_s=copied / elapsed_s, cpu_s_per_record=cpu_s / copied, records=copied)


def router_rate(loop: BenchLoop, workers: int = 1) -> Rate:
    """Run ``workers`` workers on the pre-filled topic; the growth rate of the offsets they routed.

    The CPU figure is that of every worker together; ``reviewed`` is read from ``label-requests``
    (read committed) once they stopped.
    """
    offsets = RoutedOffsets(loop.settings)
    try:
        for _ in range(workers):
            loop.start_worker()
        rate = _watch(loop, offsets)
    finally:
        offsets.close()
        loop.stop_workers()
    requests = len(read_records(loop.settings, topic_names(loop.settings).label_requests, idle_s=2.0))
    return replace(rate, reviewed=requests / max(rate.records, 1))


def forward_rate(loop: BenchLoop) -> Rate:
    """:mod:`bench.faust_forward` on the pre-filled topic: the growth rate of ``labels``' end offsets."""
    offsets = OutputOffsets(loop.settings, topic_names(loop.settings).labels)
    try:
        loop.start_worker(("bench.faust_forward",))
        return _watch(loop, offsets)
    finally:
        offsets.close()
        loop.stop_workers()


def _watch(loop: BenchLoop, offsets: OutputOffsets | RoutedOffsets) -> Rate:
    """Poll the outputs' end offsets until every record is routed (or the deadline passes)."""
    started_s = time.monotonic()
    first: tuple[float, int, float] | None = None  # (when, how many, workers' CPU s) at the first output
    last = (0.0, 0, 0.0)
    while True:
        time.sleep(POLL_EVERY_S)
        now_s = time.monotonic()
        routed = offsets.total()
        spent_s = sum(cpu_s(worker.pid) for worker in loop.workers)
        loop.check_alive(f"after {routed} records")
        if routed and first is None:
            first = (now_s, routed, spent_s)
        last = (now_s, routed, spent_s)
        if routed >= RECORDS:
            break
        if first is None and now_s - started_s > STARTUP_DEADLINE_S:
            tail = loop.logs_tail()
            raise RuntimeError(f"the worker produced nothing in {STARTUP_DEADLINE_S:g} s:\n{tail}")
        if first is not None and now_s - first[0] >= ROUTER_WINDOW_S:
            break  # too slow: report what it did (the goal fails on the count)
    assert first is not None
    records = last[1] - first[1]
    if records <= 0:
        return Rate(per_s=0.0, cpu_s_per_record=float("inf"), records=last[1])
    return Rate(
        per_s=records / (last[0] - first[0]),
        cpu_s_per_record=(last[2] - first[2]) / records,
        records=last[1],
    )


if __name__ == "__main__":
    from bench.harness import report

    print(report(*run()))
