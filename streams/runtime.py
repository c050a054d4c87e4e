"""The per-message loop every agent runs: decode, handle, and never skip a record silently.

faust acknowledges a message whose processing raised and restarts the agent,
so the record is lost without a trace (faust issues #315, #189, #527). Every
agent therefore iterates through :func:`run_records`: a contract error or an
unexpected failure sends the original record to the DLQ with the reason, a
retryable backend error waits and tries the same record again (backpressure,
never a drop), and the partition keeps flowing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar

from aiokafka.errors import KafkaError

from schemas.base import WireModel, utc_now
from streams.codec import decode, dlq_headers, dlq_value, encode, encode_key, error_kind
from streams.errors import ContractError, RetryableBackendError

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
K = TypeVar("K", bound=WireModel)


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka record, as an agent's handler sees it."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    headers: Sequence[tuple[str, bytes]] = ()

    @classmethod
    def of(cls, message: Any) -> Record:
        """The record of a consumed message (faust's or aiokafka's: the same attributes)."""
        return cls(
            key=message.key,
            value=message.value,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            headers=tuple(message.headers or ()),
        )

    @property
    def key_text(self) -> str | None:
        """The key as text (keys are UTF-8 event ids), or None."""
        return None if self.key is None else self.key.decode("utf-8", "replace")


class Sender(Protocol):
    """Something that produces raw records: a faust topic or a test double."""

    async def send(
        self, *, key: bytes | None, value: bytes | None, headers: Any = None
    ) -> Any: ...  # pragma: no cover - protocol


class Meter(Protocol):
    """Where the plumbing counts records (``streams.metrics.LoopMetrics`` in a worker)."""

    def consumed(self, stage: str, topic: str) -> None: ...  # pragma: no cover - protocol

    def produced(self, topic: str) -> None: ...  # pragma: no cover - protocol

    def dead_lettered(self, stage: str, reason: str) -> None: ...  # pragma: no cover - protocol


class Output:
    """Produce schema objects to one topic, keyed by a string id (counted once sent, with a meter)."""

    def __init__(self, topic: Sender, meter: Meter | None = None, topic_name: str = "") -> None:
        self._topic = topic
        self._meter = meter
        self._name = topic_name

    async def send(self, key: str, value: WireModel) -> None:
        await self._topic.send(key=encode_key(key), value=encode(value))
        if self._meter is not None:
            self._meter.produced(self._name)


class DeadLetters:
    """The DLQ of one stage: original key and bytes, the reason in headers.

    With a ``sent`` mapping (a faust table with a changelog), a record that is
    processed again after a restart (its offset was not committed yet) is not
    dead-lettered twice: the DLQ holds each bad record once. With a ``meter``,
    each record sent is counted by stage and reason (the header's error kind),
    and :func:`run_records` counts every record the stage reads.
    """

    def __init__(
        self,
        topic: Sender,
        stage: str,
        clock: Clock = utc_now,
        sent: MutableMapping[str, str] | None = None,
        meter: Meter | None = None,
        topic_name: str = "predictions.dlq",
    ) -> None:
        self._topic = topic
        self.stage = stage
        self._clock = clock
        self._sent = sent
        self.meter = meter
        self._topic_name = topic_name
        self.sent = 0

    async def send(self, record: Record, error: BaseException) -> None:
        place = f"{record.topic}:{record.partition}:{record.offset}"
        if self._sent is not None and place in self._sent:
            log.info("%s: %s is in the DLQ already", self.stage, place)
            return
        headers = dlq_headers(
            error,
            stage=self.stage,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            failed_at=self._clock(),
            original=record.headers,
        )
        value, cut = dlq_value(record.value)
        await self._topic.send(key=record.key, value=value, headers=[*headers, *cut])
        if self._sent is not None:
            self._sent[place] = self.stage
        self.sent += 1
        if self.meter is not None:
            self.meter.dead_lettered(self.stage, error_kind(error))
            self.meter.produced(self._topic_name)


Handler = Callable[[Record], Awaitable[None]]


async def handle_record(
    record: Record,
    handler: Handler,
    dead_letters: DeadLetters,
    *,
    max_retry_wait_s: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """Run ``handler`` on one record; returns False when the record went to the DLQ.

    Retryable backend errors are retried (with the wait they ask for, capped)
    until they succeed: the partition waits rather than losing the record.
    """
    while True:
        try:
            await handler(record)
            return True
        except (RetryableBackendError, KafkaError, ConnectionError, TimeoutError) as error:
            # Infrastructure, not the record: wait and try the same record again.
            asked_s = error.retry_after_s if isinstance(error, RetryableBackendError) else 1.0
            wait_s = min(max(asked_s, 0.05), max_retry_wait_s)
            log.warning(
                "%s: backend busy on %s[%d]@%d, retrying in %.2fs: %s",
                dead_letters.stage,
                record.topic,
                record.partition,
                record.offset,
                wait_s,
                error,
            )
            await sleep(wait_s)
        except ContractError as error:
            log.info(
                "%s: contract error on %s[%d]@%d to DLQ: %s",
                dead_letters.stage,
                record.topic,
                record.partition,
                record.offset,
                error.message,
            )
            await dead_letters.send(record, error)
            return False
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug or a bad record we did not foresee: keep it, say why
            log.exception(
                "%s: failed on %s[%d]@%d, record sent to the DLQ",
                dead_letters.stage,
                record.topic,
                record.partition,
                record.offset,
            )
            await dead_letters.send(record, error)
            return False


async def run_records(stream: Any, handler: Handler, dead_letters: DeadLetters) -> AsyncIterator[bool]:
    """Iterate a faust stream of raw records through :func:`handle_record` (yields per record).

    The one place a stage reads records: each is counted on the stage's meter as it comes in.
    """
    meter = dead_letters.meter
    async for event in stream.events():
        record = Record.of(event.message)
        if meter is not None:
            meter.consumed(dead_letters.stage, record.topic)
        yield await handle_record(record, handler, dead_letters)


def require_key(record: Record, event_id: str) -> None:
    """Every event topic is keyed by ``event_id`` (co-partitioning): refuse any other key."""
    if record.key is None:
        raise ContractError(
            f"bad_key: the record has no key; it must be the event_id {event_id!r}",
            kind="bad_key",
            event_id=event_id,
        )
    if record.key_text != event_id:
        raise ContractError(
            f"bad_key: key {record.key_text!r} is not the event_id {event_id!r}",
            kind="bad_key",
            event_id=event_id,
        )


def decode_keyed(model: type[K], record: Record) -> K:
    """Decode an event-topic record and check that its key is the event's id."""
    value = decode(model, record.value)
    require_key(record, str(getattr(value, "event_id")))  # noqa: B009 - every keyed model has it
    return value


def decode_or_skip(model: type[K], record: Record) -> K | None:
    """Like :func:`decode_keyed`, for a stage that does not own the topic's DLQ.

    A topic read by several stages has one owner that dead-letters bad records
    (predictions: router, label-requests: dispatcher, labels: monitor); the
    others skip them quietly instead of writing the same record there twice.
    """
    try:
        return decode_keyed(model, record)
    except ContractError:
        return None


Reads = Callable[[K, Record], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Reader:
    """One stage's handler of a topic several stages of a worker read (see :func:`run_readers`).

    ``owner``: the stage that dead-letters the topic's records that do not decode (one per topic);
    the others never see them. ``dlq_counter``: a counter bumped for each of the stage's records
    that went to the DLQ.
    """

    stage: str
    reads: Reads[Any]
    dead_letters: DeadLetters
    owner: bool = False
    dlq_counter: str | None = None


async def run_readers(
    stream: Any,
    model: type[K],
    readers: Sequence[Reader],
    counters: MutableMapping[str, int] | None = None,
) -> AsyncIterator[Record]:
    """Read a faust stream of ``model`` records once for every stage in ``readers`` (yields per record).

    One faust agent per topic instead of one per stage: faust delivers each record once, and it
    is decoded once (bench F1: each further agent on a topic cost a delivery, a faust event and a
    decode per record). Each stage still runs through :func:`handle_record` with its own DLQ: a
    stage's bug sends the record to that stage's DLQ and the other stages still read it; a
    retryable error retries that stage's handler alone. A record that does not decode goes to the
    owner's DLQ, once; with no owner among ``readers`` it is skipped. Every record is counted as
    consumed by every stage, as the stage's own agent counted it.
    """
    async for event in stream.events():
        record = Record.of(event.message)
        for reader in readers:
            if reader.dead_letters.meter is not None:
                reader.dead_letters.meter.consumed(reader.stage, record.topic)
        await read_record(record, model, readers, counters)
        yield record


async def read_record(
    record: Record,
    model: type[K],
    readers: Sequence[Reader],
    counters: MutableMapping[str, int] | None = None,
) -> None:
    """Decode ``record`` once as ``model``, hand it to every stage in ``readers`` (:func:`run_readers`).

    The one place a record of a shared topic meets its stages, for faust's agents and the batch
    path (``streams/batches.py``) alike.
    """
    owner = next((reader for reader in readers if reader.owner), None)

    def count_dead_letter(reader: Reader) -> None:
        if reader.dlq_counter is not None and counters is not None:
            counters[reader.dlq_counter] = counters.get(reader.dlq_counter, 0) + 1

    try:
        value = decode_keyed(model, record)
    except Exception:
        # Not the contract (or a bug in decoding): the owner's handle_record decodes it again,
        # says why and dead-letters it, as the owner's own agent did; the others skip it.
        if owner is None:
            return
        decoded: list[K] = []
        if not await handle_record(record, partial(_decode_into, model, decoded), owner.dead_letters):
            count_dead_letter(owner)
            return
        value = decoded[0]
    for reader in readers:
        if not await handle_record(record, partial(reader.reads, value), reader.dead_letters):
            count_dead_letter(reader)


async def _decode_into(model: type[K], into: list[K], record: Record) -> None:
    into.append(decode_keyed(model, record))
