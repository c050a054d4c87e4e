"""Where a worker's CPU goes, by stage of the loop: py-spy samples of a running worker, attributed by frame.

[F8] wants the whole loop's CPU per labelled event printed with the share of each stage, so
that the next regression shows at a glance. The worker is sampled from outside (``py-spy
record --nonblocking``, no change to the worker, only the threads that are running, not the
idle ones) and each sample is given to one stage by its stack:

- walking from the innermost frame outwards, the first frame of the loop's own code decides:
  ``agents/<stage>/`` is that stage (``router``, ``dispatcher``, ``aggregator``, ``learner``,
  ``monitor``, ``pools``, ...), ``streams/metrics.py`` is ``metrics``, any other ``streams/``
  or ``agents/`` frame is ``plumbing`` (the batch path, codecs, the runtime);
- a sample with a frame of prometheus_client inside the loop's code counts as ``metrics``;
- a sample whose innermost frames are faust, mode, aiokafka or kafka-python, before any frame
  of the loop's code, is ``faust/Kafka client`` (their own work: fetching, producing,
  committing, faust's per-record delivery);
- the rest (the event loop itself, the interpreter) is ``event loop``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

CLIENT_PACKAGES = ("/faust/", "/mode/", "/aiokafka/", "/kafka/", "/confluent_kafka/")
#: The batch path's functions that only call into librdkafka (C, no Python frame of its own): a
#: sample whose innermost frame is one of them is the client's work.
CLIENT_CALLS = ("fetch (", "produce (", "_transact (", "_abort (")
#: The files of those functions (the service and its clients' module).
CLIENT_FILES = ("streams/batches.py", "streams/batch_clients.py")
#: librdkafka's own threads (named ``rdk:main``, ``rdk:broker1``, ...): py-spy sees no Python
#: there, so their CPU is read from ``/proc`` (:func:`thread_cpu_s`) and printed as a stage.
NATIVE_STAGE = "librdkafka threads"
METRICS_PACKAGES = ("/prometheus_client/",)
#: The stages in the order they are printed (those never seen print 0 %).
STAGES = (
    "router",
    "dispatcher",
    "aggregator",
    "learner",
    "monitor",
    "pools",
    "metrics",
    "plumbing",
    "faust/Kafka client",
    NATIVE_STAGE,
    "event loop",
)


def stage_of(frames: list[str]) -> str:
    """The stage one sample belongs to; ``frames`` are py-spy's, outermost first (``func (file:line)``).

    >>> stage_of(["run (asyncio/base_events.py:1)", "_one (/x/streams/batches.py:9)",
    ...           "route (/x/agents/router/agent.py:3)", "validate (pydantic/main.py:5)"])
    'router'
    >>> stage_of(["run (asyncio/base_events.py:1)", "_one (/x/streams/batches.py:9)",
    ...           "send (/v/aiokafka/producer/producer.py:4)"])
    'faust/Kafka client'
    >>> stage_of(["x (/x/agents/router/agent.py:3)", "observe_label (/x/streams/metrics.py:2)"])
    'metrics'
    >>> stage_of(["x (/x/agents/router/agent.py:3)", "inc (/v/prometheus_client/metrics.py:2)"])
    'metrics'
    >>> stage_of(["run (asyncio/base_events.py:1)", "select (selectors.py:2)"])
    'event loop'
    >>> stage_of(["decide (agents/router/policy.py:165)", "__init__ (pydantic/main.py:280)"])
    'router'
    >>> stage_of(["_one (streams/batches.py:521)", "send (aiokafka/client.py:474)"])
    'faust/Kafka client'
    >>> stage_of(["_transact (streams/batches.py:760)", "produce (streams/batch_clients.py:780)"])
    'faust/Kafka client'
    >>> stage_of(["_run (streams/batches.py:300)", "fetch (streams/batch_clients.py:100)"])
    'faust/Kafka client'
    """
    if frames and any(name in frames[-1] for name in CLIENT_FILES) and frames[-1].startswith(CLIENT_CALLS):
        return "faust/Kafka client"
    for frame in reversed(frames):
        # py-spy names files relative to the worker's directory or to site-packages.
        where = "/" + frame.rsplit("(", 1)[-1].lstrip("/")
        if any(package in where for package in METRICS_PACKAGES):
            return "metrics"
        if "/streams/metrics.py" in where:
            return "metrics"
        if "/agents/" in where:
            stage = where.split("/agents/", 1)[1].split("/", 1)
            return stage[0] if len(stage) == 2 and stage[0] not in ("loop.py", "worker.py") else "plumbing"
        if "/streams/" in where:
            return "plumbing"
        if any(package in where for package in CLIENT_PACKAGES):
            return "faust/Kafka client"
    return "event loop"


def stacks_of(raw: str) -> Counter[tuple[str, ...]]:
    """Samples per stack of py-spy's raw output (one ``frame;frame;... count`` line per stack).

    >>> stacks_of("a (x.py:1);b (y.py:2) 3\\nbroken line\\na (x.py:1) 2")
    Counter({('a (x.py:1)', 'b (y.py:2)'): 3, ('a (x.py:1)',): 2})
    """
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def shares_of(raw: str) -> Counter[str]:
    """Samples per stage of py-spy's raw output.

    >>> raw = "a (/x/agents/router/agent.py:1);b (/v/aiokafka/x.py:2) 3\\nc (/x/agents/learner/m.py:1) 2"
    >>> shares_of(raw)
    Counter({'faust/Kafka client': 3, 'learner': 2})
    """
    samples: Counter[str] = Counter()
    for stack, count in stacks_of(raw).items():
        samples[stage_of(list(stack))] += count
    return samples


def record_stacks(pid: int, seconds: float, rate: int = 250) -> Counter[tuple[str, ...]]:
    """Sample process ``pid`` for ``seconds`` with py-spy; samples per stack (empty if py-spy cannot)."""
    spy = Path(sys.executable).with_name("py-spy")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "stacks.txt"
        command = [
            str(spy),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(out),
        ]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(command, check=False, capture_output=True, timeout=seconds + 60)
        return stacks_of(out.read_text(errors="replace")) if out.exists() else Counter()


def sample(pid: int, seconds: float, rate: int = 250) -> Counter[str]:
    """Sample process ``pid`` for ``seconds`` with py-spy; samples per stage (empty if py-spy cannot)."""
    samples: Counter[str] = Counter()
    for stack, count in record_stacks(pid, seconds, rate).items():
        samples[stage_of(list(stack))] += count
    return samples


def split(samples: Counter[str], native_share: float = 0.0) -> str:
    """``router 31%, dispatcher 4%, ...`` over every stage (in :data:`STAGES` order).

    ``native_share``: the share of the process's CPU spent in librdkafka's threads; the Python
    samples share the rest.

    >>> split(Counter({"router": 3, "learner": 1})).split(", ")[:4]
    ['router 75%', 'dispatcher 0%', 'aggregator 0%', 'learner 25%']
    >>> split(Counter({"router": 1}), native_share=0.25).split(", ")[0], "librdkafka threads 25%" in split(
    ...     Counter({"router": 1}), native_share=0.25)
    ('router 75%', True)
    """
    total = sum(samples.values()) or 1
    named = [*STAGES, *sorted(set(samples) - set(STAGES))]
    shares = {stage: (1 - native_share) * samples.get(stage, 0) / total for stage in named}
    shares[NATIVE_STAGE] = native_share
    return ", ".join(f"{stage} {100 * shares[stage]:.0f}%" for stage in named)


def thread_cpu_s(pid: int, prefix: str = "rdk:") -> float:
    """CPU seconds of the threads of ``pid`` whose name starts with ``prefix`` (``/proc``; 0 if none).

    >>> thread_cpu_s(os.getpid(), prefix="no-such-thread:")
    0.0
    """
    total = 0.0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            if not (task / "comm").read_text().startswith(prefix):
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
