"""The per-record loop: success, DLQ on contract errors and bugs, retries on backpressure."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaError

from schemas import PredictionEvent, PredictionInput
from streams.codec import (
    DLQ_PREFIX_BYTES,
    H_ERROR_CLASS,
    H_ERROR_KIND,
    H_ERROR_MESSAGE,
    H_ORIGINAL_BYTES,
    H_ORIGINAL_SHA256,
    H_STAGE,
    headers_dict,
)
from streams.errors import ContractError, RetryableBackendError
from streams.runtime import (
    DeadLetters,
    Output,
    Reader,
    Record,
    handle_record,
    require_key,
    run_readers,
    run_records,
)
from tests import factories
from tests.factories import FakeTopic, Sent

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
RECORD = Record(
    key=b"tx-1",
    value=b'{"event_id": "tx-1"}',
    topic="labelloop.predictions",
    partition=2,
    offset=41,
    headers=(("traceparent", b"00-abc-01"),),
)


@dataclass
class FakeSleep:
    """Records the waits asked for instead of waiting."""

    waits_s: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits_s.append(seconds)


class FlakyHandler:
    """Fails with the given errors, one per call, then succeeds."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls: list[Record] = []

    async def __call__(self, record: Record) -> None:
        self.calls.append(record)
        if self.errors:
            raise self.errors.pop(0)


def dead_letters() -> tuple[DeadLetters, FakeTopic]:
    topic = FakeTopic()
    return DeadLetters(topic, stage="router", clock=lambda: WHEN), topic


def run(
    handler: FlakyHandler, letters: DeadLetters, sleep: FakeSleep, *, max_retry_wait_s: float = 30.0
) -> bool:
    return asyncio.run(
        handle_record(RECORD, handler, letters, max_retry_wait_s=max_retry_wait_s, sleep=sleep)
    )


def test_success_returns_true_and_sends_nothing_to_the_dlq() -> None:
    letters, dlq = dead_letters()
    handler, sleep = FlakyHandler(), FakeSleep()
    assert run(handler, letters, sleep) is True
    assert handler.calls == [RECORD]
    assert dlq.sent == []
    assert letters.sent == 0
    assert sleep.waits_s == []


def test_a_contract_error_sends_the_original_record_to_the_dlq() -> None:
    letters, dlq = dead_letters()
    handler, sleep = FlakyHandler(ContractError("bad_key: no key", kind="bad_key")), FakeSleep()
    assert run(handler, letters, sleep) is False
    assert len(handler.calls) == 1
    [sent] = dlq.sent
    assert (sent.key, sent.value) == (RECORD.key, RECORD.value)
    headers = headers_dict(sent.headers)
    assert headers[H_ERROR_KIND] == "bad_key"
    assert headers[H_ERROR_MESSAGE] == "bad_key: no key"
    assert headers[H_STAGE] == "router"
    assert headers["traceparent"] == "00-abc-01"
    assert letters.sent == 1
    assert sleep.waits_s == []


def test_a_value_too_large_for_the_dlq_is_cut_with_its_size_and_digest() -> None:
    # A 10 MB record on a topic whose limit was raised: sending it whole to the DLQ would fail
    # the send (the producer's ~1 MB limit) and stop the partition; a prefix is kept instead.
    huge = dataclasses.replace(RECORD, value=b"{" + b"x" * 10_000_000)
    letters, dlq = dead_letters()
    asyncio.run(letters.send(huge, ContractError("too_large: big", kind="too_large")))
    [sent] = dlq.sent
    assert sent.value == huge.value[: len(sent.value or b"")]
    assert len(sent.value or b"") == DLQ_PREFIX_BYTES
    headers = headers_dict(sent.headers)
    assert headers[H_ORIGINAL_BYTES] == str(len(huge.value or b""))
    assert headers[H_ORIGINAL_SHA256] == hashlib.sha256(huge.value or b"").hexdigest()
    assert headers[H_ERROR_KIND] == "too_large"


def test_an_unexpected_error_goes_to_the_dlq_as_processing_failed() -> None:
    letters, dlq = dead_letters()

    async def divide(record: Record) -> None:
        assert record.value is not None
        _ = len(record.value) / 0

    assert asyncio.run(handle_record(RECORD, divide, letters, sleep=FakeSleep())) is False
    [sent] = dlq.sent
    headers = headers_dict(sent.headers)
    assert headers[H_ERROR_KIND] == "processing_failed"
    assert headers[H_ERROR_CLASS] == "ZeroDivisionError"
    assert sent.value == RECORD.value


def test_a_retryable_backend_error_is_retried_with_the_wait_it_asks_for_capped() -> None:
    letters, dlq = dead_letters()
    handler = FlakyHandler(
        RetryableBackendError("pool full", retry_after_s=2.5),
        RetryableBackendError("rate limited", retry_after_s=600.0),
    )
    sleep = FakeSleep()
    assert run(handler, letters, sleep, max_retry_wait_s=10.0) is True
    assert sleep.waits_s == [2.5, 10.0]
    assert handler.calls == [RECORD, RECORD, RECORD]
    assert dlq.sent == []


@pytest.mark.parametrize(
    "error",
    [KafkaError(), KafkaConnectionError("broker gone"), ConnectionResetError(), TimeoutError()],
    ids=["KafkaError", "KafkaConnectionError", "ConnectionResetError", "TimeoutError"],
)
def test_infrastructure_errors_are_retried(error: BaseException) -> None:
    letters, dlq = dead_letters()
    handler, sleep = FlakyHandler(error), FakeSleep()
    assert run(handler, letters, sleep) is True
    assert sleep.waits_s == [1.0]
    assert len(handler.calls) == 2
    assert dlq.sent == []


def test_cancellation_is_not_swallowed() -> None:
    letters, dlq = dead_letters()
    handler = FlakyHandler(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        run(handler, letters, FakeSleep())
    assert dlq.sent == []


def test_run_records_handles_each_record_of_a_stream_in_order() -> None:
    messages = [
        SimpleNamespace(key=b"a", value=b"1", topic="t", partition=0, offset=0, headers=None),
        SimpleNamespace(key=b"b", value=b"2", topic="t", partition=0, offset=1, headers=[("h", b"v")]),
    ]

    class Stream:
        async def events(self) -> AsyncIterator[SimpleNamespace]:
            for message in messages:
                yield SimpleNamespace(message=message)

    seen: list[Record] = []

    async def handler(record: Record) -> None:
        seen.append(record)
        if record.key == b"b":
            raise ContractError("invalid: nope")

    letters, dlq = dead_letters()

    async def consume() -> list[bool]:
        return [outcome async for outcome in run_records(Stream(), handler, letters)]

    assert asyncio.run(consume()) == [True, False]
    assert [(record.key, record.offset, tuple(record.headers)) for record in seen] == [
        (b"a", 0, ()),
        (b"b", 1, (("h", b"v"),)),
    ]
    assert [sent.key for sent in dlq.sent] == [b"b"]


# --- one agent, several stages ------------------------------------------------------------


@dataclass
class CountingMeter:
    consumed_by: list[tuple[str, str]] = field(default_factory=list)

    def consumed(self, stage: str, topic: str) -> None:
        self.consumed_by.append((stage, topic))

    def produced(self, topic: str) -> None:
        pass

    def dead_lettered(self, stage: str, reason: str) -> None:
        pass


def prediction_message(event_id: str, offset: int, *, key: str | None = None) -> SimpleNamespace:
    event = factories.prediction(event_id)
    value = event.model_dump_json().encode()
    return SimpleNamespace(
        key=(key or event_id).encode(), value=value, topic="t", partition=0, offset=offset, headers=None
    )


def test_run_readers_decodes_once_and_hands_every_stage_each_record_with_its_own_dlq() -> None:
    bad_json = SimpleNamespace(key=b"x", value=b"{nope", topic="t", partition=0, offset=1, headers=None)
    messages = [prediction_message("e-0", 0), bad_json, prediction_message("e-2", 2)]

    class Stream:
        async def events(self) -> AsyncIterator[SimpleNamespace]:
            for message in messages:
                yield SimpleNamespace(message=message)

    meter = CountingMeter()
    owner_dlq, other_dlq = FakeTopic(), FakeTopic()
    seen: dict[str, list[tuple[str, int]]] = {"owner": [], "other": []}

    async def owner_reads(event: PredictionEvent, record: Record) -> None:
        seen["owner"].append((event.event_id, record.offset))

    async def other_reads(event: PredictionEvent, record: Record) -> None:
        seen["other"].append((event.event_id, record.offset))
        if event.event_id == "e-2":
            raise RuntimeError("a bug in the other stage")

    readers = [
        Reader(
            "owner",
            owner_reads,
            DeadLetters(owner_dlq, "owner", lambda: WHEN, meter=meter),
            owner=True,
            dlq_counter="owner.dlq",
        ),
        Reader(
            "other",
            other_reads,
            DeadLetters(other_dlq, "other", lambda: WHEN, meter=meter),
            dlq_counter="other.dlq",
        ),
    ]
    counters: dict[str, int] = {}

    async def consume() -> list[int]:
        return [record.offset async for record in run_readers(Stream(), PredictionEvent, readers, counters)]

    assert asyncio.run(consume()) == [0, 1, 2]
    # The record that is no PredictionEvent reaches no stage and goes to the owner's DLQ alone.
    assert seen == {"owner": [("e-0", 0), ("e-2", 2)], "other": [("e-0", 0), ("e-2", 2)]}
    assert [headers_dict(sent.headers)[H_ERROR_KIND] for sent in owner_dlq.sent] == ["not_json"]
    # A bug in one stage dead-letters the record in that stage's DLQ; the owner read it all the same.
    assert [(sent.key, headers_dict(sent.headers)[H_STAGE]) for sent in other_dlq.sent] == [(b"e-2", "other")]
    assert counters == {"owner.dlq": 1, "other.dlq": 1}
    assert meter.consumed_by == [("owner", "t"), ("other", "t")] * 3


def test_run_readers_without_an_owner_skips_what_does_not_decode() -> None:
    messages = [prediction_message("e-0", 0, key="not-e-0"), prediction_message("e-1", 1)]

    class Stream:
        async def events(self) -> AsyncIterator[SimpleNamespace]:
            for message in messages:
                yield SimpleNamespace(message=message)

    dlq = FakeTopic()
    seen: list[str] = []

    async def reads(event: PredictionEvent, record: Record) -> None:
        seen.append(event.event_id)

    readers = [Reader("only", reads, DeadLetters(dlq, "only", lambda: WHEN))]

    async def consume() -> int:
        return len([record async for record in run_readers(Stream(), PredictionEvent, readers)])

    assert asyncio.run(consume()) == 2
    assert (seen, dlq.sent) == (["e-1"], [])


# --- keys and outputs --------------------------------------------------------------------


def test_require_key_accepts_the_event_id() -> None:
    require_key(RECORD, "tx-1")


@pytest.mark.parametrize(("key", "named"), [(None, "no key"), (b"tx-2", "'tx-2'")], ids=["null", "wrong"])
def test_require_key_refuses_any_other_key(key: bytes | None, named: str) -> None:
    record = Record(key=key, value=RECORD.value, topic=RECORD.topic, partition=0, offset=0)
    with pytest.raises(ContractError) as caught:
        require_key(record, "tx-1")
    assert caught.value.kind == "bad_key"
    assert caught.value.event_id == "tx-1"
    assert named in caught.value.message


def test_output_encodes_key_and_value() -> None:
    event = PredictionEvent(
        event_id="tx-1",
        model_name="fraud",
        model_version="3",
        created_at=WHEN,
        input=PredictionInput(text="refund"),
        predicted_label="ok",
        scores={"ok": 0.9, "fraud": 0.1},
    )
    topic = FakeTopic()
    asyncio.run(Output(topic).send("tx-1", event))
    assert topic.sent == [Sent(b"tx-1", event.to_json_bytes(), None)]
    assert PredictionEvent.from_json_bytes(topic.sent[0].value or b"") == event
