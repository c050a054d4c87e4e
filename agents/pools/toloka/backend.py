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

The backend is put together from its parts: :mod:`~agents.pools.toloka.state` (what it knows),
:mod:`~agents.pools.toloka.upload`, :mod:`~agents.pools.toloka.provisioning`,
:mod:`~agents.pools.toloka.actuation`, :mod:`~agents.pools.toloka.grading` and
:mod:`~agents.pools.toloka.polling`; this module holds its lifecycle, ``label`` and ``status``.

References
----------
Toloka API: tasks, operations, assignments (https://toloka.ai/docs/api/).
toloka-kit 1.2.3: ``toloka.async_client.AsyncTolokaClient``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from toloka.client import Task

from agents.aggregator.overlap import DynamicOverlap, OverlapSettings
from agents.pools.base import AnswerSink
from agents.pools.toloka.actuation import StaffingActuation
from agents.pools.toloka.client import (
    describe,
)
from agents.pools.toloka.polling import Polling
from agents.pools.toloka.spec import input_values
from agents.pools.toloka.staffing import (
    PoolLoad,
    pick_pool,
)
from agents.pools.toloka.state import (
    PAGE_SIZE,
    ExtraPool,
    Verdict,
    _Pending,
    request_key,
)
from schemas import LabelRequest, PoolStatus, Tier
from streams.errors import RejectedBackendError

__all__ = ["ExtraPool", "TolokaBackend", "Verdict", "request_key"]

log = logging.getLogger(__name__)


class TolokaBackend(StaffingActuation, Polling):
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
