"""One partition's batch of a poll: its records, and the outputs, state changes and effects they make.

Handlers decide a batch in memory: :meth:`Batch.send` (or a :class:`BatchSender` under an
``Output``/``DeadLetters``) adds an output, :meth:`Batch.put` / :meth:`Batch.mark` a state change,
:meth:`Batch.after_commit` an in-process effect; :class:`~streams.batches.TransactionalBatches`
then commits what every batch of the poll made in one Kafka transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.batch_state import MAX_OUTPUT_BYTES, SEEN, Change, PartitionState
from streams.errors import ContractError
from streams.runtime import Record


@dataclass(slots=True)
class Produced:
    """One record a batch sends (key-partitioned, like every output of the loop).

    ``partition``: the key's partition, where the handler computed it already (Kafka's default
    partitioner, :func:`streams.partitioner.partition_for`); None leaves it to the producer.
    """

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] | None = None
    partition: int | None = None


@dataclass
class Batch:
    """One partition's records (of every topic of the service) and what handling them makes.

    Handlers call :meth:`send` for each output, :meth:`put` / :meth:`mark` for state, and
    :meth:`after_commit` for in-process effects (metrics, the monitor) that must happen once per
    committed record, not again when an aborted batch is read again.

    >>> batch = Batch(0, {}, state=None, known=frozenset({"e-1"}))
    >>> batch.seen("e-1"), batch.seen("e-2")
    (True, False)
    >>> batch.mark("e-2"); batch.seen("e-2"), batch.changes
    (True, [('seen', 'e-2', '')])
    >>> batch.put("pending", "e-3", "{}"); batch.get("pending", "e-3")
    '{}'
    >>> batch.put("pending", "e-3", None); batch.get("pending", "e-3") is None
    True
    """

    partition: int
    records: Mapping[str, Sequence[Record]]
    state: PartitionState | None
    #: Keys of the batch's records already marked by earlier batches (one multi-get up front).
    known: frozenset[str] = frozenset()
    out: list[Produced] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    effects: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)
    _overlay: dict[tuple[str, str], str | None] = field(default_factory=dict)

    def get(self, namespace: str, key: str) -> str | None:
        """The state's value of ``key``, with this batch's changes applied."""
        place = (namespace, key)
        if place in self._overlay:
            return self._overlay[place]
        return self.state.get(namespace, key) if self.state is not None else None

    def put(self, namespace: str, key: str, value: str | None) -> None:
        """Set (or with None delete) ``key`` in the partition's state, committed with this batch."""
        self._overlay[(namespace, key)] = value
        self.changes.append((namespace, key, value))

    def seen(self, key: str) -> bool:
        """Was ``key`` marked by an earlier batch of the partition or earlier in this one?"""
        if (SEEN, key) in self._overlay:
            return True
        return key in self.known

    def mark(self, key: str) -> None:
        """Remember ``key`` for good (:meth:`seen`)."""
        if not self.seen(key):
            self.put(SEEN, key, "")

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None:
        """Add one output record to the batch's transaction (``partition``: see :class:`Produced`).

        An output the producer would refuse (over :data:`MAX_OUTPUT_BYTES`) is a
        :class:`ContractError`: the record that made it goes to the DLQ instead of failing the
        whole batch's transaction.
        """
        size = len(key or b"") + len(value or b"")
        if size > MAX_OUTPUT_BYTES:
            raise ContractError(
                f"too_large: its {topic} record would be {size} bytes > {MAX_OUTPUT_BYTES}", kind="too_large"
            )
        self.out.append(Produced(topic, key, value, headers, partition))

    def after_commit(self, effect: Callable[[], Awaitable[None] | None]) -> None:
        """Run ``effect`` once the batch is committed (in the order given)."""
        self.effects.append(effect)

    def savepoint(self) -> tuple[int, int, int]:
        """Where the batch stands: :meth:`rollback` to it drops what was added since."""
        return len(self.out), len(self.changes), len(self.effects)

    def rollback(self, point: tuple[int, int, int]) -> None:
        """Drop the outputs, state changes and effects added since ``point`` (a record that failed midway)."""
        outs, changes, effects = point
        del self.out[outs:]
        del self.changes[changes:]
        del self.effects[effects:]
        self._overlay = {(namespace, key): value for namespace, key, value in self.changes}


class BatchSender:
    """A :class:`~streams.runtime.Sender` into a batch: an ``Output`` or ``DeadLetters`` over it sends
    within the batch's transaction.

    >>> import asyncio
    >>> batch = Batch(0, {}, state=None)
    >>> asyncio.run(BatchSender(batch, "t").send(key=b"k", value=b"v"))
    >>> batch.out
    [Produced(topic='t', key=b'k', value=b'v', headers=None, partition=None)]
    """

    def __init__(self, batch: Batch, topic: str, headers: Sequence[tuple[str, bytes]] | None = None) -> None:
        self._batch = batch
        self.topic = topic
        self._headers = headers

    async def send(self, *, key: bytes | None, value: bytes | None, headers: Any = None) -> None:
        self._batch.send(self.topic, key, value, headers if headers is not None else self._headers)


#: Decides one topic's records of a partition's batch, in memory (dead-letters a bad record itself).
BatchHandler = Callable[[Batch, Sequence[Record]], Awaitable[None]]
#: Sees every committed batch (metrics), before the batch's own effects run.
Committed = Callable[[Batch], None]
