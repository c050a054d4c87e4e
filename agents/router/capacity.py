"""Capacity-aware routing: admit reviews at the rate the human pools can absorb (the bathtub law).

Backlog grows by arrivals and shrinks by service: dB/dt = λ_review + λ_reserved - μ.
The gate sets the review budget so the backlog is steered to its target:
``budget = μ - λ_reserved + (target - B) / horizon``, where λ_reserved is the
control and audit traffic (always sent: the measurement budgets are kept).
When the would-review candidates arrive faster than the budget, only the
most valuable share ``budget / λ_candidates`` is sent (a value cutoff from a
window of recent candidates); the rest are accepted with the reason said.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from agents.rates import WindowRate
from schemas import PoolStatus


class CapacitySettings(BaseModel):
    """Capacity-aware routing (``LABELLOOP_ROUTER__CAPACITY__*``)."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    #: Events waiting for humans the loop aims to hold at most.
    target_backlog: int = Field(default=200, ge=0)
    #: How fast the budget steers the backlog toward its target.
    horizon_s: float = Field(default=60.0, gt=0.0)
    #: Recent would-review candidates behind the value cutoff.
    window: int = Field(default=500, ge=10)
    #: A pool status older than this is ignored (the gate admits everything).
    stale_after_s: float = Field(default=30.0, gt=0.0)


@dataclass(frozen=True, slots=True)
class GateDecision:
    """Whether a would-review event is sent to humans, and the budget state behind it."""

    admitted: bool
    budget_per_min: float | None
    #: Why there is no budget (gate disabled, no or stale pool status), when there is none.
    unlimited_because: str | None
    candidates_per_min: float
    cutoff: float | None
    backlog: float | None

    def describe(self) -> str:
        """The budget state, for the routing trace."""
        if self.budget_per_min is None:
            return f"{self.unlimited_because or 'no budget'}: every review admitted"
        cutoff = "none" if self.cutoff is None else f"{self.cutoff:.3f}"
        return (
            f"review budget {self.budget_per_min:.1f}/min for {self.candidates_per_min:.1f}/min candidates, "
            f"backlog ~{self.backlog or 0:.0f}, value cutoff {cutoff}"
        )


class ReviewGate:
    """Admission control for reviews from the pools' reported capacity and backlog.

    Parameters
    ----------
    settings
        Target backlog, steering horizon, candidate window.
    clock
        Monotonic seconds (the simulation passes its own).

    Examples
    --------
    >>> now = [0.0]
    >>> gate = ReviewGate(CapacitySettings(target_backlog=10, horizon_s=60), clock=lambda: now[0])
    >>> gate.admit(0.1).admitted                       # no status yet: admit
    True
    >>> backlog = 500.0                                # 10 candidates/s against 1/s of capacity
    >>> for second in range(900):
    ...     now[0] = float(second)
    ...     gate.observe_status(backlog=int(backlog), capacity_per_min=60.0)
    ...     admitted = sum(gate.admit(value=k / 10).admitted for k in range(10))
    ...     backlog = max(0.0, backlog + admitted - 1.0)
    >>> abs(backlog - 10) <= 3                         # drained to its target and held there
    True
    """

    def __init__(self, settings: CapacitySettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self._clock = clock
        self._candidates = WindowRate(window_s=60.0)
        self._reserved = WindowRate(window_s=60.0)
        self._values: deque[float] = deque(maxlen=settings.window)
        self._backlog_reported: float | None = None
        self._capacity_per_min = 0.0
        self._reported_at = 0.0
        self._sent_since_report = 0
        self._cutoff_cache: tuple[int, float, tuple[float | None, float]] = (-1, -1.0, (None, 0.0))
        self._tie_credit = 0.0
        self._seen = 0
        #: The latest report of each crowd pool, with when it came.
        self._pools: dict[tuple[str, str | None], tuple[float, PoolStatus]] = {}

    def observe_status(self, backlog: int, capacity_per_min: float) -> None:
        """A pool's report: events waiting and events per minute it can finish."""
        self._backlog_reported = float(backlog)
        self._capacity_per_min = capacity_per_min
        self._reported_at = self._clock()
        self._sent_since_report = 0

    def observe_pool(self, status: PoolStatus) -> None:
        """Take capacity and backlog from a PoolStatus (capacity in events per minute).

        Reviews go to the crowd tier, so only crowd pools count: their fresh
        reports are summed (a simulated crowd and Toloka side by side), and an
        expert pool's report, whose few people answer escalations, never
        stands in for the crowd's capacity.
        """
        if status.tier != "crowd":
            return
        now = self._clock()
        # Several workers each run a copy of the pool under its name: one entry per reporter.
        self._pools[(status.pool, status.reporter)] = (now, status)
        fresh = [report for seen, report in self._pools.values() if now - seen <= self.settings.stale_after_s]
        self.observe_status(
            sum(report.backlog + report.in_progress for report in fresh),
            sum(report.event_capacity_per_min for report in fresh),
        )

    def reserve(self) -> None:
        """A control or audit request was sent: it uses capacity the reviews cannot."""
        self._reserved.add(self._clock())
        self._sent_since_report += 1

    def backlog_estimate(self) -> float | None:
        """The last reported backlog, moved forward by what was sent and served since."""
        if self._backlog_reported is None:
            return None
        elapsed_min = (self._clock() - self._reported_at) / 60.0
        served = self._capacity_per_min * elapsed_min
        return max(0.0, self._backlog_reported + self._sent_since_report - served)

    def admit(self, value: float) -> GateDecision:
        """Send this would-review event to humans? Higher ``value`` is sent first."""
        now = self._clock()
        self._candidates.add(now)
        self._values.append(value)
        self._seen += 1
        candidates = self._candidates.per_min(now)
        backlog = self.backlog_estimate()
        unlimited = (
            "capacity-aware routing off"
            if not self.settings.enabled
            else "no pool status yet"
            if backlog is None
            else "pool status stale"
            if now - self._reported_at > self.settings.stale_after_s
            else None
        )
        if unlimited is not None or backlog is None:
            self._sent_since_report += 1
            return GateDecision(True, None, unlimited, candidates, None, backlog)
        steer = (self.settings.target_backlog - backlog) * 60.0 / self.settings.horizon_s
        budget = max(0.0, self._capacity_per_min - self._reserved.per_min(now) + steer)
        if budget >= candidates:
            self._sent_since_report += 1
            return GateDecision(True, budget, None, candidates, None, backlog)
        cutoff, tie_share = self._cutoff(budget / candidates if candidates else 0.0)
        admitted = cutoff is not None and value > cutoff
        if cutoff is not None and value == cutoff:
            # Values tied at the cutoff get the share that is left, spread evenly (error diffusion).
            self._tie_credit += tie_share
            admitted = self._tie_credit >= 1.0
            if admitted:
                self._tie_credit -= 1.0
        if admitted:
            self._sent_since_report += 1
        return GateDecision(admitted, budget, None, candidates, cutoff, backlog)

    def _cutoff(self, share: float) -> tuple[float | None, float]:
        """The value cutoff that admits ``share`` of recent candidates, and the share of ties to admit.

        Recomputed every 25 candidates or when the share moves by more than 2 %.
        """
        if share <= 0.0:
            return None, 0.0
        seen, cached_share, cached = self._cutoff_cache
        if self._seen - seen < 25 and abs(cached_share - share) < 0.02 * max(cached_share, 0.01):
            return cached
        ordered = sorted(self._values, reverse=True)
        wanted = share * len(ordered)
        cutoff = ordered[min(len(ordered) - 1, max(0, int(wanted)))]
        above = sum(1 for value in ordered if value > cutoff)
        ties = sum(1 for value in ordered if value == cutoff)
        tie_share = min(1.0, max(0.0, (wanted - above) / ties)) if ties else 0.0
        self._cutoff_cache = (self._seen, share, (cutoff, tie_share))
        return cutoff, tie_share
