"""faust's topic, with a short way to the producer for records that are bytes already.

``Topic.publish_message`` asks ``App.maybe_start_producer`` for the producer on
every send; that is wrapped in mode's ``stampede``, which awaits ``asyncio.sleep(0)``
three times per call even when the producer runs already. Here a started producer
outside a transaction is returned at once; anything else (the first send, exactly_once's
transaction manager) goes the way faust goes. Table writes (``send_soon``) take this way.

And :meth:`Topic.send` of bytes (what every stage sends: ``streams.runtime.Output``) hands them
to the producer directly, without faust's serializer registry, pending/future messages
and sensors between (a third of a routed event's CPU time went to the two sends; a profile of
the worker under ``bench.throughput``'s load, README F1).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from functools import partial
from typing import Any

import faust
from faust.types import ProducerT, RecordMetadata

from streams.patches.pins import Pin

log = logging.getLogger(__name__)

UPSTREAM = "none filed: a cost of faust-streaming 0.15's stampede guard and send path, not a bug"
RELIES_ON = (
    Pin("faust:Topic", "_get_producer", parameters=("self",)),
    Pin(
        "faust:Topic",
        "send",
        parameters=(
            "self",
            "key",
            "value",
            "partition",
            "timestamp",
            "headers",
            "schema",
            "key_serializer",
            "value_serializer",
            "callback",
            "force",
        ),
    ),
    Pin("faust:Topic", "get_topic_name", parameters=("self",)),
    Pin("faust.app.base:App", "in_transaction"),
    Pin("faust.transport.drivers.aiokafka:Producer", "send"),
)


class Topic(faust.Topic):
    """faust's topic whose sends of bytes go straight to a started producer (module docstring)."""

    async def _get_producer(self) -> ProducerT:
        app = self.app
        if not app.in_transaction:
            producer = app.producer
            if producer.started:
                return producer
        return await super()._get_producer()

    async def send(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Any = None,
        **options: Any,
    ) -> Awaitable[RecordMetadata]:
        app = self.app
        producer = app.producer
        if (
            options
            or not isinstance(key, bytes | None)
            or not isinstance(value, bytes | None)
            or app.in_transaction
            or app.conf.stream_publish_on_commit
            or not producer.started
        ):
            sent: Awaitable[RecordMetadata] = await super().send(
                key=key, value=value, partition=partition, timestamp=timestamp, headers=headers, **options
            )
            return sent
        name = self.get_topic_name()
        future = await producer.send(name, key, value, partition, timestamp, headers)
        asyncio.ensure_future(future).add_done_callback(partial(_log_failed_send, name))
        return future


def _log_failed_send(topic: str, future: asyncio.Future[RecordMetadata]) -> None:
    """Say so when the broker never took a record (as faust's ``Topic._on_published`` does)."""
    if not future.cancelled() and future.exception() is not None:
        log.warning("send to %s failed: %r", topic, future.exception())
