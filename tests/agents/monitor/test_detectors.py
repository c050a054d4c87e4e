"""ADWIN on the production model's error: quiet on a stationary stream, fast on a jump."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime

import pytest
from river import drift

from agents.monitor.detectors import ErrorRoute, ModelErrorMonitor, MonitorSettings, adwin_change, adwin_step
from schemas import DriftAlert, Label
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


def class_errors(rng: random.Random, rates: dict[str, float], count: int) -> list[tuple[bool, str]]:
    """(error, predicted class) pairs: a quarter predicted "fraud", each class with its error rate."""
    stream = []
    for _ in range(count):
        predicted = "fraud" if rng.random() < 0.25 else "ok"
        stream.append((rng.random() < rates[predicted], predicted))
    return stream


def first_class_alarm(
    monitor: ModelErrorMonitor, stream: list[tuple[bool, str]]
) -> tuple[int, str | None] | None:
    for index, (error, predicted) in enumerate(stream):
        change = monitor.observe_error(error, predicted)
        if change is not None:
            return index, change.predicted_class
    return None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_per_class_detectors_stay_quiet_when_classes_differ_but_do_not_change(seed: int) -> None:
    monitor = ModelErrorMonitor(MonitorSettings(), task="t")
    stream = class_errors(random.Random(seed), {"fraud": 0.2, "ok": 0.03}, 10_000)
    assert first_class_alarm(monitor, stream) is None
    assert monitor.class_observations["fraud"] + monitor.class_observations["ok"] == 10_000
    assert set(monitor.per_class) == {"fraud", "ok"}


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_an_error_jump_in_one_predicted_class_is_found_there_sooner_and_named(seed: int) -> None:
    rng = random.Random(seed)
    stream = class_errors(rng, {"fraud": 0.05, "ok": 0.05}, 3_000)
    stream += class_errors(rng, {"fraud": 0.35, "ok": 0.05}, 1_500)
    per_class = first_class_alarm(ModelErrorMonitor(MonitorSettings(), task="t"), stream)
    overall = first_class_alarm(ModelErrorMonitor(MonitorSettings(error_per_class=False), task="t"), stream)
    assert per_class is not None
    assert overall is not None
    assert per_class[1] == "fraud"
    assert overall[1] is None
    assert 3_000 <= per_class[0] < overall[0]


def test_error_per_class_off_keeps_only_the_overall_detector() -> None:
    monitor = ModelErrorMonitor(MonitorSettings(error_per_class=False), task="t")
    monitor.observe_error(True, "fraud")
    assert (monitor.observations, monitor.per_class, monitor.class_observations) == (1, {}, {})


def test_per_class_error_watches_at_most_max_classes() -> None:
    monitor = ModelErrorMonitor(MonitorSettings(max_classes=2), task="t")
    for predicted in ["a", "b", "c", "a"]:
        monitor.observe_error(False, predicted)
    assert monitor.class_observations == {"a": 2, "b": 1}
    assert monitor.observations == 4


def test_the_warm_up_holds_back_each_class_until_it_has_its_own_labels() -> None:
    # 200 labels of "ok", then 100 of "fraud" that err from the 31st on: its detector fires within
    # them, but the warm-up counts each class's own labels (100 < 150 < the 300 labels in all).
    def classes_alarmed(min_observations: int) -> set[str | None]:
        monitor = ModelErrorMonitor(MonitorSettings(min_observations=min_observations), task="t")
        for _ in range(200):
            monitor.observe_error(False, "ok")
        changes = [monitor.observe_error(index >= 30, "fraud") for index in range(100)]
        return {change.predicted_class for change in changes if change is not None}

    assert "fraud" in classes_alarmed(0)
    assert "fraud" not in classes_alarmed(150)


def test_a_class_alert_names_the_class_on_the_wire() -> None:
    rng = random.Random(6)
    monitor = ModelErrorMonitor(MonitorSettings(), task="payments")
    stream = class_errors(rng, {"fraud": 0.05, "ok": 0.05}, 3_000)
    stream += class_errors(rng, {"fraud": 0.35, "ok": 0.05}, 1_500)
    alerts = []
    for error, predicted in stream:
        human = ("ok" if predicted == "fraud" else "fraud") if error else predicted
        alert = monitor.observe(label(predicted, human, route="control"), WHEN)
        if alert is not None:
            alerts.append(alert)
    assert alerts
    alert = alerts[0]
    assert (alert.signal, alert.detector, alert.predicted_class) == (
        "model_error",
        "adwin-model-error-control-payments",
        "fraud",
    )
    assert alert.before < alert.after
    assert 3_000 < alert.observation < 3_500
    assert "control group predicted 'fraud'" in alert.message
    assert "rose" in alert.message
    assert DriftAlert.from_json_bytes(alert.to_json_bytes()).predicted_class == "fraud"


def test_the_change_reports_the_same_means_as_adwins_estimate_before_the_update() -> None:
    """``adwin_change`` reads the window as ``estimation * width``, bit for bit, with fewer reads."""
    rng = random.Random(4)
    stream = [float(rng.random() < (0.1 if i % 3_000 < 1_500 else 0.4)) for i in range(12_000)]
    detector, reference = drift.ADWIN(delta=0.002, clock=1), drift.ADWIN(delta=0.002, clock=1)
    changes = 0
    for value in stream:
        total_before = float(reference.estimation) * float(reference.width)
        width_before = float(reference.width)
        reference.update(value)
        change = adwin_change(detector, value)
        assert (change is not None) == reference.drift_detected
        if change is None:
            continue
        changes += 1
        kept = float(reference.width)
        after = float(reference.estimation)
        dropped = width_before + 1.0 - kept
        assert change == ((total_before + value - after * kept) / dropped, after)
    assert changes >= 4


def adwin_state(detector: drift.ADWIN) -> tuple[object, ...]:
    """What River's ADWIN shows of its window after an update."""
    return (
        detector.drift_detected,
        detector.width,
        detector.total,
        detector.variance,
        detector.estimation,
        detector.n_detections,
    )


@pytest.mark.parametrize("clock", [1, 32])
def test_adwin_step_updates_the_window_exactly_as_adwin_update(clock: int) -> None:
    """``adwin_step`` reads and updates River's window itself: the detector ends as River's own does,
    after every update, across drifts (and the fresh window ADWIN starts after each one)."""
    rng = random.Random(7)
    stream = [float(rng.random() < (0.1 if i % 2_000 < 1_000 else 0.5)) for i in range(10_000)]
    detector, reference = drift.ADWIN(delta=0.002, clock=clock), drift.ADWIN(delta=0.002, clock=clock)
    detections = 0
    for value in stream:
        width, total = float(reference.width), float(reference.total)
        reference.update(value)
        step = adwin_step(detector, value)
        assert step == ((width, total) if reference.drift_detected else None)
        assert adwin_state(detector) == adwin_state(reference)
        detections += step is not None
    assert detections >= 4


def test_adwin_step_goes_through_the_public_api_of_another_detector() -> None:
    class Counting(drift.ADWIN):  # type: ignore[misc]
        updates = 0

        def update(self, x: float) -> None:
            self.updates += 1
            super().update(x)

    detector, reference = Counting(), drift.ADWIN()
    for i in range(1_500):
        value = 0.0 if i < 1_000 else 1.0
        reference.update(value)
        assert (adwin_step(detector, value) is not None) == reference.drift_detected
    assert detector.updates == 1_500
    assert adwin_state(detector) == adwin_state(reference)


def test_the_monitor_reports_the_change_that_moved_most_overall_first_on_a_tie() -> None:
    """Against the rule written out on two plain ADWINs: over all labels and for the one predicted
    class, the change whose error moved most (the overall one on a tie), its before clipped to [0, 1]."""
    settings = MonitorSettings(min_observations=50)
    monitor = ModelErrorMonitor(settings, task="t")
    overall = drift.ADWIN(delta=settings.error_delta, clock=settings.error_clock)
    per_class = drift.ADWIN(delta=settings.error_delta, clock=settings.error_clock)
    rng = random.Random(9)
    reported = 0
    for index in range(12_000):
        rate = (0.05, 0.3, 0.1, 0.5)[index // 3_000]
        error = rng.random() < rate
        change = monitor.observe_error(error, "only")
        value = 1.0 if error else 0.0
        candidates = []
        moved = adwin_change(overall, value)
        if moved is not None and index + 1 >= settings.min_observations:
            candidates.append((moved, None))
        moved = adwin_change(per_class, value)
        if moved is not None and index + 1 >= settings.min_observations:
            candidates.append((moved, "only"))
        if not candidates:
            assert change is None
            continue
        (before, after), predicted = max(candidates, key=lambda found: abs(found[0][1] - found[0][0]))
        assert change is not None
        expected = (min(max(before, 0.0), 1.0), after, predicted)
        assert (change.before, change.after, change.predicted_class) == expected
        reported += 1
    assert reported >= 3
    assert monitor.alerts == reported


@pytest.mark.parametrize("route", ["control", "low_confidence"])
def test_the_monitor_counts_and_scores_labels_as_the_label_says(route: ErrorRoute) -> None:
    """The monitor reads a Label's fields itself: it counts exactly the first human labels of its
    route (Label.is_human, revision 1), and their error is exactly not Label.model_was_right."""
    sources: tuple[LabelSource, ...] = ("model", "crowd", "expert")
    routes: tuple[RouteReason, ...] = ("accepted", "low_confidence", "control", "audit", "escalation")
    for source, revision, label_route, model_label in itertools.product(
        sources, (1, 2), routes, ("fraud", "ok")
    ):
        case = label(model_label, "fraud", source=source, revision=revision, route=label_route)
        monitor = ModelErrorMonitor(MonitorSettings(), task="default", route=route)
        monitor.observe(case, WHEN)
        counted = case.is_human and case.revision == 1 and case.route == route
        assert monitor.observations == int(counted)
        if counted:
            error = monitor.detector.total  # one observation: the window's total is the error
            assert error == (0.0 if case.model_was_right else 1.0)
