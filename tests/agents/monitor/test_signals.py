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
    predictions = [
        factories.prediction(f"e-{i}", confidence=confidence(rng, a))
        for i, a in enumerate([5.0] * 20_000 + [2.0] * 5_000)
    ]
    alerts = [
        alert
        for i, prediction in enumerate(predictions)
        if (alert := monitor.observe(prediction, WHEN, offset=i))
    ]
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


def test_confidence_and_class_mix_count_predictions_not_labels() -> None:
    """Every event once, from the predictions topic: no Label or LabelRequest of it counts again."""
    monitor = TaskMonitor(MonitorSettings(), task="default")
    monitor.observe_prediction(factories.prediction("tx-1"), WHEN)
    monitor.observe_label(factories.human_label("accepted", source="model"), WHEN)
    monitor.observe_label(factories.human_label(revision=2), WHEN)
    monitor.observe_request(factories.label_request(), WHEN)
    assert (monitor.confidence.seen, monitor.class_mix.observations) == (1, 1)


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
                factories.prediction(f"e-{i}", predicted_label=draw(moved), confidence=0.9), WHEN
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
    assert first.predicted_class in ("fraud", "ok")
    assert f"{first.predicted_class!r}" in first.message


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


def test_a_label_reaches_the_error_monitors_of_its_route_only() -> None:
    settings = MonitorSettings(error_routes=("control", "low_confidence", "control"))
    monitor = TaskMonitor(settings, task="default")
    for route in ("control", "low_confidence", "audit", "escalation"):
        assert monitor.observe_label(factories.human_label(route), factories.WHEN) == []
    assert [(m.route, m.observations) for m in monitor.error] == [
        ("control", 1),
        ("low_confidence", 1),
        ("control", 1),
    ]
