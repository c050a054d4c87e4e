"""faust's aiokafka producer with acks=all and idempotence outside transactions, and a flush that waits.

faust turns idempotence on only inside exactly_once transactions
(``Producer._settings_extra``); at-least-once workers would otherwise produce
with aiokafka's defaults (acks=1, no idempotence), so a broker retry could
write a Label twice.

It also makes ``flush`` wait for every table write. faust sends a table's
changelog records through a buffer (``send_soon``), and before committing
offsets it flushes the producer (faust-streaming PR #273); but the buffer's flush gives up
after 0.1 s without progress (``ProducerBuffer.flush_atmost``) and returns with writes still
queued. On a busy worker the offsets of records were then committed while their
table writes were not sent yet, and a SIGKILL lost them for good: in the
three-worker SIGKILL test, label requests whose open-task records never reached
the changelog, although their offsets were committed. Here ``flush`` returns
only when every record given to ``send_soon`` is acknowledged by the broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import FutureMessage

from streams.patches.pins import Pin

UPSTREAM = (
    "none filed for idempotence outside transactions; the flush after faust-streaming PR #273 "
    "still gives up after flush_atmost's 0.1 s"
)
RELIES_ON = (
    Pin("faust.transport.drivers.aiokafka:Producer", "_settings_extra", parameters=("self",)),
    Pin("faust.transport.drivers.aiokafka:Producer", "send_soon", parameters=("self", "fut")),
    Pin("faust.transport.drivers.aiokafka:Producer", "flush", parameters=("self",)),
    Pin("faust.transport.drivers.aiokafka:Producer", "__post_init__", parameters=("self",)),
)


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
