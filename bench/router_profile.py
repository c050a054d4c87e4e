"""Where the router's worker spends its CPU per event on Kafka (F1's setup, sampled by py-spy).

Not part of ``make bench``: a tool for whoever works on the hot path
(``python -m bench.router_profile [seconds]``). It pre-fills ``predictions``
as :mod:`bench.throughput` does, starts the real worker with F1's
``ROUTER_ENV``, waits for its first committed batch, samples it with
``py-spy record --nonblocking`` for a while and prints the worker's CPU per
routed event over the window, then the functions that hold the samples
(inclusive: a frame anywhere on the stack; self: the innermost frame), each as
a share of the samples and as microseconds per event.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter

from bench.cpu_shares import record_stacks
from bench.throughput import ROUTER_ENV, prefill
from bench.workers import BenchLoop, RoutedOffsets, bench_broker, bench_settings, cpu_s, run_name

#: Functions shown in each table.
TOP = 40
#: Functions whose direct callees are listed (inclusive), where the router's time splits.
FOCUS = (
    "TransactionalBatches._one",
    "TransactionalBatches._run",
    "route_batch.<locals>.route",
    "Router.decide",
    "register.<locals>.after_commit",
)


def profile(seconds: float = 15.0, rate: int = 200, warmup_s: float = 5.0) -> str:
    """Run F1's worker, sample it for ``seconds`` from ``warmup_s`` after its first batch; the report."""
    with bench_broker() as broker:
        loop = BenchLoop(bench_settings(broker.bootstrap, run_name("profile")), ROUTER_ENV)
        try:
            loop.create()
            asyncio.run(prefill(loop.settings))
            offsets = RoutedOffsets(loop.settings)
            try:
                worker = loop.start_worker()
                deadline = time.monotonic() + 90
                while offsets.total() == 0:
                    loop.check_alive()
                    if time.monotonic() > deadline:
                        raise RuntimeError(loop.logs_tail())
                    time.sleep(0.2)
                time.sleep(warmup_s)  # past the start: faust's own table assignment, the first fetches
                routed_before, cpu_before = offsets.total(), cpu_s(worker.pid)
                stacks = record_stacks(worker.pid, seconds, rate)
                routed, spent_s = offsets.total() - routed_before, cpu_s(worker.pid) - cpu_before
            finally:
                offsets.close()
                loop.stop_workers()
        finally:
            loop.close()
    per_event_us = spent_s / max(routed, 1) * 1e6
    return _report(stacks, routed, spent_s, per_event_us)


def _short(frame: str) -> str:
    """``func (path:line)`` without the line and with the path cut to its package."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/wt-", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/wt-":
                path = path.split("/", 1)[1] if "/" in path else path
            break
    return f"{name} ({path})"


def _report(stacks: Counter[tuple[str, ...]], routed: int, spent_s: float, per_event_us: float) -> str:
    total = sum(stacks.values()) or 1
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = [_short(frame) for frame in stack]
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count
    lines = [
        f"routed {routed:,} events in the window; worker CPU {spent_s:.2f} s = {per_event_us:.1f} us/event;"
        f" {total:,} samples",
    ]
    children: dict[str, Counter[str]] = {focus: Counter() for focus in FOCUS}
    for stack, count in stacks.items():
        frames = [_short(frame) for frame in stack]
        for depth, frame in enumerate(frames[:-1]):
            name = frame.split(" (", 1)[0]
            if name in children and name not in (f.split(" (", 1)[0] for f in frames[depth + 1 :]):
                children[name][frames[depth + 1]] += count
    tables = [("inclusive", inclusive), ("self", own)]
    tables += [(f"callees of {focus}", found) for focus, found in children.items()]
    for title, table in tables:
        lines.append(f"-- {title} (share of samples, us/event)")
        for frame, count in table.most_common(TOP):
            share = count / total
            lines.append(f"{100 * share:5.1f}% {share * per_event_us:7.1f} us  {frame}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(profile(float(sys.argv[1]) if len(sys.argv) > 1 else 15.0))
