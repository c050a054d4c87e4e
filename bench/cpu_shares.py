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
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

CLIENT_PACKAGES = ("/faust/", "/mode/", "/aiokafka/", "/kafka/")
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
    """
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


def shares_of(raw: str) -> Counter[str]:
    """Samples per stage of py-spy's raw output (one ``frame;frame;... count`` line per stack).

    >>> raw = "a (/x/agents/router/agent.py:1);b (/v/aiokafka/x.py:2) 3\\nc (/x/agents/learner/m.py:1) 2"
    >>> shares_of(raw)
    Counter({'faust/Kafka client': 3, 'learner': 2})
    """
    samples: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples[stage_of(stack.split(";"))] += int(count)
    return samples


def sample(pid: int, seconds: float, rate: int = 250) -> Counter[str]:
    """Sample process ``pid`` for ``seconds`` with py-spy; samples per stage (empty if py-spy cannot)."""
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
        if not out.exists():
            return Counter()
        return shares_of(out.read_text(errors="replace"))


def split(samples: Counter[str]) -> str:
    """``router 31%, dispatcher 4%, ...`` over every stage (in :data:`STAGES` order).

    >>> split(Counter({"router": 3, "learner": 1})).split(", ")[:4]
    ['router 75%', 'dispatcher 0%', 'aggregator 0%', 'learner 25%']
    """
    total = sum(samples.values()) or 1
    named = [*STAGES, *sorted(set(samples) - set(STAGES))]
    return ", ".join(f"{stage} {100 * samples.get(stage, 0) / total:.0f}%" for stage in named)
