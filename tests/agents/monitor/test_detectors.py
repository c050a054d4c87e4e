"""ADWIN on the production model's error: quiet on a stationary stream, fast on a jump."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from agents.monitor.detectors import ModelErrorMonitor, MonitorSettings
from schemas import Label
from schemas.labels import LabelSource, RouteReason
from tests import factories

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def errors(rng: random.Random, rate: float, count: int) -> list[bool]:
    return [rng.random() < rate for _ in range(count)]


def first_alarm(monitor: ModelErrorMonitor, stream: list[bool]) -> int | None:
    for index, error in enumerate(stream):
        if monitor.observe_error(error) is not None:
            return index
    return None


def label(
    model_label: str,
    human_label: str = "fraud",
    *,
    source: LabelSource = "crowd",
    revision: int = 1,
    route: RouteReason = "low_confidence",
) -> Label:
    return factories.human_label(
        route, human_label=human_label, model_label=model_label, source=source, revision=revision
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_alert_on_a_stationary_error_rate(seed: int) -> None:
    monitor = ModelErrorMonitor(MonitorSettings(), task="default")
    assert first_alarm(monitor, errors(random.Random(seed), 0.1, 5_000)) is None
    assert (monitor.observations, monitor.alerts) == (5_000, 0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_error_jump_is_detected_quickly(seed: int) -> None:
    rng = random.Random(seed)
    monitor = ModelErrorMonitor(MonitorSettings(), task="default")
    assert first_alarm(monitor, errors(rng, 0.1, 2_000)) is None
    delay = first_alarm(monitor, errors(rng, 0.4, 1_000))
    assert delay is not None
    assert delay < 400
    assert monitor.alerts == 1


def test_the_warm_up_holds_back_early_alarms() -> None:
    stream = [False] * 60 + [True] * 60
    assert first_alarm(ModelErrorMonitor(MonitorSettings(min_observations=0), task="t"), stream) is not None
    held = ModelErrorMonitor(MonitorSettings(min_observations=10_000), task="t")
    assert first_alarm(held, stream) is None


def test_the_alert_says_what_drifted_and_where() -> None:
    rng = random.Random(4)
    monitor = ModelErrorMonitor(MonitorSettings(), task="payments")
    alerts = []
    for error in errors(rng, 0.1, 2_000) + errors(rng, 0.4, 1_000):
        alert = monitor.observe(
            label("ok" if error else "fraud", route="control"), WHEN, partition=3, offset=monitor.observations
        )
        if alert is not None:
            alerts.append(alert)
    assert alerts
    alert = alerts[0]
    assert (alert.signal, alert.detector_kind, alert.task) == ("model_error", "ADWIN", "payments")
    assert alert.detector == monitor.name == "adwin-model-error-control-payments"
    assert alert.before < alert.after
    assert alert.before == pytest.approx(0.1, abs=0.05)
    assert 2_000 < alert.observation < 2_400
    assert (alert.source_partition, alert.source_offset) == (3, alert.observation - 1)
    assert alert.detected_at == WHEN
    assert "rose" in alert.message
    assert "control group" in alert.message


@pytest.mark.parametrize(
    "ignored",
    [
        label("ok", source="model", route="accepted"),
        label("ok", source="crowd", revision=2, route="control"),
        label("ok", source="crowd", route="low_confidence"),
        label("ok", source="expert", route="audit"),
        label("ok", source="crowd", route="accepted"),
    ],
    ids=["model_label", "revision_2", "reviewed", "audit", "accepted"],
)
def test_only_first_human_labels_of_the_control_group_count(ignored: Label) -> None:
    monitor = ModelErrorMonitor(MonitorSettings(), task="default")
    assert monitor.observe(ignored, WHEN) is None
    assert monitor.observations == 0


def test_a_reviewed_error_monitor_counts_reviews_only() -> None:
    monitor = ModelErrorMonitor(MonitorSettings(), task="t", route="low_confidence")
    assert monitor.name == "adwin-model-error-reviewed-t"
    monitor.observe(label("ok", route="control"), WHEN)
    monitor.observe(label("ok", route="low_confidence"), WHEN)
    assert monitor.observations == 1


@pytest.mark.parametrize(("model_label", "error"), [("ok", 1.0), ("fraud", 0.0)])
def test_a_control_label_feeds_the_model_error(model_label: str, error: float) -> None:
    monitor = ModelErrorMonitor(MonitorSettings(), task="default")
    assert monitor.observe(label(model_label, "fraud", source="expert", route="control"), WHEN) is None
    assert monitor.observations == 1
    assert monitor.detector.estimation == error
