"""faust's aiokafka transport with an idempotent, acks=all producer outside transactions too.

faust turns idempotence on only inside exactly_once transactions
(``Producer._settings_extra``); at-least-once workers would otherwise produce
with aiokafka's defaults (acks=1, no idempotence), so a broker retry could
write a Label twice. Registered as the ``labelloop://`` transport through the
``faust.transports`` entry point.

It also makes ``flush`` wait for every table write. faust sends a table's
changelog records through a buffer (``send_soon``), and before committing
offsets it flushes the producer; but the buffer's flush gives up after 0.1 s
without progress (``ProducerBuffer.flush_atmost``) and returns with writes still
queued. On a busy worker the offsets of records were then committed while their
table writes were not sent yet, and a SIGKILL lost them for good: in the
three-worker SIGKILL test, label requests whose open-task records never reached
the changelog, although their offsets were committed. Here ``flush`` returns
only when every record given to ``send_soon`` is acknowledged by the broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, FutureMessage, Message
from faust.types.tuples import ack_lock


class IdempotentProducer(faust_aiokafka.Producer):
    """acks=all with idempotence on every producer faust creates; ``flush`` waits for table writes."""

    def __post_init__(self) -> None:
        super().__post_init__()
        #: Records given to ``send_soon`` that the broker has not acknowledged yet.
        self._unsent: set[FutureMessage] = set()

    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}

    def send_soon(self, fut: FutureMessage) -> None:
        """Buffer ``fut`` (a table's changelog write) and remember it until the broker has it."""
        self._unsent.add(fut)
        fut.add_done_callback(self._unsent.discard)
        super().send_soon(fut)

    async def flush(self) -> None:
        """Send the buffer and wait until every buffered record is acknowledged (or failed).

        A failed write raises here, so the consumer does not commit offsets past it.
        """
        await super().flush()
        pending = list(self._unsent)
        if pending:
            await asyncio.gather(*pending)


class ReadOffsets(dict[TP, int | None]):
    """faust's last-read offset per partition, not moved by records streams drop.

    faust's fetch loop drops a record below the last offset it read from the
    partition ("DROPPED MESSAGE ROFF"), and the seek to the committed offsets
    after a rebalance lowers that offset so the records after it come again. But
    the partitions are resumed before that seek and flow control is turned on
    only after it: records fetched in between reach the streams, which drop them
    (flow control is off), while the loop still moves the last-read offset past
    them, and their second delivery after the seek is dropped as already read.
    The partition then sits at its end with those records never handled (seen:
    label requests of a taken-over partition never dispatched, the consumer's
    position at the highwater). So the loop's updates are ignored while flow
    control is off; the seek's (``update``) always apply.

    >>> active = [False]
    >>> offsets = ReadOffsets(lambda: active[0])
    >>> offsets["tp"] = 134          # dropped while flow control is off: not read
    >>> offsets["tp"] is None
    True
    >>> offsets.update({"tp": 55})   # the seek to the committed offset
    >>> active[0] = True
    >>> offsets["tp"] = 56
    >>> offsets["tp"]
    56
    """

    def __init__(self, flow_active: Callable[[], bool]) -> None:
        super().__init__()
        self._flow_active = flow_active

    def __missing__(self, tp: TP) -> None:
        return None

    def __setitem__(self, tp: TP, offset: int | None) -> None:
        if self._flow_active():
            super().__setitem__(tp, offset)


class GenerationSafeConsumer(faust_aiokafka.Consumer):
    """Never commit the offset of a message a stream dropped at a rebalance.

    After a rebalance faust's streams drop every queued message fetched under the
    previous consumer generation (``Stream.__aiter__``: "Skipping message ... with
    generation_id"), and acknowledge it as they drop it. If the worker kept the
    partition, that acknowledgement lets the offset be committed past a record that
    no agent processed, and the seek to the committed offsets that follows the
    rebalance starts after it: the record is lost. Seen in the three-worker SIGKILL
    test: a router stream went from offset 16 to 18 of a kept partition, and that
    event never got a Label. Streams drop (and acknowledge) what reaches them while
    flow control is off as well, during a rebalance's table recovery: a new owner
    went from offset 0 to 135 of the partition it took over, 80 events never
    routed. Here such an acknowledgement ends the message's
    bookkeeping (nothing waits for it) without making its offset committable, so
    the seek starts at or before it and the message is delivered again.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = ReadOffsets(self.app.flow_control.is_active)

    def ack(self, message: Message) -> bool:
        current = self.app.consumer_generation_id
        stale = message.generation_id is not None and message.generation_id != current
        # The same skip happens while flow control is off (a rebalance and its table
        # recovery): a message that reaches a stream then is dropped and acknowledged too.
        if stale or not self.app.flow_control.is_active():
            with ack_lock:
                if not message.acked:
                    message.acked = True
                    self._unacked_messages.discard(message)
            return False
        return bool(super().ack(message))


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport with :class:`IdempotentProducer` and :class:`GenerationSafeConsumer`."""

    Producer = IdempotentProducer
    Consumer = GenerationSafeConsumer
