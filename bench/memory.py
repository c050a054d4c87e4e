"""[F6] Worker memory: its RSS after N events, and its growth from N/2 to N events.

On the bench broker (``bench/workers.py``): ``predictions`` is pre-filled
with N events (the F1 records, ``bench/throughput.py``) and one real worker
(``python -m streams.cli worker``, every stage) works through them at its own
pace, with F1's settings (every event accepted, the crowd idle: the path that
moves the most events per minute). Every second the bench reads the worker's
``VmRSS`` from ``/proc/<pid>/status`` and how many events it has routed (the
end offsets of ``labels`` + ``label-requests``: one record per event). The
figure is the RSS at the first reading with N events routed, the baseline the
RSS at the first reading with N/2; the ratio is their quotient, and the goal
asks it to stay under 1.10.

N is 300,000 in ``make bench`` (the worker routes ~1,000 events/s, so the
issue's 1,000,000 take ~17 minutes); ``LABELLOOP_BENCH_MEMORY_EVENTS=1000000
python -m bench.memory`` runs the full count. The rows and the goal line say
which N was measured.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field

from bench.harness import Goal, Row
from bench.throughput import ACCEPT_ALL_ENV, STARTUP_DEADLINE_S, prefill
from bench.workers import BenchLoop, RoutedOffsets, bench_broker, bench_settings, rss_bytes, run_name

EVENTS = int(os.environ.get("LABELLOOP_BENCH_MEMORY_EVENTS", "300000"))
POLL_EVERY_S = 1.0
#: The slowest pace the bench waits for (events/s, after the first output): a stalled worker fails.
SLOWEST_PER_S = 150.0
GOAL_GROWTH = 0.10
MIB = 1024**2


@dataclass
class Growth:
    """RSS readings (events routed, bytes) of one worker over a run, and how long the run took."""

    events: int
    readings: list[tuple[int, int]] = field(default_factory=list)
    took_s: float = 0.0

    def rss_at(self, routed: int) -> int:
        """The RSS at the first reading with at least ``routed`` events routed (0 if none).

        >>> Growth(10, [(0, 100), (4, 120), (7, 130), (10, 131)]).rss_at(5)
        130
        """
        return next((rss for count, rss in self.readings if count >= routed), 0)

    @property
    def done(self) -> int:
        """Events routed at the last reading."""
        return self.readings[-1][0] if self.readings else 0


def run() -> tuple[list[Row], list[Goal]]:
    """Pre-fill N events, let one worker route them, read its RSS on the way."""
    return rows_and_goal(measure())


def measure(events: int = EVENTS) -> Growth:
    """The RSS readings of one worker routing ``events`` pre-filled events."""
    with bench_broker() as broker:
        loop = BenchLoop(bench_settings(broker.bootstrap, run_name("f6")), ACCEPT_ALL_ENV)
        try:
            loop.create()
            asyncio.run(prefill(loop.settings, events))
            return watch(loop, events)
        finally:
            loop.close()


def rows_and_goal(growth: Growth) -> tuple[list[Row], list[Goal]]:
    """The RSS rows (N/2 and N) and the F6 goal line."""
    half, full = growth.rss_at(growth.events // 2), growth.rss_at(growth.events)
    started = growth.readings[0][1] if growth.readings else 0
    at_half = f"after {growth.events // 2:,} events"
    rows = [
        Row(f"worker RSS {at_half}", half / MIB, started / MIB, "MB", "RSS at first output"),
        Row(f"worker RSS after {growth.events:,} events", full / MIB, half / MIB, "MB", f"RSS {at_half}"),
    ]
    finished = growth.done >= growth.events
    ratio = full / half if half and finished else float("inf")
    rate = growth.done / growth.took_s if growth.took_s else 0.0
    goal = Goal(
        "F6",
        f"RSS {half / MIB:,.0f} MB after {growth.events // 2:,} events -> {full / MIB:,.0f} MB after "
        f"{growth.events:,}: +{(ratio - 1) * 100:.1f}% ({growth.done:,} routed in {growth.took_s:,.0f} s, "
        f"{rate:,.0f}/s)",
        f"< +{GOAL_GROWTH * 100:.0f}% from {growth.events // 2:,} to {growth.events:,} events",
        finished and ratio < 1 + GOAL_GROWTH,
    )
    return rows, [goal]


def watch(loop: BenchLoop, events: int) -> Growth:
    """Start one worker; read its RSS and the routed count every second until ``events`` are routed."""
    growth = Growth(events)
    offsets = RoutedOffsets(loop.settings)
    try:
        worker = loop.start_worker()
        started_s = time.monotonic()
        first_s: float | None = None
        while growth.done < events:
            time.sleep(POLL_EVERY_S)
            routed, rss = offsets.total(), rss_bytes(worker.pid)
            loop.check_alive(f"after {routed:,} events")
            now_s = time.monotonic()
            if first_s is None:
                if not routed:
                    if now_s - started_s > STARTUP_DEADLINE_S:
                        raise RuntimeError(f"nothing routed in {STARTUP_DEADLINE_S:g} s:\n{loop.logs_tail()}")
                    continue
                first_s = now_s
            growth.readings.append((routed, rss))
            growth.took_s = now_s - first_s
            if growth.took_s > events / SLOWEST_PER_S:
                break  # stalled or far too slow: the goal fails on the count
    finally:
        offsets.close()
        loop.stop_workers()
    return growth


def curve(growth: Growth, points: int = 10) -> str:
    """The RSS at every tenth of the run, for the eye.

    >>> curve(Growth(10, [(5, 100 * MIB), (10, 110 * MIB)]), points=2)
    'RSS (MB) after 5: 100, 10: 110'
    """
    steps = [growth.events * step // points for step in range(1, points + 1)]
    return "RSS (MB) after " + ", ".join(f"{n:,}: {growth.rss_at(n) / MIB:,.0f}" for n in steps)


if __name__ == "__main__":
    from bench.harness import report

    measured = measure()
    print(curve(measured))
    print(report(*rows_and_goal(measured)))
