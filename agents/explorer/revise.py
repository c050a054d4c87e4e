"""Publishing the explorer's revisions on ``labels``: through the label ledger, by each event's owner.

An operator's request reaches any worker's web server; the revision it asks
for must be published by the one worker that owns the event's partition, the
one whose :class:`~streams.ledger.LabelLedger` the aggregator publishes its own
revisions (audit verdicts, expert verdicts, healed labels) through. So the
API puts a :class:`~agents.explorer.actions.RevisionOrder` keyed by event id
on the internal ``explorer-revisions`` topic (co-partitioned with ``labels``),
and this stage, on the owner, publishes it through the ledger:

- the ledger serialises every publisher of an event on the worker and keeps
  one record per (event, revision) across restarts and takeovers, so a
  correction racing the aggregator never gives an event two different Labels
  under one revision: whichever comes second is renumbered (a correction) or
  dropped (a conditional bulk or undo order, or the aggregator's colliding
  revision, counted in ``aggregator.labels_suppressed``);
- an order read twice (at least once delivery) finds its revision in the
  ledger and publishes nothing.

The action log (:class:`TopicActionLog`) keeps each bulk action's prior labels
on the compacted ``explorer-actions`` topic, read back whole when an undo asks
for an action this process has not seen (after a restart, or applied through
another worker). A topic rather than the explorer's database: the index is a
rebuildable view of the topics, the action log is not derivable from them
(compaction drops the superseded revisions an undo restores), and every
worker sees the same log whatever database each one indexes into.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from agents.explorer.actions import ORDERS_PER_RECORD, BulkAction, RevisionOrder, RevisionOrders, publishable
from schemas import Label
from streams.codec import encode, encode_key
from streams.runtime import Output, Record, decode_keyed, run_records

if TYPE_CHECKING:
    from agents.loop import Loop
    from streams.ledger import LabelLedger
    from streams.settings import Settings

log = logging.getLogger(__name__)

#: Puts orders on ``explorer-revisions`` (one per event).
Submit = Callable[[Sequence[RevisionOrder]], Awaitable[None]]
#: How many times an unconditional order is renumbered when another publisher takes its revision.
RENUMBER_ATTEMPTS = 5


def partition_of(event_id: str, partitions: int) -> int:
    """The partition of ``labels`` an event's records go to: the producers' default partitioner's.

    Kafka's (and aiokafka's) default: murmur2 of the key bytes, positive, modulo the partitions.

    >>> [partition_of(event_id, 4) for event_id in ("tx-1", "tx-2", "tx-3")]
    [1, 1, 0]
    """
    from aiokafka.partitioner import murmur2

    return int(murmur2(event_id.encode("utf-8")) & 0x7FFFFFFF) % partitions


def order_records(orders: Sequence[RevisionOrder], partitions: int) -> list[tuple[int, RevisionOrders]]:
    """``orders`` grouped by their events' partition, in chunks of :data:`ORDERS_PER_RECORD`.

    >>> from schemas import examples
    >>> orders = [RevisionOrder(label=examples.human_label(event_id=f"tx-{n}")) for n in range(500)]
    >>> records = order_records(orders, 4)
    >>> sorted({partition for partition, _ in records}), sum(len(r.orders) for _, r in records)
    ([0, 1, 2, 3], 500)
    >>> all(partition_of(o.event_id, 4) == p for p, record in records for o in record.orders)
    True
    """
    grouped: dict[int, list[RevisionOrder]] = {}
    for order in orders:
        grouped.setdefault(partition_of(order.event_id, partitions), []).append(order)
    return [
        (partition, RevisionOrders(orders=chunk[start : start + ORDERS_PER_RECORD]))
        for partition, chunk in sorted(grouped.items())
        for start in range(0, len(chunk), ORDERS_PER_RECORD)
    ]


class ActionLog(Protocol):
    """Where bulk actions are remembered, so they can be undone."""

    async def append(self, parts: Sequence[BulkAction]) -> None: ...

    async def find(self, action_id: str) -> list[BulkAction]: ...


@dataclass
class MemoryActionLog:
    """An action log in memory (tests, and the cache in front of :class:`TopicActionLog`)."""

    actions: dict[str, dict[int, BulkAction]] = field(default_factory=dict)

    def remember(self, parts: Iterable[BulkAction]) -> None:
        for part in parts:
            self.actions.setdefault(part.action_id, {})[part.part] = part

    async def append(self, parts: Sequence[BulkAction]) -> None:
        self.remember(parts)

    async def find(self, action_id: str) -> list[BulkAction]:
        return sorted(self.actions.get(action_id, {}).values(), key=lambda part: part.part)


class TopicActionLog(MemoryActionLog):
    """The action log on the compacted ``explorer-actions`` topic (key ``<action_id>/<part>``).

    Appends are sent (and remembered); an action not in memory is looked for by
    reading the topic from its start to its end offsets (it is compacted, and
    small: a few hundred bytes per event of each action).
    """

    def __init__(self, output: Output, settings: Settings, topic: str) -> None:
        super().__init__()
        self._output = output
        self._settings = settings
        self._topic = topic
        self._reading = asyncio.Lock()

    async def append(self, parts: Sequence[BulkAction]) -> None:
        for part in parts:
            await self._output.send(part.key, part)
        self.remember(parts)

    async def find(self, action_id: str) -> list[BulkAction]:
        found = await super().find(action_id)
        if found and len(found) == found[0].parts:
            return found
        async with self._reading:
            self.remember(await read_action_log(self._settings, self._topic))
        return await super().find(action_id)


async def read_action_log(settings: Settings, topic: str, timeout_s: float = 30.0) -> list[BulkAction]:
    """Every record of the action log ``topic``, in order (later parts replace earlier ones).

    Read as :func:`streams.snapshot.read_topic` reads ``labels``: fresh metadata, every
    partition from its start to its end offsets at the start of the read, read committed.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.codec import decode
    from streams.errors import ContractError

    consumer = AIOKafkaConsumer(
        **settings.kafka.reader_options(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id=f"{settings.app_id}-explorer-actions",
    )
    await asyncio.wait_for(consumer.start(), timeout_s)
    parts: list[BulkAction] = []
    try:
        cluster = await asyncio.wait_for(consumer._client.fetch_all_metadata(), timeout_s)
        tps = [TopicPartition(topic, number) for number in sorted(cluster.partitions_for_topic(topic) or ())]
        if not tps:
            return parts
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await asyncio.wait_for(consumer.end_offsets(tps), timeout_s)
        remaining = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        deadline = asyncio.get_running_loop().time() + timeout_s
        while remaining:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"reading the action log {topic} took longer than {timeout_s} s")
            batch = await asyncio.wait_for(consumer.getmany(*remaining, timeout_ms=500), timeout_s)
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset >= ends[tp] or message.value is None:
                        continue
                    try:
                        parts.append(decode(BulkAction, message.value))
                    except ContractError:
                        log.warning("action log %s offset %d is not a BulkAction", topic, message.offset)
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        await asyncio.wait_for(consumer.stop(), timeout_s)
    return parts


class Reviser:
    """Publishes :class:`RevisionOrder` records through a ledger (the core of the stage, no faust).

    Parameters
    ----------
    ledger
        The worker's label ledger (``loop.ledger``).
    counters
        Where it counts what it did (``explorer.revisions``, ``explorer.orders_dropped``, ...).

    Examples
    --------
    >>> import asyncio
    >>> from schemas import examples
    >>> from streams.ledger import LabelLedger
    >>> sent = []
    >>> class Topic:
    ...     async def send(self, *, key, value, headers=None):
    ...         sent.append(key)
    >>> async def tail(partition, since_ms):
    ...     return {}
    >>> reviser = Reviser(LabelLedger(Output(Topic()), {}, tail, lookback_s=60), {})
    >>> order = RevisionOrder(label=examples.human_label(revision=2), if_latest=True)
    >>> first, again = asyncio.run(reviser.apply(order, 0)), asyncio.run(reviser.apply(order, 0))
    >>> first.revision, again
    (2, None)
    >>> sent, reviser.counters
    ([b'tx-1'], {'explorer.revisions': 1, 'explorer.orders_dropped': 1})
    """

    def __init__(self, ledger: LabelLedger, counters: Any) -> None:
        self.ledger = ledger
        self.counters = counters

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    async def apply(self, order: RevisionOrder, partition: int) -> Label | None:
        """Publish ``order``'s revision if it still applies; returns the Label published, or None."""
        await self.ledger.verify(partition)
        for _ in range(RENUMBER_ATTEMPTS):
            label = publishable(order, self.ledger.revision(order.event_id))
            if label is None:
                self._count("explorer.orders_dropped")
                log.info(
                    "%s order for %s dropped: a revision after %s is on labels",
                    order.kind,
                    order.event_id,
                    order.label.supersedes,
                )
                return None
            if await self.ledger.publish(label, partition):
                self._count("explorer.revisions")
                return label
            # Another publisher of this worker took the revision meanwhile: look again.
        self._count("explorer.orders_dropped")
        return None


@dataclass
class RevisionStage:
    """What :func:`register` gives the web server: ``submit`` orders, and the action ``log``."""

    submit: Submit
    log: ActionLog
    reviser: Reviser | None = None


def register(loop: Loop) -> RevisionStage:
    """Add the stage that publishes the explorer's revisions to ``loop.app``."""
    names = loop.names
    topic_name = names["explorer-revisions"]
    dead_letters = loop.dead_letters("explorer")
    reviser = Reviser(loop.ledger, loop.counters)
    action_log = TopicActionLog(
        loop.output(names["explorer-actions"]), loop.settings, names["explorer-actions"]
    )

    topic = loop.topic(topic_name)
    partitions = loop.settings.topics.partitions

    async def submit(batch: Sequence[RevisionOrder]) -> None:
        for partition, record in order_records(batch, partitions):
            await topic.send(key=encode_key(record.event_id), value=encode(record), partition=partition)
            loop.metrics.produced(topic_name)

    async def on_order(record: Record) -> None:
        found = decode_keyed(RevisionOrders, record)
        for order in found.orders:
            if partition_of(order.event_id, partitions) != record.partition:
                # Its ledger entry would be written to another event's partition: refuse it.
                loop.counters["explorer.orders_misplaced"] += 1
                log.error(
                    "order for %s on partition %d is not its partition's", order.event_id, record.partition
                )
                continue
            published = await reviser.apply(order, record.partition)
            if published is not None:
                loop.metrics.observe_label(published)

    @loop.app.agent(loop.topic(topic_name), name="explorer-revisions")
    async def publish_revisions(stream: Any) -> None:
        async for ok in run_records(stream, on_order, dead_letters):
            if not ok:
                loop.counters["explorer.dlq"] += 1

    return RevisionStage(submit=submit, log=action_log, reviser=reviser)
