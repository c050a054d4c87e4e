"""[F5] Loop latency: from a prediction's timestamp to its Label at a consumer, at a steady 1,000 events/s.

On the bench broker (``bench/workers.py``), with the real worker
(``python -m streams.cli worker``, every stage, one process) and an instant
crowd **outside the worker process**, as in production: the worker's crowd
tier is the remote crowd (``agents/pools/remote.py``), and
``python -m agents.simulation.remote_crowd`` in a process of its own reads
``label-requests`` and answers each at once with two agreeing labelers, so the
task closes at the overlap minimum:

- **figure**: a paced producer (the SDK's ``PredictionPublisher``, one
  thread) sends 30,000 predictions at 1,000/s, each stamped with
  ``created_at`` = the moment it is sent; a consumer in this process (aiokafka,
  no group) reads ``labels`` and takes, for each event's first Label, its
  arrival time minus ``prediction_created_at``. Accepted events are those
  whose Label has ``source=model``; reviewed ones ``source=crowd`` (or
  ``expert``). With ``accept_threshold=0.52`` about 10 % of the simulated
  stream's events are below it, plus the 5 % control group: ~14 % reviewed.
- **baseline**: the broker's own produce->consume round trip, measured just
  before on the same broker by the same producer and consumer code: 10,000
  small records (a send timestamp and an id) at 1,000/s to a 4-partition
  topic, arrival minus send time.

Two more rows give the p95s of 1,500 predictions paced at 100/s (sent before
the 1,000/s run, a rate one worker keeps up with): the path's own latency,
without the queue that builds when the worker is slower than its input.

[F8] The same 1,000/s run gives the whole loop's worker CPU per labelled event: the worker
process's CPU seconds (``/proc``) from the first send to the last Label read, over the events
labelled, printed with the share of each stage from py-spy samples of the worker taken during
the run (:mod:`bench.cpu_shares`).

Before the paced runs 200 predictions are published and their Labels awaited
(the worker is up and owns its partitions). An event without a Label 60 s
after the last send counts as infinitely late (it is in the percentiles). The
capacity gate is off: with an instant crowd it never holds anything back,
and the figure is the loop's path, not the gate's policy. The crowd answers
against the model's label (no truth side-channel is published: it would add
a second 1,000/s input to the worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from agents.simulation.stream import StreamSettings, simulate
from bench.cpu_shares import sample, split, thread_cpu_s
from bench.harness import Goal, Row
from bench.workers import BenchLoop, bench_broker, bench_settings, cpu_s, run_name
from schemas import utc_now
from streams.codec import encode
from streams.sdk import PredictionPublisher
from streams.settings import Settings
from streams.topic_admin import create_topics, delete_topics
from streams.topics import topic_names

RATE_PER_S = 1_000.0
#: A rate one worker keeps up with here: its latencies are the path's own, without a queue.
LOW_RATE_PER_S = 100.0
LOW_RATE_EVENTS = 1_500
EVENTS = 30_000
ROUND_TRIPS = 10_000
WARMUP_EVENTS = 200
WARMUP_DEADLINE_S = 120.0
DRAIN_S = 60.0
ACCEPT_THRESHOLD = 0.52
GOAL_ACCEPTED_RATIO = 5.0
GOAL_REVIEWED_P95_S = 1.0
GOAL_ACCEPTED_P95_S = 0.05
GOAL_CPU_PER_EVENT_US = 150.0
#: py-spy samples the worker over this much of the paced run (at a rate that costs it nothing:
#: the worker is not paused, py-spy reads its memory from outside).
SAMPLE_S = 20.0
SAMPLE_RATE = 100
#: The crowd outside the worker process: the worker's crowd tier is the remote crowd
#: (agents/pools/remote.py), answered by ``agents.simulation.remote_crowd`` in a process of its own,
#: which answers expert-tier requests too (the expert page is off).
REMOTE_CROWD_ENV = {
    "LABELLOOP_POOLS__REMOTE__ENABLED": "true",
    "LABELLOOP_POOLS__EXPERTS_ENABLED": "false",
    "LABELLOOP_POOLS__SIMULATED_EXPERTS__EXPERTS": "0",
}
LATENCY_ENV = REMOTE_CROWD_ENV | {
    "LABELLOOP_ROUTER__ACCEPT_THRESHOLD": str(ACCEPT_THRESHOLD),
    "LABELLOOP_ROUTER__CAPACITY__ENABLED": "false",
}

#: A consumed record's (id, when it was sent in epoch s, its kind), or None for a record not timed.
Parse = Callable[[bytes], tuple[str, float, str] | None]


@dataclass
class Latencies:
    """Seconds from send to arrival per kind of record; ``missing`` never arrived."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    missing: int = 0
    sent: int = 0
    send_s: float = 0.0

    def percentile(self, kind: str | None, share: float) -> float:
        """The ``share`` quantile (nearest rank) of ``kind`` (all with None; then missing ones are inf).

        >>> latencies = Latencies({"a": [0.1, 0.2, 0.3, 0.4]}, missing=0)
        >>> latencies.percentile("a", 0.5), latencies.percentile(None, 0.95)
        (0.2, 0.4)
        """
        values = [s for k, values in self.seconds.items() if kind in (None, k) for s in values]
        if kind is None:
            values += [math.inf] * self.missing
        if not values:
            return math.inf
        values.sort()
        return values[max(0, math.ceil(share * len(values)) - 1)]

    def count(self, kind: str) -> int:
        return len(self.seconds.get(kind, []))


def run() -> tuple[list[Row], list[Goal]]:
    """The round trip, then the loop's latency, on the bench broker; topics deleted afterwards."""
    with bench_broker() as broker:
        name = run_name("f5")
        loop = BenchLoop(bench_settings(broker.bootstrap, name), LATENCY_ENV)
        probe = bench_settings(broker.bootstrap, f"{name}-probe")
        try:
            loop.create()
            create_topics(probe)
            baseline = round_trip(probe)
            worker = loop.start_worker()
            loop.start_worker(("agents.simulation.remote_crowd",))
            warm_up(loop)
            low_rate = loop_latency(loop, LOW_RATE_EVENTS, prefix="low", rate_per_s=LOW_RATE_PER_S)
            samples: Counter[str] = Counter()
            spy = threading.Thread(target=lambda: samples.update(sample(worker.pid, SAMPLE_S, SAMPLE_RATE)))
            cpu_before_s, native_before_s = cpu_s(worker.pid), thread_cpu_s(worker.pid)
            spy.start()
            figure = loop_latency(loop)
            cpu = Cpu(
                cpu_s(worker.pid) - cpu_before_s,
                figure.sent - figure.missing,
                thread_cpu_s(worker.pid) - native_before_s,
            )
            spy.join()
            loop.check_alive("during the paced run")
        finally:
            loop.close()
            with contextlib.suppress(Exception):
                delete_topics(probe)
    rows, goals = rows_and_goal(figure, baseline, low_rate)
    more_rows, more_goals = cpu_goal(cpu, samples)
    return rows + more_rows, goals + more_goals


@dataclass(frozen=True)
class Cpu:
    """The worker's CPU seconds over the paced run, and the events labelled in it."""

    seconds: float
    events: int
    #: Of ``seconds``, those of librdkafka's own threads (the batch path's client; no Python there).
    native_s: float = 0.0

    @property
    def per_event_us(self) -> float:
        return self.seconds / self.events * 1e6 if self.events else math.inf


def cpu_goal(cpu: Cpu, samples: Counter[str]) -> tuple[list[Row], list[Goal]]:
    """[F8]: the whole loop's worker CPU per labelled event, with each stage's share."""
    rows = [
        Row(
            "whole loop, worker CPU per labelled event",
            cpu.per_event_us,
            GOAL_CPU_PER_EVENT_US,
            "us",
            "the goal F8",
        )
    ]
    native_share = min(1.0, cpu.native_s / cpu.seconds) if cpu.seconds > 0 else 0.0
    shares = split(samples, native_share) if samples else "no py-spy samples"
    goal = Goal(
        "F8",
        f"worker CPU {cpu.per_event_us:,.0f} us per labelled event ({cpu.seconds:.1f} CPU s over"
        f" {cpu.events:,} events at {RATE_PER_S:,.0f}/s); {shares}",
        f"<= {GOAL_CPU_PER_EVENT_US:g} us per labelled event",
        cpu.per_event_us <= GOAL_CPU_PER_EVENT_US,
    )
    return rows, [goal]


def rows_and_goal(
    figure: Latencies, baseline: Latencies, low_rate: Latencies
) -> tuple[list[Row], list[Goal]]:
    """The rows (p50 and p95, accepted and reviewed, in ms; p95s at the low rate) and the F5 goal line."""
    rows = []
    for kind in ("accepted", "reviewed"):
        rows.append(
            Row(
                f"loop latency {kind} p95 at {LOW_RATE_PER_S:g}/s",
                low_rate.percentile(kind, 0.95) * 1e3,
                baseline.percentile(None, 0.95) * 1e3,
                "ms",
                "broker round trip p95 at 1k/s",
            )
        )
    for kind in ("accepted", "reviewed"):
        for share in (0.5, 0.95):
            rows.append(
                Row(
                    f"loop latency {kind} p{share * 100:.0f} at 1k/s",
                    figure.percentile(kind, share) * 1e3,
                    baseline.percentile(None, share) * 1e3,
                    "ms",
                    f"broker round trip p{share * 100:.0f}",
                )
            )
    accepted_p95 = figure.percentile("accepted", 0.95)
    reviewed_p95 = figure.percentile("reviewed", 0.95)
    round_trip_p95 = baseline.percentile(None, 0.95)
    rate = figure.sent / figure.send_s if figure.send_s else 0.0
    ratio = accepted_p95 / round_trip_p95
    counts = (
        f"{figure.count('accepted'):,} accepted, {figure.count('reviewed'):,} reviewed, "
        f"{figure.missing:,} unlabeled {DRAIN_S:g} s after the last of {figure.sent:,} sent at {rate:,.0f}/s"
    )
    goal = Goal(
        "F5",
        f"accepted p95 {accepted_p95 * 1e3:,.0f} ms = {ratio:.1f}x round trip p95 "
        f"{round_trip_p95 * 1e3:.1f} ms, reviewed p95 {reviewed_p95 * 1e3:,.0f} ms ({counts});"
        " the crowd answers instantly from a process of its own",
        f"accepted p95 <= {GOAL_ACCEPTED_RATIO:g}x round trip p95 and <= {GOAL_ACCEPTED_P95_S * 1e3:g} ms,"
        f" reviewed p95 <= {GOAL_REVIEWED_P95_S:g} s, 0 unlabelled, the crowd outside the worker process",
        ratio <= GOAL_ACCEPTED_RATIO
        and accepted_p95 <= GOAL_ACCEPTED_P95_S
        and reviewed_p95 <= GOAL_REVIEWED_P95_S
        and figure.missing == 0,
    )
    return rows, [goal]


def round_trip(settings: Settings) -> Latencies:
    """Small records at the paced rate through one topic: arrival minus send time."""
    topic = topic_names(settings).predictions

    def record(index: int) -> tuple[bytes, bytes]:
        key = f"rt-{index:07d}"
        return key.encode(), json.dumps({"id": key, "sent_s": time.time()}).encode()

    def parse(value: bytes) -> tuple[str, float, str]:
        sent = json.loads(value)
        return sent["id"], float(sent["sent_s"]), "round trip"

    return asyncio.run(_paced_and_read(settings, topic, topic, record, parse, ROUND_TRIPS))


def loop_latency(
    loop: BenchLoop,
    count: int = EVENTS,
    prefix: str = "f5",
    drain_s: float = DRAIN_S,
    rate_per_s: float = RATE_PER_S,
) -> Latencies:
    """Paced predictions through the worker: each first Label's arrival minus its prediction's time."""
    templates = [
        simulated.event for simulated in simulate(StreamSettings(events=2_000, train_size=200, run_id=prefix))
    ]
    names = topic_names(loop.settings)

    def record(index: int) -> tuple[bytes, bytes]:
        event_id = f"{prefix}-{index:07d}"
        event = templates[index % len(templates)].model_copy(
            update={"event_id": event_id, "created_at": utc_now()}
        )
        return event_id.encode(), encode(event)

    def parse(value: bytes) -> tuple[str, float, str] | None:
        label = json.loads(value)
        if not label["event_id"].startswith(f"{prefix}-"):
            return None  # a warm-up event
        created_s = datetime.fromisoformat(label["prediction_created_at"]).timestamp()
        return label["event_id"], created_s, "accepted" if label["source"] == "model" else "reviewed"

    return asyncio.run(
        _paced_and_read(
            loop.settings, names.predictions, names.labels, record, parse, count, drain_s, rate_per_s
        )
    )


def warm_up(loop: BenchLoop) -> None:
    """A few predictions, and all their Labels awaited: the worker is up and owns its partitions."""
    warm = loop_latency(loop, WARMUP_EVENTS, prefix="warm", drain_s=WARMUP_DEADLINE_S)
    if warm.missing:
        raise RuntimeError(f"{warm.missing} of {WARMUP_EVENTS} warm-up events unlabeled:\n{loop.logs_tail()}")


async def _paced_and_read(
    settings: Settings,
    to_topic: str,
    from_topic: str,
    record: Callable[[int], tuple[bytes, bytes]],
    parse: Parse,
    count: int,
    drain_s: float = DRAIN_S,
    rate_per_s: float = RATE_PER_S,
) -> Latencies:
    """Send ``count`` records at ``rate_per_s`` (a thread); read ``from_topic`` until each id arrived."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        from_topic,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        **settings.kafka.reader_options(),
    )
    await consumer.start()
    latencies = Latencies()
    try:
        await consumer.seek_to_end()
        await consumer.getmany(timeout_ms=100)  # the positions are fetched before anything is sent
        sender = _Sender(settings, to_topic, record, count, rate_per_s)
        sender.start()
        arrived: set[str] = set()
        deadline_s = math.inf
        while len(arrived) < count and time.monotonic() < deadline_s:
            batches = await consumer.getmany(timeout_ms=100)
            now_s = time.time()
            for batch in batches.values():
                for message in batch:
                    parsed = parse(message.value)
                    if parsed is None or parsed[0] in arrived:
                        continue  # a later revision, or not one of ours
                    arrived.add(parsed[0])
                    latencies.seconds.setdefault(parsed[2], []).append(now_s - parsed[1])
            if not sender.is_alive() and deadline_s == math.inf:
                if sender.error is not None:
                    raise sender.error
                deadline_s = time.monotonic() + drain_s
        sender.join()
        latencies.missing = count - len(arrived)
        latencies.sent, latencies.send_s = sender.sent, sender.took_s
    finally:
        await consumer.stop()
    return latencies


class _Sender(threading.Thread):
    """Publishes ``count`` records at ``rate_per_s`` (kafka-python, the SDK's producer settings)."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        record: Callable[[int], tuple[bytes, bytes]],
        count: int,
        rate_per_s: float,
    ) -> None:
        super().__init__(name="f5-sender", daemon=True)
        self._settings, self._topic, self._record, self._count = settings, topic, record, count
        self._rate_per_s = rate_per_s
        self.sent = 0
        self.took_s = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with PredictionPublisher(self._settings) as publisher:
                started_s = time.monotonic()
                for index in range(self._count):
                    ahead_s = started_s + index / self._rate_per_s - time.monotonic()
                    if ahead_s > 0:
                        time.sleep(ahead_s)
                    key, value = self._record(index)
                    publisher.publish_raw(key, value, self._topic)
                    self.sent = index + 1
                self.took_s = time.monotonic() - started_s
        except BaseException as error:  # raised by the reader, never swallowed
            self.error = error


if __name__ == "__main__":
    from bench.harness import report

    print(report(*run()))
