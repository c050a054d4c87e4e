"""The fault drill's loop under test: a real worker process, the stream's publisher and the reader.

One :class:`Loop` per fault class (its own topic prefix, consumer group and data
dir), a :class:`Publisher` thread sending the stream at a steady rate, and a
:class:`Reader` that feeds every label and DLQ record into the ledger. The fault
classes themselves are in :mod:`bench.drill`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.simulation.stream import SimulatedEvent
from bench.drill_ledger import Ledger
from streams.codec import H_ORIGINAL_SHA256, headers_dict
from streams.sdk import PredictionPublisher
from streams.settings import KafkaSettings, Settings, TopicSettings
from streams.topic_admin import create_topics, delete_topics
from streams.topics import topic_names
from streams.worker_process import start_worker, stop_worker

log = logging.getLogger("labelloop.drill")

#: The worker id of the crowd answers the drill forges (a label must never count one).
GHOST_WORKER = "drill-ghost"


@dataclass(frozen=True)
class DrillSettings:
    """How big each fault class's stream is and how long the drill may wait for it."""

    events: int = 20_000
    rate_per_s: float = 500.0
    #: Share of events published a second time (a producer retry the loop must absorb).
    duplicate_share: float = 0.01
    #: How long after the last event is published the loop may take to label the rest.
    drain_s: float = 600.0
    #: Extra reads after everything arrived, for late duplicates.
    settle_s: float = 8.0
    accept_threshold: float = 0.7
    #: The workers' processing guarantee (``LABELLOOP_PROCESSING_GUARANTEE``).
    guarantee: str = "at_least_once"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="labelloop-drill-")))


# --- the loop under the drill ---------------------------------------------------------------


class Loop:
    """One isolated loop (topics, consumer group, data dir) and the worker processes that run it."""

    def __init__(self, fault: str, bootstrap: str, drill: DrillSettings, **env: str) -> None:
        run = f"{fault.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
        self.home = drill.workdir / run
        self.settings = Settings(
            kafka=KafkaSettings(bootstrap_servers=bootstrap),
            topics=TopicSettings(prefix=f"drill.{run}.", partitions=4),
            app_id=f"labelloop-drill-{run}",
            data_dir=self.home / "worker",
        )
        self.names = topic_names(self.settings)
        self.env = {
            **os.environ,
            "LABELLOOP_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "LABELLOOP_TOPICS__PREFIX": self.settings.topics.prefix,
            "LABELLOOP_TOPICS__PARTITIONS": "4",
            "LABELLOOP_APP_ID": self.settings.app_id,
            "LABELLOOP_DATA_DIR": str(self.settings.data_dir),
            "LABELLOOP_ROUTER__ACCEPT_THRESHOLD": str(drill.accept_threshold),
            "LABELLOOP_POOLS__SIMULATED__MEAN_SERVICE_S": "0.01",
            "LABELLOOP_POOLS__SIMULATED__WORKERS": "30",
            "LABELLOOP_POOLS__STATUS_EVERY_S": "1",
            "LABELLOOP_POOLS__EXPERTS__PORT": "0",
            "LABELLOOP_OPERATOR__PORT": "0",
            "LABELLOOP_POOLS__SIMULATED_EXPERTS__EXPERTS": "4",
            "LABELLOOP_POOLS__SIMULATED_EXPERTS__MEAN_SERVICE_S": "0.02",
            "LABELLOOP_POOLS__SIMULATED_EXPERTS__POLL_S": "0.05",
            "LABELLOOP_LEARNER__PUBLISH_EVERY_S": "2",
            "LABELLOOP_SESSION_TIMEOUT_S": "10",
            "LABELLOOP_PROCESSING_GUARANTEE": drill.guarantee,
            **env,
        }
        self.workers: list[subprocess.Popen[bytes]] = []
        self.home.mkdir(parents=True, exist_ok=True)

    def create(self) -> None:
        create_topics(self.settings)

    def start_worker(self) -> subprocess.Popen[bytes]:
        process = start_worker(self.env, self.home / f"worker-{len(self.workers)}.log")
        self.workers.append(process)
        return process

    def kill_worker(self, process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        stop_worker(process, sig)

    def stop(self, *, delete: bool = True) -> None:
        for process in self.workers:
            self.kill_worker(process, signal.SIGTERM)
        if delete:
            with contextlib.suppress(Exception):
                delete_topics(self.settings)

    def logs_tail(self, chars: int = 3_000) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-chars:] for path in sorted(self.home.glob("worker-*.log"))
        )


def worker_logs(loop: Loop) -> list[str]:
    return [path.read_text(errors="replace") for path in sorted(loop.home.glob("worker-*.log"))]


class Reader:
    """Reads ``labels`` and the DLQ from the beginning into the ledger (aiokafka, no group)."""

    def __init__(self, loop: Loop, ledger: Ledger) -> None:
        from aiokafka import AIOKafkaConsumer

        self._ledger = ledger
        self._labels, self._dlq = loop.names.labels, loop.names.dlq
        settings = loop.settings

        async def start() -> Any:
            consumer = AIOKafkaConsumer(
                self._labels,
                self._dlq,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                client_id="labelloop-drill-reader",
                max_partition_fetch_bytes=2 * 1024 * 1024,
                # What a consumer downstream sees: with exactly_once workers, aborted writes are not labels.
                **settings.kafka.reader_options(),
            )
            await asyncio.wait_for(consumer.start(), 60)
            return consumer

        self._loop = asyncio.new_event_loop()
        self._consumer: Any = self._loop.run_until_complete(start())

    def poll(self) -> None:
        try:
            batches = self._loop.run_until_complete(
                asyncio.wait_for(self._consumer.getmany(timeout_ms=300), 30)
            )
        except Exception as error:  # a broker restart: the consumer reconnects on the next poll
            log.info("reader: %s; polling again", error)
            time.sleep(0.5)
            return
        for messages in batches.values():
            for message in messages:
                place = (message.partition, message.offset)
                if message.topic == self._labels:
                    label = json.loads(message.value)
                    workers = label.get("provenance", {}).get("worker_ids") or []
                    foreign = any(str(worker).startswith(GHOST_WORKER) for worker in workers)
                    self._ledger.saw_label(
                        label["event_id"],
                        int(label["revision"]),
                        place,
                        foreign=foreign,
                        human=label.get("source") in ("crowd", "expert"),
                    )
                else:
                    digest = headers_dict(message.headers).get(H_ORIGINAL_SHA256)
                    self._ledger.saw_dlq(message.key, message.value, place, digest)

    def close(self) -> None:
        try:
            self._loop.run_until_complete(asyncio.wait_for(self._consumer.stop(), 30))
        finally:
            self._loop.close()


class Publisher(threading.Thread):
    """Publishes the stream at a steady rate in the background; ``progress`` is the share sent."""

    def __init__(
        self,
        loop: Loop,
        ledger: Ledger,
        stream: list[SimulatedEvent],
        drill: DrillSettings,
        **producer_options: Any,
    ) -> None:
        super().__init__(name="drill-publisher", daemon=True)
        self._loop, self._ledger, self._stream, self._drill = loop, ledger, stream, drill
        self._options = producer_options
        self.sent = 0
        self.error: BaseException | None = None
        self.publisher: PredictionPublisher | None = None
        self.lock = threading.Lock()

    @property
    def progress(self) -> float:
        return self.sent / max(len(self._stream), 1)

    def run(self) -> None:
        every = max(int(1 / self._drill.duplicate_share), 1) if self._drill.duplicate_share else 0
        try:
            with PredictionPublisher(self._loop.settings, **self._options) as publisher:
                self.publisher = publisher
                started = time.monotonic()
                truth_topic = self._loop.names.truth
                for index, simulated in enumerate(self._stream):
                    event = simulated.event
                    with self.lock:
                        publisher.publish_raw(
                            event.event_id.encode(), json.dumps(simulated.truth).encode(), truth_topic
                        )
                        publisher.publish(event)
                        self._ledger.sent_event(event.event_id)
                        if every and index % every == every - 1:
                            publisher.publish(event)  # the same event again: routed once
                    self.sent = index + 1
                    ahead_s = started + self.sent / self._drill.rate_per_s - time.monotonic()
                    if ahead_s > 0:
                        time.sleep(ahead_s)
                publisher.flush(timeout_s=300)
        except BaseException as error:  # reported by the drill, never swallowed
            self.error = error
