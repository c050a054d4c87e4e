"""C1: the Toloka backend runs a whole cycle against the local stand-in under 30% injected faults.

One run: the backend (toloka-kit's ``AsyncTolokaClient`` pointed at the
stand-in from ``tests/standin/toloka.py``) finds or creates the project and
pool, uploads 40 golden tasks, then labels ``TASKS`` requests at once while
the stand-in answers 30% of all requests with a fault (a third each: 429 with
``Retry-After``, 500, and a slow answer held past the client's timeout after
the request was applied). Simulated Tolokers (12 honest, 0.8-0.95 accurate,
one fast spammer) answer; the backend reviews every assignment by its golden
tasks and reports answers; the answers go through the aggregator's real
core (:class:`~agents.aggregator.majority.MajorityVoteAggregator`) into Labels.

The goal holds when every task has exactly one Label and the stand-in created
every task exactly once (no duplicate upload). Rows give the faults injected,
the retries made, the cost in requests and time against a fault-free run of
the same size, and the labels' accuracy against the simulation's truth.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from agents.aggregator.majority import MajorityVoteAggregator, TaskState
from agents.pools.toloka.backend import TolokaBackend
from agents.pools.toloka.client import TolokaSettings
from agents.pools.toloka.spec import GoldenTask, LabelingSpec
from bench.harness import Goal, Row
from schemas import Label
from tests.standin.toloka import Faults, TolokaStandIn, label_all, requests_for

TASKS = 200
FAULT_SHARE = 0.30
GOLDEN_TASKS = 40
CLASSES = ("positive", "negative")
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CycleRun:
    labels_per_task: dict[str, int]
    accuracy: float
    duplicates: int
    created_real: int
    requests: int
    faults: dict[str, int]
    retries: int
    rate_limited: int
    accepted: int
    rejected: int
    golden_answers: int
    banned: int
    seconds: float


def _spec() -> LabelingSpec:
    rng = random.Random(11)
    golden = [
        GoldenTask(input={"text": f"control case {i}"}, label=rng.choice(CLASSES))
        for i in range(GOLDEN_TASKS)
    ]
    return LabelingSpec.load().model_copy(update={"golden": golden})


def cycle(tasks: int, fault_share: float) -> CycleRun:
    """One whole cycle against a fresh stand-in."""
    faults = Faults.total(fault_share, slow_s=0.5)
    with TolokaStandIn(faults=faults).serve() as standin:
        settings = TolokaSettings(
            url=standin.url,
            token="bench-token",
            poll_interval_s=0.01,
            request_timeout_s=0.25,
            backoff_base_s=0.01,
            backoff_max_s=0.2,
            max_attempts=30,
        )
        backend = TolokaBackend(settings, spec=_spec())
        requests = requests_for(standin, tasks, prefix="c1", classes=CLASSES)
        started = time.perf_counter()
        answers = asyncio.run(label_all(backend, requests, timeout_s=300))
        seconds = time.perf_counter() - started
        aggregator = MajorityVoteAggregator()
        states = {request.event_id: TaskState() for request in requests}
        labels: dict[str, list[Label]] = {request.event_id: [] for request in requests}
        for request in requests:
            states[request.event_id], _ = aggregator.observe_request(states[request.event_id], request, WHEN)
        for answer in answers:
            if answer.is_golden:
                continue
            states[answer.event_id], label = aggregator.observe_answer(
                states[answer.event_id], answer, answer.event_id, WHEN
            )
            if label is not None:
                labels[answer.event_id].append(label)
        right = sum(decided[0].label == standin.truth[event] for event, decided in labels.items() if decided)
        real_created = [task for task in standin.created_tasks if not task.get("known_solutions")]
        return CycleRun(
            labels_per_task={event: len(decided) for event, decided in labels.items()},
            accuracy=right / max(1, sum(1 for decided in labels.values() if decided)),
            duplicates=sum(count - 1 for count in standin.duplicate_uploads().values()),
            created_real=len(real_created),
            requests=standin.requests,
            faults=dict(standin.faults_injected),
            retries=backend.retry.retries,
            rate_limited=backend.retry.rate_limited,
            accepted=backend.accepted,
            rejected=backend.rejected,
            golden_answers=backend.golden_answers,
            banned=len(standin.banned()),
            seconds=seconds,
        )


def run() -> tuple[list[Row], list[Goal]]:
    """Measure C1: a faulty cycle, and a fault-free one of the same size as its baseline."""
    clean = cycle(TASKS, 0.0)
    faulty = cycle(TASKS, FAULT_SHARE)
    once = sum(1 for count in faulty.labels_per_task.values() if count == 1)
    injected = sum(faulty.faults.values())
    rows = [
        Row("C1 tasks labeled exactly once (30% faults)", once, TASKS, "", "tasks"),
        Row("C1   tasks uploaded (30% faults)", faulty.created_real, TASKS, "", "requests to label"),
        Row("C1   faults injected", injected, faulty.requests, "", "requests served"),
        Row("C1   retries by our policy", faulty.retries, injected, "", "faults injected"),
        Row("C1   HTTP requests", faulty.requests, clean.requests, "", "fault-free run"),
        Row("C1   wall time", faulty.seconds, clean.seconds, "s", "fault-free run"),
        Row("C1   label accuracy vs truth", faulty.accuracy, clean.accuracy, "", "fault-free run"),
        Row("C1   assignments rejected by golden", faulty.rejected, faulty.accepted, "", "accepted"),
        Row(
            "C1   golden answers reported",
            faulty.golden_answers,
            faulty.accepted + faulty.rejected,
            "",
            "reviews",
        ),
        Row("C1   Tolokers banned by QC rules", faulty.banned, 13, "", "Tolokers"),
    ]
    holds = once == TASKS and faulty.duplicates == 0 and faulty.created_real == TASKS
    goals = [
        Goal(
            "C1",
            f"{once}/{TASKS} tasks labeled exactly once, {faulty.duplicates} duplicate uploads, "
            f"under {injected} injected faults ({100 * injected / faulty.requests:.0f}% of "
            f"{faulty.requests} requests: {faulty.faults})",
            "every task labeled exactly once, no task uploaded twice, under 30% faults",
            holds,
        )
    ]
    return rows, goals
