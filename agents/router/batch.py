"""The router over one partition's batch: each prediction decided in memory, its outputs put in the batch.

The batch path (``streams/batches.py``) hands the router every partition's batch of
``predictions``; :func:`route_batch` decides each record with the :class:`Router` and adds the
Label (accepted) and/or LabelRequest (review, control, audit) it makes to the batch, which sends
them with the batch's input offsets in one transaction. Nothing here awaits Kafka or a clock:
the records of a batch are decided one after another in a plain loop (one coroutine per record
cost more than the decision's bookkeeping), and only a record that fails goes through
:func:`~streams.runtime.handle_record`, the error policy every stage shares.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agents.router.policy import Decision, Router, label_request, model_label
from schemas import Label, PredictionEvent, Suggestion, Tier
from streams.batch import Batch
from streams.codec import MODEL_LABEL_HEADERS, encode, encode_key
from streams.partitioner import murmur2
from streams.runtime import DeadLetters, Record, decode_keyed, handle_record

Suggest = Callable[[PredictionEvent], Suggestion | None]


@dataclass(frozen=True, slots=True)
class RoutedTopics:
    """Where the router's outputs go: the deployment's topic names and, where known, their partition counts.

    With a count, each output's partition is computed here, once per event for both topics when
    they are co-partitioned (:func:`~streams.partitioner.partition_for`, Kafka's default); without
    one the producer partitions it by key, to the same partition.
    """

    labels: str
    label_requests: str
    labels_partitions: int | None = None
    label_requests_partitions: int | None = None


@dataclass
class RoutedBatch:
    """What a batch's routing tells the worker once the batch is committed."""

    #: Each event decided, with its record, its decision and the Label published for it (if accepted).
    decided: list[tuple[PredictionEvent, Record, Decision, Label | None]] = field(default_factory=list)
    #: Records not decided, by why: ``duplicates`` (an id already routed), ``dlq``.
    dropped: Counter[str] = field(default_factory=Counter)


async def route_batch(
    router: Router,
    batch: Batch,
    records: Sequence[Record],
    now: datetime,
    topics: RoutedTopics,
    dead_letters: DeadLetters,
    *,
    suggest: Suggest | None = None,
    measurement_tier: Tier = "crowd",
) -> RoutedBatch:
    """Decide ``records`` (one partition's predictions) into ``batch``: outputs, seen marks, DLQ records.

    An event whose id the partition has routed already is dropped (a producer's retry or replay:
    :meth:`Batch.seen`). A record that fails, whatever the reason and wherever in its handling,
    leaves none of its outputs in the batch, only its DLQ record; the batch's other records are
    routed once. ``suggest``: the online model's suggestion, asked only for the events a human
    will see.

    Examples
    --------
    >>> import asyncio
    >>> from datetime import UTC, datetime
    >>> from agents.router.policy import RouterSettings
    >>> from schemas import PredictionInput
    >>> from streams.batch import BatchSender
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> event = PredictionEvent(event_id="e-1", model_name="m", model_version="1", created_at=now,
    ...                         input=PredictionInput(text="refund"), predicted_label="ok",
    ...                         scores={"ok": 0.9, "fraud": 0.1})
    >>> records = [Record(b"e-1", encode(event), "p", 0, 0), Record(b"e-1", encode(event), "p", 0, 1),
    ...            Record(b"e-2", b"{", "p", 0, 2)]
    >>> router = Router(RouterSettings(accept_threshold=0.5, control_share=0.0), clock=lambda: 0.0)
    >>> batch = Batch(0, {}, state=None)
    >>> dlq = DeadLetters(BatchSender(batch, "dlq"), stage="router", clock=lambda: now)
    >>> routed = asyncio.run(route_batch(router, batch, records, now, RoutedTopics("l", "r"), dlq))
    >>> [out.topic for out in batch.out], dict(routed.dropped), len(routed.decided)
    (['l', 'dlq'], {'duplicates': 1, 'dlq': 1}, 1)
    """
    routed = RoutedBatch()
    decided, dropped = routed.decided, routed.dropped
    labels, requests = topics.labels, topics.label_requests
    label_partitions, request_partitions = topics.labels_partitions, topics.label_requests_partitions

    def route(record: Record) -> None:
        """One record, in memory (nothing here awaits: the batch's records are sent after)."""
        event = decode_keyed(PredictionEvent, record)
        event_id = event.event_id
        if batch.seen(event_id):
            dropped["duplicates"] += 1
            return
        point = batch.savepoint()
        try:
            decision = router.decide(event, now, (lambda: suggest(event)) if suggest is not None else None)
            key = encode_key(event_id)
            hashed = murmur2(key) & 0x7FFFFFFF if label_partitions or request_partitions else 0
            label = None
            if decision.action == "accept":
                label = model_label(event, decision, now)
                # Marked as the router's: the worker's readers of labels want human labels only and
                # skip these undecoded (they were made here, from validated events).
                batch.send(
                    labels,
                    key,
                    encode(label),
                    MODEL_LABEL_HEADERS,
                    hashed % label_partitions if label_partitions else None,
                )
            if decision.action != "accept" or decision.audit is not None:
                request = label_request(event, decision, now, measurement_tier=measurement_tier)
                batch.send(
                    requests,
                    key,
                    encode(request),
                    None,
                    hashed % request_partitions if request_partitions else None,
                )
            batch.mark(event_id)
        except BaseException:
            batch.rollback(point)  # none of a failed record's outputs, only its DLQ record
            raise
        decided.append((event, record, decision, label))

    for record in records:
        try:
            route(record)
        except Exception as error:
            # The rare record that failed is handled as every stage handles one, from the error it
            # raised: a retryable error waits and routes it again, any other sends it to the DLQ
            # with its reason.
            if not await handle_record(record, _raising_first(error, route), dead_letters):
                dropped["dlq"] += 1
    return routed


def _raising_first(error: Exception, route: Callable[[Record], None]) -> Callable[[Record], Awaitable[None]]:
    """A handler for :func:`~streams.runtime.handle_record` that raises ``error`` once, then routes.

    The record is not decided twice for one failure (a decision moves the audit's running mean
    and the capacity gate); a retry after a retryable error decides it again, as before.
    """
    pending = [error]

    async def again(record: Record) -> None:
        if pending:
            raise pending.pop()
        route(record)

    return again
