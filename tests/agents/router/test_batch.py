"""The router over a partition's batch, no Kafka: outputs, duplicates, a failed record alone in the DLQ."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka.partitioner import DefaultPartitioner

from agents.router.batch import RoutedBatch, RoutedTopics, route_batch
from agents.router.policy import Router, RouterSettings
from agents.router.sampling import AuditSettings
from schemas import Label, LabelRequest, Suggestion
from streams.batch import Batch, BatchSender
from streams.batch_state import SEEN
from streams.codec import H_ERROR_KIND, H_ORIGIN, MODEL_LABEL_ORIGIN, decode, encode
from streams.errors import ContractError
from streams.runtime import DeadLetters, Record
from tests.factories import WHEN, prediction

TOPICS = RoutedTopics(labels="labels", label_requests="label-requests")


def record(event_id: str, offset: int, confidence: float = 0.9) -> Record:
    return Record(
        event_id.encode(), encode(prediction(event_id, confidence=confidence)), "predictions", 0, offset
    )


def routed(
    batch: Batch, records: Sequence[Record], router: Router | None = None, **options: object
) -> RoutedBatch:
    router = router or Router(RouterSettings(accept_threshold=0.7, control_share=0.0), clock=lambda: 0.0)
    dead_letters = DeadLetters(BatchSender(batch, "dlq"), stage="router", clock=lambda: WHEN)
    return asyncio.run(route_batch(router, batch, records, WHEN, TOPICS, dead_letters, **options))  # type: ignore[arg-type]


def kinds(batch: Batch) -> list[tuple[str, bytes | None]]:
    return [(out.topic, out.key) for out in batch.out]


def test_each_event_gets_its_label_or_request_and_is_marked_seen() -> None:
    batch = Batch(0, {}, state=None)
    result = routed(batch, [record("a", 0, 0.9), record("b", 1, 0.6)])
    assert kinds(batch) == [("labels", b"a"), ("label-requests", b"b")]
    label = decode(Label, batch.out[0].value)
    assert (label.event_id, label.source, label.route) == ("a", "model", "accepted")
    assert dict(batch.out[0].headers or ())[H_ORIGIN] == MODEL_LABEL_ORIGIN
    assert decode(LabelRequest, batch.out[1].value).route == "low_confidence"
    assert batch.changes == [(SEEN, "a", ""), (SEEN, "b", "")]
    assert [(event.event_id, label is not None) for event, _, _, label in result.decided] == [
        ("a", True),
        ("b", False),
    ]


def test_outputs_carry_kafkas_default_partition_of_their_key_when_the_counts_are_known() -> None:
    batch = Batch(0, {}, state=None)
    topics = RoutedTopics("labels", "label-requests", labels_partitions=4, label_requests_partitions=12)
    router = Router(RouterSettings(accept_threshold=0.7, control_share=0.0), clock=lambda: 0.0)
    dead_letters = DeadLetters(BatchSender(batch, "dlq"), stage="router", clock=lambda: WHEN)
    records = [record(f"e-{i}", i, 0.9 if i % 3 else 0.6) for i in range(60)]
    asyncio.run(route_batch(router, batch, records, WHEN, topics, dead_letters))
    kafka = DefaultPartitioner()
    for out in batch.out:
        every = list(range(4 if out.topic == "labels" else 12))
        assert out.partition == kafka(out.key, every, every)
    assert {out.topic for out in batch.out} == {"labels", "label-requests"}
    # Without the counts the producer partitions them (by the same key).
    plain = Batch(0, {}, state=None)
    routed(plain, records[:3])
    assert [out.partition for out in plain.out] == [None, None, None]


def test_a_poison_record_goes_to_the_dlq_alone_and_duplicates_are_dropped() -> None:
    batch = Batch(0, {}, state=None, known=frozenset({"old"}))
    poison = Record(b"bad", b'{"event_id": ', "predictions", 0, 2)
    result = routed(batch, [record("a", 0), record("old", 1), poison, record("a", 3), record("c", 4)])
    assert kinds(batch) == [("labels", b"a"), ("dlq", b"bad"), ("labels", b"c")]
    assert dict(batch.out[1].headers or ())[H_ERROR_KIND] == b"not_json"
    assert result.dropped == {"duplicates": 2, "dlq": 1}
    assert [event.event_id for event, *_ in result.decided] == ["a", "c"]


class RefusingRequests(Batch):
    """A batch whose LabelRequest for one event is refused (as an oversized output is)."""

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None:
        if topic == TOPICS.label_requests and key == b"b":
            raise ContractError("too_large: its label-requests record would be too big", kind="too_large")
        super().send(topic, key, value, headers, partition)


def test_a_record_failing_midway_leaves_none_of_its_outputs_and_is_decided_once() -> None:
    # Every accepted event audited: its Label is sent, then its LabelRequest, which fails for "b".
    router = Router(
        RouterSettings(accept_threshold=0.7, control_share=0.0, audit=AuditSettings(rate=1.0, floor=10.0)),
        clock=lambda: 0.0,
    )
    batch = RefusingRequests(0, {}, state=None)
    result = routed(batch, [record("a", 0), record("b", 1), record("c", 2)], router)
    assert kinds(batch) == [
        ("labels", b"a"),
        ("label-requests", b"a"),
        ("dlq", b"b"),
        ("labels", b"c"),
        ("label-requests", b"c"),
    ]
    assert dict(batch.out[2].headers or ())[H_ERROR_KIND] == b"too_large"
    assert (SEEN, "b", "") not in batch.changes
    assert result.dropped == {"dlq": 1}
    # "b" was decided once: the audit's running mean counted three accepted events, not four.
    assert router.audits.accepted == 3


def test_the_online_model_is_asked_only_for_what_humans_see_and_a_failing_one_dead_letters_its_record() -> (
    None
):
    asked: list[str] = []

    def suggest(event: object) -> Suggestion:
        event_id = getattr(event, "event_id")  # noqa: B009
        asked.append(event_id)
        if event_id == "b":
            raise RuntimeError("the online model broke")
        return Suggestion(label="ok", confidence=0.8, model_name="online")

    batch = Batch(0, {}, state=None)
    result = routed(batch, [record("a", 0, 0.9), record("b", 1, 0.6), record("c", 2, 0.6)], suggest=suggest)
    assert asked == ["b", "c"]  # once each, the accepted "a" never
    assert kinds(batch) == [("labels", b"a"), ("dlq", b"b"), ("label-requests", b"c")]
    assert dict(batch.out[1].headers or ())[H_ERROR_KIND] == b"processing_failed"
    assert result.dropped == {"dlq": 1}
