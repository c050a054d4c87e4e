"""The Toloka pool: requests become Toloka tasks, reviewed Toloka answers become CrowdAnswers.

A :class:`TolokaBackend` implements :class:`agents.pools.base.LabelingBackend`
over toloka-kit's ``AsyncTolokaClient`` (never a blocking call on the loop):

- **start** finds the spec's project and pool by their names (a restart reuses
  them) or creates them, uploads the spec's golden tasks (honeypots with
  ``known_solutions``, infinite overlap) and opens the pool. The pool mixes
  golden tasks into every task suite at ``golden_rate`` and carries the
  quality-control rules: a ban on low golden accuracy and on fast submits.
- **label** uploads one task per request with a deterministic
  ``operation_id`` (a retry after a lost answer is ``OPERATION_ALREADY_EXISTS``
  and returns the first upload), then waits until the shared dynamic-overlap
  rule (:mod:`agents.aggregator.overlap`) has enough answers; while it asks
  for more, the task's overlap is raised (``set-overlap-or-min``). Each answer
  is stamped with the target after counting it.
- **one poller** reads the pool's submitted assignments incrementally (by
  ``submitted`` time, each assignment once), grades the golden tasks in each,
  accepts it or rejects it (golden accuracy below
  ``accept_min_golden_accuracy``; Toloka then hands its tasks out again), and
  reports golden answers (flagged with ``golden_label``) and, for accepted
  assignments, the real answers through each request's sink.

- **staffing**: the autoscaler's target (:meth:`TolokaBackend.resize`) moves
  the reward within its bounds first; once it is at ``reward_max`` and still
  too few Tolokers work, an **extra pool** opens for another audience
  (``extra_pools``: other languages or regions, possibly another reward), one
  per cooldown, found again by its private name or created, with its own
  golden tasks. New tasks go to the serving pool with the fewest open tasks
  per active Toloker; the poller reads every pool. On the way down the newest
  extra pool drains (no new tasks; it closes once every task it holds has its
  answers), and the reward falls only once none is open
  (:mod:`agents.pools.toloka.staffing` decides, this class applies).

A request delivered again after a crash finds its task (same operation id) and
recovers the answers already accepted for it, so nothing is uploaded twice
and nothing is lost; answers are counted once per Toloker.

Toloka's own ``dynamic_overlap_config`` needs Toloka-side aggregation and
worker skills; the loop keeps one stopping rule for every pool instead, and
drives it through the task's overlap.

References
----------
Toloka API: tasks, operations, assignments (https://toloka.ai/docs/api/).
toloka-kit 1.2.3: ``toloka.async_client.AsyncTolokaClient``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from toloka.async_client import AsyncTolokaClient
from toloka.client import Assignment, Pool, Task
from toloka.client.actions import RestrictionV2
from toloka.client.collectors import AssignmentSubmitTime, GoldenSet
from toloka.client.conditions import FastSubmittedCount, GoldenSetAnswersCount, GoldenSetCorrectAnswersRate
from toloka.client.exceptions import ConflictStateApiError
from toloka.client.operations import Operation
from toloka.client.pool.mixer_config import MixerConfig
from toloka.client.task import CreateTasksParameters, TaskOverlapPatch

from agents.aggregator.overlap import AccuracyOf, DynamicOverlap, OverlapSettings
from agents.pools.base import AnswerSink
from agents.pools.toloka.audience import Audience
from agents.pools.toloka.client import (
    RetryPolicy,
    TolokaSettings,
    build_client,
    describe,
    is_retryable,
    operation_id,
)
from agents.pools.toloka.spec import OUTPUT_FIELD, LabelingSpec, input_values
from agents.pools.toloka.staffing import (
    ExtraPoolMove,
    PoolLoad,
    next_extra_pools,
    next_reward,
    pick_pool,
    reward_exhausted,
)
from agents.rates import WindowRate
from schemas import CrowdAnswer, LabelRequest, PoolStatus, Tier, utc_now
from streams.errors import BackendError, RejectedBackendError

log = logging.getLogger(__name__)

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


class TolokaBackend:
    """A Toloka pool driven through toloka-kit (see the module docstring).

    Parameters
    ----------
    settings
        URL, token, names, golden rate, reward, overlap, QC thresholds, polling and retries.
    spec
        The labeling spec (``settings.spec_path`` or the packaged default when None).
    client
        An ``AsyncTolokaClient`` (built from ``settings`` when None).
    accuracy_of
        Worker accuracies for the dynamic-overlap rule (None: the prior for everyone).
    golden_sink
        Where golden answers go when no request of this backend shares their task suite.
    clock, sleep, rng
        Time, waiting and jitter (injected in tests).
    """

    tier: Tier = "crowd"

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

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def client(self) -> AsyncTolokaClient:
        if self._client is None:
            self._client = build_client(self.settings)
        return self._client

    async def start(self) -> None:
        """Find or create the project and pool, upload golden tasks, open the pool, start polling."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._poller is not None:
                return
            self.project_id = await self._ensure_project()
            self.pool_id = await self._ensure_pool(self.project_id)
            await self._upload_golden(self.pool_id)
            await self._adopt_extra_pools(self.project_id)
            if not self._paused:
                await self._set_open(True, self.pool_id)
            self._poller = asyncio.get_running_loop().create_task(
                self._poll_forever(), name="labelloop-toloka"
            )
            log.info("toloka pool %s of project %s is serving", self.pool_id, self.project_id)

    async def stop(self) -> None:
        """Stop polling; the pool stays open for other workers, unanswered requests stay unacknowledged."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        await asyncio.gather(*self._switches, return_exceptions=True)

    def pause(self) -> None:
        """Close the pools: Tolokers get no new task suites (submitted ones are still reviewed)."""
        self._paused = True
        self._switch(False)

    def resume(self) -> None:
        """Open the pools again (the main pool and every extra pool not closed)."""
        self._paused = False
        self._switch(True)

    def resize(self, workers: int) -> None:
        """Toloka sizes its crowd itself: 0 closes the pool, more opens it again; the target is reported.

        The target steers the reward (:meth:`steer_reward`) and the extra pools
        (:meth:`steer_extra_pools`) on every poll.
        """
        self._target_workers = max(0, workers)
        if workers == 0 and not self._paused:
            self.pause()
        elif workers > 0 and self._paused:
            self.resume()

    @property
    def reward(self) -> float:
        """The pool's reward per task suite now (moves within the configured bounds)."""
        if self._reward is None:
            self._reward = self.settings.reward_per_assignment or self.spec.reward_per_assignment
        return self._reward

    async def steer_reward(self) -> float | None:
        """Move the reward a step toward the staffing asked for; the new reward, or None if unchanged.

        Called on every poll. Tolokers choose pools by reward, so a pool short of the
        workers its target asks for pays a step more (up to ``reward_max``) and one with
        more than it needs a step less (down to ``reward_min``), one step per cooldown.
        The reward falls only once no extra pool is open (extra pools close first).
        """
        settings = self.settings
        if self.pool_id is None or self._target_workers is None:
            return None
        now_s = self._clock().timestamp()
        since_s = self._since_change_s(now_s)
        if since_s is not None and since_s < settings.reward_cooldown_s:
            return None
        wanted = next_reward(
            self.reward,
            self._target_workers,
            self.workers,
            settings.reward_min,
            settings.reward_max,
            settings.reward_step,
        )
        if wanted == self.reward or (wanted < self.reward and self._unclosed()):
            return None
        pool_id = self.pool_id

        async def put() -> Any:
            pool = await self.client.get_pool(pool_id)
            pool.reward_per_assignment = wanted
            return await self.client.update_pool(pool_id, pool)

        await self.retry.call(put, "update pool reward")
        log.info(
            "toloka pool %s: reward %.3f -> %.3f per suite (%d Tolokers active, %d asked for)",
            pool_id,
            self.reward,
            wanted,
            self.workers,
            self._target_workers,
        )
        self._reward = wanted
        self._reward_changed_s = now_s
        return wanted

    async def steer_extra_pools(self) -> ExtraPoolMove | None:
        """Open one more extra pool, or start closing the newest, as :func:`next_extra_pools` decides.

        Called on every poll, after :meth:`steer_reward`. A pool being closed first
        drains: it gets no new tasks and stays open until every task it holds has
        its answers, then closes (so no task is stranded and none is uploaded twice).
        """
        if self._staffing is None:
            self._staffing = asyncio.Lock()
        async with self._staffing:  # the poller's and an operator's call never open one pool twice
            return await self._steer_extra_pools()

    async def _steer_extra_pools(self) -> ExtraPoolMove | None:
        await self._close_drained()
        settings = self.settings
        if (
            self.project_id is None
            or self._target_workers is None
            or not settings.extra_pools
            or self._paused
        ):
            return None
        now_s = self._clock().timestamp()
        serving = [extra for extra in self.extras if extra.state == "open"]
        newest = serving[-1] if serving else None
        move = next_extra_pools(
            target_workers=self._target_workers,
            active_workers=self.workers,
            without_newest=len(self._active(exclude=newest)),
            reward_maxed=reward_exhausted(self.reward, settings.reward_min, settings.reward_max),
            open_extra=len(serving),
            max_extra=settings.max_extra_pools,
            since_change_s=self._since_change_s(now_s),
            cooldown_s=settings.extra_pool_cooldown_s,
        )
        if move == "open":
            names = {extra.audience.name for extra in serving}
            audience = next(audience for audience in settings.extra_pools if audience.name not in names)
            await self._open_extra(self.project_id, audience)
        elif move == "close" and newest is not None:
            newest.state = "draining"
            log.info(
                "toloka extra pool %s (%s): no new tasks, closes once its %d open tasks are done "
                "(%d Tolokers active, %d without it, %d asked for)",
                newest.pool_id,
                newest.audience.name,
                self._open_tasks(newest.pool_id),
                self.workers,
                len(self._active(exclude=newest)),
                self._target_workers,
            )
        if move is not None:
            self._extra_changed_s = now_s
        return move

    def _since_change_s(self, now_s: float) -> float | None:
        """Seconds since the reward or an extra pool last changed (None: never).

        Either lever waits its cooldown after a move of the other too, so Tolokers
        have time to answer one change before the next.
        """
        changes = [moment for moment in (self._reward_changed_s, self._extra_changed_s) if moment is not None]
        return now_s - max(changes) if changes else None

    def _unclosed(self) -> list[ExtraPool]:
        return [extra for extra in self.extras if extra.state != "closed"]

    async def _open_extra(self, project_id: str, audience: Audience) -> ExtraPool:
        """Serve ``audience`` from its extra pool: found or created, golden tasks uploaded, opened."""
        extra = next((known for known in self.extras if known.audience == audience), None)
        if extra is None:
            pool_id = await self._ensure_pool(project_id, audience)
            await self._upload_golden(pool_id)
            found = await self.retry.call(lambda: self.client.get_pool(pool_id), "read extra pool")
            extra = ExtraPool(audience, pool_id, float(found.reward_per_assignment or self.reward))
        else:
            self.extras.remove(extra)
        if extra.state != "draining":  # a draining pool is open still: it serves again at once
            await self._set_open(True, extra.pool_id)
        extra.state = "open"
        self.extras.append(extra)
        log.info(
            "toloka extra pool %s (%s) is serving at %.3f per suite (%d Tolokers active, %d asked for)",
            extra.pool_id,
            audience.name,
            extra.reward,
            self.workers,
            self._target_workers or 0,
        )
        return extra

    async def _close_drained(self) -> None:
        for extra in self.extras:
            if extra.state == "draining" and self._open_tasks(extra.pool_id) == 0:
                await self._set_open(False, extra.pool_id)
                extra.state = "closed"
                log.info("toloka extra pool %s (%s) is closed", extra.pool_id, extra.audience.name)

    async def _adopt_extra_pools(self, project_id: str) -> None:
        """Extra pools a previous process left open serve again (their tasks come back as redeliveries)."""
        by_name = {self._pool_name_of(audience): audience for audience in self.settings.extra_pools}
        async for pool in self._search(self.client.find_pools, project_id=project_id, status="OPEN"):
            audience = by_name.get(str(pool.private_name))
            if audience is None or any(extra.audience == audience for extra in self.extras):
                continue
            pool_id = str(pool.id)
            await self._upload_golden(pool_id)
            reward = float(pool.reward_per_assignment or self.reward)
            self.extras.append(ExtraPool(audience, pool_id, reward))
            log.info("toloka extra pool %s (%s) found open: serving again", pool_id, audience.name)

    def _switch(self, open_pool: bool) -> None:
        if self.pool_id is None:
            return
        pool_ids = [self.pool_id, *(extra.pool_id for extra in self._unclosed())]
        for pool_id in pool_ids:
            task = asyncio.get_running_loop().create_task(self._set_open(open_pool, pool_id))
            self._switches.add(task)
            task.add_done_callback(self._switches.discard)

    # -- project, pool, golden tasks ------------------------------------------------------

    async def _ensure_project(self) -> str:
        key = self.spec.project_key

        async def find() -> str | None:
            async for project in self._search(self.client.find_projects, status="ACTIVE"):
                if project.private_comment == key:
                    return str(project.id)
            return None

        async def create() -> str:
            return str((await self.client.create_project(self.spec.project())).id)

        return await self._find_or_create(find, create, "project")

    @property
    def pool_name(self) -> str:
        return f"{self.settings.pool_name}-{self.spec.fingerprint}"

    def _pool_name_of(self, extra: Audience | None) -> str:
        """The main pool's private name, or an extra pool's (stable: a restart finds it again)."""
        return self.pool_name if extra is None else f"{self.pool_name}+{extra.name}-{extra.key}"

    def pool(self, project_id: str, extra: Audience | None = None) -> Pool:
        """The pool this backend creates: reward, audience, overlap, golden mix, manual review, QC rules.

        ``extra``: an extra pool for that audience (its own reward, else the main pool's now).
        """
        settings = self.settings
        real, golden = self.mix
        audience = settings.audience if extra is None else extra
        reward = self.reward if extra is None else (extra.reward_per_assignment or self.reward)
        pool = Pool(
            project_id=project_id,
            private_name=self._pool_name_of(extra),
            may_contain_adult_content=False,
            will_expire=self._clock() + timedelta(days=365),
            reward_per_assignment=reward,
            filter=None if audience is None else audience.filter(),
            assignment_max_duration_seconds=settings.assignment_max_duration_s,
            auto_accept_solutions=False,
            auto_accept_period_day=7,
            defaults=Pool.Defaults(
                default_overlap_for_new_tasks=self.overlap.minimum,
                default_overlap_for_new_task_suites=self.overlap.minimum,
            ),
            mixer_config=MixerConfig(
                real_tasks_count=real,
                golden_tasks_count=golden,
                training_tasks_count=0,
            ),
        )
        quality_control = pool.quality_control
        assert quality_control is not None
        if golden:
            quality_control.add_action(
                collector=GoldenSet(history_size=settings.ban_golden_history),
                conditions=[
                    GoldenSetAnswersCount >= settings.ban_golden_min_answers,
                    GoldenSetCorrectAnswersRate < settings.ban_golden_accuracy_below_pct,
                ],
                action=RestrictionV2(
                    scope="PROJECT",
                    duration=settings.ban_days,
                    duration_unit="DAYS",
                    private_comment="low golden",
                ),
            )
        quality_control.add_action(
            collector=AssignmentSubmitTime(
                history_size=settings.fast_history, fast_submit_threshold_seconds=settings.fast_submit_s
            ),
            conditions=[FastSubmittedCount >= settings.fast_submits_to_ban],
            action=RestrictionV2(
                scope="PROJECT", duration=settings.ban_days, duration_unit="DAYS", private_comment="too fast"
            ),
        )
        return pool

    @property
    def mix(self) -> tuple[int, int]:
        """Real and golden tasks per task suite (at least one golden when golden tasks are on)."""
        settings = self.settings
        golden = 0
        if settings.golden_rate > 0 and self.spec.golden:
            wanted = round(settings.tasks_per_suite * settings.golden_rate)
            golden = min(settings.tasks_per_suite - 1, max(1, wanted))
        return settings.tasks_per_suite - golden, golden

    async def _ensure_pool(self, project_id: str, extra: Audience | None = None) -> str:
        name = self._pool_name_of(extra)

        async def find() -> str | None:
            async for pool in self._search(self.client.find_pools, project_id=project_id):
                if pool.private_name == name and _value(pool.status) in ("OPEN", "CLOSED"):
                    return str(pool.id)
            return None

        async def create() -> str:
            return str((await self.client.create_pool(self.pool(project_id, extra))).id)

        return await self._find_or_create(
            find, create, "pool" if extra is None else f"extra pool {extra.name}"
        )

    async def _find_or_create(
        self, find: Callable[[], Awaitable[str | None]], create: Callable[[], Awaitable[str]], what: str
    ) -> str:
        """Creates have no operation id: look before every attempt, so a lost answer never duplicates."""
        for attempt in range(1, self.settings.max_attempts + 1):
            found = await self.retry.call(find, f"find {what}")
            if found is not None:
                return found
            try:
                created = await create()
                log.info("toloka: created %s %s", what, created)
                return created
            except Exception as error:
                if attempt == self.settings.max_attempts or not is_retryable(error):
                    raise
                log.info("toloka create %s: %s, looking again", what, describe(error))
                await self._sleep(self.retry.backoff_s(attempt))
        raise BackendError(
            f"toloka: could not create the {what}"
        )  # pragma: no cover - loop returns or raises

    async def _search(self, find: Callable[..., Awaitable[Any]], **filters: Any) -> Any:
        """Every item of a search, page by page (by id)."""
        after: str | None = None
        while True:
            page_filters = dict(filters, **({"id_gt": after} if after else {}))

            async def one_page(page_filters: dict[str, Any] = page_filters) -> Any:
                return await find(sort=["id"], limit=PAGE_SIZE, **page_filters)

            page = await self.retry.call(one_page, f"search ({getattr(find, '__name__', 'find')})")
            for item in page.items:
                yield item
            if not page.has_more or not page.items:
                return
            after = page.items[-1].id

    async def _upload(
        self, tasks: list[Task], key: str, what: str, event_id: str | None = None, *, scope: str | None = None
    ) -> list[tuple[str, str]]:
        """Upload ``tasks`` once and return their Toloka ids and pools, in order.

        The operation id comes from ``key`` within ``scope`` (the main pool's id when
        None), whichever pool the tasks go to: a request uploaded again, even to
        another pool, is answered with its first upload (``OPERATION_ALREADY_EXISTS``),
        so its task exists once, in the pool it first went to.
        """
        assert self.pool_id is not None
        parameters = CreateTasksParameters(
            operation_id=operation_id(scope or self.pool_id, key),
            async_mode=True,
            allow_defaults=False,
            open_pool=False,
            skip_invalid_items=False,
        )
        for index, task in enumerate(tasks):
            # toloka-kit's own marker: the operation log names each created task by it.
            cast(dict[str, Any], task._unexpected)["__item_idx"] = str(index)
        operation = await self.retry.call(
            lambda: self.client.create_tasks_async(tasks, parameters), f"upload {what}", event_id=event_id
        )
        finished = await self._finished(operation, what, event_id)
        entries = await self.retry.call(
            lambda: self.client.get_operation_log(str(finished.id)), f"read {what} log", event_id=event_id
        )
        ids: dict[int, tuple[str, str]] = {}
        for entry in entries:
            output, given = entry.output or {}, entry.input or {}
            if entry.success and "task_id" in output:
                index = int(given.get("__item_idx", len(ids)))
                pool_id = str(given.get("pool_id") or tasks[min(index, len(tasks) - 1)].pool_id)
                ids[index] = (str(output["task_id"]), pool_id)
        if len(ids) != len(tasks):
            raise RejectedBackendError(f"toloka refused {len(tasks) - len(ids)} {what}", event_id=event_id)
        return [ids[index] for index in sorted(ids)]

    async def _finished(self, operation: Operation, what: str, event_id: str | None) -> Operation:
        deadline = asyncio.get_running_loop().time() + self.settings.operation_timeout_s
        operation_id = str(operation.id)
        while _value(operation.status) in ("PENDING", "RUNNING"):
            if asyncio.get_running_loop().time() > deadline:
                raise BackendError(f"toloka {what} did not finish in time", event_id=event_id)
            await self._sleep(self.settings.poll_interval_s)
            operation = await self.retry.call(
                lambda: self.client.get_operation(operation_id), f"read {what}", event_id=event_id
            )
        if _value(operation.status) != "SUCCESS":
            raise RejectedBackendError(f"toloka {what} failed: {_value(operation.status)}", event_id=event_id)
        return operation

    async def _upload_golden(self, pool_id: str) -> None:
        if not self.spec.golden or self.settings.golden_rate == 0:
            return
        tasks = [
            Task(
                pool_id=pool_id,
                input_values={"event_id": f"golden-{golden.key}", **golden.input},
                known_solutions=[
                    Task.KnownSolution(output_values={OUTPUT_FIELD: golden.label}, correctness_weight=1)
                ],
                infinite_overlap=True,
            )
            for golden in self.spec.golden
        ]
        # Every pool carries its own golden tasks, uploaded once per pool.
        uploaded = await self._upload(tasks, f"golden/{self.spec.fingerprint}", "golden tasks", scope=pool_id)
        for (task_id, _), golden in zip(uploaded, self.spec.golden, strict=True):
            self.golden[task_id] = golden.label

    async def _set_open(self, open_pool: bool, pool_id: str) -> None:
        call = self.client.open_pool_async if open_pool else self.client.close_pool_async
        operation = await self.retry.call(lambda: call(pool_id), "open pool" if open_pool else "close pool")
        if operation is not None:
            await self._finished(operation, "pool switch", None)

    # -- labeling ------------------------------------------------------------------------

    async def label(self, request: LabelRequest, on_answer: AnswerSink) -> None:
        """Upload ``request`` as a task (once) and return when the overlap rule has its answers."""
        await self.start()
        key = request_key(request)
        existing = self._by_key.get(key)
        if existing is not None:  # the same request twice at once: one task, one wait
            await asyncio.shield(existing.done)
            return
        classes = list(request.prediction.scores)
        unknown = sorted(set(classes) - set(self.spec.class_values))
        if unknown:
            raise RejectedBackendError(
                f"classes {unknown} are not in the Toloka spec", event_id=request.event_id
            )
        if request.overlap is not None:
            rule = DynamicOverlap(OverlapSettings.fixed(request.overlap), self._accuracy_of)
        else:
            rule = DynamicOverlap(self.overlap, self._accuracy_of)
        pending = _Pending(
            request=request,
            on_answer=on_answer,
            done=asyncio.get_running_loop().create_future(),
            classes=len(self.spec.class_values),
            rule=rule,
            asked=rule.target([], len(self.spec.class_values)),
        )
        self._by_key[key] = pending
        self._arrivals.add(asyncio.get_running_loop().time())
        try:
            pending.pool_id = self._upload_pool()
            task = Task(pool_id=pending.pool_id, input_values=input_values(request), overlap=pending.asked)
            [(task_id, pending.pool_id)] = await self._upload([task], key, "task", request.event_id)
            pending.task_id = task_id
            self._by_task[task_id] = pending
            await self._recover(pending)
            await pending.done
        finally:
            self._by_key.pop(key, None)
            if pending.task_id is not None:
                self._by_task.pop(pending.task_id, None)

    def _upload_pool(self) -> str:
        """Where a new task goes: of the serving pools, the fewest open tasks per active Toloker."""
        assert self.pool_id is not None
        serving = [self.pool_id, *(extra.pool_id for extra in self.extras if extra.state == "open")]
        if len(serving) == 1:
            return serving[0]
        return pick_pool(
            [PoolLoad(pool_id, self._open_tasks(pool_id), len(self._active(pool_id))) for pool_id in serving]
        )

    def _open_tasks(self, pool_id: str) -> int:
        """Requests of this process whose task is in (or on its way to) ``pool_id`` and still open."""
        return sum(1 for pending in self._by_key.values() if pending.pool_id == pool_id)

    async def _recover(self, pending: _Pending) -> None:
        """Answers accepted before this process knew the task (a redelivery, or a poll racing the upload)."""
        assert pending.task_id is not None
        task_id = pending.task_id
        page = await self.retry.call(
            lambda: self.client.find_assignments(
                task_id=task_id, status=["ACCEPTED"], sort=["submitted", "id"], limit=PAGE_SIZE
            ),
            "recover answers",
            event_id=pending.request.event_id,
        )
        for assignment in page.items or []:
            await self._report(assignment, accepted=True, goldens=False)

    # -- the poller ----------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        while True:
            try:
                await self.poll_once()
                await self.steer_reward()
                await self.steer_extra_pools()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Toloka down for longer than the retries: poll again later
                log.warning("toloka poll failed: %s", describe(error))
            await self._sleep(self.settings.poll_interval_s)

    async def poll_once(self) -> int:
        """Review and report every assignment submitted since the last poll, in every pool; how many.

        Closed extra pools are read too: a suite taken before the close may still be submitted.
        """
        assert self.pool_id is not None
        processed = 0
        failure: BaseException | None = None
        for pool_id in [self.pool_id, *(extra.pool_id for extra in self.extras)]:
            try:
                processed += await self._poll_pool(pool_id)
            except Exception as error:  # the other pools are still read; the first failure is raised
                failure = failure or error
        if failure is not None:
            raise failure
        return processed

    async def _poll_pool(self, pool_id: str) -> int:
        processed = 0
        seen = self._seen.setdefault(pool_id, {})
        while True:
            cursor = self._cursors.get(pool_id)
            filters: dict[str, Any] = {"pool_id": pool_id, "status": ["SUBMITTED", "ACCEPTED", "REJECTED"]}
            if cursor is not None:
                filters["submitted_gte"] = cursor

            async def one_page(filters: dict[str, Any] = filters) -> Any:
                return await self.client.find_assignments(
                    sort=["submitted", "id"], limit=PAGE_SIZE, **filters
                )

            page = await self.retry.call(one_page, "read assignments")
            fresh = [assignment for assignment in page.items or [] if str(assignment.id) not in seen]
            # Reviews of one page run side by side (each is an HTTP round trip); the cursor then
            # moves past the page, or only up to the earliest assignment that failed (read again).
            outcomes = await asyncio.gather(
                *(self._process_bounded(a) for a in fresh), return_exceptions=True
            )
            failed: list[datetime] = []
            for assignment, outcome in zip(fresh, outcomes, strict=True):
                submitted = _aware(assignment.submitted, self._clock())
                if isinstance(outcome, BaseException):
                    failed.append(submitted)
                    continue
                seen[str(assignment.id)] = submitted
                cursor = submitted if cursor is None else max(cursor, submitted)
                self._cursors[pool_id] = cursor
                processed += 1
            if failed:
                self._cursors[pool_id] = min(failed) if cursor is None else min(cursor, min(failed))
                error = next(outcome for outcome in outcomes if isinstance(outcome, BaseException))
                raise error
            if not page.has_more:
                break
            if not fresh:  # a page of one submitted instant, all seen: wait for the next poll
                log.warning("toloka: more than %d assignments share one submitted time", PAGE_SIZE)
                break
        cursor = self._cursors.get(pool_id)
        if cursor is not None:
            self._seen[pool_id] = {key: moment for key, moment in seen.items() if moment >= cursor}
        return processed

    def verdict(self, assignment: Assignment) -> Verdict:
        """Accept unless the golden answers in the suite are right less often than the threshold."""
        total = right = 0
        for task, solution in zip(assignment.tasks or [], assignment.solutions or [], strict=False):
            known = self._known(task)
            if known is None:
                continue
            total += 1
            right += (solution.output_values or {}).get(OUTPUT_FIELD) == known
        accept = total == 0 or right / total >= self.settings.accept_min_golden_accuracy
        return Verdict(accept, total, right)

    def _known(self, task: Any) -> str | None:
        """The known answer of a golden task (ours, else the one Toloka sent), None for a real task."""
        known = self.golden.get(str(task.id))
        if known is None and task.known_solutions:
            known = str((task.known_solutions[0].output_values or {}).get(OUTPUT_FIELD))
        return known

    async def _process_bounded(self, assignment: Assignment) -> None:
        if self._reviews is None:
            self._reviews = asyncio.Semaphore(REVIEW_CONCURRENCY)
        async with self._reviews:
            await self._process(assignment)

    async def _process(self, assignment: Assignment) -> None:
        status = _value(assignment.status)
        if status == "SUBMITTED":
            verdict = self.verdict(assignment)
            status = await self._review(assignment, verdict)
        moment = _aware(assignment.submitted, self._clock())
        self._last_seen[(str(assignment.pool_id), str(assignment.user_id))] = moment
        await self._report(assignment, accepted=status == "ACCEPTED", goldens=True)

    async def _review(self, assignment: Assignment, verdict: Verdict) -> str:
        call = self.client.accept_assignment if verdict.accept else self.client.reject_assignment
        what = "accept assignment" if verdict.accept else "reject assignment"
        assignment_id = str(assignment.id)
        try:
            reviewed = await self.retry.call(lambda: call(assignment_id, verdict.comment), what)
            status = _value(reviewed.status)
        except ConflictStateApiError:  # reviewed already (by our retry that timed out, or another worker)
            current = await self.retry.call(
                lambda: self.client.get_assignment(assignment_id), "read assignment"
            )
            status = _value(current.status)
        if status == "ACCEPTED":
            self.accepted += 1
        elif status == "REJECTED":
            self.rejected += 1
            log.info("toloka: rejected assignment %s (%s)", assignment.id, verdict.comment)
        return status

    async def _report(self, assignment: Assignment, *, accepted: bool, goldens: bool) -> None:
        """Golden answers always (once); real answers of accepted assignments, once per Toloker and task."""
        submitted = _aware(assignment.submitted, self._clock())
        created = _aware(assignment.created, submitted)
        worker = str(assignment.user_id)
        pairs = list(zip(assignment.tasks or [], assignment.solutions or [], strict=False))
        time_spent_s = max(0.0, (submitted - created).total_seconds()) / max(1, len(pairs))
        sink = next(
            (self._by_task[str(task.id)].on_answer for task, _ in pairs if str(task.id) in self._by_task),
            self._golden_sink,
        )
        for task, solution in pairs:
            label = str((solution.output_values or {}).get(OUTPUT_FIELD))
            task_id = str(task.id)
            known = self._known(task)
            if known is not None:
                if goldens and sink is not None:
                    self.golden_answers += 1
                    await sink(
                        CrowdAnswer(
                            event_id=str((task.input_values or {}).get("event_id") or f"golden-{task_id}"),
                            task_id=task_id,
                            pool=self.name,
                            tier="crowd",
                            worker_id=worker,
                            label=label,
                            time_spent_s=round(time_spent_s, 3),
                            answered_at=submitted,
                            golden_label=known,
                        )
                    )
                continue
            pending = self._by_task.get(task_id)
            if accepted and pending is not None:
                await self._count(pending, worker, label, time_spent_s, submitted, task_id)

    async def _count(
        self, pending: _Pending, worker: str, label: str, time_spent_s: float, at: datetime, task_id: str
    ) -> None:
        if pending.done.done() or any(voter == worker for voter, _ in pending.votes):
            return
        pending.votes.append((worker, label))  # before any await: a racing report sees it
        target = pending.rule.target(pending.votes, pending.classes)
        answer = CrowdAnswer(
            event_id=pending.request.event_id,
            task_id=task_id,
            pool=self.name,
            tier="crowd",
            worker_id=worker,
            label=label,
            time_spent_s=round(time_spent_s, 3),
            answered_at=at,
            overlap=target,
        )
        try:
            await pending.on_answer(answer)
        except Exception as error:  # the sink failed: this request fails (and is delivered again)
            if not pending.done.done():
                pending.done.set_exception(error)
            return
        self.answers_total += 1
        # Decide on every vote counted so far, not on the target computed before the send: the
        # answers of one page are reported side by side, and while this one was being sent another
        # could be counted and raise the target. With the stale target, the first of two
        # disagreeing answers saw "2 of 2" and finished a task the second had just raised to 3;
        # the third answer then found no task and was dropped, and the aggregator (told 3) waited
        # for it forever (the drill: 3 of 120 events never labeled).
        target = pending.rule.target(pending.votes, pending.classes)
        if len(pending.votes) >= target:
            if not pending.done.done():
                self.tasks_done += 1
                pending.done.set_result(None)
            return
        if target > pending.asked:
            pending.asked = target
            await self.retry.call(
                lambda: self.client.patch_task_overlap_or_min(task_id, TaskOverlapPatch(overlap=target)),
                "raise overlap",
                event_id=pending.request.event_id,
            )

    # -- status --------------------------------------------------------------------------

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

    def pool_rewards(self) -> dict[str, tuple[float, int]]:
        """Every pool not closed (the main one first): its reward per suite and its active Tolokers."""
        assert self.pool_id is not None
        pools = {self.pool_id: self.reward} | {extra.pool_id: extra.reward for extra in self._unclosed()}
        return {pool_id: (reward, len(self._active(pool_id))) for pool_id, reward in pools.items()}

    def status(self, now: datetime) -> PoolStatus:
        """Backlog (tasks without an answer yet), in progress, rates and cost of the pool.

        With extra pools open, the workers and the capacity count every pool, and the
        cost per label is the mean of their rewards weighted by the Tolokers working
        each, so the cost per hour (capacity times cost per label) pays every pool.
        """
        pending = list(self._by_key.values())
        waiting = sum(1 for task in pending if not task.votes)
        workers = self.workers
        real = max(1, self.mix[0])
        reward = self.reward
        if self.pool_id is not None and self.extras:
            paid = self.pool_rewards().values()
            staffed = sum(count for _, count in paid)
            if staffed:
                reward = sum(pool_reward * count for pool_reward, count in paid) / staffed
        try:
            loop_now = asyncio.get_running_loop().time()
        except RuntimeError:
            loop_now = 0.0
        return PoolStatus(
            pool=self.name,
            backend="toloka",
            tier="crowd",
            workers=workers,
            active=not self._paused and self._poller is not None,
            backlog=waiting,
            in_progress=len(pending) - waiting,
            arrival_rate_per_min=self._arrivals.per_min(loop_now),
            capacity_per_min=0.0 if self._paused else workers * self.settings.labels_per_worker_min,
            overlap=self.overlap.minimum,
            answers_total=self.answers_total,
            tasks_done=self.tasks_done,
            cost_per_label=reward / real,
            reported_at=now,
        )
