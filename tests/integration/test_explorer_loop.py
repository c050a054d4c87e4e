"""The record explorer on the whole loop: a real worker on Kafka indexes, corrects, bulk-labels and undoes.

Events flow through a real worker (router, simulated crowd, aggregator, the explorer's indexer
and publisher); the explorer finds them by text and by filter; a correction and a bulk label
become revisions on ``labels`` that the SDK's LabelReader sees, each event keeping exactly one
latest revision; the router's estimators count the corrected control label once; the bulk label
is undone; the filter's export is ``labelloop export``'s snapshot of the same Labels; and an
index rebuilt from the topics equals the live one.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agents.explorer.indexer import rebuild
from agents.explorer.revise import partition_of
from agents.explorer.store import IndexStore
from agents.simulation.stream import SimulatedEvent
from schemas import Label, ModelMetrics, PredictionEvent, PredictionInput
from streams.sdk import LabelReader, PredictionPublisher
from streams.snapshot import build_snapshot
from streams.topics import topic_names
from tests.integration.conftest import LoopUnderTest, TopicWatcher, publish_with_truth

pytestmark = pytest.mark.kafka

TOKEN = "loop-explorer-token"
START = datetime(2026, 1, 1, tzinfo=UTC)
REFUNDS = 16
PRINTERS = 24
WAIT_S = 120.0


def _events() -> list[SimulatedEvent]:
    """Refund tickets the model is unsure of (reviews), printer tickets it is sure of (accepted, control)."""
    made: list[SimulatedEvent] = []
    for n in range(REFUNDS + PRINTERS):
        refund = n < REFUNDS
        predicted = "billing" if refund else "hardware"
        confidence = 0.6 if refund else 0.95
        event = PredictionEvent(
            event_id=f"tk-{n:03d}",
            model_name="tickets",
            model_version="1",
            created_at=START + timedelta(seconds=n),
            input=PredictionInput(
                text=f"Please refund order {n}, it never came"
                if refund
                else f"Printer {n} on floor 2 is offline"
            ),
            predicted_label=predicted,
            scores={predicted: confidence, "software": round(1 - confidence, 6)},
        )
        made.append(SimulatedEvent(index=n, event=event, truth=predicted))
    return made


class Web:
    """The worker's web server, with the operator token."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def wait(self, path: str, done: Callable[[Any], bool], what: str, logs: Callable[[], str]) -> Any:
        deadline = time.monotonic() + WAIT_S
        found: Any = None
        while time.monotonic() < deadline:
            try:
                found = self.call("GET", path)
            except (urllib.error.URLError, ConnectionError):
                found = None
            if found is not None and done(found):
                return found
            time.sleep(0.3)
        pytest.fail(f"timed out waiting for {what}; last answer {found}\n{logs()[-6_000:]}")


def _labels(watcher: TopicWatcher, topic: str) -> list[Label]:
    return [Label.from_json_bytes(record.value or b"") for record in watcher.records[topic]]


def _latest(labels: list[Label]) -> dict[str, Label]:
    latest: dict[str, Label] = {}
    for label in labels:
        if label.event_id not in latest or label.revision > latest[label.event_id].revision:
            latest[label.event_id] = label
    return latest


def _one_latest_each(labels: list[Label]) -> None:
    """No event has two records under one revision (so its latest revision is one Label)."""
    doubled = [key for key, count in Counter((x.event_id, x.revision) for x in labels).items() if count > 1]
    assert doubled == []


def _read_with_sdk(loop: LoopUnderTest, done: Callable[[list[Label]], bool]) -> list[Label]:
    """Every Label on ``labels`` as the SDK's LabelReader reads them, until ``done``."""
    seen: list[Label] = []
    reader = LabelReader(loop.settings)
    deadline = time.monotonic() + WAIT_S
    try:
        while not done(seen):
            assert time.monotonic() < deadline, f"the LabelReader never saw it\n{loop.worker_logs()[-6_000:]}"
            seen += reader.poll(0.3)
    finally:
        reader.close()
    return seen


def _precision(watcher: TopicWatcher, topic: str) -> tuple[float, int] | None:
    """The latest auto-accept precision estimate on ``model-metrics`` and its number of labels."""
    found = None
    for record in watcher.records[topic]:
        metrics = ModelMetrics.from_json_bytes(record.value or b"")
        estimate = metrics.metrics.get("auto_accept_precision")
        if metrics.kind == "production" and estimate is not None:
            found = (estimate.value, estimate.n)
    return found


def test_the_explorer_finds_corrects_bulk_labels_undoes_and_rebuilds(
    loop_under_test: Callable[..., LoopUnderTest], tmp_path: Path
) -> None:
    loop = loop_under_test(
        LABELLOOP_OPERATOR__TOKEN=TOKEN,
        LABELLOOP_EXPLORER__ENABLED="true",
        LABELLOOP_ROUTER__ACCEPT_THRESHOLD="0.8",
        LABELLOOP_ROUTER__CONTROL_SHARE="0.5",
    )
    names = topic_names(loop.settings)
    events = _events()
    watcher = TopicWatcher(loop.settings, names.labels, names.model_metrics)
    try:
        loop.start_worker()
        web = Web(loop.web_port())
        with PredictionPublisher(loop.settings) as publisher:
            publish_with_truth(publisher, names.truth, events)
        watcher.wait_for(
            lambda: len(_latest(_labels(watcher, names.labels))) == len(events),
            WAIT_S,
            "a label for every event",
            loop.worker_logs,
        )
        # Let the loop settle (escalations and expert audits add revisions for a moment).
        settled = (-1, time.monotonic())
        while time.monotonic() - settled[1] < 3.0:
            watcher.poll()
            if watcher.count(names.labels) != settled[0]:
                settled = (watcher.count(names.labels), time.monotonic())
        first = _latest(_labels(watcher, names.labels))
        control = sorted(event_id for event_id, label in first.items() if label.route == "control")
        assert control, "the control share sent no printer ticket to the crowd"

        # Found by text and by filter, once the index has every label.
        web.wait(
            "/explorer/api/records?per_page=1",
            lambda page: page["total"] == len(events),
            "the index",
            loop.worker_logs,
        )
        refunds = web.call("GET", "/explorer/api/records?q=refund&per_page=100")
        assert refunds["total"] == REFUNDS
        assert {row["event_id"] for row in refunds["rows"]} == {f"tk-{n:03d}" for n in range(REFUNDS)}
        by_route = web.call("GET", "/explorer/api/records?route=control&per_page=100")
        assert sorted(row["event_id"] for row in by_route["rows"]) == control
        assert by_route["facets"]["route"] == {"control": len(control)}

        # The estimators counted each control label once.
        def expected() -> tuple[float, int]:
            latest = _latest(_labels(watcher, names.labels))
            right = sum(
                latest[event_id].label == latest[event_id].provenance.model_label for event_id in control
            )
            return (right / len(control), len(control))

        watcher.wait_for(
            lambda: _precision(watcher, names.model_metrics) == pytest.approx(expected()),
            WAIT_S,
            "the precision estimate over every control label",
            loop.worker_logs,
        )

        # A correction of one control label: the model was right, the operator says it was not.
        target = control[0]
        fixed = web.call(
            "POST",
            "/explorer/api/corrections",
            {
                "event_id": target,
                "label": "software",
                "reason": "driver bug, not hardware",
                "operator": "ana",
            },
        )["revision"]
        assert (fixed["revision"], fixed["source"]) == (first[target].revision + 1, "expert")

        # A bulk label of the refund tickets.
        action = web.call(
            "POST",
            "/explorer/api/bulk/apply",
            {"filter": {"q": "refund"}, "label": "refund-request", "operator": "bo", "reason": "one queue"},
        )
        assert action["count"] == REFUNDS

        def landed(seen: list[Label]) -> bool:
            latest = _latest(seen)
            return (
                latest.get(target) is not None
                and latest[target].provenance.operator == "ana"
                and sum(label.provenance.action_id == action["action_id"] for label in latest.values())
                == REFUNDS
            )

        seen = _read_with_sdk(loop, landed)
        _one_latest_each(seen)
        # Every Label went to its key's partition, the one the explorer's orders are routed to.
        watcher.poll()
        assert all(
            record.partition == partition_of(record.key.decode(), 4)
            for record in watcher.records[names.labels]
            if record.key is not None
        )
        latest = _latest(seen)
        assert latest[target].label == "software"
        assert latest[target].provenance.operator_reason == "driver bug, not hardware"
        assert {latest[f"tk-{n:03d}"].label for n in range(REFUNDS)} == {"refund-request"}

        # The estimators count the correction as a revision of the same sample: n unchanged, the
        # corrected control event now says the model was wrong.
        watcher.wait_for(
            lambda: (
                _latest(_labels(watcher, names.labels))[target].label == "software"
                and _precision(watcher, names.model_metrics) == pytest.approx(expected())
            ),
            WAIT_S,
            "the precision estimate to take the correction in, once",
            loop.worker_logs,
        )
        assert expected()[0] < 1.0

        # Undo the bulk label: each refund ticket gets its previous label back, as a further revision.
        bulk = {
            label.event_id: label
            for label in latest.values()
            if label.provenance.action_id == action["action_id"]
        }
        before = {(label.event_id, label.revision): label for label in seen}
        web.wait(
            "/explorer/api/records?q=refund&per_page=100",
            lambda page: {row["trusted"] for row in page["rows"]} == {"refund-request"},
            "the index to see the bulk label",
            loop.worker_logs,
        )
        undo = web.call("POST", f"/explorer/api/bulk/{action['action_id']}/undo", {"operator": "bo"})
        assert undo == {"action_id": action["action_id"], "count": REFUNDS, "left": 0}

        def undone(seen: list[Label]) -> bool:
            latest = _latest(seen)
            return all(
                event_id in latest and latest[event_id].revision == label.revision + 1
                for event_id, label in bulk.items()
            )

        seen = _read_with_sdk(loop, undone)
        _one_latest_each(seen)
        latest = _latest(seen)
        for event_id, label in bulk.items():
            assert label.supersedes is not None
            prior = before[(event_id, label.supersedes)]
            assert (latest[event_id].label, latest[event_id].source) == (prior.label, prior.source)
            assert latest[event_id].provenance.operator == "bo"

        # The export of a filter is the snapshot `labelloop export` makes of the same Labels.
        web.wait(
            "/explorer/api/records?per_page=100",
            lambda page: all(row["revision"] == latest[row["event_id"]].revision for row in page["rows"]),
            "the index to see every revision",
            loop.worker_logs,
        )
        manifest = web.call("GET", "/explorer/api/export?q=printer")
        printers = [latest[f"tk-{n:03d}"] for n in range(REFUNDS, REFUNDS + PRINTERS)]
        assert manifest["content_hash"] == build_snapshot(printers, topic=names.labels).content_hash

        # An index rebuilt from the topics equals the live one.
        live = IndexStore(f"sqlite:///{loop.data_dirs[0] / 'explorer.sqlite3'}")
        rebuilt = IndexStore(f"sqlite:///{tmp_path / 'rebuilt.sqlite3'}")
        rebuild(loop.settings, rebuilt)
        deadline = time.monotonic() + WAIT_S
        while live.dump() != rebuilt.dump():
            assert time.monotonic() < deadline, "the live index never equalled the rebuilt one"
            time.sleep(0.5)
            rebuild(loop.settings, rebuilt)
    finally:
        watcher.close()
