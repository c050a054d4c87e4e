"""Operating the human side: pool status reports and the commands that steer pools and policy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from schemas.base import Finite, Id, Reason, Timestamp, WireModel
from schemas.requests import Tier

PoolAction = Literal["scale", "pause", "resume", "set", "release"]
Issuer = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class PoolStatus(WireModel):
    """A pool's state, keyed by ``pool`` on ``pool-status`` (published every few seconds).

    ``capacity_per_min`` is the labels per minute the active workers can give
    (events per minute once divided by overlap); with ``arrival_rate_per_min``
    and ``backlog`` it is what the bathtub law needs.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> s = PoolStatus(pool="simulated", backend="simulated", tier="crowd", workers=10,
    ...                active=True, backlog=42, in_progress=10, arrival_rate_per_min=30.0,
    ...                capacity_per_min=120.0, overlap=3, answers_total=900, tasks_done=300,
    ...                cost_per_label=0.05, reported_at=datetime(2026, 1, 1, tzinfo=UTC))
    >>> s.event_capacity_per_min
    40.0
    """

    SCHEMA_VERSION = 1
    schema_version: Literal[1] = 1
    pool: Id
    backend: Id
    tier: Tier
    workers: Annotated[int, Field(ge=0)]
    active: bool
    backlog: Annotated[int, Field(ge=0)]
    in_progress: Annotated[int, Field(ge=0)]
    arrival_rate_per_min: Annotated[Finite, Field(ge=0.0)]
    capacity_per_min: Annotated[Finite, Field(ge=0.0)]
    overlap: Annotated[int, Field(ge=1)]
    answers_total: Annotated[int, Field(ge=0)]
    tasks_done: Annotated[int, Field(ge=0)]
    cost_per_label: Annotated[Finite, Field(ge=0.0)]
    reported_at: Timestamp
    #: The worker process reporting: with several workers each runs its own copy of a pool
    #: under the same name, and readers sum their reports (added within version 1).
    reporter: Id | None = None
    #: Workers the measured arrivals need to hold the time-to-label SLA, when known: the
    #: autoscaler's sizing, or the expert tier's staffing need (added within version 1).
    workers_needed: Annotated[int, Field(ge=0)] | None = None

    @property
    def event_capacity_per_min(self) -> float:
        """Events per minute the pool can finish (labels per minute over overlap)."""
        return self.capacity_per_min / self.overlap

    @classmethod
    def combine(cls, reports: Sequence[PoolStatus]) -> PoolStatus:
        """One pool's reports from several workers as one: counts and rates add up.

        The cost per label is the capacity-weighted mean, the overlap the reporters'
        (their capacity-weighted mean, rounded, should they differ), the time the newest.

        >>> from datetime import datetime, UTC
        >>> one = PoolStatus(pool="p", backend="simulated", tier="crowd", workers=4, active=True,
        ...                  backlog=10, in_progress=4, arrival_rate_per_min=30.0, capacity_per_min=60.0,
        ...                  overlap=2, answers_total=100, tasks_done=50, cost_per_label=0.05,
        ...                  reported_at=datetime(2026, 1, 1, tzinfo=UTC), reporter="w1", workers_needed=5)
        >>> both = PoolStatus.combine([one, one.model_copy(update={"reporter": "w2", "workers": 6})])
        >>> both.workers, both.backlog, both.event_capacity_per_min, both.workers_needed, both.reporter
        (10, 20, 60.0, 10, None)
        """
        if not reports:
            raise ValueError("no reports to combine")
        if len(reports) == 1:
            return reports[0]
        capacity = sum(report.capacity_per_min for report in reports)
        event_capacity = sum(report.event_capacity_per_min for report in reports)
        needed = [report.workers_needed for report in reports]
        weight = capacity if capacity > 0 else float(len(reports))

        def weighted(value: Callable[[PoolStatus], float]) -> float:
            if capacity > 0:
                return sum(value(report) * report.capacity_per_min for report in reports) / weight
            return sum(value(report) for report in reports) / weight

        newest = max(reports, key=lambda report: report.reported_at)
        return newest.model_copy(
            update={
                "workers": sum(report.workers for report in reports),
                "active": any(report.active for report in reports),
                "backlog": sum(report.backlog for report in reports),
                "in_progress": sum(report.in_progress for report in reports),
                "arrival_rate_per_min": sum(report.arrival_rate_per_min for report in reports),
                "capacity_per_min": capacity,
                "overlap": max(1, round(capacity / event_capacity)) if event_capacity > 0 else newest.overlap,
                "answers_total": sum(report.answers_total for report in reports),
                "tasks_done": sum(report.tasks_done for report in reports),
                "cost_per_label": weighted(lambda report: report.cost_per_label),
                "reporter": None,
                "workers_needed": None if None in needed else sum(n for n in needed if n is not None),
            }
        )


class PoolCommand(WireModel):
    """Steer one pool, keyed by the pool name on ``commands``.

    Actions
    -------
    ``scale``
        Set the pool to ``workers`` workers.
    ``pause`` / ``resume``
        Stop handing out tasks (work already out finishes) / start again.
    ``set``
        Change the pool's bounds and targets; only the fields that are set change:
        ``min_workers``, ``max_workers``, ``sla_p95_s`` (the time-to-label SLA, 95th
        percentile, seconds) and ``budget_per_hour`` (spend limit, in the unit of
        ``PoolStatus.cost_per_label``).
    ``release``
        Give the pool back to the autoscaler.

    A command whose ``issued_by`` starts with ``operator:`` overrides the
    autoscaler for that pool until a ``release``. The schema checks each field's
    range only; which fields an action needs is checked by the producer
    (``streams.operator.build_command``), so a reader never rejects a command an
    older producer wrote. All fields after ``max_workers`` were added within
    version 1: readers that do not know them ignore them.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> when = datetime(2026, 1, 1, tzinfo=UTC)
    >>> PoolCommand(pool="simulated", action="scale", workers=20, issued_by="operator:ada",
    ...             issued_at=when, reason="surge").workers
    20
    >>> limits = PoolCommand(pool="simulated", action="set", max_workers=40, sla_p95_s=120.0,
    ...                      budget_per_hour=25.0, issued_by="operator:ada", issued_at=when,
    ...                      reason="night shift")
    >>> limits.max_workers, limits.sla_p95_s, limits.min_workers
    (40, 120.0, None)
    >>> limits.by_operator
    True
    >>> PoolCommand(pool="simulated", action="release", issued_by="operator:ada",
    ...             issued_at=when, reason="surge over").action
    'release'
    """

    SCHEMA_VERSION = 1
    schema_version: Literal[1] = 1
    kind: Literal["pool"] = "pool"
    pool: Id
    action: PoolAction
    workers: Annotated[int, Field(ge=0, le=100_000)] | None = None
    min_workers: Annotated[int, Field(ge=0)] | None = None
    max_workers: Annotated[int, Field(ge=0)] | None = None
    #: The time-to-label SLA: 95th percentile, seconds from request to label.
    sla_p95_s: Annotated[Finite, Field(gt=0.0)] | None = None
    #: The most the pool may spend per hour (cost_per_label's unit).
    budget_per_hour: Annotated[Finite, Field(ge=0.0)] | None = None
    issued_by: Issuer
    issued_at: Timestamp
    reason: Reason

    @property
    def by_operator(self) -> bool:
        """True when a person issued it (``operator:<name>``): it overrides the autoscaler until released."""
        return self.issued_by == "operator" or self.issued_by.startswith("operator:")


class PolicyCommand(WireModel):
    """Change the routing policy live, keyed by ``policy`` on ``commands``.

    Only the fields that are set change; ``None`` keeps the current value.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> PolicyCommand(accept_threshold=0.9, issued_by="monitor",
    ...               issued_at=datetime(2026, 1, 1, tzinfo=UTC), reason="drift").kind
    'policy'
    """

    SCHEMA_VERSION = 1
    schema_version: Literal[1] = 1
    kind: Literal["policy"] = "policy"
    task: Id = "default"
    accept_threshold: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    per_class_thresholds: dict[Id, Annotated[float, Field(gt=0.0, le=1.0)]] | None = None
    control_share: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    #: The recall audit's share of accepted events; it cannot be switched off (0), only made small.
    audit_rate: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    measure: Literal["max_probability", "margin", "entropy"] | None = None
    issued_by: Issuer
    issued_at: Timestamp
    reason: Reason


class PolicyStatus(WireModel):
    """The routing policy in force, keyed by task on ``policy-status`` (compacted).

    Published by the router at start and after every applied PolicyCommand.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> PolicyStatus(task="default", version=2, measure="margin", accept_threshold=0.9,
    ...              control_share=0.05, audit_rate=0.02, target_backlog=200,
    ...              updated_at=datetime(2026, 1, 1, tzinfo=UTC), reason="drift").version
    2
    """

    SCHEMA_VERSION = 1
    schema_version: Literal[1] = 1
    task: Id = "default"
    version: Annotated[int, Field(ge=0)]
    measure: Literal["max_probability", "margin", "entropy"]
    accept_threshold: Annotated[float, Field(gt=0.0, le=1.0)]
    per_class_thresholds: dict[Id, Annotated[float, Field(gt=0.0, le=1.0)]] = Field(default_factory=dict)
    control_share: Annotated[float, Field(ge=0.0, le=1.0)]
    audit_rate: Annotated[float, Field(ge=0.0, le=1.0)]
    target_backlog: Annotated[int, Field(ge=0)]
    updated_at: Timestamp
    reason: Reason


#: What travels on ``commands``: told apart by ``kind``.
Command = Annotated[PoolCommand | PolicyCommand, Field(discriminator="kind")]
