"""Wire the explorer into a worker: its index, the indexer beside the loop, the GET and POST routes."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from agents.explorer.api import ExplorerApi
from agents.explorer.indexer import Indexer
from agents.explorer.query import Explorer
from agents.explorer.settings import ExplorerSettings
from agents.operator_api import OperatorApiSettings

if TYPE_CHECKING:
    from agents.loop import Loop

log = logging.getLogger(__name__)


@dataclass
class ExplorerStage:
    """What a worker runs of the explorer (the indexer is None when another process feeds the index)."""

    explorer: Explorer
    api: ExplorerApi
    indexer: Indexer | None


def register(
    loop: Loop, web_app: web.Application, settings: ExplorerSettings, operator: OperatorApiSettings
) -> ExplorerStage:
    """Serve the explorer from ``web_app`` and, with ``index_in_worker``, feed its index from the topics.

    The indexer is a task of the app with its own consumer (agents/explorer/indexer.py): the
    router's agents never wait for it. A failing indexer logs and retries; it never stops the worker.
    """
    from agents.explorer import revise
    from agents.explorer.actions_api import add_action_routes

    explorer = Explorer.from_settings(loop.settings, settings)
    api = ExplorerApi(explorer)
    api.add_routes(web_app)
    reviser = revise.register(loop)
    add_action_routes(
        web_app,
        explorer,
        token=operator.secret,
        submit=reviser.submit,
        action_log=reviser.log,
        export_dir=loop.settings.data_dir / "exports",
        labels_topic=loop.names.labels,
        bulk_cap=settings.bulk_cap,
    )
    indexer = (
        Indexer(loop.settings, explorer.store, settings, on_batch=explorer.refresh_vectors)
        if settings.index_in_worker
        else None
    )
    if indexer is not None:

        @loop.app.task  # type: ignore[untyped-decorator]
        async def explorer_indexer() -> None:
            while True:
                try:
                    await indexer.run()
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # the broker or the database is away: retry, never crash
                    log.warning(
                        "explorer indexer stopped (%s: %s); retrying in 5 s", type(error).__name__, error
                    )
                    await asyncio.sleep(5.0)

    return ExplorerStage(explorer=explorer, api=api, indexer=indexer)
