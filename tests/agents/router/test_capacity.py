"""Capacity-aware routing: reviews are admitted at the rate the pools absorb, the most valuable first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.router.capacity import CapacitySettings, GateDecision, ReviewGate
from agents.router.policy import Decision, Router, RouterSettings, label_request, model_label
from agents.router.sampling import AuditSettings
from schemas import PoolStatus, PredictionEvent, PredictionInput, Suggestion

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
NO_STATUS = "no pool status yet: every review admitted"


class Clock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def event(index: int, confidence: float) -> PredictionEvent:
    return PredictionEvent(
        event_id=f"tx-{index}",
        model_name="fraud-model",
        model_version="3",
        created_at=WHEN,
        input=PredictionInput(features={"amount": 12.5}),
        predicted_label="ok",
        scores={"ok": confidence, "fraud": 1.0 - confidence},
    )


def pool_status(backlog: int, event_capacity_per_min: float) -> PoolStatus:
    """A crowd pool's report: ``backlog`` events waiting or in progress, overlap 3."""
    return PoolStatus(
        pool="simulated",
        backend="simulated",
        tier="crowd",
        workers=10,
        active=True,
        backlog=backlog - 10,
        in_progress=10,
        arrival_rate_per_min=600.0,
        capacity_per_min=3 * event_capacity_per_min,
        overlap=3,
        answers_total=0,
        tasks_done=0,
        cost_per_label=0.05,
        reported_at=WHEN,
    )


def make_router(clock: Clock, capacity: CapacitySettings, **settings: object) -> Router:
    return Router(
        RouterSettings.model_validate({"control_share": 0.0, "capacity": capacity, **settings}), clock=clock
    )


def low_confidence(count: int) -> list[PredictionEvent]:
    """Would-review events (confidence 0.6 to 0.76 < 0.8): low value."""
    return [event(index, 0.6 + (index % 17) / 100) for index in range(count)]


# --- no status, stale status, disabled: everything is admitted ----------------------------


def test_with_no_pool_status_every_review_is_admitted() -> None:
    clock = Clock()
    router = make_router(clock, CapacitySettings(target_backlog=0))
    for each in low_confidence(500):
        clock.now_s += 0.01  # 6,000 candidates a minute
        decision = router.decide(each, WHEN)
        assert (decision.action, decision.route, decision.shed) == ("review", "low_confidence", False)
        assert decision.trace.budget == NO_STATUS


def test_a_stale_pool_status_admits_everything() -> None:
    clock = Clock()
    router = make_router(clock, CapacitySettings(target_backlog=10, stale_after_s=30.0))
    router.gate.observe_pool(pool_status(backlog=10_000, event_capacity_per_min=1.0))
    clock.now_s = 29.0
    assert router.decide(event(1, 0.6), WHEN).shed  # fresh: the pools are full
    clock.now_s = 31.0
    decision = router.decide(event(2, 0.6), WHEN)
    assert (decision.action, decision.shed) == ("review", False)
    gate = router.gate.admit(0.0)
    assert (gate.admitted, gate.budget_per_min, gate.cutoff) == (True, None, None)


def test_a_disabled_gate_admits_everything() -> None:
    clock = Clock()
    router = make_router(clock, CapacitySettings(enabled=False, target_backlog=0))
    router.gate.observe_pool(pool_status(backlog=10_000, event_capacity_per_min=1.0))
    for each in low_confidence(300):
        clock.now_s += 0.1
        assert router.decide(each, WHEN).action == "review"


@pytest.mark.parametrize("cause", ["disabled", "stale"])
def test_the_trace_says_why_a_review_was_admitted_without_a_budget(cause: str) -> None:
    clock = Clock()
    gate = ReviewGate(CapacitySettings(enabled=cause != "disabled", stale_after_s=30.0), clock)
    gate.observe_status(backlog=10_000, capacity_per_min=1.0)
    clock.now_s = 60.0
    decision = gate.admit(0.5)
    assert decision.admitted
    assert "no pool status yet" not in decision.describe()


# --- full pools: shed the least valuable reviews ------------------------------------------


def test_full_pools_shed_most_low_value_reviews_and_still_admit_high_value_ones() -> None:
    # Backlog ~1,000 against a target of 10 and 30 events/min of capacity: a review budget of
    # ~20/min, less the audits, for 600 candidates/min. 1 % of them are very unsure and the
    # online model disagrees: about 6/min of high-value reviews, within the budget.
    clock = Clock()
    router = make_router(clock, CapacitySettings(target_backlog=10, horizon_s=6_000.0))
    disagree = Suggestion(label="fraud", confidence=0.9, model_name="online-model")
    low: list[Decision] = []
    high: list[Decision] = []
    for index in range(3_000):
        clock.now_s = index / 10
        if index % 50 == 0:  # the pool reports every 5 s
            router.gate.observe_pool(pool_status(backlog=1_000, event_capacity_per_min=30.0))
        if index % 100 == 7:
            decision = router.decide(event(index, 0.5 + (index % 7) / 100), WHEN, disagree)
            if clock.now_s >= 60.0:  # once the gate's rate windows are full
                high.append(decision)
        else:
            low.append(router.decide(event(index, 0.6 + (index % 17) / 100), WHEN))
    shed = [decision for decision in low if decision.shed]
    assert len(shed) / len(low) > 0.95
    assert all(decision.action == "accept" and "not sent" in decision.reason for decision in shed)
    assert all(decision.action == "review" for decision in low if not decision.shed)
    assert [(decision.action, decision.route) for decision in high] == [("review", "low_confidence")] * 24
    assert all(decision.priority > 0.9 for decision in high)


def test_a_shed_review_is_accepted_with_the_budget_state_said() -> None:
    clock = Clock()
    router = make_router(clock, CapacitySettings(target_backlog=10))
    router.gate.observe_pool(pool_status(backlog=10_000, event_capacity_per_min=1.0))
    shed = event(1, 0.6)
    decision = router.decide(shed, WHEN)
    assert (decision.action, decision.route, decision.shed) == ("accept", "accepted", True)
    assert decision.reason.startswith("confidence 0.600 < threshold 0.800 for ok (max_probability)")
    assert "not sent" in decision.reason
    assert "pools full" in decision.reason
    assert decision.trace.budget is not None
    assert decision.trace.budget.startswith("review budget 0.0/min")
    assert decision.trace.budget in decision.reason
    label = model_label(shed, decision, WHEN)
    assert (label.source, label.revision, label.route) == ("model", 1, "accepted")
    assert label.reason == decision.reason
    assert label.routing == decision.trace


def test_control_and_audit_are_never_shed() -> None:
    clock = Clock()
    router = make_router(
        clock, CapacitySettings(target_backlog=0), control_share=0.2, audit=AuditSettings(rate=0.1)
    )
    confident = [event(index, 0.95) for index in range(1_000)]
    unsure = [event(index, 0.6) for index in range(1_000, 2_000)]
    routes: list[str] = []
    audits = 0  # budget 0 from the first report on
    for index, (would_accept, would_review) in enumerate(zip(confident, unsure, strict=True)):
        clock.now_s += 0.1
        if index % 50 == 0:
            router.gate.observe_pool(pool_status(backlog=10_000, event_capacity_per_min=1.0))
        assert router.decide(would_review, WHEN).shed
        decision = router.decide(would_accept, WHEN)
        assert not decision.shed
        routes.append(decision.route)
        if decision.route == "control":
            assert label_request(would_accept, decision, WHEN).route == "control"
        if decision.audit is not None:
            audits += 1
            assert label_request(would_accept, decision, WHEN).route == "audit"
    assert routes.count("control") / len(routes) == pytest.approx(0.2, abs=0.04)
    assert audits > 0


def test_control_and_audit_traffic_is_taken_out_of_the_review_budget() -> None:
    def budget(reserved: int) -> float | None:
        clock = Clock()
        gate = ReviewGate(CapacitySettings(target_backlog=100), clock)
        clock.now_s = 60.0
        gate.observe_status(backlog=100, capacity_per_min=60.0)
        for _ in range(reserved):
            gate.reserve()
        return gate.admit(0.5).budget_per_min

    free = budget(0)
    assert free is not None
    assert budget(30) == pytest.approx(free - 30.0 - 30.0)  # 30/min reserved, 30 more in the backlog


def test_the_first_control_or_audit_request_does_not_close_the_review_budget() -> None:
    clock = Clock()
    gate = ReviewGate(CapacitySettings(target_backlog=100), clock)
    gate.observe_status(backlog=100, capacity_per_min=60.0)
    clock.now_s = 20.0
    gate.observe_status(backlog=100, capacity_per_min=60.0)
    gate.reserve()  # one audit in the gate's first 20 s
    clock.now_s = 20.5
    assert gate.admit(0.5).admitted


def test_the_backlog_estimate_moves_forward_from_the_last_report() -> None:
    clock = Clock()
    gate = ReviewGate(CapacitySettings(), clock)
    assert gate.backlog_estimate() is None
    gate.observe_status(backlog=100, capacity_per_min=60.0)
    clock.now_s = 30.0
    assert gate.backlog_estimate() == pytest.approx(70.0)  # 30 served
    for _ in range(5):
        gate.reserve()
    assert gate.backlog_estimate() == pytest.approx(75.0)  # 5 sent
    clock.now_s = 1_000.0
    assert gate.backlog_estimate() == 0.0


def bathtub(target: int, start_backlog: float, seconds: int = 900) -> tuple[list[float], list[float]]:
    """10 candidates/s of value 0.0 to 0.9 against 1/s of capacity; backlog and admitted values."""
    clock = Clock()
    gate = ReviewGate(CapacitySettings(target_backlog=target, horizon_s=60.0), clock)
    backlog = start_backlog
    history: list[float] = []
    admitted_values: list[float] = []
    for second in range(seconds):
        clock.now_s = float(second)
        gate.observe_status(backlog=int(backlog), capacity_per_min=60.0)
        decisions: list[tuple[float, GateDecision]] = [(k / 10, gate.admit(value=k / 10)) for k in range(10)]
        sent = [value for value, decision in decisions if decision.admitted]
        if second >= seconds - 120:
            admitted_values += sent
        backlog = max(0.0, backlog + len(sent) - 1.0)
        history.append(backlog)
    return history, admitted_values


@pytest.mark.parametrize("target", [10, 50, 100, 300])
@pytest.mark.parametrize("start_backlog", [0.0, 500.0], ids=["filling", "draining"])
def test_the_backlog_converges_to_its_target(target: int, start_backlog: float) -> None:
    history, admitted_values = bathtub(target, start_backlog)
    last_two_minutes = history[-120:]
    assert all(abs(backlog - target) <= max(0.1 * target, 1.0) for backlog in last_two_minutes)
    # In balance the pools take one candidate in ten: the most valuable ones.
    assert admitted_values
    assert min(admitted_values) >= 0.8


def test_only_crowd_pools_count_and_their_reports_add_up() -> None:
    """Reviews go to the crowd: an expert pool's tiny capacity must not throttle them."""
    clock = Clock()
    gate = make_router(clock, CapacitySettings()).gate
    gate.observe_pool(pool_status(backlog=100, event_capacity_per_min=600.0))
    toloka = pool_status(backlog=50, event_capacity_per_min=300.0).model_copy(update={"pool": "toloka"})
    gate.observe_pool(toloka)
    experts = pool_status(backlog=400, event_capacity_per_min=0.5).model_copy(
        update={"pool": "experts", "tier": "expert"}
    )
    gate.observe_pool(experts)
    assert gate.backlog_estimate() == pytest.approx(150.0)
    decision = gate.admit(0.5)
    assert decision.budget_per_min is not None
    assert decision.budget_per_min > 800.0  # 900 events/min of crowd capacity, backlog under target
    clock.now_s += CapacitySettings().stale_after_s + 1
    gate.observe_pool(pool_status(backlog=20, event_capacity_per_min=600.0))  # Toloka's report went stale
    assert gate.backlog_estimate() == pytest.approx(20.0)


def test_one_pool_run_by_several_workers_counts_every_worker_once() -> None:
    """Each worker runs its own copy of the pool under one name: their fresh reports add up."""
    clock = Clock()
    gate = make_router(clock, CapacitySettings()).gate
    report = pool_status(backlog=100, event_capacity_per_min=300.0)
    gate.observe_pool(report.model_copy(update={"reporter": "host-a-1"}))
    gate.observe_pool(report.model_copy(update={"reporter": "host-b-7"}))
    gate.observe_pool(report.model_copy(update={"reporter": "host-b-7"}))  # a later report, same worker
    assert gate.backlog_estimate() == pytest.approx(200.0)
    clock.now_s += CapacitySettings().stale_after_s + 1
    # host-a-1 died: its last report goes stale and stops counting.
    gate.observe_pool(report.model_copy(update={"reporter": "host-b-7", "backlog": 40}))
    assert gate.backlog_estimate() == pytest.approx(50.0)
