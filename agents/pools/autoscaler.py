"""The autoscaler: sizes each labeling pool from its PoolStatus with an Erlang C queueing model.

The model
---------
Every answer is a job of an M/M/c queue: tasks arrive at ``λ`` per second
(``arrival_rate_per_min / 60``), each needs ``k`` answers (``overlap``), so
answer-jobs arrive at ``kλ``; each of the ``c`` workers gives ``μ`` answers
per second (``capacity_per_min / workers / 60``). The offered load is
``a = kλ/μ`` erlangs and, for ``a < c``, Erlang C gives the probability that
a job waits and the tail of its wait (Gross & Harris; Koole)::

    C(c, a) = B(c, a) · c / (c − a·(1 − B(c, a)))     (B: Erlang B, by its stable recursion)
    P(W > t) = C(c, a) · exp(−(cμ − kλ)·t)

A task's time-to-label is modelled as ``W + max(S_1, …, S_k)``: its ``k``
answers are taken as served in parallel by different workers after one
wait ``W``, each service ``S_i`` exponential with rate ``μ``. The
approximation: in a busy queue the ``k`` jobs of a task start at ``k``
consecutive departures (``(k−1)/(cμ)`` apart on average), not together, and
real service times are less variable than exponential (the simulated crowd's
are log-normal, CV ≈ 0.5), which makes M/M/c waits pessimistic by about
``(1 + CV²)/2`` (Allen–Cunneen) — on the whole the model errs on the safe
side. ``P(T > t)`` has a closed form (the binomial expansion of
``(1 − e^{−μs})^k`` convolved with the exponential wait), and the smallest
``c`` with ``P(T > SLA) ≤ 1 − quantile`` is the staffing that meets the SLA.

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
Gross, D., Shortle, J. F., Thompson, J. M. & Harris, C. M. (2008).
*Fundamentals of Queueing Theory*, 4th ed., Wiley (M/M/c: P(wait) and the
waiting-time distribution).

Koole, G. (2013). *Call Center Optimization*, MG books (Erlang C, the
service level ``1 − C·e^{−(cμ−λ)t}``, staffing by the smallest c).

Allen, A. O. (1990). *Probability, Statistics, and Queueing Theory*, 2nd ed.
(the Allen–Cunneen approximation for G/G/c).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas import PoolCommand, PoolStatus

_MAX_WORKERS = 100_000


def erlang_c(servers: int, load: float) -> float:
    """P(wait) for M/M/c with ``servers`` servers and ``load`` erlangs (1 when ``load >= servers``).

    >>> round(erlang_c(1, 0.7), 6)  # one server: P(wait) is the utilisation
    0.7
    >>> round(erlang_c(2, 1.0), 6)  # a²/(c!(1−ρ)) / (Σ aⁿ/n! + ...) = 1/3
    0.333333
    """
    if load <= 0.0:
        return 0.0
    if load >= servers:
        return 1.0
    blocking = 1.0
    for n in range(1, servers + 1):
        blocking = load * blocking / (n + load * blocking)
    return servers * blocking / (servers - load * (1.0 - blocking))


def time_to_label_tail(
    t_s: float, servers: int, arrival_per_s: float, service_per_s: float, overlap: int
) -> float:
    """``P(T > t_s)`` for ``T = W + max(S_1..S_k)`` (the model of the module docstring).

    >>> round(time_to_label_tail(0.0, 3, 0.5, 1.0, 1), 6)
    1.0
    >>> round(time_to_label_tail(3.0, 10, 2.0, 1.0, 3), 4)  # a Monte Carlo of 200,000 tasks gives 0.1462
    0.1464
    >>> time_to_label_tail(3.0, 7, 2.0, 1.0, 3) > time_to_label_tail(3.0, 8, 2.0, 1.0, 3)
    True
    """
    mu, k = service_per_s, overlap
    load = k * arrival_per_s / mu
    if load >= servers:
        return 1.0
    if t_s <= 0.0:
        return 1.0
    waits = erlang_c(servers, load)
    theta = servers * mu - k * arrival_per_s
    served = 0.0  # P(max S ≤ t)
    after_wait = 0.0  # P(W' + max S ≤ t), W' ~ Exp(θ)
    for j in range(k + 1):
        weight = math.comb(k, j) * (-1) ** j
        served += weight * math.exp(-j * mu * t_s)
        rate = j * mu
        if j == 0:
            part = 1.0 - math.exp(-theta * t_s)
        elif abs(rate - theta) < 1e-12 * max(rate, theta):
            part = theta * t_s * math.exp(-theta * t_s)
        else:
            part = theta * (math.exp(-theta * t_s) - math.exp(-rate * t_s)) / (rate - theta)
        after_wait += weight * part
    done = (1.0 - waits) * served + waits * after_wait
    return min(1.0, max(0.0, 1.0 - done))


def time_to_label_quantile(
    quantile: float, servers: int, arrival_per_s: float, service_per_s: float, overlap: int
) -> float:
    """The ``quantile`` of the time-to-label in seconds (``inf`` when the queue is unstable).

    >>> round(time_to_label_quantile(0.5, 100, 0.001, math.log(2), 1), 3)  # no wait: the median of Exp(ln 2)
    1.0
    """
    if overlap * arrival_per_s >= servers * service_per_s:
        return math.inf
    low, high = 0.0, 1.0 / service_per_s
    while time_to_label_tail(high, servers, arrival_per_s, service_per_s, overlap) > 1.0 - quantile:
        high *= 2.0
    for _ in range(60):
        middle = (low + high) / 2.0
        if time_to_label_tail(middle, servers, arrival_per_s, service_per_s, overlap) > 1.0 - quantile:
            low = middle
        else:
            high = middle
    return high


def workers_for_sla(
    arrival_per_s: float,
    service_per_s: float,
    overlap: int,
    sla_s: float,
    quantile: float = 0.95,
    max_utilisation: float = 1.0,
    limit: int = _MAX_WORKERS,
) -> int | None:
    """The smallest c whose ``quantile`` time-to-label is within ``sla_s`` (None: none up to ``limit``).

    >>> workers_for_sla(arrival_per_s=1.0, service_per_s=0.2, overlap=1, sla_s=30.0)  # 5 erlangs
    6
    >>> workers_for_sla(arrival_per_s=1.0, service_per_s=0.2, overlap=1, sla_s=1.0) is None  # too slow
    True
    """
    if arrival_per_s <= 0.0:
        return 0
    load = overlap * arrival_per_s / service_per_s
    start = max(math.floor(load) + 1, math.ceil(load / max_utilisation - 1e-9), 1)
    for servers in range(start, limit + 1):
        if time_to_label_tail(sla_s, servers, arrival_per_s, service_per_s, overlap) <= 1.0 - quantile:
            return servers
        if erlang_c(servers, load) < 1e-9:  # no wait left: more workers cannot shorten the service
            return None
    return None


def expected_queue(servers: int, load: float) -> float:
    """``L_q``: the mean number of jobs waiting in M/M/c (``inf`` when unstable)."""
    if load >= servers:
        return math.inf
    return erlang_c(servers, load) * load / (servers - load)


class AutoscalerSettings(BaseModel):
    """How one pool is sized (``LABELLOOP_POOLS__AUTOSCALER__*``; see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    min_workers: int = Field(default=1, ge=0)
    max_workers: int = Field(default=200, ge=0, le=_MAX_WORKERS)
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
    return min(_MAX_WORKERS, math.floor(settings.budget_per_hour / per_worker_hour + 1e-9))


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
