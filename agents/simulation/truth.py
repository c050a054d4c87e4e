"""The simulation's truth side channel: the true class of each replayed event, for simulated labelers.

The demo (and the benches) publish each event's true class to the ``truth`` topic; a worker with
a simulated crowd or simulated experts keeps it in the ``sim-truth`` table, and its simulated
labelers ask it (:class:`TableTruth`). A worker without simulated labelers (Toloka and the
expert page only) registers none of this: it never reads the truth topic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from streams.codec import decode_json
from streams.errors import ContractError
from streams.runtime import Record, run_records

if TYPE_CHECKING:
    from agents.loop import Loop

#: A truth record's value: one JSON string (the true class), size-checked before parsing like every record.
_TRUTH = TypeAdapter[str](str)


class TableTruth:
    """The simulation's truth side-channel, read from the ``sim-truth`` table."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def true_label(self, event_id: str) -> str | None:
        """The true label of ``event_id`` if the simulation published it."""
        value = self._table.get(event_id)
        return None if value is None else str(value)


def register(loop: Loop) -> TableTruth:
    """Add the truth feed (the ``truth`` topic into the ``sim-truth`` table) to ``loop.app``."""
    table = loop.table("sim-truth")
    dead_letters = loop.dead_letters("simulation")

    async def on_truth(record: Record) -> None:
        if record.key is None or record.value is None:
            raise ContractError("bad_truth: a truth record needs a key and a value", kind="bad_truth")
        table[record.key.decode("utf-8")] = decode_json(_TRUTH, record.value, "Truth")

    @loop.app.agent(loop.topic(loop.names.truth), name="simulation-truth")
    async def truth(stream: Any) -> None:
        async for _ in run_records(stream, on_truth, dead_letters):
            pass

    return TableTruth(table)
