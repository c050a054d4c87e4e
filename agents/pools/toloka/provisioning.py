"""Provisioning: the spec's project and pools found by name (a restart reuses them) or created.

A pool mixes golden tasks into every task suite at ``golden_rate`` and carries the quality rules:
a ban on low golden accuracy and on fast submits.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from toloka.client import Pool, Task
from toloka.client.actions import RestrictionV2
from toloka.client.collectors import AssignmentSubmitTime, GoldenSet
from toloka.client.conditions import FastSubmittedCount, GoldenSetAnswersCount, GoldenSetCorrectAnswersRate
from toloka.client.pool.mixer_config import MixerConfig

from agents.pools.toloka.audience import Audience
from agents.pools.toloka.client import (
    describe,
    is_retryable,
)
from agents.pools.toloka.spec import OUTPUT_FIELD
from agents.pools.toloka.state import (
    PAGE_SIZE,
    _value,
)
from agents.pools.toloka.upload import Uploads
from streams.errors import BackendError

log = logging.getLogger(__name__)


class Provisioning(Uploads):
    """The spec's project and pools found by name or created, and their golden tasks uploaded."""

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
