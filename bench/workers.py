"""Real worker processes for the Kafka benches: the bench broker, one loop's workers, /proc readings.

Every bench that runs ``python -m streams.cli worker`` (F1 in
``bench/throughput.py``, F5 ``bench/loop_latency.py``, F6 ``bench/memory.py``,
F7 ``bench/scale_out.py``) launches, watches and stops it through this module:

- :func:`bench_broker` starts the bench broker (127.0.0.1:29092) if nothing
  answers there and stops it afterwards only if it started it;
- :class:`BenchLoop` is one isolated loop (topic prefix, app id, data dir)
  with the worker processes it started, each logging to its own file;
- :class:`OutputOffsets` sums end offsets of output topics (what a worker
  has produced, counted by the broker); :class:`RoutedOffsets` sums the
  offsets of ``predictions`` the router has committed (what it has routed);
- :func:`cpu_s`, :func:`rss_bytes` and :func:`listener_pid` read ``/proc``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.broker import BrokerSettings, LocalBroker, is_reachable
from streams.settings import KafkaSettings, Settings, TopicSettings
from streams.topic_admin import create_topics, delete_topics
from streams.topics import topic_names

REPO = Path(__file__).resolve().parent.parent
BENCH_BROKER = BrokerSettings(port=29092, controller_port=29093, home=REPO / ".labelloop" / "bench-kafka")
PARTITIONS = 4


@dataclass(frozen=True)
class BenchBroker:
    """The bench broker in use: where it answers, and the pid of its process (None if unknown)."""

    bootstrap: str
    pid: int | None


@contextlib.contextmanager
def bench_broker() -> Iterator[BenchBroker]:
    """The bench broker, started if nothing answers on its port and then stopped again (else left up)."""
    # aiokafka warns of retries on topics a moment old (no leader yet); they are retried and succeed.
    for name in ("aiokafka", "kafka"):
        logging.getLogger(name).setLevel(logging.ERROR)
    broker = LocalBroker(BENCH_BROKER)
    started_here = not is_reachable(broker.bootstrap)
    bootstrap = broker.start()
    pid = broker.status().pid or listener_pid(BENCH_BROKER.port)
    try:
        yield BenchBroker(bootstrap, pid)
    finally:
        if started_here:
            broker.stop()


def bench_settings(bootstrap: str, name: str) -> Settings:
    """The settings of one bench loop: its own topic prefix and app id, 4 partitions."""
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap),
        topics=TopicSettings(prefix=f"{name}.", partitions=PARTITIONS),
        app_id=name,
    )


def run_name(bench: str) -> str:
    """A fresh name for a bench's topics and consumer group (``bench-<id>-<when>-<pid>``)."""
    return f"bench-{bench}-{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}"


@dataclass
class BenchLoop:
    """One isolated loop on the bench broker and the worker processes this bench started on it.

    Parameters
    ----------
    settings
        Topic prefix, app id (the workers' consumer group) and broker.
    worker_env
        ``LABELLOOP_*`` settings of the workers on top of the loop's own.
    """

    settings: Settings
    worker_env: Mapping[str, str] = field(default_factory=dict)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="labelloop-bench-")))

    def create(self) -> None:
        """Create every topic of the loop from the catalogue."""
        create_topics(self.settings)

    @property
    def env(self) -> dict[str, str]:
        """The environment a worker of this loop gets."""
        settings = self.settings
        return {
            **os.environ,
            "LABELLOOP_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "LABELLOOP_TOPICS__PREFIX": settings.topics.prefix,
            "LABELLOOP_TOPICS__PARTITIONS": str(settings.topics.partitions),
            "LABELLOOP_APP_ID": settings.app_id,
            # Each worker its own data dir (two on one machine must not share faust's).
            "LABELLOOP_DATA_DIR": str(self.home / f"worker-{len(self.workers)}"),
            # The expert page and the operator API on free ports: the defaults may be taken (by a
            # second worker here, or by anybody else's on this machine).
            "LABELLOOP_POOLS__EXPERTS__PORT": "0",
            "LABELLOOP_OPERATOR__PORT": "0",
            **self.worker_env,
        }

    def start_worker(self, command: tuple[str, ...] = ("streams.cli", "worker")) -> subprocess.Popen[bytes]:
        """Start one real worker (``python -m streams.cli worker``, every stage) on this loop.

        ``command``: another module to run the same way (``python -m <command>``).
        """
        env = self.env
        with (self.home / f"worker-{len(self.workers)}.log").open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", *command],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.workers.append(worker)
        return worker

    def check_alive(self, progress: str = "") -> None:
        """Raise with the logs if a worker exited."""
        for index, worker in enumerate(self.workers):
            if worker.poll() is not None:
                raise RuntimeError(
                    f"worker {index} exited with {worker.returncode} {progress}:\n{self.logs_tail()}"
                )

    def logs_tail(self, chars: int = 3_000) -> str:
        """The end of every worker's log, for error messages."""
        return "\n".join(
            path.read_text(errors="replace")[-chars:] for path in sorted(self.home.glob("worker-*.log"))
        )

    def stop_workers(self) -> None:
        """SIGTERM every worker (faust shuts down cleanly on it); SIGKILL one that lingers."""
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=10)

    def close(self) -> None:
        """Stop the workers, delete the loop's topics and its data dirs and logs."""
        self.stop_workers()
        with contextlib.suppress(Exception):  # a failed cleanup must not hide the run's error
            delete_topics(self.settings)
        shutil.rmtree(self.home, ignore_errors=True)


class OutputOffsets:
    """The sum of the end offsets of some of a loop's topics: how many records were written to them."""

    def __init__(self, settings: Settings, *topics: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        partitions = range(settings.topics.partitions)
        self._partitions = [TopicPartition(topic, partition) for topic in topics for partition in partitions]
        self._consumer: Any = KafkaConsumer(**settings.kafka.kafka_python_options())

    def total(self) -> int:
        """Records written to the topics so far."""
        return int(sum(self._consumer.end_offsets(self._partitions).values()))

    def close(self) -> None:
        self._consumer.close()


def batch_group(settings: Settings) -> str:
    """The batch path's consumer group of the loop (``<app_id>-batches``)."""
    return f"{settings.app_id}-batches"


class RoutedOffsets:
    """The sum of the offsets of ``predictions`` the router's group committed: how many events it routed.

    Each batch's offsets are committed in the transaction that holds its outputs, so the count is
    exactly what consumers can read (an end offset of ``labels`` would also count the
    transactions' commit markers).
    """

    def __init__(self, settings: Settings) -> None:
        from kafka.admin import KafkaAdminClient

        self._group = batch_group(settings)
        self._topic = topic_names(settings).predictions
        self._admin: Any = KafkaAdminClient(
            client_id="labelloop-bench-routed", **settings.kafka.kafka_python_options()
        )

    def total(self) -> int:
        """Events routed and committed so far."""
        offsets = self._admin.list_group_offsets({self._group: None}).get(self._group, {})
        return int(
            sum(found.offset for tp, found in offsets.items() if tp.topic == self._topic and found.offset > 0)
        )

    def close(self) -> None:
        self._admin.close()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, from ``/proc`` (0 where there is none).

    >>> cpu_s(os.getpid()) > 0
    True
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields 14 and 15 of stat(5) (utime, stime), counted after the ")" that ends the name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds every core of the machine spent busy since boot (``/proc/stat``, all but idle and iowait).

    >>> machine_busy_s() > 0
    True
    """
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    jiffies = [int(field) for field in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(jiffies) - jiffies[3] - jiffies[4]) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (``VmRSS`` of ``/proc/<pid>/status``; 0 where there is none).

    >>> rss_bytes(os.getpid()) > 10 * 1024**2
    True
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024  # reported in kB
    return 0


def listener_pid(port: int) -> int | None:
    """The pid of the process listening on TCP ``port`` of 127.0.0.1 (from ``/proc``), if visible."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(inode)
    if not inodes:
        return None
    sockets = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in sockets:
                        return int(proc.name)
    return None
