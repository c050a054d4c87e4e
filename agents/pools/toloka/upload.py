"""Uploads to Toloka: create operations with a deterministic id, waited for; a pool opened or closed.

A retry after a lost answer is ``OPERATION_ALREADY_EXISTS`` and returns the first upload, so a
task is never created twice (toloka-kit retries POSTs: PITFALLS.md).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from toloka.client import Task
from toloka.client.operations import Operation
from toloka.client.task import CreateTasksParameters

from agents.pools.toloka.client import (
    operation_id,
)
from agents.pools.toloka.state import (
    TolokaState,
    _value,
)
from streams.errors import BackendError, RejectedBackendError


class Uploads(TolokaState):
    """Uploads to Toloka: create operations with a deterministic id, waited for; a pool opened or closed."""

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

    async def _set_open(self, open_pool: bool, pool_id: str) -> None:
        call = self.client.open_pool_async if open_pool else self.client.close_pool_async
        operation = await self.retry.call(lambda: call(pool_id), "open pool" if open_pool else "close pool")
        if operation is not None:
            await self._finished(operation, "pool switch", None)
