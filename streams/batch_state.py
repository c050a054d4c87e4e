"""The batch path's partition state: RocksDB per partition, rebuilt from the ``batch-state`` changelog.

A handler asks the state whether it saw a key before (:meth:`~streams.batch.Batch.seen`) and keeps
what a partition must remember between batches (the learner's inputs awaiting their labels, the
labels counted). Every committed batch writes its changes to the changelog **inside its
transaction** (:func:`changes_values`), so the state and the outputs it stands for are committed
together or not at all; the local database is only a cache of the changelog, emptied when a
partition is assigned and filled from it, read committed (:func:`restore`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.codec import MAX_DLQ_VALUE_BYTES
from streams.settings import Settings

log = logging.getLogger(__name__)

#: The largest record the batch path sends (an output or a changelog record): the DLQ's own
#: bound, under the producer's 1 MiB request limit.
MAX_OUTPUT_BYTES = MAX_DLQ_VALUE_BYTES
#: The state namespace of the keys a handler must not handle twice (:meth:`~streams.batch.Batch.mark`).
SEEN = "seen"

#: A change of a partition's state: (namespace, key, new value or None to delete).
Change = tuple[str, str, str | None]


class PartitionState:
    """One partition's state: namespaced keys to text values, in RocksDB (memory bounded whatever its size).

    The database is a cache of the changelog: made empty when the partition is assigned and
    filled from the changelog, so it never holds a change whose batch was not committed.
    """

    def __init__(self, path: Path) -> None:
        from faust.stores.rocksdb import RocksDBOptions

        from streams.app import ROCKSDB_OPTIONS

        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        options = {name: value for name, value in ROCKSDB_OPTIONS.items() if name != "driver"}
        self.path = path
        self._db: Any = RocksDBOptions(**options).open(path)

    @staticmethod
    def _key(namespace: str, key: str) -> bytes:
        return f"{namespace}\x1f{key}".encode()

    def get(self, namespace: str, key: str) -> str | None:
        found = self._db.get(self._key(namespace, key))
        return None if found is None else bytes(found).decode()

    def known(self, namespace: str, keys: Iterable[str]) -> frozenset[str]:
        """Those of ``keys`` that are in ``namespace`` (one multi-get)."""
        wanted = list(keys)
        if not wanted:
            return frozenset()
        found = self._db.get([self._key(namespace, key) for key in wanted])
        return frozenset(key for key, value in zip(wanted, found, strict=True) if value is not None)

    def apply(self, changes: Iterable[Change]) -> None:
        """Apply ``changes`` in order (one write batch)."""
        import rocksdict

        batch = rocksdict.WriteBatch(raw_mode=True)
        for namespace, key, value in changes:
            if value is None:
                batch.delete(self._key(namespace, key))
            else:
                batch.put(self._key(namespace, key), value.encode())
        self._db.write(batch)

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self.path, ignore_errors=True)


def changes_value(changes: Sequence[Change]) -> bytes:
    """A changelog record's value: the batch's state changes, in order (JSON).

    >>> changes_of(changes_value([("seen", "e-1", ""), ("pending", "e-2", None)]))
    [('seen', 'e-1', ''), ('pending', 'e-2', None)]
    """
    return json.dumps(changes, separators=(",", ":"), ensure_ascii=False).encode()


def changes_values(changes: Sequence[Change], max_bytes: int = MAX_OUTPUT_BYTES) -> list[bytes]:
    """The changelog records of a batch's changes: as few as fit, each under ``max_bytes``, in order.

    A batch's state changes grow with its records (and an input kept for the learner may be a long
    text): one record for them all could pass the producer's request limit, and a batch whose
    transaction can never commit would be read again for ever.

    >>> values = changes_values([("seen", f"e-{i}", "") for i in range(100)], max_bytes=500)
    >>> len(values) > 1, all(len(v) <= 500 for v in values)
    (True, True)
    >>> [c for v in values for c in changes_of(v)] == [("seen", f"e-{i}", "") for i in range(100)]
    True
    """
    values: list[bytes] = []
    chunk: list[Change] = []
    size = 2
    for change in changes:
        namespace, key, new = change
        # An id has no whitespace or control characters: at most its quotes and backslashes are
        # escaped, so twice its UTF-8 bytes bound it. Only a value (an input, a counted label) is
        # measured as JSON. Most changes are ``seen`` marks, with no value.
        value_cost = len(json.dumps(new, ensure_ascii=False).encode()) if new else 4
        cost = len(namespace) + 2 * len(key.encode()) + 10 + value_cost
        if chunk and size + cost > max_bytes:
            values.append(changes_value(chunk))
            chunk, size = [], 2
        chunk.append(change)
        size += cost
    if chunk:
        values.append(changes_value(chunk))
    return values


def changes_of(value: bytes | None) -> list[Change]:
    """The changes of a changelog record (:func:`changes_value`)."""
    return [(str(namespace), str(key), value) for namespace, key, value in json.loads(value or b"[]")]


def seen_keys(value: bytes | None) -> list[str]:
    """The keys a changelog record marks seen (:meth:`Batch.mark`)."""
    return [key for namespace, key, new in changes_of(value) if namespace == SEEN and new is not None]


@dataclass
class OwnedPartition:
    """What this worker holds for one assigned partition: its state, rebuilt from the changelog."""

    state: PartitionState
    #: A transaction that held one of its batches was aborted: if a rebalance brings it back, another
    #: worker may have owned it meanwhile (this one was a zombie), so its state is rebuilt, not kept.
    suspect: bool = False


async def restore(
    settings: Settings, state_topic: str, partition: int, state: PartitionState, client_id: str
) -> int:
    """Fill ``state`` from the partition's changelog, read committed to its end; how many changes."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tp = TopicPartition(state_topic, partition)
    reader = AIOKafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        client_id=f"{client_id}-restore-{os.getpid()}",
        **settings.kafka.reader_options(),
    )
    await reader.start()
    restored = 0
    try:
        reader.assign([tp])
        end = (await reader.end_offsets([tp]))[tp]
        await reader.seek_to_beginning(tp)
        while await reader.position(tp) < end:
            fetched = await reader.getmany(tp, timeout_ms=1_000)
            for message in fetched.get(tp, ()):
                changes = changes_of(message.value)
                state.apply(changes)
                restored += len(changes)
    finally:
        await reader.stop()
    return restored


class OwnedPartitions:
    """The partitions a worker's batch path owns, each with its state; what a rebalance changes.

    The caller serialises every call with its batches (the service holds its lock): a rebalance
    never changes a partition while one of its batches is decided or committed.
    """

    def __init__(self, settings: Settings, *, stage: str, group_id: str, state_topic: str) -> None:
        self.settings = settings
        self.stage = stage
        self.group_id = group_id
        self.state_topic = state_topic
        self.state_dir = settings.data_dir / "batches" / stage
        self.owned: dict[int, OwnedPartition] = {}
        #: Partitions revoked in the rebalance under way, kept in case they come straight back.
        self.revoked: dict[int, OwnedPartition] = {}

    def get(self, partition: int) -> OwnedPartition | None:
        return self.owned.get(partition)

    def __contains__(self, partition: object) -> bool:
        return partition in self.owned

    def revoke(self, partitions: set[int], *, lost: bool = False) -> None:
        """Set ``partitions`` aside (lost: another worker may own them already, never keep their state)."""
        for partition in partitions:
            found = self.owned.pop(partition, None)
            if found is not None:
                found.suspect = found.suspect or lost
                self.revoked[partition] = found

    async def assign(self, partitions: set[int]) -> None:
        """Own exactly ``partitions``: keep those that came straight back, rebuild the new ones' state."""
        # Partitions that came straight back: nobody else owned them in between, keep them.
        for partition in list(self.revoked):
            if partition in partitions and not self.revoked[partition].suspect:
                self.owned[partition] = self.revoked.pop(partition)
        for partition in list(self.revoked):
            self.drop(partition)
        # Each new partition's state, side by side: a takeover waits for the slowest, not
        # for their sum.
        new = sorted(partitions - set(self.owned))
        for partition, taken in zip(new, await asyncio.gather(*map(self._take, new)), strict=True):
            self.owned[partition] = taken

    async def _take(self, partition: int) -> OwnedPartition:
        """A partition just assigned: rebuild its state (its previous owner is fenced by the group)."""
        state = PartitionState(self.state_dir / str(partition))
        restored = await restore(self.settings, self.state_topic, partition, state, self.group_id)
        log.info("%s: partition %d: %d state changes restored", self.stage, partition, restored)
        return OwnedPartition(state)

    def drop(self, partition: int) -> None:
        """Close the partition's state (owned or set aside) and forget it."""
        found = self.owned.pop(partition, None) or self.revoked.pop(partition, None)
        if found is not None:
            found.state.close()

    def drop_all(self) -> None:
        for partition in [*self.owned, *self.revoked]:
            self.drop(partition)
