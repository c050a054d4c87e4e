"""Polling: the pools' submitted assignments read incrementally (by submit time, each once) and graded."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from agents.pools.toloka.grading import Grading
from agents.pools.toloka.state import (
    PAGE_SIZE,
    _aware,
)

log = logging.getLogger(__name__)


class Polling(Grading):
    """Polling: the pools' submitted assignments read incrementally (by submit time, each once) and graded."""

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
