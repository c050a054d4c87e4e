"""Staffing actuation: the reward moved and extra pools opened, drained and closed, as staffing decides.

:mod:`agents.pools.toloka.staffing` decides (pure); this applies its moves to Toloka.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agents.pools.toloka.audience import Audience
from agents.pools.toloka.provisioning import Provisioning
from agents.pools.toloka.staffing import (
    ExtraPoolMove,
    next_extra_pools,
    next_reward,
    reward_exhausted,
)
from agents.pools.toloka.state import (
    ExtraPool,
)

log = logging.getLogger(__name__)


class StaffingActuation(Provisioning):
    """The reward moved and extra pools opened, drained and closed, as staffing decides."""

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
