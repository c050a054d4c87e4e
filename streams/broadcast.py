"""Topics every worker must read whole (commands, pool status): a consumer outside the group.

A faust agent shares a topic's partitions across the consumer group, so a
policy command or a pool status would reach one worker only. These small
topics are read by every worker from the beginning with no group (a restart
replays the commands, so every worker converges on the same state).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from streams.runtime import Record
from streams.settings import Settings

log = logging.getLogger(__name__)

BroadcastHandler = Callable[[Record], Awaitable[None]]


async def follow(
    settings: Settings,
    topics: Sequence[str],
    handle: BroadcastHandler,
    *,
    from_beginning: bool = True,
    stopped: asyncio.Event | None = None,
) -> None:
    """Read ``topics`` with no consumer group and hand every record to ``handle`` until cancelled.

    A record the handler fails on is logged and skipped: these topics carry
    state updates, and the next one supersedes it.
    """
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *topics,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        client_id=f"{settings.app_id}-broadcast",
        **settings.kafka.aiokafka_options(),
    )
    await consumer.start()
    try:
        while stopped is None or not stopped.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for message in messages:
                    record = Record.of(message)
                    try:
                        await handle(record)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception(
                            "broadcast record %s[%d]@%d skipped",
                            message.topic,
                            message.partition,
                            message.offset,
                        )
    finally:
        await consumer.stop()
