"""The expert tier as a LabelingBackend: requests queue by priority, people answer them on a web page."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from agents.pools.base import AnswerSink
from agents.pools.experts.expert_queue import ExpertQueue
from agents.pools.experts.server import ExpertServer, ShownTask, TaskCounters
from agents.pools.experts.settings import ExpertPoolSettings
from schemas import CrowdAnswer, LabelRequest, PoolStatus, Tier, utc_now
from streams.errors import BackendError, NotStartedError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Staffing:
    """How many experts there are, were asked for, and would keep up with the arrivals."""

    active: int
    requested: int | None
    #: Experts needed to answer the current arrival rate at the measured pace (overlap included).
    needed: int


@dataclass(eq=False)
class _Waiting:
    on_answer: AnswerSink
    done: asyncio.Future[None]
    callers: int = 1


class ExpertPool:
    """In-house experts answering on a web page served by the worker.

    ``label`` queues the request and returns once ``overlap`` experts answered
    it; each answer goes to ``on_answer`` as a :class:`CrowdAnswer` from pool
    ``experts``, tier ``expert``. Experts are people: :meth:`resize` records
    the staffing an operator asked for and logs what the arrivals need; it
    cannot add anyone.

    Parameters
    ----------
    settings
        Page address, lease time, token, default overlap, cost.
    clock
        Wall clock for ``answered_at`` (tz-aware UTC).
    monotonic
        Seconds for leases, answer times and rates.

    Examples
    --------
    The page is how people answer; :meth:`next_task` and :meth:`submit` are what it calls.

    >>> import asyncio
    >>> from datetime import datetime, UTC
    >>> from schemas import PredictionEvent, PredictionInput
    >>> async def demo():
    ...     pool = ExpertPool(ExpertPoolSettings())
    ...     event = PredictionEvent(event_id="e1", model_name="m", model_version="1",
    ...                             created_at=datetime(2026, 1, 1, tzinfo=UTC),
    ...                             input=PredictionInput(text="meow"), predicted_label="dog",
    ...                             scores={"dog": 0.6, "cat": 0.4})
    ...     request = LabelRequest(prediction=event, route="low_confidence", reason="low", tier="expert",
    ...                            priority=0.4, uncertainty=0.4, requested_at=event.created_at)
    ...     answers = []
    ...     async def keep(answer): answers.append(answer)
    ...     labeling = asyncio.ensure_future(pool.label(request, keep))
    ...     await asyncio.sleep(0)
    ...     shown, _ = pool.next_task("ada")
    ...     await pool.submit("ada", shown.lease.event_id, "cat")
    ...     await labeling
    ...     return [(a.pool, a.tier, a.worker_id, a.label) for a in answers]
    >>> asyncio.run(demo())
    [('experts', 'expert', 'ada', 'cat')]
    """

    tier: Tier = "expert"

    def __init__(
        self,
        settings: ExpertPoolSettings,
        *,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self._clock = clock
        self._monotonic = monotonic
        self.queue = ExpertQueue(
            settings.lease_s,
            active_window_s=settings.active_window_s,
            service_window=settings.service_window,
        )
        self._waiting: dict[str, _Waiting] = {}
        self._server: ExpertServer | None = None
        self.requested_workers: int | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Serve the page on the configured host and port (idempotent)."""
        if self._server is not None:
            return
        server = ExpertServer(
            self, token=self.settings.token, poll_s=self.settings.poll_s, monotonic=self._monotonic
        )
        await server.start(self.settings.host, self.settings.port)
        self._server = server
        log.info("expert page at http://%s:%d/", self.settings.host, server.port)

    async def stop(self) -> None:
        """Stop serving; requests still waiting stay unanswered (and unacknowledged)."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop()

    @property
    def port(self) -> int:
        """The TCP port the page listens on (after :meth:`start`)."""
        if self._server is None:
            raise NotStartedError("the expert page is not running: await start() first")
        return self._server.port

    def resize(self, workers: int) -> None:
        """Record the staffing an operator or the autoscaler asked for (nobody is hired by this)."""
        changed = self.requested_workers != max(0, workers)
        self.requested_workers = max(0, workers)
        staffing = self.staffing()
        # The autoscaler may ask the same every tick: say it once, at info, when it changes.
        log.log(
            logging.INFO if changed else logging.DEBUG,
            "experts: %d asked for, %d active, %d needed for the current arrivals",
            staffing.requested,
            staffing.active,
            staffing.needed,
        )

    def pause(self) -> None:
        """Show no new tasks (tasks on screen can still be answered)."""
        self.queue.paused = True

    def resume(self) -> None:
        """Show tasks again."""
        self.queue.paused = False

    # -- the work ------------------------------------------------------------------------

    async def label(self, request: LabelRequest, on_answer: AnswerSink) -> None:
        """Queue ``request`` by priority and wait until ``overlap`` experts answered it."""
        event_id = request.event_id
        waiting = self._waiting.get(event_id)
        if waiting is None:
            overlap = request.overlap or self.settings.overlap
            self.queue.add(request, overlap, self._monotonic())
            waiting = _Waiting(on_answer, asyncio.get_running_loop().create_future())
            self._waiting[event_id] = waiting
        else:
            # The same event asked for again (a redelivery): one task, the newest sink.
            waiting.on_answer = on_answer
            waiting.callers += 1
        try:
            await asyncio.shield(waiting.done)
        finally:
            waiting.callers -= 1
            if waiting.callers == 0:
                self._waiting.pop(event_id, None)
                # Cancelled before its answers came: the dispatcher will deliver it again.
                self.queue.withdraw(event_id)

    def next_task(self, expert: str) -> tuple[ShownTask | None, TaskCounters]:
        """Lease the next task to ``expert``; with what is waiting after it."""
        lease = self.queue.lease(expert, self._monotonic())
        request = None if lease is None else self.queue.request(lease.event_id)
        shown = None if lease is None or request is None else ShownTask(lease, request)
        return shown, self.counters(expert)

    def counters(self, expert: str | None) -> TaskCounters:
        """What the page shows beside the task."""
        now_s = self._monotonic()
        if expert is not None:
            self.queue.seen(expert, now_s)
        return TaskCounters(
            waiting=self.queue.backlog(now_s),
            waiting_for_you=None if expert is None else self.queue.waiting_for(expert, now_s),
            in_progress=self.queue.in_progress(now_s),
            experts_active=self.queue.active_experts(now_s),
            answered_by_you=None if expert is None else self.queue.answered_by(expert),
            answers_total=self.queue.answers_total,
            paused=self.queue.paused,
        )

    async def submit(self, expert: str, event_id: str, label: str) -> CrowdAnswer:
        """Take an expert's answer and report it through the request's sink.

        Raises ``AnswerRefusedError`` when the queue cannot use it, ``BackendError`` when the sink failed.
        """
        recorded = self.queue.answer(expert, event_id, label, self._monotonic())
        answer = CrowdAnswer(
            event_id=event_id,
            task_id=f"{event_id}/{self.name}",
            pool=self.name,
            tier="expert",
            worker_id=expert,
            label=label,
            time_spent_s=round(min(recorded.time_spent_s, 86_400.0), 3),
            answered_at=self._clock(),
            overlap=recorded.overlap,
        )
        waiting = self._waiting.get(event_id)
        if waiting is None:  # pragma: no cover - the queue only holds tasks someone waits for
            return answer
        try:
            await waiting.on_answer(answer)
        except Exception as error:  # the sink failed: the request fails and will be delivered again
            if not waiting.done.done():
                waiting.done.set_exception(error)
            self.queue.withdraw(event_id)
            raise BackendError(f"the answer could not be reported: {error}", event_id=event_id) from error
        if recorded.completes and not waiting.done.done():
            waiting.done.set_result(None)
        return answer

    # -- status --------------------------------------------------------------------------

    def _expert_rate_per_min(self) -> float:
        service_s = self.queue.service_time_s() or self.settings.default_service_s
        return 60.0 / max(service_s, 1e-3)

    def staffing(self) -> Staffing:
        """Active experts, the staffing asked for, and the experts the arrival rate needs."""
        now_s = self._monotonic()
        demand_per_min = self.queue.arrivals.per_min(now_s) * self.settings.overlap
        return Staffing(
            active=self.queue.active_experts(now_s),
            requested=self.requested_workers,
            needed=math.ceil(demand_per_min / self._expert_rate_per_min() - 1e-9),
        )

    def status(self, now: datetime) -> PoolStatus:
        """The tier's state: experts at the page, backlog, arrival rate, capacity at the measured pace."""
        now_s = self._monotonic()
        workers = self.queue.active_experts(now_s)
        staffing = self.staffing()
        capacity = 0.0 if self.queue.paused else workers * self._expert_rate_per_min()
        return PoolStatus(
            pool=self.name,
            backend="experts",
            tier="expert",
            workers=workers,
            active=not self.queue.paused,
            backlog=self.queue.backlog(now_s),
            in_progress=self.queue.in_progress(now_s),
            arrival_rate_per_min=self.queue.arrivals.per_min(now_s),
            capacity_per_min=capacity,
            overlap=self.settings.overlap,
            answers_total=self.queue.answers_total,
            tasks_done=self.queue.tasks_done,
            cost_per_label=self.settings.cost_per_label,
            reported_at=now,
            workers_needed=staffing.needed,
        )
