"""The dashboard's series from samples of the registry: rates over a window, pools, bands, alerts."""

from __future__ import annotations

from datetime import timedelta

from agents.dashboard.timeline import Sample, Timeline
from schemas import DriftAlert, Estimate, ModelMetrics
from streams.metrics import LoopMetrics
from tests.factories import WHEN
from tests.streams.test_metrics import status


def test_rates_are_counter_differences_over_the_window() -> None:
    metrics, timeline = LoopMetrics("p."), Timeline(window_s=10.0)
    for second in range(0, 31, 5):
        if second:
            for _ in range(4):
                metrics.consumed("router", "p.predictions")
                metrics.decided("accept", "accepted")
            metrics.consumed("router", "p.labels")  # another topic of the same stage: not a prediction
            metrics.decided("review", "low_confidence")
            metrics.dead_lettered("router", "invalid_json")
        timeline.add(Sample.of(metrics.snapshot(), WHEN + timedelta(seconds=second)))
    series = timeline.series([])
    assert len(series["t"]) == 7
    # Each 5 s: 4 predictions, 5 decisions (1 reviewed), 1 DLQ record; windows of 10 s.
    assert series["predictions_per_min"] == [None, 48.0, 48.0, 48.0, 48.0, 48.0, 48.0]
    assert series["human_share"][1:] == [0.2] * 6
    assert series["dlq_per_min"][-1] == 12.0
    assert series["totals"] == {
        "predictions": 24.0, "accepted": 24.0, "reviewed": 6.0, "dlq": 6.0,
        "labels": {"model": 0.0, "crowd": 0.0, "expert": 0.0},
    }  # fmt: skip


def test_pools_estimates_and_alerts_line_up_with_the_samples() -> None:
    metrics, timeline = LoopMetrics(), Timeline()
    timeline.add(Sample.of(metrics.snapshot(), WHEN))
    metrics.observe_pool(status(workers=4))
    metrics.observe_model_metrics(
        ModelMetrics(
            model_name="m", kind="production", computed_at=WHEN,
            metrics={"auto_accept_precision": Estimate(value=0.9, lower=0.8, upper=0.95, n=50)},
        )
    )  # fmt: skip
    timeline.add(Sample.of(metrics.snapshot(), WHEN + timedelta(seconds=2)))
    metrics.observe_pool(status(pool="experts", workers=2))
    timeline.add(Sample.of(metrics.snapshot(), WHEN + timedelta(seconds=4)))
    metrics.observe_alert(
        DriftAlert(detector="d", detector_kind="ADWIN", signal="model_error", observation=10,
                   detected_at=WHEN + timedelta(seconds=3), before=0.1, after=0.3, message="up")
    )  # fmt: skip
    series = timeline.series(metrics.recent_alerts)
    assert series["pools"]["simulated"]["workers"] == [None, 4.0, 4.0]
    assert series["pools"]["experts"]["workers"] == [None, None, 2.0]  # a pool that appeared later
    assert series["pools"]["simulated"]["capacity_per_min"][-1] == 120.0
    assert series["precision"]["default"] == {
        "estimate": [None, 0.9, 0.9], "lower": [None, 0.8, 0.8], "upper": [None, 0.95, 0.95],
        "n": [None, 50.0, 50.0],
    }  # fmt: skip
    assert [alert["signal"] for alert in series["alerts"]] == ["model_error"]
    # Only the recent part: samples and alerts since a moment.
    recent = timeline.series(metrics.recent_alerts, since=WHEN + timedelta(seconds=3.5))
    assert len(recent["t"]) == 1
    assert recent["alerts"] == []


def test_the_timeline_keeps_at_most_max_points() -> None:
    metrics, timeline = LoopMetrics(), Timeline(max_points=10)
    for second in range(25):
        timeline.add(Sample.of(metrics.snapshot(), WHEN + timedelta(seconds=second)))
    assert len(timeline.series([])["t"]) == 10


def test_time_to_label_quantiles_are_of_the_labels_in_each_window_only() -> None:
    from tests.factories import human_label

    metrics, timeline = LoopMetrics(), Timeline(window_s=10.0)
    timeline.add(Sample.of(metrics.snapshot(), WHEN))
    for index in range(10):  # slow crowd labels first: 20 s each
        metrics.observe_label(
            human_label(event_id=f"a{index}", created_at=WHEN, decided_at=WHEN + timedelta(seconds=20))
        )
    timeline.add(Sample.of(metrics.snapshot(), WHEN + timedelta(seconds=10)))
    for index in range(10):  # then fast ones: 0.2 s each
        metrics.observe_label(
            human_label(event_id=f"b{index}", created_at=WHEN, decided_at=WHEN + timedelta(seconds=0.2))
        )
    timeline.add(Sample.of(metrics.snapshot(), WHEN + timedelta(seconds=20)))
    crowd = timeline.series([])["time_to_label_s"]["crowd"]
    assert crowd["p50"][0] is None
    assert 10.0 < crowd["p50"][1] <= 30.0  # the bucket (10, 30]
    assert crowd["p95"][2] is not None
    assert 0.1 < crowd["p95"][2] <= 0.25  # the slow labels of the window before do not count
