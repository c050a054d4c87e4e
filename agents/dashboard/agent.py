"""The dashboard's timers on a worker: sample the registry for the plots, measure consumer lag."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from agents.dashboard.server import Dashboard
from agents.dashboard.timeline import Timeline
from streams.metrics import lag_by_partition

if TYPE_CHECKING:
    from aiohttp import web

    from agents.loop import Loop

log = logging.getLogger(__name__)


class DashboardSettings(BaseModel):
    """How the dashboard samples (``LABELLOOP_DASHBOARD__*``).

    >>> DashboardSettings().sample_every_s
    2.0
    """

    model_config = ConfigDict(frozen=True)

    #: Seconds between two samples of the registry (the plots' resolution).
    sample_every_s: float = Field(default=2.0, gt=0.0, le=600.0)
    #: The window of the plotted rates (share to humans, DLQ per minute), in seconds.
    rate_window_s: float = Field(default=10.0, gt=0.0)
    #: Samples kept (at 2 s: two hours).
    max_points: int = Field(default=3_600, ge=10, le=100_000)
    #: Seconds between two consumer-lag measurements (0: never).
    lag_every_s: float = Field(default=5.0, ge=0.0)


async def measure_lag(loop: Loop) -> dict[tuple[str, int], int]:
    """Lag of the partitions this worker owns now: end offsets minus the group's committed offsets.

    Read from the broker (what ``kafka-consumer-groups --describe`` shows), not from faust's
    in-memory positions, so it counts what a restart would have to read again.
    """
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    app = loop.app
    # The loop's own topics (tables' changelogs are written here, never consumed by the group).
    prefix = loop.settings.topics.prefix
    owned = [
        TopicPartition(tp.topic, tp.partition)
        for tp in app.assignor.assigned_actives()
        if tp.topic.startswith(prefix)
    ]
    batches = loop.batches
    batched = batches.assignment() if batches is not None else []
    if not owned and not batched:
        return {}
    admin = AIOKafkaAdminClient(bootstrap_servers=loop.settings.kafka.bootstrap_list, **_auth(loop))
    await admin.start()
    try:
        committed = (
            await admin.list_consumer_group_offsets(loop.settings.app_id, partitions=owned) if owned else {}
        )
        if batches is not None and batched:
            # The batch path's own group (the router, the readers of labels).
            committed.update(
                await admin.list_consumer_group_offsets(
                    batches.group_id, partitions=[TopicPartition(topic, p) for topic, p in batched]
                )
            )
    finally:
        await admin.close()
    ends = {
        place: int(end) for place, end in (await app.consumer.highwaters(*owned)).items() if end is not None
    }
    if batches is not None:
        ends.update(
            {TopicPartition(*place): end for place, end in (await batches.end_offsets(batched)).items()}
        )
    return lag_by_partition(
        ends, {place: meta.offset for place, meta in committed.items() if meta.offset >= 0}
    )


def _auth(loop: Loop) -> dict[str, Any]:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from streams.app import broker_credentials

    return dict(credentials_to_aiokafka_auth(broker_credentials(loop.settings.kafka)))


def register(loop: Loop, web_app: web.Application, settings: DashboardSettings) -> Dashboard:
    """Serve ``/metrics`` and the dashboard from ``web_app``; sample and measure lag on timers."""
    dashboard = Dashboard(
        loop.metrics,
        Timeline(max_points=settings.max_points, window_s=settings.rate_window_s),
        clock=loop.clock,
    )
    dashboard.add_routes(web_app)
    dashboard.sample()

    @loop.app.timer(settings.sample_every_s)  # type: ignore[untyped-decorator]
    async def sample_metrics() -> None:
        dashboard.sample()

    if settings.lag_every_s > 0:

        @loop.app.timer(settings.lag_every_s)  # type: ignore[untyped-decorator]
        async def consumer_lag() -> None:
            if loop.app.rebalancing:
                return
            try:
                loop.metrics.observe_lag(await asyncio.wait_for(measure_lag(loop), 10.0))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the broker is busy or restarting: the next tick tries again
                log.info("consumer lag not measured: %s", error)

    return dashboard
