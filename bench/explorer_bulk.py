"""[E3] A bulk label of 1,000 similar events lands as 1,000 revisions, each once the latest, within 5 s.

On the bench broker (started here if nothing answers there, and stopped again):
one real worker (``python -m streams.cli worker``, every stage, the explorer's
index fed in the worker) routes 1,100 similar support tickets, all accepted
(revision 1, the model's). Once the index has them, the bench asks the
worker's web server for a bulk label of the 1,000 events most like the first
(``POST /explorer/api/bulk/apply`` with ``similar_to``, behind the operator
token) and reads ``labels`` with the SDK's :class:`~streams.sdk.LabelReader`
until every revision of the action is there. The figure is the time from the
request to the last revision read.

The goal holds when, within 5 s, exactly 1,000 records of the action are on
``labels``, one per event, each the event's only record at its revision and
its latest (revision 2, superseding 1).

Row: that time against publishing the same 1,000 Labels straight onto a
topic of the same broker (``streams.snapshot.publish_labels``): what the
explorer's path (selection, action log, orders, the ledger) costs over a
plain produce. Absolute times are noisy on a shared machine.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.harness import Goal, Row
from bench.workers import BenchLoop, bench_broker, bench_settings, run_name
from schemas import Label, PredictionEvent, PredictionInput
from streams.sdk import LabelReader, PredictionPublisher
from streams.settings import Settings
from streams.snapshot import create_label_topic, publish_labels

EVENTS = 1_100
BULK = 1_000
GOAL_S = 5.0
TOKEN = "bench-e3-token"
START = datetime(2026, 1, 1, tzinfo=UTC)
WAIT_S = 180.0
#: Events of the warm-up action: enough to touch every partition (P(one missed) < 1e-4 with 4).
WARMUP = 40


def tickets(events: int = EVENTS) -> list[PredictionEvent]:
    """``events`` near-identical tickets about one outage, each predicted surely (so accepted)."""
    floors = ("first", "second", "third", "fourth", "fifth")
    return [
        PredictionEvent(
            event_id=f"ticket-{number:05d}",
            model_name="tickets",
            model_version="1",
            task="support",
            created_at=START + timedelta(milliseconds=number),
            input=PredictionInput(
                text=f"The printer on the {floors[number % 5]} floor is offline again, ticket {number}"
            ),
            predicted_label="hardware",
            scores={"hardware": 0.99, "software": 0.01},
        )
        for number in range(events)
    ]


def warmups(events: int = WARMUP) -> list[PredictionEvent]:
    """Events of another task, one bulk label over them before the measured one (see :func:`run`)."""
    return [
        PredictionEvent(
            event_id=f"warmup-{number:03d}",
            model_name="tickets",
            model_version="1",
            task="warmup",
            created_at=START + timedelta(milliseconds=number),
            input=PredictionInput(text=f"an unrelated request number {number}"),
            predicted_label="other",
            scores={"other": 0.99, "hardware": 0.01},
        )
        for number in range(events)
    ]


def _web_port(loop: BenchLoop, timeout_s: float = WAIT_S) -> int:
    deadline = time.monotonic() + timeout_s
    log = loop.home / "worker-0.log"
    while time.monotonic() < deadline:
        found = (
            re.search(r"worker web server on http://[^:]+:(\d+)/", log.read_text(errors="replace"))
            if log.exists()
            else None
        )
        if found is not None:
            return int(found.group(1))
        loop.check_alive("before its web server started")
        time.sleep(0.2)
    raise TimeoutError(f"the worker's web server never started:\n{loop.logs_tail()}")


def _call(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _wait_indexed(loop: BenchLoop, port: int, events: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            found = _call(port, "GET", "/explorer/api/records?source=model&per_page=1")
            if found["total"] >= events:
                return
        loop.check_alive("while the index filled")
        time.sleep(0.5)
    raise TimeoutError(f"the index never had {events} labeled events:\n{loop.logs_tail()}")


def _read_until(
    settings: Settings, action_id: str, count: int, timeout_s: float, *, undo: bool = False
) -> tuple[list[Label], float]:
    """Every Label on ``labels`` until ``count`` of ``action_id``'s are in (or ``timeout_s``), and when.

    ``undo``: count the revisions of the action's undo instead of its own.
    """
    seen: list[Label] = []
    mine = 0
    last_s = float("inf")
    reader = LabelReader(settings)
    deadline = time.monotonic() + timeout_s
    try:
        while mine < count and time.monotonic() < deadline:
            for label in reader.poll(0.2):
                seen.append(label)
                if label.provenance.action_id == action_id and _is_undo(label) == undo:
                    mine += 1
                    last_s = time.monotonic()
                    if mine == 1:
                        FIRST_SEEN.append(last_s)
    finally:
        reader.close()
    return seen, last_s


#: When each :func:`_read_until` saw its first revision (monotonic seconds).
FIRST_SEEN: list[float] = []


def _latest_of(labels: list[Label]) -> dict[str, Label]:
    latest: dict[str, Label] = {}
    for label in labels:
        if label.event_id not in latest or label.revision > latest[label.event_id].revision:
            latest[label.event_id] = label
    return latest


def _is_undo(label: Label) -> bool:
    return (label.provenance.operator_reason or "").startswith("undo of")


def run(events: int = EVENTS, bulk: int = BULK) -> tuple[list[Row], list[Goal]]:
    """One worker, ``events`` tickets, a bulk label of ``bulk`` of them; topics deleted afterwards."""
    with bench_broker() as broker:
        settings = bench_settings(broker.bootstrap, run_name("e3"))
        loop = BenchLoop(
            settings,
            {
                "LABELLOOP_OPERATOR__TOKEN": TOKEN,
                "LABELLOOP_EXPLORER__BULK_CAP": str(bulk),
                # Every ticket accepted: no control group, the smallest audit the settings allow.
                "LABELLOOP_ROUTER__CONTROL_SHARE": "0",
                "LABELLOOP_ROUTER__AUDIT__RATE": "0.000001",
            },
        )
        try:
            loop.create()
            loop.start_worker()
            port = _web_port(loop)
            with PredictionPublisher(settings) as publisher:
                for event in tickets(events) + warmups():
                    publisher.publish(event)
            _wait_indexed(loop, port, events + WARMUP)
            # Warm-up: the first revision a worker publishes on a partition makes its label ledger
            # read that partition's recent tail once (streams/ledger.py). A worker of a live loop has
            # done so long before (the aggregator publishes on every partition); this one, whose
            # events were all accepted, has not: one action on other events does it, timed apart.
            started = time.monotonic()
            warm = {"filter": {"task": "warmup"}, "label": "warm", "operator": "bench", "reason": "warm-up"}
            warm_action = _call(port, "POST", "/explorer/api/bulk/apply", warm)
            _, warm_last = _read_until(
                settings, warm_action["action_id"], warm_action["count"], timeout_s=60.0
            )
            warm_s = warm_last - started
            body = {
                "similar_to": "ticket-00000",
                "k": bulk,
                "label": "outage",
                "operator": "bench",
                "reason": "E3",
            }
            started = time.monotonic()
            action = _call(port, "POST", "/explorer/api/bulk/apply", body)
            applied_s = time.monotonic() - started
            labels, last = _read_until(settings, action["action_id"], action["count"], timeout_s=60.0)
            landed_s = last - started
            first_s = FIRST_SEEN[-1] - started
            # The baseline: the same number of Labels published straight onto a topic.
            baseline_topic = f"{settings.topics.prefix}e3-baseline"
            create_label_topic(settings, baseline_topic)
            plain = [label for label in labels if label.provenance.action_id == action["action_id"]]
            started = time.monotonic()
            publish_labels(settings, baseline_topic, plain)
            baseline_s = time.monotonic() - started
            loop.check_alive("after the bulk label")
            # Its undo: a further revision for each event, restoring the model's label.
            started = time.monotonic()
            undo = _call(
                port, "POST", f"/explorer/api/bulk/{action['action_id']}/undo", {"operator": "bench"}
            )
            undone, undo_last = _read_until(settings, action["action_id"], undo["count"], 60.0, undo=True)
            undo_s = undo_last - started

        finally:
            loop.close()
    mine = [
        label for label in labels if label.provenance.action_id == action["action_id"] and not _is_undo(label)
    ]
    restored = _latest_of(undone)
    undo_ok = undo["count"] == len(mine) and all(
        restored[label.event_id].label == "hardware"
        and restored[label.event_id].revision == label.revision + 1
        for label in mine
    )
    per_revision = Counter((label.event_id, label.revision) for label in labels)
    latest = _latest_of(labels)
    once = len({label.event_id for label in mine}) == len(mine)
    latest_ok = all(
        latest[label.event_id] == label and per_revision[(label.event_id, label.revision)] == 1
        for label in mine
    )
    revisions = {(label.revision, label.supersedes) for label in mine}
    holds = len(mine) == bulk and action["count"] == bulk and once and latest_ok and landed_s <= GOAL_S
    rows = [
        Row(
            "explorer bulk label of 1,000 landed (s)", landed_s, baseline_s, "s", "plain publish of the same"
        ),
        Row("explorer bulk label, request answered (s)", applied_s, landed_s, "s", "all revisions landed"),
        Row("explorer bulk label, first revision read (s)", first_s, landed_s, "s", "all revisions landed"),
        Row(f"explorer first bulk label ({WARMUP}) landed (s)", warm_s, landed_s, "s", "the measured one"),
        Row(
            f"explorer undo of the bulk label landed (s){'' if undo_ok else ' WRONG'}",
            undo_s,
            landed_s,
            "s",
            "the bulk label",
        ),
    ]
    goal = Goal(
        "E3",
        f"{len(mine):,} revisions of {action['count']:,} ordered "
        f"(the selection by similarity gave {action['count'] + action['unchanged']:,} of {bulk:,}) "
        f"landed in {landed_s:.2f}s; "
        f"{'each event once' if once else 'DUPLICATES'}, "
        f"{'each the latest' if latest_ok else 'NOT ALL LATEST'} (revision, supersedes: {sorted(revisions)})",
        f"{bulk:,} new revisions, each event once as the latest revision on labels, within {GOAL_S:.0f} s",
        holds,
    )
    return rows, [goal]


def main() -> None:
    rows, goals = run()
    for row in rows:
        print(f"{row.name}: {row.figure:.3f} {row.unit} ({row.baseline_name}: {row.baseline:.3f} {row.unit})")
    for goal in goals:
        print(goal.line())


if __name__ == "__main__":
    main()
