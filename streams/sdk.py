"""The producer and consumer SDK for users (kafka-python): publish predictions, read trusted labels.

Usage (needs a broker)::

    from streams.sdk import LabelReader, PredictionPublisher, Settings
    with PredictionPublisher(Settings()) as publisher:
        publisher.publish(event)          # a PredictionEvent
    for label in LabelReader(Settings(), group_id="billing"):
        print(label.event_id, label.label, label.revision)

Everything a producer or a consumer needs is importable from here (``__all__``, pinned by
``tests/streams/test_sdk_surface.py``): the clients, the records they take and give, the
settings that point them at a Kafka, the error a failed publish raises, and the rule that says
which revision of a label is the truth.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from schemas import Label, PredictionEvent, PredictionInput
from streams.codec import decode, encode, encode_key
from streams.errors import ContractError, DeliveryError
from streams.revisions import latest_labels
from streams.settings import KafkaSettings, Settings, TopicSettings
from streams.topics import topic_names

__all__ = [
    "DeliveryError",
    "KafkaSettings",
    "Label",
    "LabelReader",
    "PredictionEvent",
    "PredictionInput",
    "PredictionPublisher",
    "RawRecord",
    "Settings",
    "TopicSettings",
    "latest_labels",
    "read_records",
]

log = logging.getLogger(__name__)


class _Closing:
    """``with`` support for the SDK's clients: leaving the block closes the client."""

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class PredictionPublisher(_Closing):
    """Publish predictions to ``predictions``, keyed by ``event_id``.

    acks=all with idempotence (kafka-python's defaults, set explicitly),
    batched with a small linger. Delivery failures are raised by
    :meth:`flush` (and on leaving the ``with`` block), never swallowed.
    """

    def __init__(self, settings: Settings, *, linger_ms: int = 5, **producer_options: Any) -> None:
        from kafka import KafkaProducer

        self.topic = topic_names(settings).predictions
        self._producer = KafkaProducer(
            client_id="labelloop-publisher",
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            **{**settings.kafka.kafka_python_options(), **producer_options},
        )
        self._pending: list[Any] = []
        self.published = 0

    def publish(self, event: PredictionEvent) -> None:
        """Queue one prediction (validated already: it is a PredictionEvent)."""
        self.publish_raw(encode_key(event.event_id), encode(event))

    def publish_raw(
        self, key: bytes | None, value: bytes | None, topic: str | None = None, partition: int | None = None
    ) -> None:
        """Queue raw bytes (for replays and for testing what the loop does with bad input).

        ``partition``: that partition instead of the key's (a test putting records in one batch).
        """
        self._pending.append(
            self._producer.send(topic or self.topic, key=key, value=value, partition=partition)
        )
        self.published += 1
        if len(self._pending) >= 10_000:
            self._collect(timeout_s=60.0)

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every queued record is acknowledged; raise :class:`DeliveryError` if any failed."""
        self._producer.flush(timeout=timeout_s)
        self._collect(timeout_s)

    def _collect(self, timeout_s: float) -> None:
        failures = []
        for future in self._pending:
            try:
                future.get(timeout=timeout_s)
            except Exception as error:  # kafka-python raises its own KafkaError subclasses
                failures.append(error)
        self._pending.clear()
        if failures:
            raise DeliveryError(f"{len(failures)} records were not delivered; first: {failures[0]!r}")

    def close(self) -> None:
        """Flush and close."""
        try:
            self.flush()
        finally:
            self._producer.close()


@dataclass(frozen=True)
class RawRecord:
    """A record as read from any topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    timestamp_ms: int

    @classmethod
    def of(cls, message: Any) -> RawRecord:
        """The record of a consumed message (kafka-python's or aiokafka's: the same attributes)."""
        return cls(
            message.topic,
            message.partition,
            message.offset,
            message.key,
            message.value,
            tuple(message.headers or ()),
            message.timestamp,
        )


def _consumer(settings: Settings, topic: str, group_id: str | None, from_beginning: bool) -> Any:
    from kafka import KafkaConsumer

    return KafkaConsumer(
        topic,
        group_id=group_id,
        client_id="labelloop-reader",
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=group_id is not None,
        **settings.kafka.kafka_python_reader_options(),
    )


def read_records(
    settings: Settings, topic: str, *, idle_s: float = 3.0, max_s: float = 120.0
) -> list[RawRecord]:
    """Every record of ``topic`` from the beginning, until nothing new arrives for ``idle_s``."""
    consumer = _consumer(settings, topic, group_id=None, from_beginning=True)
    records: list[RawRecord] = []
    try:
        started = last_new = time.monotonic()
        while time.monotonic() - last_new < idle_s and time.monotonic() - started < max_s:
            batch = consumer.poll(timeout_ms=200)
            for messages in batch.values():
                for message in messages:
                    records.append(RawRecord.of(message))
                last_new = time.monotonic()
    finally:
        consumer.close()
    return records


class LabelReader(_Closing):
    """Iterate trusted Labels from ``labels``.

    With a ``group_id`` the reader commits its position (a service reading
    labels); without one it reads from the beginning each time. A record that
    does not parse is logged and skipped: the reader never stops on it.
    """

    def __init__(
        self, settings: Settings, *, group_id: str | None = None, from_beginning: bool = True
    ) -> None:
        self.topic = topic_names(settings).labels
        self._consumer = _consumer(settings, self.topic, group_id, from_beginning)
        self.skipped = 0

    def poll(self, timeout_s: float = 1.0) -> list[Label]:
        """The Labels that arrived within ``timeout_s``."""
        labels = []
        for messages in self._consumer.poll(timeout_ms=int(timeout_s * 1000)).values():
            for message in messages:
                try:
                    labels.append(decode(Label, message.value))
                except ContractError as error:
                    self.skipped += 1
                    log.warning(
                        "skipping a bad label at %s[%d]@%d: %s",
                        message.topic,
                        message.partition,
                        message.offset,
                        error.message,
                    )
        return labels

    def __iter__(self) -> Iterator[Label]:
        while True:
            yield from self.poll()

    def close(self) -> None:
        """Close the consumer (committing the position when there is a group)."""
        self._consumer.close()
