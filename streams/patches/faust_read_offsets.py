"""faust's last-read offset per partition, not moved by records the streams drop while flow is off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.patches.pins import Pin

UPSTREAM = "none filed: faust-streaming 0.15's fetch loop (\"DROPPED MESSAGE ROFF\") after a rebalance's seek"
RELIES_ON = (
    Pin("faust.transport.consumer:Consumer", "_read_offset", assigned_in="__init__"),
    Pin("faust.app.base:App", "flow_control"),
)


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


class FlowAwareReadOffsets(faust_aiokafka.Consumer):
    """faust's consumer whose read offsets are :class:`ReadOffsets`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = ReadOffsets(self.app.flow_control.is_active)
