"""What a Toloka pool of ours knows: its settings, client, pools, pending requests and counters.

The base of :class:`~agents.pools.toloka.backend.TolokaBackend`; each part of the backend
(:mod:`~agents.pools.toloka.upload`, :mod:`~agents.pools.toloka.provisioning`,
:mod:`~agents.pools.toloka.actuation`, :mod:`~agents.pools.toloka.grading`,
:mod:`~agents.pools.toloka.polling`) adds its methods to this state, and the backend puts them
together.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from toloka.async_client import AsyncTolokaClient

from agents.aggregator.overlap import AccuracyOf, DynamicOverlap, OverlapSettings
from agents.pools.base import AnswerSink
from agents.pools.toloka.audience import Audience
from agents.pools.toloka.client import (
    RetryPolicy,
    TolokaSettings,
    build_client,
)
from agents.pools.toloka.spec import LabelingSpec
from agents.rates import WindowRate
from schemas import LabelRequest, utc_now

#: Assignments read per page by the poller.
PAGE_SIZE = 100

#: Assignments reviewed at once by the poller.
REVIEW_CONCURRENCY = 16

#: A Toloker counts as active for pool-status while they submitted within this window.
ACTIVE_WINDOW = timedelta(minutes=10)


def _value(status: Any) -> str:
    return str(getattr(status, "value", status))


def _aware(moment: datetime | None, fallback: datetime) -> datetime:
    if moment is None:
        return fallback
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def request_key(request: LabelRequest) -> str:
    """What makes two deliveries the same request (and so the same Toloka task)."""
    return "\x1f".join((request.event_id, request.route, request.requested_at.isoformat()))


@dataclass(eq=False)
class _Pending:
    request: LabelRequest
    on_answer: AnswerSink
    done: asyncio.Future[None]
    classes: int
    rule: DynamicOverlap
    asked: int
    task_id: str | None = None
    #: The pool the task is (or is being) uploaded to.
    pool_id: str | None = None
    votes: list[tuple[str, str]] = field(default_factory=list)


#: An extra pool's life: serving (new tasks go to it), draining (open, no new tasks, until the
#: tasks it holds are done), closed.
ExtraState = Literal["open", "draining", "closed"]


@dataclass
class ExtraPool:
    """An extra pool of this backend: who it admits, its Toloka id, what it pays, its state."""

    audience: Audience
    pool_id: str
    reward: float
    state: ExtraState = "open"


@dataclass(frozen=True)
class Verdict:
    """How an assignment is reviewed, from its golden answers."""

    accept: bool
    golden_total: int
    golden_right: int

    @property
    def comment(self) -> str:
        if self.golden_total == 0:
            return "Thank you"
        return f"{self.golden_right} of {self.golden_total} control answers right"


class TolokaState:
    """The state every part of the Toloka backend reads and writes (set in ``__init__``)."""

    def __init__(
        self,
        settings: TolokaSettings,
        *,
        spec: LabelingSpec | None = None,
        client: AsyncTolokaClient | None = None,
        accuracy_of: AccuracyOf | None = None,
        golden_sink: AnswerSink | None = None,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.spec = spec or LabelingSpec.load(settings.spec_path)
        self._client = client
        self._clock = clock
        self._sleep = sleep
        self.retry = RetryPolicy(settings, rng=rng, sleep=sleep)
        self.overlap = OverlapSettings(
            minimum=settings.overlap_min or self.spec.overlap_min,
            maximum=max(settings.overlap_max or self.spec.overlap_max, settings.overlap_min or 1),
            confidence=settings.overlap_confidence,
        )
        self._accuracy_of = accuracy_of
        self._golden_sink = golden_sink
        self.project_id: str | None = None
        self.pool_id: str | None = None
        #: Golden task id -> its known label.
        self.golden: dict[str, str] = {}
        self._start_lock: asyncio.Lock | None = None
        self._reviews: asyncio.Semaphore | None = None
        self._poller: asyncio.Task[None] | None = None
        self._by_key: dict[str, _Pending] = {}
        self._by_task: dict[str, _Pending] = {}
        #: The extra pools opened (or found open) so far, the newest serving one last.
        self.extras: list[ExtraPool] = []
        self._extra_changed_s: float | None = None
        self._staffing: asyncio.Lock | None = None
        #: Per pool: the poller's cursor (submitted time) and the assignments seen at or after it.
        self._cursors: dict[str, datetime] = {}
        self._seen: dict[str, dict[str, datetime]] = {}
        self._paused = False
        self._target_workers: int | None = None
        self._reward: float | None = None
        self._reward_changed_s: float | None = None
        self._switches: set[asyncio.Task[None]] = set()
        self._arrivals = WindowRate()
        #: (pool id, Toloker) -> their latest submit there.
        self._last_seen: dict[tuple[str, str], datetime] = {}
        self.answers_total = 0
        self.tasks_done = 0
        self.accepted = 0
        self.rejected = 0
        self.golden_answers = 0

    @property
    def client(self) -> AsyncTolokaClient:
        if self._client is None:
            self._client = build_client(self.settings)
        return self._client

    @property
    def reward(self) -> float:
        """The pool's reward per task suite now (moves within the configured bounds)."""
        if self._reward is None:
            self._reward = self.settings.reward_per_assignment or self.spec.reward_per_assignment
        return self._reward

    def _unclosed(self) -> list[ExtraPool]:
        return [extra for extra in self.extras if extra.state != "closed"]

    def _since_change_s(self, now_s: float) -> float | None:
        """Seconds since the reward or an extra pool last changed (None: never).

        Either lever waits its cooldown after a move of the other too, so Tolokers
        have time to answer one change before the next.
        """
        changes = [moment for moment in (self._reward_changed_s, self._extra_changed_s) if moment is not None]
        return now_s - max(changes) if changes else None

    def _open_tasks(self, pool_id: str) -> int:
        """Requests of this process whose task is in (or on its way to) ``pool_id`` and still open."""
        return sum(1 for pending in self._by_key.values() if pending.pool_id == pool_id)

    @property
    def workers(self) -> int:
        """Tolokers who submitted within the last ten minutes in the main pool or an unclosed extra pool."""
        return len(self._active())

    def _active(self, pool_id: str | None = None, *, exclude: ExtraPool | None = None) -> set[str]:
        """Active Tolokers of ``pool_id`` (None: of every pool not closed, but ``exclude``)."""
        since = self._clock() - ACTIVE_WINDOW
        if pool_id is not None:
            pools = {pool_id}
        else:
            pools = {
                self.pool_id or "",
                *(extra.pool_id for extra in self._unclosed() if extra is not exclude),
            }
        return {
            worker for (pool, worker), moment in self._last_seen.items() if pool in pools and moment >= since
        }

    async def start(self) -> None:  # pragma: no cover - the backend's
        raise NotImplementedError
