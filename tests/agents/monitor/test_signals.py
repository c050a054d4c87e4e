"""The monitor's other signals: confidence (a KS window), class mix and queue rate (ADWIN), per task."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from agents.monitor.class_mix import ClassMixMonitor
from agents.monitor.confidence import ConfidenceMonitor
from agents.monitor.detectors import MonitorSettings
from agents.monitor.queue_rate import QueueRateMonitor
from agents.monitor.signals import TaskMonitor
from schemas import Label, LabelRequest
from tests import factories

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def confidence(rng: random.Random, a: float) -> float:
    """A production model's confidence in [0.5, 1] (a skewed beta; smaller ``a`` means less sure)."""
    return round(0.5 + 0.5 * rng.betavariate(a, 1.5), 6)


@pytest.mark.parametrize("seed", [1, 2])
def test_confidence_is_quiet_when_its_distribution_holds(seed: int) -> None:
    rng = random.Random(seed)
    monitor = ConfidenceMonitor(MonitorSettings(), task="t")
    assert not [i for i in range(50_000) if monitor.observe_confidence(confidence(rng, 5.0))]
    assert monitor.seen == 50_000
    assert 0.0 < monitor.detector.statistic < monitor.detector.critical


def test_a_less_confident_model_is_seen_and_the_alert_says_by_how_much() -> None:
    rng = random.Random(3)
    monitor = ConfidenceMonitor(MonitorSettings(), task="t")
    labels = [
        factories.human_label(
            "accepted", source="model", event_id=f"e-{i}", model_confidence=confidence(rng, a)
        )
        for i, a in enumerate([5.0] * 20_000 + [2.0] * 5_000)
    ]
    alerts = [alert for i, label in enumerate(labels) if (alert := monitor.observe(label, WHEN, offset=i))]
    assert alerts
    alert = alerts[0]
    assert (alert.signal, alert.detector_kind, alert.detector) == (
        "confidence",
        "KS-window",
        "ks-confidence-t",
    )
    assert 20_000 < alert.observation < 20_200
    assert alert.source_offset == alert.observation - 1
    assert alert.after < alert.before
    assert "fell" in alert.message
    assert f"> {monitor.detector.critical:.3f}" in alert.message


def test_the_window_restarts_from_its_newest_values_after_a_change() -> None:
    from agents.monitor.confidence import KSWindow

    detector = KSWindow(alpha=1e-5, window=100, recent=20, test_every=1)
    changes = [detector.update(0.9 if i < 100 else 0.5) for i in range(200)]
    first = next(i for i, change in enumerate(changes) if change is not None)
    assert 100 < first < 120
    assert changes[first] == (pytest.approx(0.9), pytest.approx(0.5 + 0.4 * (120 - first - 1) / 20))
    assert all(change is None for change in changes[first + 1 :])  # restarted from the new values
    with pytest.raises(ValueError, match="recent"):
        KSWindow(alpha=0.01, window=10, recent=10, test_every=1)


def test_only_first_revisions_feed_confidence_and_class_mix() -> None:
    monitor = TaskMonitor(MonitorSettings(), task="default")
    monitor.observe_label(factories.human_label(revision=2), WHEN)
    assert (monitor.confidence.seen, monitor.class_mix.observations) == (0, 0)


def test_class_mix_is_quiet_on_a_steady_mix_and_names_the_class_that_moved() -> None:
    rng = random.Random(4)
    monitor = ClassMixMonitor(MonitorSettings(), task="t")

    def draw(shares: dict[str, float]) -> str:
        return rng.choices(list(shares), weights=list(shares.values()))[0]

    steady = {"ok": 0.7, "fraud": 0.1, "spam": 0.2}
    assert not [i for i in range(30_000) if monitor.observe_class(draw(steady))]
    moved = {"ok": 0.4, "fraud": 0.4, "spam": 0.2}
    alerts = [
        alert
        for i in range(3_000)
        if (
            alert := monitor.observe(
                factories.human_label("accepted", source="model", model_label=draw(moved), event_id=f"e-{i}"),
                WHEN,
            )
        )
    ]
    assert alerts
    first = alerts[0]
    assert first.signal == "class_mix"
    assert first.observation < 30_000 + 1_000
    assert ("'fraud' rose" in first.message and first.after > first.before) or (
        "'ok' fell" in first.message and first.after < first.before
    )


def test_class_mix_watches_at_most_max_classes() -> None:
    monitor = ClassMixMonitor(MonitorSettings(max_classes=2), task="t")
    for name in ("a", "b", "c", "a"):
        monitor.observe_class(name)
    assert sorted(monitor.detectors) == ["a", "b"]


def requests_at(
    monitor: QueueRateMonitor, rng: random.Random, bucket: int, count: int
) -> list[tuple[int, float, float]]:
    start = WHEN + timedelta(seconds=10 * bucket)
    changes = []
    for _ in range(count):
        changes += monitor.observe_at(start + timedelta(seconds=10 * rng.random()))
    return changes


def test_queue_rate_is_quiet_on_a_steady_poisson_queue() -> None:
    import numpy as np

    counts = np.random.default_rng(5).poisson(40, size=3_000)
    monitor = QueueRateMonitor(MonitorSettings(queue_bucket_s=10), task="t")
    rng = random.Random(5)
    changes = [
        change
        for bucket, count in enumerate(counts)
        for change in requests_at(monitor, rng, bucket, int(count))
    ]
    assert changes == []
    assert monitor.buckets == 2_999


def test_a_surge_in_the_queue_is_seen_within_a_few_buckets() -> None:
    rng = random.Random(6)
    monitor = QueueRateMonitor(MonitorSettings(queue_bucket_s=10), task="t")
    for bucket in range(60):
        assert requests_at(monitor, rng, bucket, rng.randint(35, 45)) == []
    found = [
        (bucket, change) for bucket in range(60, 80) for change in requests_at(monitor, rng, bucket, 120)
    ]
    assert found
    bucket, (_closed, before, after) = found[0]
    assert bucket <= 65
    assert before == pytest.approx(240, rel=0.1)
    assert after > before


def test_a_silent_queue_counts_as_zero_when_time_passes() -> None:
    rng = random.Random(7)
    monitor = QueueRateMonitor(MonitorSettings(queue_bucket_s=10), task="t")
    for bucket in range(60):
        requests_at(monitor, rng, bucket, 40)
    alerts = []
    for seconds in range(600, 1_200, 10):
        alerts += monitor.tick(WHEN + timedelta(seconds=seconds))
    assert alerts
    assert alerts[0].signal == "queue_rate"
    assert alerts[0].after < alerts[0].before
    assert "fell" in alerts[0].message


def test_the_task_monitor_counts_requests_in_the_queue_rate() -> None:
    monitor = TaskMonitor(MonitorSettings(), task="default")
    assert monitor.observe_request(factories.label_request(), WHEN) == []
    assert (monitor.queue_rate.bucket, monitor.queue_rate.count) == (int(WHEN.timestamp() // 10), 1)


def test_confidence_and_class_mix_see_each_event_once_as_the_router_decided_it() -> None:
    monitor = TaskMonitor(MonitorSettings(), task="default")
    monitor.observe_label(factories.human_label("accepted", source="model", model_label="ok"), WHEN)
    monitor.observe_request(factories.label_request("tx-2", route="low_confidence"), WHEN)
    monitor.observe_request(factories.label_request("tx-3", route="control"), WHEN)
    # The human labels of tx-2 and tx-3, an audit of the accepted tx-1 and an escalation of tx-2 come
    # later: each event was counted already.
    monitor.observe_label(factories.human_label("low_confidence", event_id="tx-2"), WHEN)
    monitor.observe_label(factories.human_label("control", event_id="tx-3"), WHEN)
    monitor.observe_request(factories.label_request("tx-1", route="audit"), WHEN)
    monitor.observe_request(factories.label_request("tx-2", route="escalation"), WHEN)
    assert len(monitor.order) == 3
    monitor.tick(WHEN + timedelta(seconds=MonitorSettings().order_lag_s))
    assert (monitor.confidence.seen, monitor.class_mix.observations, len(monitor.order)) == (3, 3, 0)


def _routed_stream(rng: random.Random, events: int) -> list[tuple[Label | LabelRequest, float]]:
    """What the router says of ``events`` steady events (one every 10 ms): (record, its confidence)."""
    out: list[tuple[Label | LabelRequest, float]] = []
    for i in range(events):
        at = WHEN + timedelta(milliseconds=10 * i)
        score = confidence(rng, 3.0)
        predicted = "ok" if rng.random() < 0.7 else "fraud"
        if score >= 0.8:
            out.append(
                (
                    factories.human_label(
                        "accepted",
                        source="model",
                        event_id=f"e-{i}",
                        model_confidence=score,
                        model_label=predicted,
                        decided_at=at,
                    ),
                    score,
                )
            )
            continue
        request = factories.label_request(f"e-{i}", route="low_confidence")
        prediction = request.prediction.model_copy(
            update={"predicted_label": predicted, "scores": {predicted: score, "other": 1 - score}}
        )
        out.append((request.model_copy(update={"prediction": prediction, "requested_at": at}), score))
    return out


def test_one_topic_running_ahead_of_the_other_is_not_a_confidence_shift() -> None:
    """The two topics the router writes, read by two agents, one running 600 records ahead in a stretch.

    The scores never change; read in arrival order the confident events (labels) come in a run and the
    unsure ones (requests) after it, which a KS window takes for a shift. The monitor puts them back
    in the router's order first and stays quiet.
    """
    stream = _routed_stream(random.Random(8), 30_000)
    stretch = (WHEN + timedelta(seconds=80), WHEN + timedelta(seconds=160))

    def read_at(item: Label | LabelRequest) -> datetime:
        """When the monitor reads it: the labels agent runs 6 s (600 records) ahead in the stretch."""
        at = item.decided_at if isinstance(item, Label) else item.requested_at
        ahead = isinstance(item, Label) and stretch[0] <= at < stretch[1]
        return at - timedelta(seconds=6) if ahead else at

    arrivals = sorted(stream, key=lambda pair: read_at(pair[0]))
    monitor = TaskMonitor(MonitorSettings(), task="default")
    for item, _ in arrivals:
        now = item.decided_at if isinstance(item, Label) else item.requested_at
        found = (
            monitor.observe_label(item, now)
            if isinstance(item, Label)
            else monitor.observe_request(item, now)
        )
        assert [alert.signal for alert in found if alert.signal != "queue_rate"] == []
    monitor.tick(WHEN + timedelta(days=1))
    assert monitor.confidence.seen == monitor.class_mix.observations == 30_000
    assert monitor.confidence.alerts == monitor.class_mix.alerts == 0
    # The same records in arrival order, not put back: the KS window fires.
    by_arrival = ConfidenceMonitor(MonitorSettings(), task="arrival-order")
    assert any(by_arrival.observe_confidence(score) for _, score in arrivals)


def test_the_router_order_is_bounded_whatever_the_clocks_say() -> None:
    from agents.monitor.ordering import RouterOrder

    order: RouterOrder[int] = RouterOrder(lag_s=10.0, max_pending=3)
    future = WHEN + timedelta(days=365)  # a producer's clock a year ahead
    assert [order.push(future, i) for i in range(3)] == [[], [], []]
    assert order.push(future, 3) == [0]
    assert len(order) == 3
