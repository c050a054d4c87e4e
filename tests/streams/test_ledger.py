"""The label ledger: one record per (event_id, revision), whatever a dead worker left on the topic."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from streams.ledger import LabelLedger
from streams.runtime import Output
from tests.factories import human_label as label


class Topic:
    """Collects what the ledger sends (key, revision), yielding to the loop like a real send."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes | None]] = []

    async def send(self, *, key: bytes | None, value: bytes | None, headers: object = None) -> None:
        await asyncio.sleep(0)
        self.sent.append((key, value))


class Tail:
    """What each labels partition holds from any time on; counts its reads."""

    def __init__(self, partitions: Mapping[int, Mapping[str, int]]) -> None:
        self.partitions = partitions
        self.reads: list[tuple[int, int]] = []
        self.fail_next = False

    async def __call__(self, partition: int, since_ms: int) -> Mapping[str, int]:
        self.reads.append((partition, since_ms))
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("broker away")
        return self.partitions.get(partition, {})


def make(tail: Tail, table: dict[str, str] | None = None) -> tuple[LabelLedger, Topic, dict[str, str]]:
    topic = Topic()
    published = {} if table is None else table
    ledger = LabelLedger(Output(topic), published, tail, lookback_s=90, wall_clock=lambda: 1_000.0)
    return ledger, topic, published


def test_a_revision_the_dead_owner_published_is_not_sent_again() -> None:
    tail = Tail({0: {"e-1": 1}})
    ledger, topic, published = make(tail)

    async def run() -> list[bool]:
        return [
            await ledger.publish(label(event_id="e-1"), partition=0),
            await ledger.publish(label(event_id="e-1", revision=2), partition=0),
            await ledger.publish(label(event_id="e-2"), partition=0),
        ]

    assert asyncio.run(run()) == [False, True, True]
    assert [key for key, _ in topic.sent] == [b"e-1", b"e-2"]
    assert published == {"e-1": "2", "e-2": "1"}
    assert ledger.suppressed == 1
    assert ledger.recovered == 1
    # Read once, from the lookback window before "now" (epoch ms).
    assert tail.reads == [(0, 910_000)]


def test_the_table_alone_suppresses_a_replayed_revision() -> None:
    ledger, topic, _ = make(Tail({}), {"e-1": "3"})
    assert asyncio.run(ledger.publish(label(event_id="e-1", revision=2), partition=5)) is False
    assert topic.sent == []
    assert ledger.revision("e-1") == 3
    assert ledger.revision("never") == 0


def test_two_publishers_racing_on_one_event_send_it_once() -> None:
    ledger, topic, _ = make(Tail({}))

    async def run() -> list[bool]:
        return list(
            await asyncio.gather(
                ledger.publish(label(event_id="e-1"), 0), ledger.publish(label(event_id="e-1"), 0)
            )
        )

    assert sorted(asyncio.run(run())) == [False, True]
    assert len(topic.sent) == 1


def test_each_partition_is_read_once_per_assignment_and_again_after_revocation() -> None:
    tail = Tail({1: {"e-9": 1}})
    ledger, _, _ = make(tail)

    async def run() -> None:
        await asyncio.gather(ledger.verify(1), ledger.verify(1), ledger.verify(2))
        await ledger.verify(1)
        ledger.forget_partitions({1})
        await ledger.verify(1)

    asyncio.run(run())
    assert [partition for partition, _ in tail.reads] == [1, 2, 1]


def test_a_failed_read_back_raises_and_is_tried_again() -> None:
    tail = Tail({0: {"e-1": 1}})
    tail.fail_next = True
    ledger, topic, _ = make(tail)
    with pytest.raises(ConnectionError):
        asyncio.run(ledger.publish(label(event_id="e-1"), 0))
    assert topic.sent == []
    assert asyncio.run(ledger.publish(label(event_id="e-1"), 0)) is False
    assert len(tail.reads) == 2
