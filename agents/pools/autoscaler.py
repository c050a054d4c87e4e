"""The autoscaler: sizes each labeling pool from its PoolStatus with an Erlang C queueing model.

The model (Erlang C, the time-to-label tail and the staffing that meets the SLA) is
:mod:`agents.pools.queueing`.

Erlang C assumes a steady state; a surge leaves a queue behind. The backlog
above what the steady state queues (``L_q``) is drained within
``drain_horizon_s`` by ``excess·k / (μ·horizon)`` more workers. New workers
answer only after ``warmup_s``: the arrival rate is projected that far ahead
along its rising trend, smoothed like the rate itself (a raw difference of
two window rates is mostly noise, and projecting noise ratchets the pool up;
a falling trend is ignored: scaling down is never anticipated). The
measured rates are smoothed both ways (a surge shows at once in the backlog;
an arrival rate that rose on noise alone would ratchet the pool up). The
service rate is read only once the headcount held for a warm-up (capacity
counts productive workers only).

The arrival rate is a window average (60 s in the pools), so it still shows
a surge a minute after it ended. The occupancy (``in_progress``: answers
being given now) does not: by Little's law it is ``kλ/μ`` on average, and it
follows the load within an answer or two. It measures the load only while
nothing waits and some worker is idle (else it is a floor), and only after
``2·occupancy_smoothing_s`` of that. Then its upper bound (the smoothed
occupancy plus ``occupancy_margin`` standard deviations; an M/G/∞
occupancy smoothed with time constant ``τ`` has variance ``a·s/(s+τ)``, ``s``
the mean answer time) caps the arrival rate the pool is sized for. A smaller
target so backed is the SLA staffing at that bound, so the predicted p95
stays within the SLA, and it may follow a change after ``cooldown_up_s``
rather than ``cooldown_down_s``: the pool sheds a surge's staff as soon as
it idles, not a window and a cooldown later. Then the target is
clamped to ``[min_workers, max_workers]`` and to what the budget affords, and
it moves only past the cooldowns (short up, long down) and the hysteresis
(small decreases are ignored).

Budget. With ``cost_per_worker_hour`` set, the pool costs its headcount; else
a worker costs its labels (``cost_per_label`` × its answers per hour when
busy — the bound, since idle workers paid per label cost nothing). When the
budget caps the target, the reason says so and the router's capacity-aware
routing (it reads ``capacity_per_min`` on PoolStatus) sheds the rest.

References
----------
The queueing model's: :mod:`agents.pools.queueing` (Gross & Harris; Koole; Allen).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.pools.queueing import (
    MAX_WORKERS,
    erlang_c,
    expected_queue,
    time_to_label_quantile,
    time_to_label_tail,
    workers_for_sla,
)
from schemas import PoolCommand, PoolStatus

__all__ = [
    "Autoscaler",
    "AutoscalerSettings",
    "Sizing",
    "erlang_c",
    "expected_queue",
    "size",
    "time_to_label_quantile",
    "time_to_label_tail",
    "workers_for_sla",
]


class AutoscalerSettings(BaseModel):
    """How one pool is sized (``LABELLOOP_POOLS__AUTOSCALER__*``; see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    min_workers: int = Field(default=1, ge=0)
    max_workers: int = Field(default=200, ge=0, le=MAX_WORKERS)
    #: The time-to-label SLA: the ``sla_quantile`` of arrival-to-label seconds.
    sla_p95_s: float = Field(default=60.0, gt=0.0)
    sla_quantile: float = Field(default=0.95, gt=0.0, lt=1.0)
    #: Utilisation the pool may plan for (headroom for measurement noise).
    max_utilisation: float = Field(default=0.97, gt=0.0, le=1.0)
    #: Seconds after a change before the next increase / decrease.
    cooldown_up_s: float = Field(default=10.0, ge=0.0)
    cooldown_down_s: float = Field(default=30.0, ge=0.0)
    #: A decrease smaller than this share of the headcount (and at least one worker) is ignored.
    hysteresis: float = Field(default=0.05, ge=0.0, lt=1.0)
    #: Seconds in which the backlog above the steady-state queue should be drained.
    drain_horizon_s: float = Field(default=30.0, gt=0.0)
    #: Seconds a new worker needs before its first answer (the pool's warm-up): the trend lead.
    warmup_s: float = Field(default=5.0, ge=0.0)
    #: Time constant of the exponential smoothing of the measured rates (arrivals, service).
    smoothing_s: float = Field(default=10.0, ge=0.0)
    #: Time constant of the smoothing of ``in_progress`` (the occupancy: the load the pool serves now).
    occupancy_smoothing_s: float = Field(default=6.0, gt=0.0)
    #: Standard deviations above the smoothed occupancy the load bound takes (0: the estimate itself).
    occupancy_margin: float = Field(default=2.0, ge=0.0)
    #: Seconds per answer assumed until the pool measures it.
    prior_service_s: float = Field(default=10.0, gt=0.0)
    #: Money per hour the pool may spend (None: no budget).
    budget_per_hour: float | None = Field(default=None, ge=0.0)
    #: Money per worker-hour (None: workers are paid per label, ``cost_per_label`` on PoolStatus).
    cost_per_worker_hour: float | None = Field(default=None, ge=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalerSettings:
        if self.min_workers > self.max_workers:
            raise ValueError(f"min_workers {self.min_workers} exceeds max_workers {self.max_workers}")
        return self


@dataclass(frozen=True)
class Sizing:
    """One staffing decision and the numbers behind it."""

    workers: int
    arrival_per_min: float
    service_per_min: float
    overlap: int
    for_sla: int | None
    for_backlog: int
    predicted_p95_s: float
    affordable: int | None
    capped_by_budget: bool

    def reason(self, settings: AutoscalerSettings) -> str:
        """The decision in numbers, as the PoolCommand's reason."""
        sla = "unreachable" if self.for_sla is None else str(self.for_sla)
        budget = "no budget" if self.affordable is None else f"budget affords {self.affordable}"
        text = (
            f"λ={self.arrival_per_min:.1f}/min k={self.overlap} μ={self.service_per_min:.2f}/min/worker "
            f"c={self.workers} (SLA {sla} + backlog {self.for_backlog}) "
            f"predicted p95 {self.predicted_p95_s:.1f}s vs SLA {settings.sla_p95_s:.0f}s; {budget}"
        )
        if self.capped_by_budget:
            text += "; budget caps the pool; capacity-aware routing sheds the rest"
        return text[:500]


def size(
    settings: AutoscalerSettings,
    arrival_per_min: float,
    service_per_min: float,
    overlap: int,
    backlog: int,
    cost_per_label: float = 0.0,
) -> Sizing:
    """The pure staffing rule: SLA workers + backlog drain, clamped to min/max and the budget.

    >>> s = size(AutoscalerSettings(sla_p95_s=60.0), arrival_per_min=30.0, service_per_min=6.0,
    ...          overlap=3, backlog=0)
    >>> s.workers, s.for_backlog, s.predicted_p95_s <= 60.0
    (16, 0, True)
    """
    arrival_per_s, service_per_s = arrival_per_min / 60.0, service_per_min / 60.0
    limit = settings.max_workers if settings.max_workers > 0 else 1
    for_sla = workers_for_sla(
        arrival_per_s,
        service_per_s,
        overlap,
        settings.sla_p95_s,
        settings.sla_quantile,
        settings.max_utilisation,
        limit=max(limit, math.ceil(overlap * arrival_per_s / service_per_s) + 1),
    )
    base = for_sla if for_sla is not None else settings.max_workers
    load = overlap * arrival_per_s / service_per_s
    steady_tasks = expected_queue(base, load) / overlap if base > 0 else 0.0
    excess = max(0.0, backlog - (steady_tasks if math.isfinite(steady_tasks) else 0.0))
    for_backlog = math.ceil(excess * overlap / (service_per_s * settings.drain_horizon_s) - 1e-9)
    wanted = min(max(base + for_backlog, settings.min_workers), settings.max_workers)
    affordable = _affordable(settings, service_per_min, cost_per_label)
    capped = affordable is not None and wanted > affordable
    workers = min(wanted, affordable) if affordable is not None else wanted
    predicted = (
        time_to_label_quantile(settings.sla_quantile, workers, arrival_per_s, service_per_s, overlap)
        if workers > 0 and arrival_per_s > 0.0
        else (0.0 if arrival_per_s == 0.0 else math.inf)
    )
    return Sizing(
        workers,
        arrival_per_min,
        service_per_min,
        overlap,
        for_sla,
        for_backlog,
        predicted,
        affordable,
        capped,
    )


def _affordable(settings: AutoscalerSettings, service_per_min: float, cost_per_label: float) -> int | None:
    if settings.budget_per_hour is None:
        return None
    per_worker_hour = (
        settings.cost_per_worker_hour
        if settings.cost_per_worker_hour is not None
        else cost_per_label * service_per_min * 60.0
    )
    if per_worker_hour <= 0.0:
        return None
    return min(MAX_WORKERS, math.floor(settings.budget_per_hour / per_worker_hour + 1e-9))


class Autoscaler:
    """Decides one pool's headcount from its PoolStatus reports; operator pins win.

    Parameters
    ----------
    settings
        SLA, limits, cooldowns, budget, smoothing.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> status = PoolStatus(pool="crowd", backend="simulated", tier="crowd", workers=4, active=True,
    ...                     backlog=0, in_progress=4, arrival_rate_per_min=30.0, capacity_per_min=24.0,
    ...                     overlap=3, answers_total=0, tasks_done=0, cost_per_label=0.02,
    ...                     reported_at=datetime(2026, 1, 1, tzinfo=UTC))
    >>> scaler = Autoscaler(AutoscalerSettings(sla_p95_s=60.0))
    >>> command = scaler.decide(status, now_s=0.0)
    >>> command.action, command.workers, command.issued_by
    ('scale', 16, 'autoscaler')
    >>> scaler.decide(status, now_s=2.0) is None  # the same target: nothing to say
    True
    >>> scaler.pin(30); scaler.decide(status, now_s=100.0) is None  # the operator's size holds
    True
    """

    def __init__(self, settings: AutoscalerSettings) -> None:
        self.settings = settings
        self.pinned: int | None = None
        self._is_pinned = False
        self._target: int | None = None
        self._changed_at = -math.inf
        self._first_seen_s = math.inf
        self._arrival: float | None = None
        self._previous: tuple[float, float] | None = None
        self._service: float | None = None
        self._headcount: tuple[int, float] | None = None
        self._trend = 0.0
        self._busy: float | None = None
        self._saturated_s = -math.inf
        #: The last sizing (also when nothing was emitted), for status pages and tests.
        self.last: Sizing | None = None

    def pin(self, workers: int | None) -> None:
        """An operator command holds the pool (at ``workers``, or wherever it is) until :meth:`release`."""
        self._is_pinned = True
        self.pinned = workers
        if workers is not None:
            self._target = workers

    def release(self) -> None:
        """Hand the pool back to the autoscaler (its next decision counts from the operator's size)."""
        self._is_pinned = False
        self.pinned = None
        self._changed_at = -math.inf

    @property
    def is_pinned(self) -> bool:
        """Whether an operator holds the pool."""
        return self._is_pinned

    def observe(self, status: PoolStatus, now_s: float) -> tuple[float, float]:
        """Update the smoothed rates from one report; returns (arrivals/min ahead, answers/min/worker)."""
        measured = status.arrival_rate_per_min
        elapsed = 0.0 if self._previous is None else max(0.0, now_s - self._previous[0])
        weight = (
            1.0 if self.settings.smoothing_s == 0.0 else 1.0 - math.exp(-elapsed / self.settings.smoothing_s)
        )
        if self._arrival is None:
            self._arrival = measured
            self._first_seen_s = now_s
        else:
            # Noise in the measured rate must not ratchet the pool up; a surge shows in the backlog at once.
            self._arrival += weight * (measured - self._arrival)
        if self._previous is not None and elapsed > 0.0:
            # The trend is smoothed like the rate: a raw difference of two window rates is mostly noise.
            slope = (measured - self._previous[1]) / elapsed
            self._trend += weight * (slope - self._trend)
        rising = max(0.0, self._trend)
        self._previous = (now_s, measured)
        # Capacity counts productive workers only: read μ once the headcount held for a warm-up.
        if self._headcount is None or self._headcount[0] != status.workers:
            self._headcount = (status.workers, now_s)
        settled = now_s - self._headcount[1] >= self.settings.warmup_s
        if status.workers > 0 and status.capacity_per_min > 0.0 and (settled or self._service is None):
            per_worker = status.capacity_per_min / status.workers
            if self._service is None:
                self._service = per_worker
            else:
                self._service += weight * (per_worker - self._service)
        service = self._service if self._service is not None else 60.0 / self.settings.prior_service_s
        self._observe_occupancy(status, now_s, elapsed)
        return self._arrival + rising * self.settings.warmup_s, service

    def _observe_occupancy(self, status: PoolStatus, now_s: float, elapsed: float) -> None:
        # A queue, or every worker busy, hides the load: the occupancy is then a floor, not a measure.
        if status.backlog > 0 or status.in_progress >= status.workers:
            self._saturated_s = now_s
        if self._busy is None:
            self._busy = float(status.in_progress)
            return
        weight = 1.0 - math.exp(-elapsed / self.settings.occupancy_smoothing_s)
        self._busy += weight * (status.in_progress - self._busy)

    def occupancy_bound(self, service_per_min: float, overlap: int, now_s: float) -> float | None:
        """Arrivals/min the current occupancy bounds from above; None while it is not a load measure."""
        if self._busy is None:
            return None
        settle_s = 2.0 * self.settings.occupancy_smoothing_s
        if min(now_s - self._saturated_s, now_s - self._first_seen_s) < settle_s:
            return None
        # Variance of an exponentially smoothed M/G/∞ occupancy: a·s/(s+τ) (s: the mean answer time).
        answer_s = 60.0 / service_per_min
        spread = math.sqrt(max(self._busy, 1.0) * answer_s / (answer_s + self.settings.occupancy_smoothing_s))
        load = self._busy + self.settings.occupancy_margin * spread
        return load * service_per_min / overlap

    def decide(self, status: PoolStatus, now_s: float) -> PoolCommand | None:
        """A ``scale`` command when the pool's target changes, else None (paused or pinned: None)."""
        arrival, service = self.observe(status, now_s)
        if self._is_pinned or not status.active:
            return None
        bound = self.occupancy_bound(service, status.overlap, now_s)
        backed = bound is not None and bound < arrival
        if bound is not None:
            arrival = min(arrival, bound)
        sizing = size(self.settings, arrival, service, status.overlap, status.backlog, status.cost_per_label)
        self.last = sizing
        current = self._target if self._target is not None else status.workers
        target = sizing.workers
        since = now_s - self._changed_at
        if target > current:
            if since < self.settings.cooldown_up_s:
                return None
        elif target < current:
            small = current - target < max(1.0, self.settings.hysteresis * current)
            # Watch the pool a cooldown before the first decrease too (its first rates are thin).
            watched = now_s - self._first_seen_s
            cooldown = self.settings.cooldown_up_s if backed else self.settings.cooldown_down_s
            if min(since, watched) < cooldown or small:
                return None
        else:
            return None
        self._target = target
        self._changed_at = now_s
        return PoolCommand(
            pool=status.pool,
            action="scale",
            workers=target,
            issued_by="autoscaler",
            issued_at=status.reported_at,
            reason=sizing.reason(self.settings),
        )
