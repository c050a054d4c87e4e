"""Operator controls' core, shared by ``labelloop pools`` and the worker's operator API.

An operator's action becomes a :class:`~schemas.PoolCommand` (``issued_by="operator:<name>"``)
on the ``commands`` topic, so every worker sees the same command and converges on the same
state; it overrides the autoscaler for that pool until a ``release``. What the pools report
on ``pool-status`` and what was commanded are folded into a :class:`PoolBoard`, whose
:meth:`PoolBoard.rows` are the status table (backlog, arrival rate, capacity, workers,
SLA state, cost per hour, who is in control).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Self, get_args

from pydantic import TypeAdapter, ValidationError

from schemas import Command, PoolAction, PoolCommand, PoolStatus
from streams.codec import decode, decode_json, encode, encode_key
from streams.errors import BrokerError, ConfigError, ContractError, NotStartedError
from streams.errors import OperatorCommandError as OperatorCommandError  # its home before the error tree
from streams.runtime import Record
from streams.settings import Settings
from streams.topics import catalogue, topic_names

log = logging.getLogger(__name__)

#: The actions an operator can take (the same as :data:`schemas.PoolAction`).
ACTIONS: tuple[str, ...] = get_args(PoolAction)
#: The largest pool an operator can ask for (the schema's bound on ``workers``).
MAX_WORKERS = 100_000
#: The fields ``set`` changes; at least one must be given.
LIMIT_FIELDS = ("min_workers", "max_workers", "sla_p95_s", "budget_per_hour")
#: A status report older than this is shown as stale (the pool's worker may be gone).
STALE_AFTER_S = 30.0
_COMMAND = TypeAdapter[Command](Command)

SlaState = Literal["ok", "at risk", "breach", "stalled", "paused", "no SLA", "growing"]
#: Sends one command to ``commands`` (a faust Output in a worker, :class:`KafkaCommandSender` outside).
CommandSender = Callable[[PoolCommand], Awaitable[None]]


def build_command(
    pool: str,
    action: str,
    *,
    operator: str,
    reason: str,
    now: datetime,
    workers: int | None = None,
    min_workers: int | None = None,
    max_workers: int | None = None,
    sla_p95_s: float | None = None,
    budget_per_hour: float | None = None,
) -> PoolCommand:
    """The PoolCommand for one operator action, checked as a whole.

    ``scale`` needs ``workers``; ``set`` needs at least one limit and ``min <= max``;
    ``pause``, ``resume`` and ``release`` take none. Raises :class:`OperatorCommandError`.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> when = datetime(2026, 1, 1, tzinfo=UTC)
    >>> build_command("simulated", "scale", operator="ada", reason="surge", now=when, workers=7).issued_by
    'operator:ada'
    >>> build_command("simulated", "set", operator="ada", reason="x", now=when, min_workers=9, max_workers=3)
    Traceback (most recent call last):
    ...
    streams.errors.OperatorCommandError: min_workers (9) is above max_workers (3)
    """
    limits: dict[str, int | float | None] = {
        "min_workers": min_workers,
        "max_workers": max_workers,
        "sla_p95_s": sla_p95_s,
        "budget_per_hour": budget_per_hour,
    }
    given = {name: value for name, value in limits.items() if value is not None}
    if action not in ACTIONS:
        raise OperatorCommandError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    if action == "scale":
        if workers is None:
            raise OperatorCommandError("scale needs the number of workers")
        if not 0 <= workers <= MAX_WORKERS:
            raise OperatorCommandError(f"workers must be between 0 and {MAX_WORKERS}, got {workers}")
    elif workers is not None:
        raise OperatorCommandError(f"{action} takes no number of workers (use scale)")
    if action == "set":
        if not given:
            raise OperatorCommandError("set needs at least one of --min, --max, --sla, --budget")
        for name in ("min_workers", "max_workers"):
            value = given.get(name)
            if value is not None and not 0 <= value <= MAX_WORKERS:
                raise OperatorCommandError(f"{name} must be between 0 and {MAX_WORKERS}, got {value}")
        if min_workers is not None and max_workers is not None and min_workers > max_workers:
            raise OperatorCommandError(f"min_workers ({min_workers}) is above max_workers ({max_workers})")
    elif given:
        raise OperatorCommandError(f"{action} takes no limits ({', '.join(given)}); use set")
    try:
        return PoolCommand(
            pool=pool,
            action=action,  # checked against ACTIONS above
            workers=workers,
            issued_by=f"operator:{operator}",
            issued_at=now,
            reason=reason,
            **given,
        )
    except ValidationError as error:
        raise OperatorCommandError(_explain(error)) from None


def _explain(error: ValidationError) -> str:
    """One line per wrong field, named as the operator typed it (``issued_by`` is the operator's name)."""
    names = {"issued_by": "operator name", "pool": "pool name"}
    parts = []
    for problem in error.errors():
        where = str(problem["loc"][0]) if problem["loc"] else "command"
        parts.append(f"{names.get(where, where)}: {problem['msg'].lower()}")
    return "; ".join(parts)


@dataclass(frozen=True)
class StatusRow:
    """One pool's line of the status table (rates per minute, times in seconds, cost per hour)."""

    pool: str
    tier: str
    state: Literal["active", "paused", "stale"]
    workers: int
    backlog: int
    in_progress: int
    arrival_per_min: float
    capacity_per_min: float
    wait_s: float | None
    sla_p95_s: float | None
    sla_state: SlaState
    cost_per_hour: float
    budget_per_hour: float | None
    control: str
    age_s: float
    #: Workers the arrivals need for the SLA, when the pool (or its autoscaler) says.
    workers_needed: int | None = None
    #: Worker processes whose reports are summed into this row.
    reporters: int = 1

    def cells(self) -> tuple[str, ...]:
        """The row as the table's text cells (see :data:`COLUMNS`)."""
        wait = (
            "-" if self.wait_s is None else ("inf" if self.wait_s == float("inf") else f"{self.wait_s:.0f}")
        )
        sla = "-" if self.sla_p95_s is None else f"{self.sla_p95_s:g}"
        budget = "" if self.budget_per_hour is None else f" / {self.budget_per_hour:.2f}"
        return (
            self.pool,
            self.tier,
            self.state,
            str(self.workers)
            if self.workers_needed is None
            else f"{self.workers} (needs {self.workers_needed})",
            str(self.backlog),
            f"{self.arrival_per_min:.1f}",
            f"{self.capacity_per_min:.1f}",
            wait,
            f"{self.sla_state} ({sla})",
            f"{self.cost_per_hour:.2f}{budget}",
            self.control,
            f"{self.age_s:.0f}",
        )


#: The status table's headers, in :meth:`StatusRow.cells` order.
COLUMNS = (
    "pool",
    "tier",
    "state",
    "workers",
    "backlog",
    "arrivals/min",
    "capacity/min",
    "wait s",
    "SLA (p95 s)",
    "cost/h (budget)",
    "control",
    "age s",
)


def sla_state(status: PoolStatus, sla_p95_s: float | None) -> tuple[SlaState, float | None]:
    """The SLA state and the estimated wait (s) of a new request, by the bathtub law.

    The wait is the backlog over the event capacity (labels per minute over overlap).
    ``breach``: the wait is over the SLA; ``at risk``: over 80 % of it, or arrivals
    outrun capacity; ``stalled``: work waits and nobody can do it.

    >>> from datetime import datetime, UTC
    >>> s = PoolStatus(pool="p", backend="simulated", tier="crowd", workers=3, active=True, backlog=60,
    ...                in_progress=3, arrival_rate_per_min=10.0, capacity_per_min=60.0, overlap=3,
    ...                answers_total=0, tasks_done=0, cost_per_label=0.1,
    ...                reported_at=datetime(2026, 1, 1, tzinfo=UTC))
    >>> sla_state(s, 300.0), sla_state(s, 120.0), sla_state(s, None)
    (('ok', 180.0), ('breach', 180.0), ('no SLA', 180.0))
    """
    if not status.active:
        return "paused", None
    capacity = status.event_capacity_per_min
    if capacity <= 0.0:
        return ("stalled", float("inf")) if status.backlog + status.in_progress > 0 else ("no SLA", None)
    wait_s = status.backlog / capacity * 60.0
    growing = status.arrival_rate_per_min > capacity
    if sla_p95_s is None:
        return ("growing" if growing else "no SLA"), wait_s
    if wait_s > sla_p95_s:
        return "breach", wait_s
    if growing or wait_s > 0.8 * sla_p95_s:
        return "at risk", wait_s
    return "ok", wait_s


def cost_per_hour(status: PoolStatus) -> float:
    """What the pool spends per hour at its current load.

    With a backlog the workers are busy at capacity; without one they give the
    labels that arrive (events times overlap), at most capacity.
    """
    labels_per_min = status.capacity_per_min
    if status.backlog == 0:
        labels_per_min = min(labels_per_min, status.arrival_rate_per_min * status.overlap)
    return labels_per_min * 60.0 * status.cost_per_label


@dataclass
class PoolBoard:
    """The latest status per pool and what operators commanded, folded from the two topics.

    An operator command puts the pool under that operator's control until a ``release``;
    ``set`` commands (from anyone) carry the SLA and budget the table measures against.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> when = datetime(2026, 1, 1, tzinfo=UTC)
    >>> board = PoolBoard()
    >>> scale = build_command("p", "scale", operator="ada", reason="surge", now=when, workers=7)
    >>> board.observe_command(scale)
    >>> board.control("p")
    'operator:ada scale 7'
    >>> board.observe_command(build_command("p", "release", operator="ada", reason="over", now=when))
    >>> board.control("p")
    'autoscaler'
    """

    statuses: dict[tuple[str, str | None], PoolStatus] = field(default_factory=dict)
    overrides: dict[str, PoolCommand] = field(default_factory=dict)
    limits: dict[str, dict[str, float]] = field(default_factory=dict)

    def observe_status(self, status: PoolStatus) -> None:
        """Keep the newest report per pool and reporting worker (reports can arrive out of order)."""
        key = (status.pool, status.reporter)
        current = self.statuses.get(key)
        if current is None or status.reported_at >= current.reported_at:
            self.statuses[key] = status

    def pool_status(self, pool: str, now: datetime) -> PoolStatus:
        """The pool's reports from every worker still reporting, combined (the newest one if none is)."""
        reports = [status for (name, _), status in self.statuses.items() if name == pool]
        fresh = [s for s in reports if (now - s.reported_at).total_seconds() <= STALE_AFTER_S]
        return PoolStatus.combine(fresh) if fresh else max(reports, key=lambda s: s.reported_at)

    def observe_command(self, command: PoolCommand) -> None:
        """Track who controls the pool and the limits last set."""
        if command.action == "set":
            limits = self.limits.setdefault(command.pool, {})
            for name in LIMIT_FIELDS:
                value = getattr(command, name)
                if value is not None:
                    limits[name] = float(value)
        if command.action == "release":
            self.overrides.pop(command.pool, None)
        elif command.by_operator:
            self.overrides[command.pool] = command

    def observe(self, record: Record, pool_status_topic: str) -> None:
        """Fold one raw record of ``pool-status`` or ``commands`` (policy commands are skipped)."""
        if record.topic == pool_status_topic:
            self.observe_status(decode(PoolStatus, record.value))
            return
        command = decode_json(_COMMAND, record.value, "Command")
        if isinstance(command, PoolCommand):
            self.observe_command(command)

    def control(self, pool: str) -> str:
        """``autoscaler``, or the operator's command in force."""
        command = self.overrides.get(pool)
        if command is None:
            return "autoscaler"
        what = f" {command.workers}" if command.action == "scale" else ""
        return f"{command.issued_by} {command.action}{what}"

    def rows(self, now: datetime) -> list[StatusRow]:
        """The status table, one row per reporting pool, by pool name."""
        rows = []
        for name in sorted({pool for pool, _ in self.statuses}):
            status = self.pool_status(name, now)
            limits = self.limits.get(name, {})
            target = limits.get("sla_p95_s")
            state, wait_s = sla_state(status, target)
            age_s = max(0.0, (now - status.reported_at).total_seconds())
            budget = limits.get("budget_per_hour")
            rows.append(
                StatusRow(
                    pool=name,
                    tier=status.tier,
                    state="stale" if age_s > STALE_AFTER_S else ("active" if status.active else "paused"),
                    workers=status.workers,
                    backlog=status.backlog,
                    in_progress=status.in_progress,
                    arrival_per_min=status.arrival_rate_per_min,
                    capacity_per_min=status.event_capacity_per_min,
                    wait_s=wait_s,
                    sla_p95_s=target,
                    sla_state=state,
                    cost_per_hour=cost_per_hour(status),
                    budget_per_hour=budget,
                    control=self.control(name),
                    age_s=age_s,
                    workers_needed=status.workers_needed,
                    reporters=sum(
                        1
                        for (pool, _), report in self.statuses.items()
                        if pool == name and (now - report.reported_at).total_seconds() <= STALE_AFTER_S
                    )
                    or 1,
                )
            )
        return rows

    def as_json(self, now: datetime) -> list[dict[str, Any]]:
        """The rows as JSON-ready dicts (the API's ``GET /operator/pools``); infinite waits are None."""
        out = []
        for row in self.rows(now):
            document = dict(row.__dict__)
            if document["wait_s"] == float("inf"):
                document["wait_s"] = None
            out.append(document)
        return out


class KafkaCommandSender:
    """Send commands to ``commands`` from outside a worker (aiokafka, acks=all), keyed by pool."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.topic = topic_names(settings).commands
        self._producer: Any = None

    async def __aenter__(self) -> Self:
        from aiokafka import AIOKafkaProducer

        self._producer = AIOKafkaProducer(
            acks="all",
            client_id=f"{self._settings.app_id}-operator",
            **self._settings.kafka.aiokafka_options(),
        )
        try:
            await self._producer.start()
        except Exception as error:  # aiokafka's KafkaConnectionError and friends
            await self._producer.stop()
            self._producer = None
            raise BrokerError(
                f"cannot reach Kafka at {self._settings.kafka.bootstrap_servers}: {error}"
            ) from error
        return self

    async def __aexit__(self, *exc: object) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __call__(self, command: PoolCommand) -> None:
        """Send and wait for the broker's acknowledgement."""
        if self._producer is None:
            raise NotStartedError("use KafkaCommandSender in an `async with` block")
        await self._producer.send_and_wait(self.topic, key=encode_key(command.pool), value=encode(command))


async def read_board(
    settings: Settings,
    board: PoolBoard | None = None,
    *,
    status_lookback: int = 200,
    timeout_s: float = 15.0,
) -> PoolBoard:
    """Fill a board with the last ``status_lookback`` reports per pool-status partition and every command.

    Reads up to the end offsets it found at the start, then returns (a short read, not a follow).
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    board = board if board is not None else PoolBoard()
    names = topic_names(settings)
    consumer = AIOKafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        client_id=f"{settings.app_id}-operator",
        **settings.kafka.aiokafka_options(),
    )
    await asyncio.wait_for(consumer.start(), timeout_s)
    try:
        async with asyncio.timeout(timeout_s):
            # The catalogue says how many partitions each topic has (create_topics verified it).
            wanted = {names.pool_status, names.commands}
            partitions = [
                TopicPartition(topic.name, partition)
                for topic in catalogue(settings)
                if topic.name in wanted
                for partition in range(topic.partitions)
            ]
            missing = wanted - set(await consumer.topics())
            if missing:
                raise ConfigError(f"missing topics {sorted(missing)}: run `labelloop topics create`")
            consumer.assign(partitions)
            starts = await consumer.beginning_offsets(partitions)
            ends: Mapping[Any, int] = await consumer.end_offsets(partitions)
            for place in partitions:
                lookback = status_lookback if place.topic == names.pool_status else None
                start = starts[place] if lookback is None else max(starts[place], ends[place] - lookback)
                consumer.seek(place, start)
            waiting = {place for place in partitions if ends[place] > starts[place]}
            while waiting:
                batches = await consumer.getmany(timeout_ms=500)
                for place, messages in batches.items():
                    for message in messages:
                        try:
                            board.observe(Record.of(message), names.pool_status)
                        except ContractError as error:
                            log.warning(
                                "skipping %s[%d]@%d: %s", place.topic, place.partition, message.offset, error
                            )
                for place in list(waiting):
                    if await consumer.position(place) >= ends[place]:
                        waiting.discard(place)
    finally:
        await consumer.stop()
    return board
