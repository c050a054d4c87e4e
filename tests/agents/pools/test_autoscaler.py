"""The autoscaler: Erlang C against known values, the staffing rule, clamps, cooldowns, budget, pins."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.pools.autoscaler import (
    Autoscaler,
    AutoscalerSettings,
    erlang_c,
    size,
    time_to_label_quantile,
    time_to_label_tail,
    workers_for_sla,
)
from schemas import PoolStatus

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def status(**changes: object) -> PoolStatus:
    fields: dict[str, object] = {
        "pool": "crowd",
        "backend": "simulated",
        "tier": "crowd",
        "workers": 10,
        "active": True,
        "backlog": 0,
        "arrival_rate_per_min": 30.0,
        "overlap": 3,
        "answers_total": 0,
        "tasks_done": 0,
        "cost_per_label": 0.02,
        "reported_at": WHEN,
    }
    fields |= changes
    # Every worker busy unless said otherwise: the occupancy then tells nothing (the rate-driven rules).
    fields.setdefault("in_progress", fields["workers"])
    fields.setdefault("capacity_per_min", 6.0 * float(str(fields["workers"])))  # 6 answers a minute a worker
    return PoolStatus.model_validate(fields)


def settings(**changes: object) -> AutoscalerSettings:
    return AutoscalerSettings.model_validate(
        {"sla_p95_s": 60.0, "min_workers": 1, "max_workers": 200} | changes
    )


# -- Erlang C ----------------------------------------------------------------------------


@pytest.mark.parametrize("rho", [0.1, 0.5, 0.9, 0.99])
def test_one_server_waits_with_the_utilisation(rho: float) -> None:
    assert erlang_c(1, rho) == pytest.approx(rho)


def test_erlang_c_matches_textbook_values() -> None:
    # The direct formula: C = (a^c/c!)(c/(c-a)) / (sum_{n<c} a^n/n! + (a^c/c!)(c/(c-a))).
    def direct(c: int, a: float) -> float:
        top = a**c / math.factorial(c) * c / (c - a)
        return top / (sum(a**n / math.factorial(n) for n in range(c)) + top)

    for c, a in [(2, 1.0), (5, 4.0), (10, 8.0), (20, 15.0), (50, 45.0)]:
        assert erlang_c(c, a) == pytest.approx(direct(c, a), rel=1e-9)
    # 10 servers at 8 erlangs: about 41 % of calls wait.
    assert erlang_c(10, 8.0) == pytest.approx(0.409, abs=1e-3)
    assert erlang_c(3, 3.0) == 1.0  # unstable: everyone waits
    assert erlang_c(3, 0.0) == 0.0


def test_the_response_time_tail_is_the_known_mm1_form_for_one_server_and_one_answer() -> None:
    # M/M/1: the time in system is exponential with rate mu - lambda.
    for t_s in (0.5, 2.0, 5.0):
        assert time_to_label_tail(t_s, 1, 0.5, 1.0, 1) == pytest.approx(math.exp(-0.5 * t_s), rel=1e-9)


def test_without_waiting_the_tail_is_that_of_the_slowest_of_k_answers() -> None:
    tail = time_to_label_tail(2.0, 1_000, 0.001, 1.0, 3)
    assert tail == pytest.approx(1.0 - (1.0 - math.exp(-2.0)) ** 3, rel=1e-4)


@given(
    st.floats(0.05, 5.0),
    st.floats(0.1, 2.0),
    st.integers(1, 5),
    st.floats(0.5, 120.0),
)
def test_the_p95_rises_with_the_arrival_rate(
    arrival_per_s: float, service_per_s: float, k: int, sla: float
) -> None:
    servers = math.floor(2.0 * k * arrival_per_s / service_per_s) + 2
    slower = time_to_label_quantile(0.95, servers, arrival_per_s, service_per_s, k)
    busier = time_to_label_quantile(0.95, servers, arrival_per_s * 1.1, service_per_s, k)
    assert busier >= slower - 1e-6
    more = workers_for_sla(arrival_per_s * 1.5, service_per_s, k, sla)
    fewer = workers_for_sla(arrival_per_s, service_per_s, k, sla)
    if more is not None and fewer is not None:
        assert more >= fewer


@given(st.floats(0.05, 20.0), st.floats(0.05, 2.0), st.integers(1, 4), st.floats(5.0, 300.0))
def test_the_smallest_c_meets_the_sla_and_one_less_does_not(
    arrival_per_s: float, service_per_s: float, k: int, sla: float
) -> None:
    c = workers_for_sla(arrival_per_s, service_per_s, k, sla)
    if c is None:  # service alone is too slow for the SLA
        assert time_to_label_tail(sla, 100_000, arrival_per_s, service_per_s, k) > 0.05
        return
    assert time_to_label_tail(sla, c, arrival_per_s, service_per_s, k) <= 0.05
    assert time_to_label_quantile(0.95, c, arrival_per_s, service_per_s, k) <= sla * (1 + 1e-9)
    if c > 1:
        assert time_to_label_tail(sla, c - 1, arrival_per_s, service_per_s, k) > 0.05


# -- the staffing rule -------------------------------------------------------------------


def test_a_backlog_adds_workers_to_drain_it_within_the_horizon() -> None:
    calm = size(settings(), 30.0, 6.0, 3, backlog=0)
    behind = size(settings(drain_horizon_s=30.0), 30.0, 6.0, 3, backlog=100)
    # 100 tasks x 3 answers in 30 s at 0.1 answers/s a worker: 100 more workers, less the steady queue.
    assert calm.for_backlog == 0
    assert 95 <= behind.for_backlog <= 100
    assert behind.workers == min(200, calm.workers + behind.for_backlog)


def test_the_target_is_clamped_to_min_and_max() -> None:
    assert size(settings(min_workers=5), 0.0, 6.0, 3, 0).workers == 5
    assert size(settings(max_workers=8), 300.0, 6.0, 3, 0).workers == 8


def test_the_budget_caps_the_pool_and_says_routing_sheds_the_rest() -> None:
    capped = size(settings(budget_per_hour=100.0, cost_per_worker_hour=10.0), 300.0, 6.0, 3, 0)
    assert capped.workers == 10
    assert capped.capped_by_budget
    assert "budget caps the pool; capacity-aware routing sheds the rest" in capped.reason(settings())
    # Paid per label: a busy worker gives 360 labels an hour at 0.02 = 7.2 an hour.
    per_label = size(settings(budget_per_hour=72.0), 300.0, 6.0, 3, 0, cost_per_label=0.02)
    assert per_label.affordable == 10
    assert per_label.workers == 10
    free = size(settings(budget_per_hour=1e6, cost_per_worker_hour=10.0), 30.0, 6.0, 3, 0)
    assert not free.capped_by_budget
    assert "budget caps" not in free.reason(settings())


# -- the stateful decider ----------------------------------------------------------------


def test_it_emits_only_when_the_target_changes_with_the_numbers_in_the_reason() -> None:
    scaler = Autoscaler(settings())
    command = scaler.decide(status(), now_s=0.0)
    assert command is not None
    assert command.action == "scale"
    assert command.issued_by == "autoscaler"
    assert command.workers == scaler.last.workers if scaler.last else False
    for text in (
        "λ=30.0/min",
        "μ=6.00/min/worker",
        "k=3",
        f"c={command.workers}",
        "predicted p95",
        "no budget",
    ):
        assert text in command.reason
    assert scaler.decide(status(workers=command.workers or 0), now_s=2.0) is None


def test_cooldowns_scale_up_fast_and_down_slowly() -> None:
    scaler = Autoscaler(settings(cooldown_up_s=10.0, cooldown_down_s=60.0, smoothing_s=0.0))
    first = scaler.decide(status(), now_s=0.0)
    assert first is not None
    assert first.workers is not None
    surge = status(workers=first.workers, arrival_rate_per_min=120.0)
    assert scaler.decide(surge, now_s=5.0) is None  # inside the up cooldown
    up = scaler.decide(surge, now_s=11.0)
    assert up is not None
    assert up.workers is not None
    assert up.workers > first.workers
    calm = status(workers=up.workers, arrival_rate_per_min=30.0)
    assert scaler.decide(calm, now_s=40.0) is None  # inside the down cooldown
    down = scaler.decide(calm, now_s=72.0)
    assert down is not None
    assert down.workers == first.workers


def test_small_decreases_are_ignored() -> None:
    scaler = Autoscaler(settings(hysteresis=0.2, smoothing_s=0.0, cooldown_down_s=0.0))
    first = scaler.decide(status(arrival_rate_per_min=300.0, workers=100), now_s=0.0)
    assert first is not None
    assert first.workers is not None
    slightly = status(workers=first.workers, arrival_rate_per_min=280.0)
    assert scaler.decide(slightly, now_s=100.0) is None
    assert scaler.decide(status(workers=first.workers, arrival_rate_per_min=30.0), now_s=200.0) is not None


def test_it_does_not_shrink_a_pool_it_has_just_started_watching() -> None:
    scaler = Autoscaler(settings(cooldown_down_s=30.0))
    assert scaler.decide(status(workers=50, arrival_rate_per_min=0.0), now_s=0.0) is None
    later = scaler.decide(status(workers=50, arrival_rate_per_min=0.0), now_s=31.0)
    assert later is not None
    assert later.workers == 1


def test_an_operator_pin_wins_until_released() -> None:
    scaler = Autoscaler(settings())
    scaler.pin(40)
    assert scaler.is_pinned
    assert scaler.decide(status(workers=40), now_s=0.0) is None
    assert scaler.decide(status(workers=40, arrival_rate_per_min=600.0), now_s=100.0) is None
    scaler.release()
    command = scaler.decide(status(workers=40), now_s=200.0)
    assert command is not None
    assert command.workers is not None
    assert command.workers < 40
    scaler.pin(None)  # hold wherever the pool is
    assert scaler.decide(status(workers=3, arrival_rate_per_min=600.0), now_s=300.0) is None


def test_a_paused_pool_is_left_alone() -> None:
    assert Autoscaler(settings()).decide(status(active=False), now_s=0.0) is None


def test_the_service_rate_is_read_only_once_new_workers_warmed_up() -> None:
    scaler = Autoscaler(settings(warmup_s=5.0, smoothing_s=0.0))
    scaler.observe(status(workers=10, capacity_per_min=60.0), now_s=0.0)
    # Ten newcomers warming up: capacity unchanged, headcount doubled; the rate per worker holds.
    _, service = scaler.observe(status(workers=20, capacity_per_min=60.0), now_s=2.0)
    assert service == pytest.approx(6.0)
    _, service = scaler.observe(status(workers=20, capacity_per_min=120.0), now_s=8.0)
    assert service == pytest.approx(6.0)


def test_a_rising_arrival_rate_is_projected_a_warm_up_ahead() -> None:
    scaler = Autoscaler(settings(warmup_s=5.0, smoothing_s=0.0))
    scaler.observe(status(arrival_rate_per_min=30.0), now_s=0.0)
    ahead, _ = scaler.observe(status(arrival_rate_per_min=50.0), now_s=2.0)
    assert ahead == pytest.approx(50.0 + 10.0 * 5.0)
    falling, _ = scaler.observe(status(arrival_rate_per_min=40.0), now_s=4.0)
    assert falling == pytest.approx(40.0)


# -- occupancy-driven scale-down and the smoothed trend ----------------------------------


def _surge_then_quiet(scaler: Autoscaler) -> tuple[int, float]:
    """Staff a 300/min surge, then report the surge's window rate with an idle pool; returns (workers, t)."""
    first = scaler.decide(status(workers=10, arrival_rate_per_min=300.0), now_s=0.0)
    assert first is not None
    assert first.workers is not None
    # The surge is over: the 60 s window still shows it, but only ~15 answers are in progress, no backlog.
    t = 0.0
    for _ in range(5):
        t += 2.0
        assert (
            scaler.decide(status(workers=first.workers, arrival_rate_per_min=300.0, in_progress=15), t)
            is None
        )
    return first.workers, t


def test_the_occupancy_waits_two_time_constants_before_it_counts() -> None:
    scaler = Autoscaler(settings(cooldown_up_s=10.0, cooldown_down_s=60.0, occupancy_smoothing_s=6.0))
    _, t = _surge_then_quiet(scaler)
    assert t == 10.0
    assert scaler.occupancy_bound(6.0, 3, now_s=t) is None
    assert scaler.occupancy_bound(6.0, 3, now_s=12.0) is not None


def test_an_idle_pool_without_backlog_scales_down_before_the_window_rate_falls() -> None:
    scaler = Autoscaler(settings(cooldown_up_s=10.0, cooldown_down_s=60.0, warmup_s=0.0))
    workers, t = _surge_then_quiet(scaler)
    down = None
    while down is None and t < 40.0:
        t += 2.0
        down = scaler.decide(status(workers=workers, arrival_rate_per_min=300.0, in_progress=15), t)
    assert down is not None  # long before the 60 s down cooldown
    assert down.workers is not None
    assert down.workers < workers // 2
    # The step keeps the predicted p95 within the SLA at the occupancy's upper bound, above the busy 15.
    assert scaler.last is not None
    assert scaler.last.predicted_p95_s <= 60.0
    assert down.workers > 15
    # It does not bounce back up on the lagging window rate while the pool stays idle and unqueued.
    for _ in range(20):
        t += 2.0
        again = scaler.decide(status(workers=down.workers, arrival_rate_per_min=250.0, in_progress=15), t)
        assert again is None or (again.workers is not None and again.workers <= down.workers)


def test_a_queue_or_a_fully_busy_pool_disables_the_occupancy_bound() -> None:
    for busy in ({"backlog": 5, "in_progress": 15}, {"backlog": 0}):  # default in_progress: all busy
        scaler = Autoscaler(settings(cooldown_up_s=10.0, cooldown_down_s=60.0, warmup_s=0.0))
        first = scaler.decide(status(workers=10, arrival_rate_per_min=300.0), now_s=0.0)
        assert first is not None
        assert first.workers is not None
        for step in range(1, 25):
            fields = {"workers": first.workers, "arrival_rate_per_min": 300.0} | busy
            assert scaler.decide(status(**fields), now_s=2.0 * step) is None
        assert scaler.occupancy_bound(6.0, 3, now_s=48.0) is None


def test_the_occupancy_bound_sits_above_the_smoothed_occupancy() -> None:
    scaler = Autoscaler(settings(occupancy_smoothing_s=6.0, occupancy_margin=2.0))
    for step in range(20):
        scaler.observe(status(workers=40, in_progress=20), now_s=2.0 * step)
    bound = scaler.occupancy_bound(6.0, 3, now_s=40.0)
    assert bound is not None
    # 20 busy at 6 answers/min each, 3 answers a task: 40 tasks/min, plus two standard deviations.
    assert 40.0 < bound < 40.0 * 1.5
    loose = Autoscaler(settings(occupancy_margin=0.0))
    for step in range(20):
        loose.observe(status(workers=40, in_progress=20), now_s=2.0 * step)
    assert loose.occupancy_bound(6.0, 3, now_s=40.0) == pytest.approx(40.0)


def test_the_trend_is_smoothed_so_one_noisy_jump_leads_little() -> None:
    scaler = Autoscaler(settings(warmup_s=5.0, smoothing_s=10.0))
    scaler.observe(status(arrival_rate_per_min=300.0), now_s=0.0)
    ahead, _ = scaler.observe(status(arrival_rate_per_min=320.0), now_s=2.0)
    # A raw difference would lead by 10/min/s x 5 s = 50/min; smoothed, an 18 % share of it.
    assert ahead < 300.0 + 0.2 * 20.0 + 0.2 * 50.0
    steady = 300.0
    for step in range(2, 60):  # a sustained ramp is followed
        steady += 20.0
        ahead, _ = scaler.observe(status(arrival_rate_per_min=steady), now_s=2.0 * step)
    assert ahead > steady - 10.0 * 10.0 + 10.0 * 5.0 * 0.9
