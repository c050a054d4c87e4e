"""The ``labelloop://`` faust transport: faust's aiokafka transport with our patches assembled.

Registered through the ``faust.transports`` entry point. Each patch is a module of
:mod:`streams.patches` (what it fixes, the upstream issue it waits on, the private parts it
relies on); this module only puts them together:

- the producer: acks=all and idempotence outside transactions too, a flush that waits for every
  table write (:mod:`streams.patches.faust_producer`);
- the consumer: no commit past a record that is not done (:mod:`~streams.patches.faust_commit_floor`,
  faust-streaming #606), read offsets that records dropped while flow is off do not move
  (:mod:`~streams.patches.faust_read_offsets`), a bounded wait for acknowledgements at shutdown
  (:mod:`~streams.patches.faust_shutdown`), a ``wait_first`` without four tasks per record
  (:mod:`~streams.patches.faust_wait_first`), read_committed in every processing guarantee
  (:mod:`~streams.patches.faust_read_committed`).

The topic class (:class:`Topic`), the stream schema (:class:`RawSchema`) and the flow control
(:class:`FlowControl`) are set on the app by :func:`streams.app.create_app`; they are re-exported
here, where the rest of the code has always imported them from.
"""

from __future__ import annotations

from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.patches.faust_commit_floor import CommitFloor, GenerationSafe, first_committable_run
from streams.patches.faust_flow_control import FlowControl
from streams.patches.faust_producer import IdempotentProducer
from streams.patches.faust_raw_schema import RawSchema
from streams.patches.faust_read_committed import ReadCommitted, ReadCommittedConsumerThread
from streams.patches.faust_read_offsets import FlowAwareReadOffsets, ReadOffsets
from streams.patches.faust_shutdown import SHUTDOWN_WAIT_S, BoundedShutdown
from streams.patches.faust_topic import Topic
from streams.patches.faust_wait_first import EagerWaitFirst, Resumed

__all__ = [
    "SHUTDOWN_WAIT_S",
    "CommitFloor",
    "FlowControl",
    "GenerationSafeConsumer",
    "IdempotentProducer",
    "RawSchema",
    "ReadCommittedConsumerThread",
    "ReadOffsets",
    "Resumed",
    "Topic",
    "Transport",
    "first_committable_run",
]


class GenerationSafeConsumer(
    EagerWaitFirst, BoundedShutdown, ReadCommitted, FlowAwareReadOffsets, GenerationSafe
):
    """faust's aiokafka consumer with every consumer patch of :mod:`streams.patches`."""


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport with :class:`IdempotentProducer` and :class:`GenerationSafeConsumer`."""

    Producer = IdempotentProducer
    Consumer = GenerationSafeConsumer
