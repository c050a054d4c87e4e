"""A drift alert leads to a published reaction (a PolicyCommand the router applies) and to its revert."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest

from agents.simulation.stream import SimulatedEvent
from schemas import DriftAlert, PolicyCommand, PolicyStatus, PredictionEvent, PredictionInput
from streams.sdk import PredictionPublisher
from streams.topics import topic_names
from tests.integration.conftest import LoopUnderTest, TopicWatcher, publish_with_truth

pytestmark = pytest.mark.kafka


def events(rng: random.Random, first: int, count: int, low: float, high: float) -> list[SimulatedEvent]:
    """Confident "positive" predictions with confidence drawn from [low, high] (the truth agrees)."""
    made = []
    for index in range(first, first + count):
        confidence = round(rng.uniform(low, high), 6)
        event = PredictionEvent(
            event_id=f"drift-{index:05d}",
            model_name="sea",
            model_version="1",
            created_at=datetime.now(UTC),
            input=PredictionInput(features={"x": rng.random()}),
            predicted_label="positive",
            scores={"positive": confidence, "negative": round(1.0 - confidence, 6)},
        )
        made.append(SimulatedEvent(index=index, event=event, truth="positive"))
    return made


#: A loop where everything is auto-accepted before a reaction (no human sees the first events),
#: with a small KS window tested at every confidence, so a few hundred events show the change.
DRIFT_ENV = {
    "LABELLOOP_MONITOR__RESPONSE__ENABLED": "true",
    "LABELLOOP_ROUTER__ACCEPT_THRESHOLD": "0.5",
    "LABELLOOP_ROUTER__CONTROL_SHARE": "0",
    "LABELLOOP_MONITOR__KS_WINDOW": "100",
    "LABELLOOP_MONITOR__KS_RECENT": "30",
    "LABELLOOP_MONITOR__KS_TEST_EVERY": "1",
    "LABELLOOP_MONITOR__KS_ALPHA": "0.0001",
    "LABELLOOP_MONITOR__MIN_OBSERVATIONS": "50",
    "LABELLOOP_MONITOR__RESPONSE__CONTROL_SHARE": "0.3",
    "LABELLOOP_MONITOR__RESPONSE__TIGHTEN_BY": "0.1",
    "LABELLOOP_MONITOR__RESPONSE__WINDOW_S": "5",
    "LABELLOOP_MONITOR__RESPONSE__SETTLE_S": "3",
}

M = TypeVar("M", PolicyCommand, PolicyStatus, DriftAlert)


def read(watcher: TopicWatcher, model: type[M], topic: str) -> list[M]:
    """Every record of ``topic`` the watcher saw, decoded as ``model``."""
    return [model.from_json_bytes(record.value or b"") for record in watcher.records[topic]]


def reverts(commands: list[PolicyCommand]) -> list[PolicyCommand]:
    """The drift response's reverts among ``commands``."""
    return [command for command in commands if command.reason.startswith("drift response settled")]


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An operators' webhook on a free port: the URL and the JSON documents POSTed to it."""
    received: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/drift", received
    finally:
        server.shutdown()
        server.server_close()


def test_a_confidence_drift_raises_the_control_share_and_the_reaction_reverts(
    loop_under_test: Callable[..., LoopUnderTest], webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, notified = webhook
    loop = loop_under_test(LABELLOOP_MONITOR__RESPONSE__NOTIFY_URL=url, **DRIFT_ENV)
    names = topic_names(loop.settings)
    rng = random.Random(11)
    steady, drifted = events(rng, 0, 400, 0.95, 1.0), events(rng, 400, 400, 0.6, 0.7)
    watcher = TopicWatcher(
        loop.settings, names.labels, names.drift_alerts, names.commands, names.policy_status
    )

    def commands() -> list[PolicyCommand]:
        return read(watcher, PolicyCommand, names.commands)

    def statuses() -> list[PolicyStatus]:
        return read(watcher, PolicyStatus, names.policy_status)

    try:
        loop.start_worker()
        watcher.wait_for(lambda: len(statuses()) >= 1, 90, "the policy at start", loop.worker_logs)
        with PredictionPublisher(loop.settings) as publisher:
            publish_with_truth(publisher, names.truth, steady)
            watcher.wait_for(
                lambda: watcher.count(names.labels) >= len(steady),
                120,
                "the steady labels",
                loop.worker_logs,
            )
            assert watcher.count(names.drift_alerts) == 0, "an alert before the drift"
            publish_with_truth(publisher, names.truth, drifted)
        watcher.wait_for(lambda: len(commands()) >= 1, 120, "the drift response", loop.worker_logs)
        watcher.wait_for(lambda: bool(reverts(commands())), 60, "the response's revert", loop.worker_logs)
        watcher.wait_for(
            lambda: "settled" in statuses()[-1].reason,
            60,
            "the router applying the revert",
            loop.worker_logs,
        )
    finally:
        watcher.close()

    alerts = read(watcher, DriftAlert, names.drift_alerts)
    confidence = [alert for alert in alerts if alert.signal == "confidence"]
    assert confidence, f"no confidence alert in {alerts}"
    first = confidence[0]
    assert (first.detector, first.detector_kind) == ("ks-confidence-default", "KS-window")
    assert first.observation > len(steady)
    assert first.before > 0.9
    assert first.after < first.before - 0.1  # the newest 30 confidences, some of them new
    assert first.source_offset is not None
    assert first.source_partition is not None

    # Between the raise and the revert, more alerts may each publish an extension (no changes).
    raised, *extensions = [c for c in commands() if c not in reverts(commands())]
    (reverted,) = reverts(commands())
    assert all(c.reason.startswith("drift response extended") for c in extensions)
    assert all(c.control_share is None and c.accept_threshold is None for c in extensions)
    assert (raised.issued_by, raised.control_share, raised.accept_threshold) == ("monitor", 0.3, 0.6)
    assert "ks-confidence-default" in raised.reason
    assert (reverted.issued_by, reverted.control_share, reverted.accept_threshold) == ("monitor", 0.0, 0.5)
    assert "settled" in reverted.reason
    assert raised.issued_at < reverted.issued_at

    start, during, after = statuses()[0], statuses()[1], statuses()[-1]
    assert (start.control_share, start.accept_threshold) == (0.0, 0.5)
    assert (during.control_share, during.accept_threshold, during.reason) == (0.3, 0.6, raised.reason)
    assert (after.control_share, after.accept_threshold, after.reason) == (0.0, 0.5, reverted.reason)
    assert start.version < during.version < after.version == during.version + len(extensions) + 1

    # Operators were told both, with the commands as published.
    kinds = [document["kind"] for document in notified]
    assert "raise" in kinds
    assert "revert" in kinds
    raised_note = next(document for document in notified if document["kind"] == "raise")
    assert raised_note["command"]["reason"] == raised.reason


def test_a_reaction_raised_before_a_restart_still_reverts(
    loop_under_test: Callable[..., LoopUnderTest],
) -> None:
    # A window long enough for the first worker to be stopped while the reaction is in force.
    loop = loop_under_test(**{**DRIFT_ENV, "LABELLOOP_MONITOR__RESPONSE__WINDOW_S": "20"})
    names = topic_names(loop.settings)
    rng = random.Random(12)
    steady, drifted = events(rng, 0, 400, 0.95, 1.0), events(rng, 400, 400, 0.6, 0.7)
    watcher = TopicWatcher(loop.settings, names.labels, names.commands, names.policy_status)
    try:
        first = loop.start_worker()
        watcher.wait_for(
            lambda: len(read(watcher, PolicyStatus, names.policy_status)) >= 1,
            90,
            "the policy at start",
            loop.worker_logs,
        )
        with PredictionPublisher(loop.settings) as publisher:
            publish_with_truth(publisher, names.truth, steady)
            watcher.wait_for(
                lambda: watcher.count(names.labels) >= len(steady),
                120,
                "the steady labels",
                loop.worker_logs,
            )
            publish_with_truth(publisher, names.truth, drifted)
        watcher.wait_for(
            lambda: any(s.control_share == 0.3 for s in read(watcher, PolicyStatus, names.policy_status)),
            120,
            "the raised policy",
            loop.worker_logs,
        )
        assert loop.stop_worker(first) == 0
        watcher.poll()
        assert not reverts(read(watcher, PolicyCommand, names.commands)), "reverted before the restart"
        loop.start_worker()
        watcher.wait_for(
            lambda: bool(reverts(read(watcher, PolicyCommand, names.commands))),
            90,
            "the revert by the restarted worker",
            loop.worker_logs,
        )
        watcher.wait_for(
            lambda: read(watcher, PolicyStatus, names.policy_status)[-1].control_share == 0.0,
            60,
            "the router applying the revert",
            loop.worker_logs,
        )
    finally:
        watcher.close()
    raised = read(watcher, PolicyCommand, names.commands)[0]
    (reverted,) = reverts(read(watcher, PolicyCommand, names.commands))
    assert raised.control_share == 0.3
    assert (reverted.control_share, reverted.accept_threshold) == (0.0, 0.5)
    assert "settled" in reverted.reason
    # Reverted once the window had passed since the raise, not at once on the new worker's start.
    assert (reverted.issued_at - raised.issued_at).total_seconds() >= 20


def reviewed_events(
    rng: random.Random, first: int, count: int, negative_error: float
) -> list[SimulatedEvent]:
    """Unsure predictions (all reviewed), a fifth of them "negative"; the model errs on 3% of the
    "positive" ones and on ``negative_error`` of the "negative" ones (the truth disagrees)."""
    made = []
    for index in range(first, first + count):
        predicted = "negative" if rng.random() < 0.2 else "positive"
        other = "positive" if predicted == "negative" else "negative"
        error = rng.random() < (negative_error if predicted == "negative" else 0.03)
        confidence = round(rng.uniform(0.55, 0.7), 6)
        event = PredictionEvent(
            event_id=f"class-drift-{index:05d}",
            model_name="sea",
            model_version="1",
            created_at=datetime.now(UTC),
            input=PredictionInput(features={"x": rng.random()}),
            predicted_label=predicted,
            scores={predicted: confidence, other: round(1.0 - confidence, 6)},
        )
        made.append(SimulatedEvent(index=index, event=event, truth=other if error else predicted))
    return made


def test_a_model_error_drift_within_one_predicted_class_is_alerted_with_the_class(
    loop_under_test: Callable[..., LoopUnderTest],
) -> None:
    # Every event is reviewed by a crowd that always answers the truth, so each label's
    # model_was_right is the production model's error; after the drift only "negative" errs more.
    loop = loop_under_test(
        LABELLOOP_ROUTER__ACCEPT_THRESHOLD="0.9",
        LABELLOOP_ROUTER__CONTROL_SHARE="0",
        LABELLOOP_MONITOR__MIN_OBSERVATIONS="50",
        LABELLOOP_POOLS__SIMULATED__MIN_ACCURACY="1.0",
        LABELLOOP_POOLS__SIMULATED__MAX_ACCURACY="1.0",
        LABELLOOP_POOLS__SIMULATED__CLASS_ACCURACY_SPREAD="0",
        LABELLOOP_POOLS__SIMULATED__CARELESS_SHARE="0",
        LABELLOOP_POOLS__SIMULATED__SPAMMER_SHARE="0",
    )
    names = topic_names(loop.settings)
    rng = random.Random(13)
    steady, drifted = reviewed_events(rng, 0, 600, 0.03), reviewed_events(rng, 600, 600, 0.6)
    watcher = TopicWatcher(loop.settings, names.labels, names.drift_alerts)

    def error_alerts() -> list[DriftAlert]:
        alerts = read(watcher, DriftAlert, names.drift_alerts)
        return [alert for alert in alerts if alert.signal == "model_error"]

    try:
        loop.start_worker()
        with PredictionPublisher(loop.settings) as publisher:
            publish_with_truth(publisher, names.truth, steady)
            watcher.wait_for(
                lambda: watcher.count(names.labels) >= len(steady),
                180,
                "the steady labels",
                loop.worker_logs,
            )
            assert not error_alerts(), "a model-error alert before the drift"
            publish_with_truth(publisher, names.truth, drifted)
        watcher.wait_for(
            lambda: any(alert.predicted_class == "negative" for alert in error_alerts()),
            180,
            "a model-error alert naming the class 'negative'",
            loop.worker_logs,
        )
    finally:
        watcher.close()

    named = [alert for alert in error_alerts() if alert.predicted_class is not None]
    assert {alert.predicted_class for alert in named} == {"negative"}
    first = named[0]
    assert first.detector == "adwin-model-error-reviewed-default"
    assert first.after > first.before
    assert first.observation > len(steady) // 2
    assert "reviewed events predicted 'negative'" in first.message
