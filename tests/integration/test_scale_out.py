"""Scale-out on the real broker: three workers share the partitions; one is SIGKILLed mid-stream.

The survivors take the dead worker's partitions over (after the group's
session timeout, 10 s in the fixture), restore its table state from the
changelogs, and every event still ends with exactly one revision-1 Label.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Callable

import pytest

from agents.simulation.stream import StreamSettings, simulate
from schemas import Label
from streams.sdk import PredictionPublisher
from streams.topics import topic_names
from tests.integration.conftest import LoopUnderTest, TopicWatcher, publish_with_truth

# Not in `make test` (its own target, `make test-scale-out`, which CI runs): three workers and a
# SIGKILL take one to two minutes, past the 10-minute budget's share (see docs/scale-out.md).
pytestmark = [pytest.mark.kafka, pytest.mark.scaleout]

WORKERS = 3
EVENTS = 900
#: The whole test, three worker starts and a rebalance included, on a 2-core machine.
BUDGET_S = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _assignment(port: int) -> dict[str, list[int]] | None:
    """The worker's active partitions per topic (faust's ``/assignment/``), None if not answering."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/assignment/", timeout=2) as response:
            actives: dict[str, list[int]] = json.load(response)["actives"]
            return actives
    except (OSError, ValueError, KeyError):
        return None


def _batch_owned(loop: LoopUnderTest, index: int) -> set[int] | None:
    """The partitions the worker's batch path (the router, the label readers) owns, by its last log line."""
    found = re.findall(r"batches: partitions \[([\d, ]*)\] of", _log_of(loop, index))
    return {int(number) for number in re.findall(r"\d+", found[-1])} if found else None


def _log_of(loop: LoopUnderTest, index: int) -> str:
    return (loop.log_dir / f"worker-{index}.log").read_text(errors="replace")


def test_three_workers_share_partitions_and_survive_a_sigkill(
    loop_under_test: Callable[..., LoopUnderTest],
) -> None:
    started = time.monotonic()
    loop = loop_under_test(
        LABELLOOP_ROUTER__ACCEPT_THRESHOLD="0.7",
        # faust's web server on a distinct port per worker, with its /assignment/ view
        # (faust reads APP_WEB_STATS_ENABLED from the environment; off unless in debug mode).
        LABELLOOP_WEB_ENABLED="true",
        APP_WEB_STATS_ENABLED="true",
    )
    names = topic_names(loop.settings)
    partitions = loop.settings.topics.partitions
    assert partitions >= WORKERS + 1, "the dead worker's partitions must have somewhere to go"
    stream = list(simulate(StreamSettings(events=EVENTS, train_size=300, run_id=loop.settings.app_id)))
    watcher = TopicWatcher(loop.settings, names.labels)
    processes: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    try:
        # Same app id (consumer group) and topic prefix for all three; a web port each.
        for _ in range(WORKERS):
            ports.append(_free_port())
            loop.env["LABELLOOP_WEB_PORT"] = str(ports[-1])
            processes.append(loop.start_worker())

        def spread() -> bool:
            # faust's group (label-requests, crowd-answers, ...) and the batch path's (predictions,
            # labels) each share the partitions among all three.
            owned = [(_assignment(port) or {}).get(names.label_requests, []) for port in ports]
            batched = [_batch_owned(loop, index) or set() for index in range(WORKERS)]
            return all(
                all(parts) and sorted(p for part in parts for p in part) == list(range(partitions))
                for parts in (owned, batched)
            )

        deadline = time.monotonic() + 90
        while not spread():
            exited = [index for index, process in enumerate(processes) if process.poll() is not None]
            assert not exited, f"workers {exited} exited at start\n" + loop.worker_logs()[-4_000:]
            assert time.monotonic() < deadline, (
                "three workers never shared the partitions\n" + (loop.worker_logs()[-4_000:])
            )
            time.sleep(0.5)
        before = [_batch_owned(loop, index) or set() for index in range(WORKERS)]

        with PredictionPublisher(loop.settings) as publisher:
            publish_with_truth(publisher, names.truth, stream[: EVENTS // 2])
            watcher.wait_for(
                lambda: watcher.count(names.labels) >= EVENTS // 6, 90, "the first labels", loop.worker_logs
            )
            # Kill, mid-stream, a worker that holds partitions: no flush, no commit, no goodbye.
            victim = max(range(WORKERS), key=lambda index: len(before[index]))
            loop.stop_worker(processes[victim], signal.SIGKILL)
            labeled_at_kill = watcher.count(names.labels)
            publish_with_truth(publisher, names.truth, stream[EVENTS // 2 :])
        survivors = [index for index in range(WORKERS) if index != victim]

        def labels() -> list[Label]:
            return [Label.from_json_bytes(record.value or b"") for record in watcher.records[names.labels]]

        watcher.wait_for(
            lambda: len({label.event_id for label in labels()}) >= len(stream),
            BUDGET_S - (time.monotonic() - started),
            "every label after a SIGKILL",
            loop.worker_logs,
        )
        for _ in range(15):  # a late duplicate (a re-routed or re-aggregated event) would show now
            watcher.poll()
        after = {index: _batch_owned(loop, index) or set() for index in survivors}
        faust_after = {
            index: set((_assignment(ports[index]) or {}).get(names.label_requests, [])) for index in survivors
        }
    finally:
        watcher.close()
    elapsed = time.monotonic() - started

    all_labels = labels()
    first = Counter(label.event_id for label in all_labels if label.revision == 1)
    expected = {simulated.event.event_id for simulated in stream}
    assert set(first) == expected, (
        f"lost: {sorted(expected - set(first))[:5]}, unknown: {sorted(set(first) - expected)[:5]}"
    )
    twice = [event_id for event_id, n in first.items() if n > 1]
    doubled = [
        (label.event_id, label.source, label.route, label.label, label.decided_at.isoformat())
        for label in all_labels
        if label.revision == 1 and label.event_id in twice[:3]
    ]
    assert not twice, f"{len(twice)} events with two revision-1 labels, e.g. {doubled}"
    revisions = Counter((label.event_id, label.revision) for label in all_labels)
    assert max(revisions.values()) == 1, "a revision published twice"

    # The survivors took the dead worker's partitions over: between them they own them all now.
    assert before[victim], f"the victim owned no partition: {before}"
    assert sorted(p for index in survivors for p in after[index]) == list(range(partitions)), after
    assert sorted(p for index in survivors for p in faust_after[index]) == list(range(partitions)), (
        faust_after
    )
    assert any(after[index] - before[index] for index in survivors), (before, after)
    # ...and their logs say so: each survivor logged a later assignment, and together those hold
    # every partition the victim had.
    for index in survivors:
        logged = re.findall(r"batches: partitions \[[\d, ]*\] of", _log_of(loop, index))
        assert len(logged) >= 2, f"worker {index} logged no new assignment\n{_log_of(loop, index)[-3_000:]}"
    assert before[victim] <= set().union(*after.values()), (before, after)
    assert 0 < labeled_at_kill < len(stream), "the kill was not in the middle of the stream"
    assert elapsed < BUDGET_S, f"took {elapsed:.0f}s"
