"""[F7] Scale-out: the router's throughput with two worker processes against one.

On the bench broker (``bench/workers.py``), two loops are pre-filled with the
same 400,000 F1 records (``bench/throughput.py``: 4 partitions, every event
accepted, the crowd idle). On the first, one real worker
(``python -m streams.cli worker``) routes them; on the second, two workers
with the same app id (one consumer group) share the 4 partitions.

Each rate is measured only once the consumer group is settled: ``Stable``
with every worker a member (``describe_groups``) and output flowing, then 5 s
more for table recovery after the rebalance; then the growth of the
``labels`` + ``label-requests`` end offsets over 45 s. A rebalance during the
window is reported in the goal line. Over the same window the bench reads the
CPU seconds of each worker and of the broker from ``/proc/<pid>/stat`` (the
broker's pid from its pid file, or from the process listening on its port),
and those of every other process from the machine's busy time in
``/proc/stat``: on a 2-core machine shared with the broker (and with whatever
else runs), the split shows whether the cores, not the workers, cap the
second worker.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

from bench.harness import Goal, Row
from bench.throughput import ACCEPT_ALL_ENV, prefill
from bench.workers import (
    BenchLoop,
    RoutedOffsets,
    batch_group,
    bench_broker,
    bench_settings,
    cpu_s,
    machine_busy_s,
    run_name,
)

#: Enough for two workers to route through the settle time and the whole window: at 150,000 two
#: workers at ~4,800/s (2026-12-02, after the shared-topic readers) ran the topic dry in 28 s.
RECORDS = 400_000
WINDOW_S = 45.0
SETTLE_S = 5.0
STABLE_DEADLINE_S = 150.0
POLL_EVERY_S = 0.5
GOAL_RATIO = 1.5


@dataclass(frozen=True)
class Split:
    """Events routed per second by ``len(worker_cpu_s)`` workers over a window, and who spent the CPU."""

    per_s: float
    window_s: float
    worker_cpu_s: tuple[float, ...]
    broker_cpu_s: float
    #: Every other process on the machine (this bench's producer-free poller included).
    others_cpu_s: float
    #: The group's generation changed during the window (a rebalance).
    rebalanced: bool
    #: The window ended because the topic ran dry (the rate then underestimates).
    ran_dry: bool

    def cpu_split(self, cores: int | None = None) -> str:
        """The CPU seconds of each worker and of the broker over the window.

        >>> Split(1.0, 10.0, (9.0, 8.0), 2.0, 1.0, False, False).cpu_split(cores=2)
        'workers 9.0 + 8.0 s, broker 2.0 s, other processes 1.0 s, idle 0.0 s of 20 CPU s (10 s x 2 cores)'
        """
        workers = " + ".join(f"{spent:.1f}" for spent in self.worker_cpu_s)
        cores = cores or os.cpu_count() or 1
        available_s = self.window_s * cores
        idle_s = max(0.0, available_s - sum(self.worker_cpu_s) - self.broker_cpu_s - self.others_cpu_s)
        return (
            f"workers {workers} s, broker {self.broker_cpu_s:.1f} s, "
            f"other processes {self.others_cpu_s:.1f} s, idle {idle_s:.1f} s "
            f"of {available_s:.0f} CPU s ({self.window_s:.0f} s x {cores} cores)"
        )


def run() -> tuple[list[Row], list[Goal]]:
    """One worker on one loop, then two on another, over the same records."""
    with bench_broker() as broker:
        splits = []
        for workers in (1, 2):
            loop = BenchLoop(bench_settings(broker.bootstrap, run_name(f"f7-{workers}w")), ACCEPT_ALL_ENV)
            try:
                loop.create()
                asyncio.run(prefill(loop.settings, RECORDS))
                splits.append(measure(loop, workers, broker.pid))
            finally:
                loop.close()
    return rows_and_goal(*splits)


def rows_and_goal(one: Split, two: Split) -> tuple[list[Row], list[Goal]]:
    """The rate row, the CPU row and the F7 goal line with the CPU split."""
    rows = [
        Row("router, two workers (events/s)", two.per_s, one.per_s, "/s", "one worker"),
        Row(
            "router, two workers: CPU s per s",
            sum(two.worker_cpu_s) / two.window_s,
            sum(one.worker_cpu_s) / one.window_s,
            "s",
            "one worker",
        ),
    ]
    ratio = two.per_s / one.per_s if one.per_s else float("inf")
    caveats = [
        f"{label} {what}"
        for label, split in (("one worker:", one), ("two workers:", two))
        for what, happened in (("rebalanced in the window", split.rebalanced), ("ran dry", split.ran_dry))
        if happened
    ]
    goal = Goal(
        "F7",
        f"two workers {two.per_s:,.0f} events/s = {ratio:.2f}x one worker {one.per_s:,.0f}/s; "
        f"CPU over the window: one worker: {one.cpu_split()}; two workers: {two.cpu_split()}"
        + (f" ({'; '.join(caveats)})" if caveats else ""),
        f">= {GOAL_RATIO:g}x one worker",
        ratio >= GOAL_RATIO and not caveats,
    )
    return rows, [goal]


def measure(loop: BenchLoop, workers: int, broker_pid: int | None) -> Split:
    """Start ``workers`` workers, wait until their group is settled, then time a window."""
    from kafka.admin import KafkaAdminClient

    offsets = RoutedOffsets(loop.settings)
    admin = KafkaAdminClient(client_id="labelloop-bench-f7", **loop.settings.kafka.kafka_python_options())
    try:
        for _ in range(workers):
            loop.start_worker()
        fingerprint = _settled(loop, admin, offsets, workers)
        time.sleep(SETTLE_S)

        def reading() -> tuple[float, int, tuple[float, ...], float, float]:
            spent = tuple(cpu_s(worker.pid) for worker in loop.workers)
            broker_s = cpu_s(broker_pid) if broker_pid else 0.0
            return time.monotonic(), offsets.total(), spent, broker_s, machine_busy_s()

        start = reading()
        end = start
        ran_dry = False
        while end[0] - start[0] < WINDOW_S:
            time.sleep(POLL_EVERY_S)
            loop.check_alive(f"after {end[1]:,} events")
            end = reading()
            if end[1] >= RECORDS:
                ran_dry = True
                break
        rebalanced = _group(admin, batch_group(loop.settings))[1] != fingerprint
    finally:
        admin.close()
        offsets.close()
        loop.stop_workers()
    window_s = end[0] - start[0]
    worker_cpu_s = tuple(after - before for before, after in zip(start[2], end[2], strict=True))
    return Split(
        per_s=(end[1] - start[1]) / window_s,
        window_s=window_s,
        worker_cpu_s=worker_cpu_s,
        broker_cpu_s=end[3] - start[3],
        others_cpu_s=(end[4] - start[4]) - sum(worker_cpu_s) - (end[3] - start[3]),
        rebalanced=rebalanced,
        ran_dry=ran_dry,
    )


def _settled(loop: BenchLoop, admin: Any, offsets: RoutedOffsets, workers: int) -> str:
    """Wait until the group is Stable with ``workers`` members and output flows; its state's fingerprint."""
    deadline_s = time.monotonic() + STABLE_DEADLINE_S
    while time.monotonic() < deadline_s:
        time.sleep(POLL_EVERY_S)
        loop.check_alive("before its group settled")
        members, fingerprint = _group(admin, batch_group(loop.settings))
        if members == workers and fingerprint.startswith("Stable") and offsets.total() > 0:
            return fingerprint
    raise RuntimeError(f"the group never settled with {workers} members:\n{loop.logs_tail()}")


def _group(admin: Any, group: str) -> tuple[int, str]:
    """Members of the consumer group, and a fingerprint of its state (state and member ids)."""
    described = admin.describe_groups([group])[group]
    members = sorted(member["member_id"] for member in described["members"])
    return len(members), f"{described['group_state']} {' '.join(members)}"


if __name__ == "__main__":
    from bench.harness import report

    print(report(*run()))
