"""Fixtures for whole-loop tests: fresh topics per test, real faust workers as processes, topic readers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agents.simulation.stream import SimulatedEvent
from streams.sdk import PredictionPublisher, RawRecord
from streams.settings import KafkaSettings, Settings, TopicSettings
from streams.topic_admin import create_topics, delete_topics
from streams.worker_process import start_worker, stop_worker


@dataclass
class LoopUnderTest:
    """One isolated loop: its settings, the env its workers get, and their processes."""

    settings: Settings
    env: dict[str, str]
    log_dir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: The data dir each of ``workers`` was started with.
    data_dirs: list[Path] = field(default_factory=list)

    def start_worker(self) -> subprocess.Popen[bytes]:
        """Start a real `labelloop worker` process on this loop's topics.

        Its data dir is the loop's own (``settings.data_dir``) unless a live worker holds it:
        then the first one no live worker holds. A restarted worker finds what its predecessor
        left (event tables, model checkpoints); two live workers never share one (RocksDB locks it).
        """
        log_path = self.log_dir / f"worker-{len(self.workers)}.log"
        held = {self.data_dirs[index] for index, worker in enumerate(self.workers) if worker.poll() is None}
        slot = 0
        while (data_dir := self.data_dir(slot)) in held:
            slot += 1
        self.data_dirs.append(data_dir)
        process = start_worker({**self.env, "LABELLOOP_DATA_DIR": str(data_dir)}, log_path)
        self.workers.append(process)
        return process

    def data_dir(self, slot: int) -> Path:
        """The data dir of worker slot ``slot``: the loop's own for slot 0, a sibling for the others."""
        return self.settings.data_dir.with_name(f"worker-{slot}") if slot else self.settings.data_dir

    def stop_worker(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
        """Stop a worker (gracefully by default) and return its exit code."""
        return stop_worker(process, sig)

    def logged_port(self, pattern: str, worker: int = 0, timeout_s: float = 90.0) -> int:
        """The port a worker logged (``pattern`` has one group: the port), waiting for the line."""
        path = self.log_dir / f"worker-{worker}.log"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = re.search(pattern, path.read_text(errors="replace")) if path.exists() else None
            if found is not None:
                return int(found.group(1))
            if self.workers[worker].poll() is not None:
                pytest.fail(f"worker {worker} exited before logging {pattern!r}\n{self.worker_logs()}")
            time.sleep(0.2)
        pytest.fail(f"worker {worker} never logged {pattern!r}\n{self.worker_logs()}")

    def web_port(self, worker: int = 0) -> int:
        """The port of the worker's web server (dashboard, /metrics, operator API)."""
        return self.logged_port(r"worker web server on http://[^:]+:(\d+)/", worker)

    def expert_port(self, worker: int = 0) -> int:
        """The port of the worker's expert page."""
        return self.logged_port(r"expert page at http://[^:]+:(\d+)/", worker)

    def stalled_logs(self) -> str:
        """:meth:`worker_logs` after every live worker logged where each of its tasks waits.

        For a wait that timed out: ``kill -USR1`` makes a worker log its consumer's partitions and
        every asyncio task's chain of awaits (``agents.worker.log_task_stacks``); the whole dump
        stays in the worker's log file under the test's tmp dir.
        """
        live = [worker for worker in self.workers if worker.poll() is None]
        for worker in live:
            worker.send_signal(signal.SIGUSR1)
        if live:
            time.sleep(2.0)
        return self.worker_logs()

    def worker_logs(self) -> str:
        """Every worker log of this loop, for failure messages."""
        return "\n".join(
            path.read_text(errors="replace")[-5_000:] for path in sorted(self.log_dir.glob("*.log"))
        )


@pytest.fixture
def loop_under_test(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Callable[..., LoopUnderTest]]:
    """A factory of isolated loops (unique topic prefix and app id) on the session broker."""
    made: list[LoopUnderTest] = []

    def make(**env_overrides: str) -> LoopUnderTest:
        run = uuid.uuid4().hex[:8]
        settings = Settings(
            kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
            topics=TopicSettings(prefix=f"test.{run}.", partitions=4),
            app_id=f"labelloop-test-{run}",
            data_dir=tmp_path / run / "worker",
        )
        create_topics(settings)
        env = {
            **os.environ,
            "LABELLOOP_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
            "LABELLOOP_TOPICS__PREFIX": settings.topics.prefix,
            "LABELLOOP_TOPICS__PARTITIONS": "4",
            "LABELLOOP_APP_ID": settings.app_id,
            "LABELLOOP_DATA_DIR": str(settings.data_dir),
            "LABELLOOP_POOLS__SIMULATED__MEAN_SERVICE_S": "0.01",
            "LABELLOOP_POOLS__SIMULATED__WORKERS": "20",
            "LABELLOOP_POOLS__STATUS_EVERY_S": "1",
            # The expert page on a free port; two quick bots answer escalations and expert audits.
            "LABELLOOP_POOLS__EXPERTS__PORT": "0",
            "LABELLOOP_OPERATOR__PORT": "0",
            "LABELLOOP_POOLS__SIMULATED_EXPERTS__EXPERTS": "2",
            "LABELLOOP_POOLS__SIMULATED_EXPERTS__MEAN_SERVICE_S": "0.05",
            "LABELLOOP_POOLS__SIMULATED_EXPERTS__POLL_S": "0.05",
            "LABELLOOP_LEARNER__PUBLISH_EVERY_S": "1",
            "LABELLOOP_SESSION_TIMEOUT_S": "10",
            # The drift response changes the routing policy on its own; the tests that assert the
            # policy in force turn it on where they mean it (test_drift_response.py).
            "LABELLOOP_MONITOR__RESPONSE__ENABLED": "false",
            # The record explorer's index is fed beside the loop and proven by its own whole-loop
            # test (test_explorer_loop.py turns it on); the other loops spare its CPU on 2 cores.
            "LABELLOOP_EXPLORER__ENABLED": "false",
            **env_overrides,
        }
        log_dir = tmp_path / run / "logs"
        log_dir.mkdir(parents=True)
        loop = LoopUnderTest(settings, env, log_dir)
        made.append(loop)
        return loop

    yield make
    for loop in made:
        for process in loop.workers:
            loop.stop_worker(process, signal.SIGKILL)
        if not os.environ.get("LABELLOOP_TEST_KEEP_TOPICS"):  # keep them to look into a failure
            delete_topics(loop.settings)


class TopicWatcher:
    """Keeps reading topics from the beginning; tests wait on what has arrived.

    aiokafka with a hard timeout on every fetch: kafka-python 3.0.12's
    ``KafkaConsumer.poll(timeout_ms=200)`` was seen blocking forever inside
    ``NetworkSelector.run`` (a CI hang no test timeout could interrupt).
    """

    def __init__(self, settings: Settings, *topics: str, committed: bool = True) -> None:
        """``committed=False``: read uncommitted too (what aborted transactions left on the broker)."""
        from aiokafka import AIOKafkaConsumer

        options = settings.kafka.reader_options() if committed else settings.kafka.aiokafka_options()

        async def start() -> Any:
            consumer = AIOKafkaConsumer(
                *topics,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                client_id="labelloop-test-watcher",
                max_partition_fetch_bytes=2 * 1024 * 1024,
                **options,
            )
            await asyncio.wait_for(consumer.start(), 30)
            return consumer

        self._loop = asyncio.new_event_loop()
        self._consumer: Any = self._loop.run_until_complete(start())
        self._seen: dict[str, dict[tuple[int, int], RawRecord]] = {topic: {} for topic in topics}

    @property
    def records(self) -> dict[str, list[RawRecord]]:
        """Every record seen per topic, once each (by partition and offset), in offset order."""
        return {topic: [seen[place] for place in sorted(seen)] for topic, seen in self._seen.items()}

    def count(self, topic: str) -> int:
        """How many distinct records of ``topic`` arrived."""
        return len(self._seen[topic])

    def poll(self) -> None:
        """Fetch what arrived since the last call (a re-read after a client reset counts once)."""
        batches = self._loop.run_until_complete(asyncio.wait_for(self._consumer.getmany(timeout_ms=200), 30))
        for batch in batches.values():
            for message in batch:
                self._seen[message.topic][(message.partition, message.offset)] = RawRecord.of(message)

    def wait_for(
        self, done: Callable[[], bool], timeout_s: float, what: str, logs: str | Callable[[], str] = ""
    ) -> None:
        """Poll until ``done()`` or fail after ``timeout_s``, saying what was awaited.

        ``logs`` (or what it returns, read when the wait fails: the logs of then) ends the message.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll()
            if done():
                return
        counts = {topic: len(seen) for topic, seen in self._seen.items()}
        text = logs if isinstance(logs, str) else logs()
        pytest.fail(f"timed out after {timeout_s}s waiting for {what}; seen {counts}\n{text[-8_000:]}")

    def close(self) -> None:
        """Close the consumer and its loop."""
        try:
            self._loop.run_until_complete(asyncio.wait_for(self._consumer.stop(), 30))
        finally:
            self._loop.close()


def publish_with_truth(
    publisher: PredictionPublisher, truth_topic: str, events: list[SimulatedEvent]
) -> None:
    """Publish each event's truth (the simulated crowd's side channel) and then the event; flush."""
    for simulated in events:
        event = simulated.event
        publisher.publish_raw(event.event_id.encode(), json.dumps(simulated.truth).encode(), truth_topic)
        publisher.publish(event)
    publisher.flush()
