"""The stage feeding the explorer's index from the topics: its own read-committed consumer, beside the loop.

The indexer reads ``predictions``, ``label-requests``, ``crowd-answers``, ``labels`` (every
revision), ``worker-skills`` and ``drift-alerts`` with its own aiokafka consumer
(:meth:`~streams.settings.KafkaSettings.reader_options`: read committed, so an aborted
transaction of the router is never indexed), folds each fetch into :class:`~agents.explorer.rows.Facts`
and writes them with the offsets it read in ONE database transaction
(:meth:`~agents.explorer.store.IndexStore.apply`). It uses no consumer group: it assigns itself
every partition and resumes from the offsets the index holds, so the index is exactly as far as
its last committed batch, whatever crashed, and every worker with its own SQLite file indexes
the whole stream.

Why a consumer of its own and not a faust agent: the router's per-prediction path (a faust
agent, or the batch path of ``streams/batches.py``) never waits for it, a slow database only
slows the index, and a rebuild is the same code reading from offset 0 to the end offsets it
found. Run it inside the worker (``LABELLOOP_EXPLORER__INDEX_IN_WORKER=true``, the default, so
``make demo`` has it with nothing to start) or as its own process, ``labelloop explorer run``
(for a shared PostgreSQL: one indexer for every worker).

A record that breaks its schema is skipped and counted by its reason (``skipped``): the loop's
own stages already dead-letter bad predictions to ``predictions.dlq`` (the router), and a second
copy there would count them twice. It never stops the indexer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.explorer.rows import Facts
from agents.explorer.settings import ExplorerSettings
from agents.explorer.store import IndexStore
from schemas import CrowdAnswer, DriftAlert, Label, LabelRequest, PredictionEvent, WorkerSkill
from streams.codec import decode, error_kind
from streams.errors import ContractError
from streams.settings import Settings
from streams.topics import topic_names

log = logging.getLogger(__name__)


def indexed_topics(settings: Settings) -> dict[str, type[Any]]:
    """The topics the index is made of, and the model of each one's values.

    >>> sorted(indexed_topics(Settings()))[:2]
    ['labelloop.crowd-answers', 'labelloop.drift-alerts']
    """
    names = topic_names(settings)
    return {
        names.predictions: PredictionEvent,
        names.label_requests: LabelRequest,
        names.crowd_answers: CrowdAnswer,
        names.labels: Label,
        names.worker_skills: WorkerSkill,
        names.drift_alerts: DriftAlert,
    }


@dataclass
class IndexerStats:
    """What the indexer did: records read, rows written, records skipped by reason."""

    records: int = 0
    rows_changed: int = 0
    batches: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    @property
    def records_per_s(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0


def fold_batch(
    models: dict[str, type[Any]], messages: list[Any], stats: IndexerStats
) -> tuple[Facts, dict[tuple[str, int], int]]:
    """The facts of one fetch and the next offset of each partition it read (pure, no I/O)."""
    facts = Facts()
    read_up_to: dict[tuple[str, int], int] = {}
    for message in messages:
        read_up_to[(message.topic, message.partition)] = message.offset + 1
        stats.records += 1
        if message.value is None:
            stats.skipped["tombstone"] += 1
            continue
        try:
            facts.add(decode(models[message.topic], message.value), message.value)
        except ContractError as error:
            stats.skipped[error_kind(error)] += 1
            log.warning(
                "explorer skips %s[%d]@%d: %s", message.topic, message.partition, message.offset, error
            )
    return facts, read_up_to


class Indexer:
    """Feed ``store`` from the loop's topics.

    Parameters
    ----------
    settings
        Kafka and topic names.
    store
        The index.
    explorer
        Batch size and poll timeout.
    on_batch
        Called (in a thread) after each committed batch: the worker folds the new rows into its
        vector index there, so "more like this" never waits to build it.
    """

    def __init__(
        self,
        settings: Settings,
        store: IndexStore,
        explorer: ExplorerSettings | None = None,
        *,
        on_batch: Callable[[], object] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.explorer = explorer if explorer is not None else ExplorerSettings()
        self.models = indexed_topics(settings)
        self.stats = IndexerStats()
        self.on_batch = on_batch

    async def run(self, *, until_end: bool = False, stop: asyncio.Event | None = None) -> IndexerStats:
        """Index until ``stop`` is set (or, ``until_end``, up to the end offsets found at the start)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            **self.settings.kafka.reader_options(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="labelloop-explorer",
            max_partition_fetch_bytes=2 * 1024 * 1024,
        )
        started = time.perf_counter()
        await asyncio.wait_for(consumer.start(), 30)
        try:
            cluster = await asyncio.wait_for(consumer._client.fetch_all_metadata(), 30)
            assigned = [
                TopicPartition(topic, number)
                for topic in self.models
                for number in sorted(cluster.partitions_for_topic(topic) or ())
            ]
            if not assigned:
                log.warning("explorer: none of the indexed topics exists yet")
                return self.stats
            consumer.assign(assigned)
            stored = await asyncio.to_thread(self.store.offsets)
            for tp in assigned:
                position = stored.get((tp.topic, tp.partition))
                if position is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, position)
            remaining: set[Any] = set()
            ends: dict[Any, int] = {}
            if until_end:
                ends = {tp: int(end) for tp, end in (await consumer.end_offsets(assigned)).items()}
                remaining = {tp for tp in assigned if await consumer.position(tp) < ends[tp]}
                if not remaining:
                    return self.stats
            while stop is None or not stop.is_set():
                batches = await consumer.getmany(
                    timeout_ms=self.explorer.poll_timeout_ms, max_records=self.explorer.batch_max_records
                )
                messages = [message for part in batches.values() for message in part]
                if messages:
                    facts, read_up_to = fold_batch(self.models, messages, self.stats)
                    self.stats.rows_changed += await asyncio.to_thread(self.store.apply, facts, read_up_to)
                    self.stats.batches += 1
                    if self.on_batch is not None:
                        await asyncio.to_thread(self.on_batch)
                if until_end:
                    for tp in list(remaining):
                        if await consumer.position(tp) >= ends[tp]:
                            remaining.discard(tp)
                    if not remaining:
                        break
            return self.stats
        finally:
            self.stats.elapsed_s = time.perf_counter() - started
            await asyncio.wait_for(consumer.stop(), 30)


def rebuild(settings: Settings, store: IndexStore, explorer: ExplorerSettings | None = None) -> IndexerStats:
    """Drop the index and read it again from the topics, up to their end offsets at the start."""
    store.drop()
    store.create()
    return asyncio.run(Indexer(settings, store, explorer).run(until_end=True))
