"""Never commit an offset past a record that is not done: faust 0.15 does in two cases.

faust-streaming issue #606 (fix open upstream as PR #707): a record a stream still handles, and
a record a stream dropped at a rebalance, whose acknowledgement faust counts as done.
"""

from __future__ import annotations

from collections.abc import Callable

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from faust.types.tuples import ack_lock
from faust.utils.functional import consecutive_numbers

from streams.patches.pins import Pin

UPSTREAM = "faust-streaming/faust#606 (fix open as PR #707)"
_CONSUMER = "faust.transport.drivers.aiokafka:Consumer"
_BASE = "faust.transport.consumer:Consumer"
RELIES_ON = (
    Pin(_CONSUMER, "ack", parameters=("self", "message")),
    Pin(_CONSUMER, "_new_offset", parameters=("self", "tp")),
    Pin(_CONSUMER, "on_partitions_assigned", parameters=("self", "assigned", "generation_id")),
    Pin(_BASE, "_acked", assigned_in="__init__"),
    Pin(_BASE, "_acked_index", assigned_in="__init__"),
    Pin(_BASE, "_committed_offset", assigned_in="__init__"),
    Pin(_BASE, "_gap", assigned_in="__init__"),
    Pin(_BASE, "_unacked_messages", assigned_in="__init__"),
    Pin("faust.types.tuples", "ack_lock"),
    Pin("faust.utils.functional", "consecutive_numbers", parameters=("it",)),
    Pin("faust.transport.conductor:Conductor", "acks_enabled_for", parameters=("self", "topic")),
    Pin("faust.app.base:App", "consumer_generation_id"),
)


class CommitFloor:
    """Per partition, the offsets of deliveries a stream dropped that were not done since.

    faust commits the end of the first run of consecutive acknowledged offsets,
    and only withholds the commit when the run starts more than one offset above
    the committed one, and never when nothing (or offset 0) is committed yet
    (``Consumer._new_offset``). A record dropped at a rebalance (its
    acknowledgement is not committable, see :class:`GenerationSafe`)
    while the ones after it are handled leaves exactly such a hole: the next
    commit passed it, and a SIGKILL before its second delivery lost it. A
    dropped record's offset is held here until a delivery of it is done; no
    commit goes past the lowest one held.

    >>> floor = CommitFloor()
    >>> floor.dropped("tp", 16, committed=None, done=False)
    >>> floor.dropped("tp", 40, committed=None, done=True)    # its second delivery came first
    >>> floor.lowest("tp", committed=None)
    16
    >>> floor.done("tp", 16)
    >>> floor.lowest("tp", committed=None) is None
    True
    """

    def __init__(self) -> None:
        self._held: dict[TP, set[int]] = {}

    def dropped(self, tp: TP, offset: int, *, committed: int | None, done: bool) -> None:
        """A delivery of ``offset`` was dropped; hold it unless it is done or committed already."""
        if done or (committed is not None and offset < committed):
            return
        self._held.setdefault(tp, set()).add(offset)

    def done(self, tp: TP, offset: int) -> None:
        """A delivery of ``offset`` was handled: nothing holds the commit there any more."""
        held = self._held.get(tp)
        if held is not None:
            held.discard(offset)
            if not held:
                del self._held[tp]

    def lowest(
        self, tp: TP, *, committed: int | None, skipped: Callable[[int], bool] | None = None
    ) -> int | None:
        """The lowest held offset of ``tp``.

        Offsets below ``committed`` (done by an earlier owner) and those the fetch
        loop saw the log skip (``skipped``: compacted away, or transaction markers;
        no delivery of them will come) are let go.
        """
        held = self._held.get(tp)
        if not held:
            return None
        gone = [o for o in held if (committed is not None and o < committed) or (skipped and skipped(o))]
        held.difference_update(gone)
        if not held:
            del self._held[tp]
            return None
        return min(held)

    def keep_only(self, tps: set[TP]) -> None:
        """Forget the partitions this worker no longer holds."""
        for tp in [tp for tp in self._held if tp not in tps]:
            del self._held[tp]

    def held(self) -> dict[TP, list[int]]:
        """What is held, for the worker's state dump."""
        return {tp: sorted(offsets) for tp, offsets in self._held.items()}


def first_committable_run(acked: list[int], committed: int | None, floor: int | None) -> list[int]:
    """The acknowledged offsets a commit may cover now: faust's first run, cut below ``floor``.

    ``acked`` is sorted. faust's rule stays (no run when it starts more than one
    above ``committed``); ``floor`` is the lowest offset not done: a record a
    stream still handles, or a dropped delivery (:class:`CommitFloor`).

    >>> first_committable_run([32, 33], committed=31, floor=None)   # faust commits 34 here
    [32, 33]
    >>> first_committable_run([32, 33], committed=31, floor=31)
    []
    >>> first_committable_run([5, 6, 7, 9], committed=None, floor=7)
    [5, 6]
    >>> first_committable_run([35, 36], committed=31, floor=None)
    []
    """
    if not acked or (committed and acked[0] - committed > 1):
        return []
    run = list(next(consecutive_numbers(acked)))
    return run if floor is None else [offset for offset in run if offset < floor]


class GenerationSafe(faust_aiokafka.Consumer):
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
    the seek starts at or before it and the message is delivered again. Until a
    delivery of it is done, no commit goes past it (:class:`CommitFloor`), nor
    past a record a stream still handles (faust-streaming #606).
    """

    commit_floor: CommitFloor

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.commit_floor = CommitFloor()

    def ack(self, message: Message) -> bool:
        current = self.app.consumer_generation_id
        stale = message.generation_id is not None and message.generation_id != current
        acking = self.app.topics.acks_enabled_for(message.topic)
        # The same skip happens while flow control is off (a rebalance and its table
        # recovery): a message that reaches a stream then is dropped and acknowledged too.
        if stale or not self.app.flow_control.is_active():
            with ack_lock:
                if not message.acked:
                    message.acked = True
                    self._unacked_messages.discard(message)
                    if acking:
                        tp, offset = message.tp, message.offset
                        done = offset in self._acked_index[tp]
                        self.commit_floor.dropped(tp, offset, committed=self._committed_offset[tp], done=done)
            return False
        acked = bool(super().ack(message))
        if acking:
            self.commit_floor.done(message.tp, message.offset)
        return acked

    def _new_offset(self, tp: TP) -> int | None:
        """faust's next offset to commit for ``tp``, never past a record that is not done."""
        acked = self._acked[tp]
        if not acked:
            return None
        committed = self._committed_offset[tp]
        floor = self._floor(tp, committed)
        self._fill_gaps(tp, acked, floor)
        acked.sort()
        run = first_committable_run(acked, committed, floor)
        if not run:
            return None
        del acked[: len(run)]
        self._acked_index[tp].difference_update(run)
        return run[-1] + 1

    def _floor(self, tp: TP, committed: int | None) -> int | None:
        """The lowest offset of ``tp`` not done: a dropped delivery, or a record a stream still handles."""
        generation = self.app.consumer_generation_id
        gaps = self._gap[tp]
        lows = [self.commit_floor.lowest(tp, committed=committed, skipped=gaps.overlaps if gaps else None)]
        # A record of an older generation is delivered again after the seek: its second delivery counts.
        lows += [
            m.offset
            for m in list(self._unacked_messages)
            if m.tp == tp and not m.acked and m.generation_id in (None, generation)
        ]
        offsets = [offset for offset in lows if offset is not None]
        return min(offsets) if offsets else None

    def _fill_gaps(self, tp: TP, acked: list[int], floor: int | None) -> None:
        """faust's step: offsets the fetch loop saw skipped (compaction, markers) count as acked.

        faust takes every gap below the highest ack; here only those below ``floor`` too.
        """
        gaps = self._gap[tp]
        if not gaps:
            return
        highest = max(acked)
        limit = highest if floor is None else min(highest, floor)
        fill = [o for gap in sorted(gaps.overlap(0, limit)) for o in range(gap.begin, gap.end)]
        if floor is not None:
            fill = [offset for offset in fill if offset < floor]
        if fill:
            acked.extend(fill)
            gaps.chop(0, fill[-1] + 1 if floor is not None else max(fill[-1] + 1, highest + 1))

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self.commit_floor.keep_only(set(assigned))
        await super().on_partitions_assigned(assigned, generation_id)
