"""faust's consumer thread reading committed records only, in every processing guarantee."""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.patches.pins import Pin

UPSTREAM = "none filed: faust-streaming 0.15 sets read_committed only under exactly_once"
RELIES_ON = (
    Pin(
        "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread",
        "_create_worker_consumer",
        parameters=("self", "transport"),
    ),
    Pin("faust.transport.drivers.aiokafka:Consumer", "_new_consumer_thread", parameters=("self",)),
    Pin("aiokafka.consumer.consumer:AIOKafkaConsumer", "_isolation_level", assigned_in="__init__"),
)


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's consumer reading committed records only, in every processing guarantee.

    faust reads ``read_committed`` only under exactly_once (``_create_worker_consumer``). The
    router writes ``labels``, ``label-requests`` and the DLQ in transactions
    (``streams/batches.py``): read uncommitted, a worker's agents (and the tables' changelog
    recovery) would see the records of a transaction that a killed router left open and its
    successor aborted, and act on Labels that consumers never get. aiokafka takes the level
    from the consumer's ``_isolation_level`` when it starts its fetcher, after this.
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"
        return consumer


class ReadCommitted(faust_aiokafka.Consumer):
    """faust's consumer whose thread is :class:`ReadCommittedConsumerThread`."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)
