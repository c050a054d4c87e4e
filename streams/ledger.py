"""The labels topic as its own ledger: one record per (event_id, revision), even when a worker dies.

Without transactions a stage's effect (a Label sent) and its state (the table
write that says so) are two records, and a worker killed between them leaves
the effect without the state: the partition's next owner consumes the same
input again and, finding no state, publishes the same revision a second time.
That was seen in the three-worker SIGKILL test (revision-1 Labels published
twice, 14 s apart, by the dead worker and by its successor).

The ledger closes the window from the effect's side. Every stage that publishes
Labels (the router and the aggregator) goes through :meth:`LabelLedger.publish`,
which remembers the highest revision published per event in a table; and
before a worker handles the first record of a partition after a rebalance, it
reads that partition of the labels topic itself back over a lookback window
and adds what it finds. What the dead owner published after its last commit
is in that window: the consumer commits only after every table write is
acknowledged (``streams/transport.py``), at least every commit interval, and
its partitions move only after the session timeout; the window covers both,
twice over, plus a margin.

What it does not cover: with several brokers a table write could reach its
leader before the Label it records reaches another (the Label would then be
lost, not doubled). With one broker both ride the same produce request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

from schemas import Label
from streams.runtime import Output

log = logging.getLogger(__name__)

#: Reads one partition of the labels topic from a time (epoch ms) to its current end and returns
#: the highest revision seen per event id.
TailReader = Callable[[int, int], Awaitable[Mapping[str, int]]]


class LabelLedger:
    """Publish Labels at most once per (event_id, revision) across worker restarts and takeovers.

    Parameters
    ----------
    output
        The labels topic's producer.
    published
        A table of event id → highest revision published (a faust table with a changelog; any
        mutable mapping of str to str in tests).
    tail
        Reads back a labels partition from a time; see :data:`TailReader`.
    lookback_s
        How far back a partition is read after a rebalance.
    wall_clock
        Epoch seconds (injected for tests).

    Examples
    --------
    >>> import asyncio
    >>> from datetime import UTC, datetime
    >>> from schemas import LabelProvenance
    >>> sent = []
    >>> class Topic:
    ...     async def send(self, *, key, value, headers=None):
    ...         sent.append(key)
    >>> async def tail(partition, since_ms):  # the dead owner had published e-1 revision 1
    ...     return {"e-1": 1}
    >>> ledger = LabelLedger(Output(Topic()), {}, tail, lookback_s=60)
    >>> when = datetime(2026, 1, 1, tzinfo=UTC)
    >>> def label(event_id):
    ...     return Label(event_id=event_id, label="ok", source="model", route="accepted", confidence=0.9,
    ...                  decided_at=when, prediction_created_at=when,
    ...                  provenance=LabelProvenance(model_name="m", model_version="1", model_label="ok",
    ...                                             model_confidence=0.9))
    >>> asyncio.run(ledger.publish(label("e-1"), partition=0)), asyncio.run(ledger.publish(label("e-2"), 0))
    (False, True)
    >>> sent
    [b'e-2']
    """

    def __init__(
        self,
        output: Output,
        published: MutableMapping[str, str],
        tail: TailReader,
        *,
        lookback_s: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._output = output
        self._published = published
        self._tail = tail
        self.lookback_s = lookback_s
        self._wall_clock = wall_clock
        self._verified: dict[int, asyncio.Future[None]] = {}
        self._sending: dict[str, asyncio.Future[None]] = {}
        #: Labels not sent again because the topic already had their revision.
        self.suppressed = 0
        #: Event ids found in partitions' tails that the table did not know.
        self.recovered = 0

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Partitions taken away: if they come back, another owner may have published meanwhile."""
        for partition in partitions:
            self._verified.pop(partition, None)

    async def verify(self, partition: int) -> None:
        """Make sure ``partition``'s recent tail is in the ledger (once per assignment).

        Must be awaited while a record of ``partition`` is being handled: the table writes it
        makes go to that record's partition.
        """
        found = self._verified.get(partition)
        if found is None:
            found = self._verified[partition] = asyncio.ensure_future(self._read_tail(partition))
        try:
            await asyncio.shield(found)
        except Exception:
            # Try again on the next record rather than publish blind.
            if self._verified.get(partition) is found:
                del self._verified[partition]
            raise

    async def _read_tail(self, partition: int) -> None:
        since_ms = int((self._wall_clock() - self.lookback_s) * 1000)
        revisions = await self._tail(partition, since_ms)
        for event_id, revision in revisions.items():
            if revision > self.revision(event_id):
                self._published[event_id] = str(revision)
                self.recovered += 1
        if revisions:
            log.info(
                "labels partition %d: %d events published in the last %.0f s read back",
                partition,
                len(revisions),
                self.lookback_s,
            )

    def revision(self, event_id: str) -> int:
        """The highest revision published for ``event_id`` (0 if none)."""
        found = self._published.get(event_id)
        return 0 if found is None else int(found)

    async def publish(self, label: Label, partition: int) -> bool:
        """Send ``label`` unless its revision (or a later one) is already on the topic.

        Returns whether it was sent. Two publishers on one worker racing on the same event
        are serialised: the second sees the first's revision.
        """
        await self.verify(partition)
        while (pending := self._sending.get(label.event_id)) is not None:
            await asyncio.shield(pending)
        if self.revision(label.event_id) >= label.revision:
            self.suppressed += 1
            log.info("%s revision %d is on the labels topic already", label.event_id, label.revision)
            return False
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sending[label.event_id] = done
        try:
            await self._output.send(label.event_id, label)
            # After the send: a write before it could reach the changelog while the Label does not.
            self._published[label.event_id] = str(label.revision)
        finally:
            del self._sending[label.event_id]
            done.set_result(None)
        return True


async def read_label_tail(consumer: Any, topic: str, partition: int, since_ms: int) -> dict[str, int]:
    """The highest revision per event id in ``topic``/``partition`` from ``since_ms`` to its end.

    ``consumer`` is a started aiokafka consumer without a group; it is re-assigned here.
    A record that is not a valid Label is skipped (the topic's own consumers dead-letter it).
    """
    from aiokafka import TopicPartition

    from streams.codec import decode
    from streams.errors import ContractError

    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    end = (await consumer.end_offsets([tp]))[tp]
    start = (await consumer.offsets_for_times({tp: since_ms}))[tp]
    if start is None or start.offset >= end:
        return {}
    consumer.seek(tp, start.offset)
    revisions: dict[str, int] = {}
    while await consumer.position(tp) < end:
        batch = await consumer.getmany(tp, timeout_ms=1000)
        for message in batch.get(tp, ()):
            if message.offset >= end:
                break
            try:
                label = decode(Label, message.value)
            except ContractError:
                continue
            revisions[label.event_id] = max(label.revision, revisions.get(label.event_id, 0))
    return revisions
