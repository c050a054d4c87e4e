"""Publishing the explorer's revisions through the label ledger, racing the aggregator's own."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any, Literal

import pytest

from agents.explorer.actions import BulkAction, RevisionOrder, action_parts, correction, plan_bulk, undone
from agents.explorer.revise import MemoryActionLog, Reviser
from schemas import Label
from streams.codec import decode
from streams.ledger import LabelLedger
from streams.runtime import Output
from tests import factories

NOW = datetime(2026, 1, 3, tzinfo=UTC)


class LabelsTopic:
    """The labels topic: every record sent, in order (a yield in between lets others interleave)."""

    def __init__(self) -> None:
        self.labels: list[Label] = []

    async def send(self, *, key: bytes | None, value: bytes | None, headers: Any = None) -> None:
        await asyncio.sleep(0)
        assert value is not None
        self.labels.append(decode(Label, value))


async def _no_tail(partition: int, since_ms: int) -> dict[str, int]:
    return {}


def _ledger(topic: LabelsTopic) -> LabelLedger:
    return LabelLedger(Output(topic), {}, _no_tail, lookback_s=60)


def _one_label_per_revision(labels: list[Label]) -> None:
    counts = Counter((label.event_id, label.revision) for label in labels)
    assert max(counts.values()) == 1, counts


def _fix(base: Label, label: str = "fraud") -> RevisionOrder:
    return RevisionOrder(label=correction(base, label=label, operator="ana", reason="seen it", now=NOW))


def test_a_correction_after_an_aggregator_revision_is_renumbered_on_top() -> None:
    async def run() -> tuple[LabelsTopic, Label | None]:
        topic = LabelsTopic()
        ledger = _ledger(topic)
        reviser = Reviser(ledger, {})
        base = factories.human_label(human_label="ok")  # revision 1, what the operator saw
        verdict = factories.human_label(human_label="ok", source="expert", revision=2)
        await ledger.publish(verdict, 0)  # the aggregator's expert verdict lands first
        return topic, await reviser.apply(_fix(base), 0)

    topic, published = asyncio.run(run())
    assert published is not None
    assert (published.revision, published.supersedes) == (3, 2)
    assert [label.revision for label in topic.labels] == [2, 3]
    _one_label_per_revision(topic.labels)


def test_an_aggregator_revision_colliding_with_a_correction_is_suppressed_not_doubled() -> None:
    async def run() -> tuple[LabelsTopic, bool]:
        topic = LabelsTopic()
        ledger = _ledger(topic)
        await Reviser(ledger, {}).apply(_fix(factories.human_label(human_label="ok")), 0)
        late = factories.human_label(human_label="ok", source="expert", revision=2)  # from a stale task state
        return topic, await ledger.publish(late, 0)

    topic, sent = asyncio.run(run())
    assert not sent
    assert [(label.revision, label.label) for label in topic.labels] == [(2, "fraud")]


def test_corrections_racing_the_aggregator_on_many_events_leave_one_latest_each() -> None:
    events = [f"e-{i}" for i in range(50)]

    async def run() -> LabelsTopic:
        topic = LabelsTopic()
        ledger = _ledger(topic)
        reviser = Reviser(ledger, {})
        jobs = []
        for event_id in events:
            base = factories.human_label(event_id=event_id, human_label="ok")
            verdict = factories.human_label(event_id=event_id, human_label="ok", source="expert", revision=2)
            jobs += [
                ledger.publish(verdict, 0),
                reviser.apply(_fix(base), 0),
                reviser.apply(_fix(base, "spam"), 0),
            ]
        await asyncio.gather(*jobs)
        return topic

    topic = asyncio.run(run())
    _one_label_per_revision(topic.labels)
    latest: dict[str, Label] = {}
    for label in topic.labels:
        if label.event_id not in latest or label.revision > latest[label.event_id].revision:
            latest[label.event_id] = label
    assert set(latest) == set(events)
    assert {label.revision for label in latest.values()} == {4}  # verdict 2, then both corrections


def test_a_bulk_order_whose_event_moved_on_is_dropped_and_a_redelivered_one_publishes_nothing() -> None:
    picked = [factories.human_label(event_id=f"e-{i}", human_label="ok") for i in range(3)]
    plan = plan_bulk(picked, label="spam", operator="ana", reason="outage", now=NOW, cap=10, action_id="b-1")

    async def run() -> tuple[LabelsTopic, dict[str, int]]:
        topic = LabelsTopic()
        ledger = _ledger(topic)
        counters: dict[str, int] = {}
        reviser = Reviser(ledger, counters)
        await ledger.publish(factories.human_label(event_id="e-1", source="expert", revision=2), 0)
        for order in plan.orders + plan.orders:  # at least once: every order read twice
            await reviser.apply(order, 0)
        return topic, counters

    topic, counters = asyncio.run(run())
    bulk = [label for label in topic.labels if label.provenance.action_id == "b-1"]
    assert sorted(label.event_id for label in bulk) == ["e-0", "e-2"]
    assert counters == {"explorer.revisions": 2, "explorer.orders_dropped": 4}
    _one_label_per_revision(topic.labels)


def test_the_memory_action_log_finds_an_action_by_id() -> None:
    picked = [factories.human_label(event_id=f"e-{i}", human_label="ok") for i in range(3)]
    plan = plan_bulk(picked, label="spam", operator="ana", reason="r", now=NOW, cap=10, action_id="b-9")
    parts = action_parts(plan, picked, operator="ana", reason="r", label="spam", now=NOW)
    log = MemoryActionLog()
    asyncio.run(log.append(parts))
    assert asyncio.run(log.find("b-9")) == parts
    assert asyncio.run(log.find("nope")) == []


@pytest.mark.kafka
def test_the_topic_action_log_finds_an_action_after_a_restart(kafka_bootstrap: str) -> None:
    """An action appended by one process is found by a fresh log (a restarted or another worker)."""
    from aiokafka import AIOKafkaProducer

    from agents.explorer.revise import TopicActionLog
    from streams.settings import KafkaSettings, Settings, TopicSettings
    from streams.topic_admin import create_topics, delete_topics
    from streams.topics import topic_names

    run = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
        topics=TopicSettings(prefix=f"test.{run}.", partitions=2),
        app_id=f"labelloop-test-{run}",
    )
    create_topics(settings)
    topic = topic_names(settings)["explorer-actions"]
    picked = [factories.human_label(event_id=f"e-{i}", human_label="ok") for i in range(300)]
    plan = plan_bulk(
        picked, label="spam", operator="ana", reason="r", now=NOW, cap=1_000, action_id="b-kafka"
    )
    parts = action_parts(plan, picked, operator="ana", reason="r", label="spam", now=NOW)
    assert len(parts) == 2

    class Producer:
        def __init__(self, producer: AIOKafkaProducer) -> None:
            self.producer = producer

        async def send(self, *, key: bytes | None, value: bytes | None, headers: Any = None) -> None:
            await self.producer.send_and_wait(topic, key=key, value=value)

    async def run_it() -> tuple[list[BulkAction], list[BulkAction]]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            writer = TopicActionLog(Output(Producer(producer)), settings, topic)
            await writer.append(parts)
            await writer.append(undone(parts[:1], operator="bo", now=NOW))
        finally:
            await producer.stop()
        fresh = TopicActionLog(Output(Producer(producer)), settings, topic)
        return await fresh.find("b-kafka"), await fresh.find("b-none")

    try:
        found, missing = asyncio.run(run_it())
    finally:
        delete_topics(settings)
    assert [part.part for part in found] == [0, 1]
    assert found[0].undone_by == "bo"  # the later record of a key wins
    assert found[1] == parts[1]
    assert missing == []


def test_an_operator_correcting_an_escalated_event_races_the_real_aggregator_core() -> None:
    """The crowd is unsure (a provisional revision 1 and an expert request); an operator corrects
    revision 1 before the expert answers. Whichever order the two reach the ledger in, the event
    keeps one Label per revision and one latest; the correction, coming first, is that latest."""
    from agents.aggregator.weighted import WeightedSettings, WeightedTaskState, WeightedVoteAggregator
    from schemas import CrowdAnswer

    def answer(worker: str, label: str, tier: Literal["crowd", "expert"] = "crowd") -> CrowdAnswer:
        return CrowdAnswer(
            event_id="tx-1",
            task_id="tx-1/pool",
            pool="experts" if tier == "expert" else "simulated",
            tier=tier,
            worker_id=worker,
            label=label,
            time_spent_s=3.0,
            answered_at=NOW,
            overlap=1 if tier == "expert" else 3,
        )

    async def run(correction_first: bool) -> LabelsTopic:
        aggregator = WeightedVoteAggregator(WeightedSettings(audit_share=0.0))
        topic = LabelsTopic()
        ledger = _ledger(topic)
        reviser = Reviser(ledger, {})
        state, _ = aggregator.step_request(WeightedTaskState(), factories.label_request(), NOW)
        provisional = None
        for worker, label in (("w1", "fraud"), ("w2", "ok"), ("w3", "fraud")):
            state, outcome = aggregator.step_answer(state, answer(worker, label), "tx-1", NOW)
            for published in outcome.labels:
                await ledger.publish(published, 0)
                provisional = published
        assert provisional is not None
        assert provisional.revision == 1
        fix = _fix(provisional, label="chargeback")

        async def verdict() -> None:
            _, outcome = aggregator.step_answer(state, answer("x1", "ok", "expert"), "tx-1", NOW)
            for published in outcome.labels:
                await ledger.publish(published, 0)

        if correction_first:
            await reviser.apply(fix, 0)
            await verdict()
        else:
            await asyncio.gather(verdict(), reviser.apply(fix, 0))
        return topic

    first = asyncio.run(run(correction_first=True))
    _one_label_per_revision(first.labels)
    assert [(label.revision, label.label) for label in first.labels] == [(1, "fraud"), (2, "chargeback")]
    racing = asyncio.run(run(correction_first=False))
    _one_label_per_revision(racing.labels)
    # The expert's verdict took revision 2; the correction was renumbered on top of it.
    assert [(label.revision, label.label) for label in racing.labels] == [
        (1, "fraud"),
        (2, "ok"),
        (3, "chargeback"),
    ]
