"""A stopping worker waits for the records its streams started to be acknowledged, so long only.

faust waits for ever (``Consumer.wait_empty``); a record no agent acknowledges any more (seen at
a SIGTERM right after a rebalance, the agents all waiting for their next record) then holds the
shutdown until the process is killed. Past :data:`SHUTDOWN_WAIT_S`, what is not done is not
committed (``streams.patches.faust_commit_floor`` holds it) and the partition's next owner reads
it again: at least once, and the label ledger drops the Label it already published.
"""

from __future__ import annotations

import gc
import logging
import time

from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.patches.pins import Pin

log = logging.getLogger(__name__)

UPSTREAM = "none filed: faust-streaming 0.15's Consumer.wait_empty has no deadline"
RELIES_ON = (
    Pin("faust.transport.drivers.aiokafka:Consumer", "wait_empty", parameters=("self",)),
    Pin("faust.transport.drivers.aiokafka:Consumer", "_wait_for_ack", parameters=("self", "timeout")),
    Pin("faust.transport.drivers.aiokafka:Consumer", "_clean_unacked_messages", parameters=("self",)),
    Pin("faust.transport.drivers.aiokafka:Consumer", "commit_and_end_transactions", parameters=("self",)),
    Pin("faust.transport.consumer:Consumer", "_unacked_messages", assigned_in="__init__"),
)

#: How long a stopping worker waits for the records its streams started to be acknowledged.
SHUTDOWN_WAIT_S = 10.0


class BoundedShutdown(faust_aiokafka.Consumer):
    """faust's consumer whose ``wait_empty`` gives up after :data:`SHUTDOWN_WAIT_S`."""

    async def wait_empty(self) -> None:
        """faust's wait for every started record to be acknowledged, for :data:`SHUTDOWN_WAIT_S` at most."""
        deadline = time.monotonic() + SHUTDOWN_WAIT_S
        while not self.should_stop and self._unacked_messages and time.monotonic() < deadline:
            gc.collect()  # faust's step: the set is weak, a record no stream holds is gone
            await self.commit()
            if not self._unacked_messages:
                break
            await self._wait_for_ack(timeout=1)
            self._clean_unacked_messages()
        if self._unacked_messages:
            pending = sorted((m.tp.topic, m.tp.partition, m.offset) for m in list(self._unacked_messages))
            log.warning(
                "stopping with %d records not acknowledged after %.0f s (not committed: read again by "
                "the next owner): %s",
                len(pending),
                SHUTDOWN_WAIT_S,
                pending[:5],
            )
        await self.commit_and_end_transactions()
