"""[R4] A 10x arrival surge against fixed human capacity, with and without capacity-aware routing.

A discrete-time simulation (0.1 s ticks) of the bathtub: the real Router
decides every event of the demo's SEA stream; the requests it sends (reviews,
control, audit) join one queue that the pools serve at a fixed rate; the pool
reports its backlog every 2 s, as the real PoolStatus does. Before the surge
the arrival rate is 5 events/s, during it 50/s for 10 simulated minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agents.router.capacity import CapacitySettings
from agents.router.policy import Router, RouterSettings
from agents.router.sampling import AuditSettings
from agents.simulation.stream import StreamSettings, simulate
from bench.harness import Goal, Row

TARGET_BACKLOG = 200
CAPACITY_PER_S = 6.0
BASE_RATE_PER_S = 5.0
SURGE_FACTOR = 10.0
CONTROL_SHARE = 0.05
AUDIT_RATE = 0.02
WARM_S, SURGE_S, SETTLE_S = 120.0, 600.0, 120.0


@dataclass
class SurgeResult:
    """What one simulated surge showed."""

    backlog_mean_in_surge: float
    backlog_max_in_surge: float
    backlog_at_end_of_surge: float
    time_within_10_percent: float
    control_share: float
    audit_share: float
    shed: int


def run_surge(*, capacity_aware: bool, seed: int = 42) -> SurgeResult:
    """One surge; the backlog is measured after the first ``SETTLE_S`` of the surge.

    The goal is read on the mean backlog over the rest of the surge; its
    maximum and the share of time within 10 % are printed beside it.
    """
    settings = RouterSettings(
        accept_threshold=0.7,
        control_share=CONTROL_SHARE,
        audit=AuditSettings(rate=AUDIT_RATE),
        capacity=CapacitySettings(enabled=capacity_aware, target_backlog=TARGET_BACKLOG, horizon_s=60.0),
    )
    clock = [0.0]
    router = Router(settings, clock=lambda: clock[0])
    total_events = int(BASE_RATE_PER_S * WARM_S + BASE_RATE_PER_S * SURGE_FACTOR * SURGE_S)
    stream = simulate(StreamSettings(events=total_events, train_size=500, seed=seed, drift_at=2.0))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    backlog = 0.0
    samples: list[float] = []
    would_accept = control = accepted = audited = shed = 0
    tick_s, next_report, credit = 0.1, 0.0, 0.0
    events = iter(stream)
    end_s = WARM_S + SURGE_S
    while clock[0] < end_s:
        in_surge = WARM_S <= clock[0] < end_s
        credit += (BASE_RATE_PER_S * (SURGE_FACTOR if in_surge else 1.0)) * tick_s
        while credit >= 1.0:
            credit -= 1.0
            simulated = next(events, None)
            if simulated is None:
                break
            decision = router.decide(simulated.event, start + timedelta(seconds=clock[0]))
            sent = decision.action == "review" or decision.audit is not None
            backlog += 1.0 if sent else 0.0
            if decision.route == "control" or (decision.action == "accept" and not decision.shed):
                would_accept += 1
            control += decision.route == "control"
            if decision.action == "accept":
                accepted += 1
                audited += decision.audit is not None
                shed += decision.shed
        backlog = max(0.0, backlog - CAPACITY_PER_S * tick_s)
        if clock[0] >= next_report:
            router.gate.observe_status(round(backlog), CAPACITY_PER_S * 60.0)
            next_report += 2.0
        if WARM_S + SETTLE_S <= clock[0] < end_s:
            samples.append(backlog)
        clock[0] += tick_s
    return SurgeResult(
        backlog_mean_in_surge=sum(samples) / len(samples),
        backlog_max_in_surge=max(samples),
        backlog_at_end_of_surge=backlog,
        time_within_10_percent=sum(abs(b - TARGET_BACKLOG) <= 0.1 * TARGET_BACKLOG for b in samples)
        / len(samples),
        control_share=control / max(1, would_accept),
        audit_share=audited / max(1, accepted),
        shed=shed,
    )


def run() -> tuple[list[Row], list[Goal]]:
    """Both surges, the rows and the R4 goal line."""
    aware = run_surge(capacity_aware=True)
    blind = run_surge(capacity_aware=False)
    backlog_error = abs(aware.backlog_mean_in_surge - TARGET_BACKLOG) / TARGET_BACKLOG
    control_error = abs(aware.control_share - CONTROL_SHARE) / CONTROL_SHARE
    audit_error = abs(aware.audit_share - AUDIT_RATE) / AUDIT_RATE
    rows = [
        Row(
            "R4 backlog in a 10x surge, capacity-aware",
            aware.backlog_mean_in_surge,
            TARGET_BACKLOG,
            "ev",
            "target backlog",
        ),
        Row(
            "R4 backlog in a 10x surge, capacity-blind",
            blind.backlog_at_end_of_surge,
            TARGET_BACKLOG,
            "ev",
            "target backlog",
        ),
        Row("R4 control share in the surge", aware.control_share, CONTROL_SHARE, "", "control setting"),
        Row("R4 audit share in the surge", aware.audit_share, AUDIT_RATE, "", "audit setting"),
    ]
    holds = backlog_error <= 0.10 and control_error <= 0.10 and audit_error <= 0.10
    figure = (
        f"backlog {aware.backlog_mean_in_surge:.0f} vs target {TARGET_BACKLOG} ({backlog_error:.1%} off, "
        f"max {aware.backlog_max_in_surge:.0f}, within 10% {aware.time_within_10_percent:.0%} of the time), "
        f"control {aware.control_share:.4f} ({control_error:.1%} off), "
        f"audit {aware.audit_share:.4f} ({audit_error:.1%} off); without capacity-aware routing the "
        f"backlog ends the surge at {blind.backlog_at_end_of_surge:.0f} and still growing"
    )
    return rows, [Goal("R4", figure, "backlog, control and audit within 10% of their settings", holds)]
