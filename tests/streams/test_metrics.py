"""The metrics core without Kafka: what each observe_* call counts, label sets stay bounded."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from schemas import CrowdAnswer, DriftAlert, Estimate, ModelMetrics, PoolStatus
from streams.errors import ContractError
from streams.metrics import LoopMetrics, lag_by_partition
from streams.runtime import DeadLetters, Output, Record, handle_record, run_records
from tests.factories import WHEN, human_label

PREFIX = "test.abc."


class Topic:
    """A sender that keeps what it was sent (the DLQ or an output topic)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, object]] = []

    async def send(self, **record: object) -> None:
        self.sent.append(record)


class Stream:
    """A faust-like stream of raw records (``events()`` with ``.message``)."""

    def __init__(self, records: list[Record]) -> None:
        self._records = records

    async def events(self):  # type: ignore[no-untyped-def]
        for record in self._records:
            yield type("Event", (), {"message": record})()


def status(pool: str = "simulated", **changes: object) -> PoolStatus:
    fields: dict[str, object] = dict(
        pool=pool, backend="simulated", tier="crowd", workers=12, active=True, backlog=40, in_progress=6,
        arrival_rate_per_min=90.0, capacity_per_min=240.0, overlap=2, answers_total=10, tasks_done=5,
        cost_per_label=0.05, reported_at=WHEN,
    )  # fmt: skip
    fields.update(changes)
    return PoolStatus.model_validate(fields)


def test_run_records_counts_every_record_in_and_the_dlq_by_reason_and_as_produced() -> None:
    metrics = LoopMetrics(PREFIX)
    dlq = Topic()
    dead_letters = DeadLetters(dlq, "router", meter=metrics, topic_name=PREFIX + "predictions.dlq")
    records = [Record(b"k", f"{i}".encode(), PREFIX + "predictions", 0, i) for i in range(5)]

    async def handler(record: Record) -> None:
        if int(record.value or b"0") % 2:
            raise ContractError("odd", kind="invalid_json")

    async def main() -> list[bool]:
        return [ok async for ok in run_records(Stream(records), handler, dead_letters)]

    assert asyncio.run(main()) == [True, False, True, False, True]
    assert metrics.value("labelloop_records_consumed_total", stage="router", topic="predictions") == 5
    assert metrics.value("labelloop_dlq_records_total", stage="router", reason="invalid_json") == 2
    assert metrics.value("labelloop_records_produced_total", topic="predictions.dlq") == 2
    assert len(dlq.sent) == 2


def test_a_retried_record_is_counted_once_and_an_unforeseen_error_is_processing_failed() -> None:
    metrics = LoopMetrics()
    dead_letters = DeadLetters(Topic(), "aggregator", meter=metrics)
    record = Record(b"k", b"v", "crowd-answers", 0, 0)

    async def broken(record: Record) -> None:
        raise KeyError("bug")

    async def no_sleep(_: float) -> None:
        return None

    assert asyncio.run(handle_record(record, broken, dead_letters, sleep=no_sleep)) is False
    assert metrics.value("labelloop_dlq_records_total", stage="aggregator", reason="processing_failed") == 1


def test_outputs_count_each_record_sent_under_the_topic_without_prefix() -> None:
    metrics = LoopMetrics(PREFIX)
    topic = Topic()
    output = Output(topic, metrics, PREFIX + "labels")

    async def main() -> None:
        for index in range(3):
            await output.send(f"e{index}", human_label(event_id=f"e{index}"))

    asyncio.run(main())
    assert metrics.value("labelloop_records_produced_total", topic="labels") == 3
    assert len(topic.sent) == 3


def test_labels_count_by_source_and_time_to_label_only_for_the_first_revision() -> None:
    metrics = LoopMetrics()
    created = WHEN
    metrics.observe_label(human_label(decided_at=created + timedelta(seconds=7), created_at=created))
    metrics.observe_label(
        human_label(
            revision=2, source="expert", decided_at=created + timedelta(seconds=900), created_at=created
        )
    )
    assert metrics.value("labelloop_labels_published_total", source="crowd", revision="first") == 1
    assert metrics.value("labelloop_labels_published_total", source="expert", revision="later") == 1
    assert metrics.value("labelloop_time_to_label_seconds_count", source="crowd") == 1
    assert metrics.value("labelloop_time_to_label_seconds_sum", source="crowd") == 7.0
    assert metrics.value("labelloop_time_to_label_seconds_bucket", source="crowd", le="10.0") == 1
    assert metrics.value("labelloop_time_to_label_seconds_bucket", source="crowd", le="5.0") == 0
    assert metrics.value("labelloop_time_to_label_seconds_count", source="expert") is None
    assert metrics.value("labelloop_answers_per_label_count", source="crowd") == 1


def test_first_labels_of_a_batch_count_as_one_observe_each() -> None:
    """The router's bulk path gives the samples one ``observe_label`` per Label would."""
    # On bucket bounds, between them, past the last, and a clock skew (clipped to 0).
    waits_s = [0.0, 0.05, 0.07, 1.0, 2.4, 7.0, 10.0, 99_999.0, -3.0, 0.05]
    one_by_one, together = LoopMetrics(), LoopMetrics()
    for waited_s in waits_s:
        decided = WHEN + timedelta(seconds=waited_s)
        one_by_one.observe_label(human_label(source="model", decided_at=decided, created_at=WHEN))
    together.observe_first_labels("model", waits_s)
    together.observe_first_labels("model", [])

    def samples(metrics: LoopMetrics) -> list[tuple[str, dict[str, str], float]]:
        text = metrics.exposition().decode()
        return [
            (sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(text)
            if family.name in ("labelloop_time_to_label_seconds", "labelloop_labels_published")
            for sample in family.samples
            if not sample.name.endswith("_created")
        ]

    assert samples(together) == samples(one_by_one)
    assert together.value("labelloop_time_to_label_seconds_count", source="model") == len(waits_s)


def test_decisions_pools_estimates_accuracy_alerts_and_answers() -> None:
    metrics = LoopMetrics()
    metrics.decided("accept", "accepted", audit=True)
    metrics.decided("accept", "shed_by_capacity")
    metrics.decided("review", "control")
    assert metrics.value("labelloop_router_decisions_total", action="accept", reason="accepted") == 1
    assert metrics.value("labelloop_router_decisions_total", action="review", reason="control") == 1
    assert metrics.value("labelloop_router_audits_total") == 1

    metrics.observe_pool(status())
    assert metrics.value("labelloop_pool_cost_per_hour", pool="simulated", tier="crowd") == 720.0  # busy
    metrics.observe_pool(status(active=False, workers=3))
    labels = {"pool": "simulated", "tier": "crowd"}
    assert metrics.value("labelloop_pool_workers", **labels) == 3  # the latest report wins
    assert metrics.value("labelloop_pool_active", **labels) == 0
    assert metrics.value("labelloop_pool_backlog_tasks", **labels) == 40
    assert metrics.value("labelloop_pool_queue_rate_tasks_per_second", **labels) == 1.5
    assert (
        metrics.value("labelloop_pool_capacity_tasks_per_second", **labels) == 2.0
    )  # 240/min over overlap 2

    production = ModelMetrics(
        model_name="m", kind="production", task="default", computed_at=WHEN,
        metrics={
            "auto_accept_precision": Estimate(value=0.94, lower=0.9, upper=0.97, n=120),
            "recall.fraud": Estimate(value=0.8, lower=0.6, upper=0.9, n=30),
            "false_negatives.fraud": Estimate(value=12.0, n=30),
        },
    )  # fmt: skip
    metrics.observe_model_metrics(production)
    assert metrics.value("labelloop_auto_accept_precision_ratio", task="default", bound="lower") == 0.9
    assert metrics.value("labelloop_recall_ratio", task="default", **{"class": "fraud"}, bound="upper") == 0.9
    assert metrics.value("labelloop_estimate_labels", task="default", metric="recall.fraud") == 30
    online = ModelMetrics(
        model_name="online-default", kind="online", task="default", computed_at=WHEN,
        metrics={
            "prequential_accuracy": Estimate(value=0.7, n=400),
            "rolling_accuracy": Estimate(value=0.75, n=200),
        },
    )  # fmt: skip
    metrics.observe_model_metrics(online)
    assert metrics.value("labelloop_online_model_accuracy_ratio", task="default", window="rolling") == 0.75
    assert metrics.value("labelloop_online_model_labels", task="default") == 400

    alert = DriftAlert(
        detector="adwin-model-error-default", detector_kind="ADWIN", signal="model_error", observation=300,
        detected_at=WHEN, before=0.1, after=0.3, message="error rose",
    )  # fmt: skip
    metrics.observe_alert(alert)
    assert metrics.value("labelloop_drift_alerts_total", signal="model_error", detector_kind="ADWIN") == 1
    assert [mark.signal for mark in metrics.recent_alerts] == ["model_error"]

    answer = CrowdAnswer(
        event_id="e1", task_id="t1", pool="simulated", tier="crowd", worker_id="w7", label="fraud",
        answered_at=WHEN, time_spent_s=2.0, overlap=3,
    )  # fmt: skip
    metrics.observe_answer(answer)
    assert metrics.value("labelloop_crowd_answers_total", pool="simulated", tier="crowd") == 1


def test_lag_is_per_owned_partition_and_replaced_on_each_measurement() -> None:
    metrics = LoopMetrics(PREFIX)
    metrics.observe_lag({(PREFIX + "predictions", 0): 5, (PREFIX + "labels", 3): 2})
    assert metrics.value("labelloop_consumer_lag_records", topic="predictions", partition="0") == 5
    metrics.observe_lag({(PREFIX + "predictions", 1): 1})  # partition 0 moved to another worker
    assert metrics.value("labelloop_consumer_lag_records", topic="predictions", partition="0") is None
    assert metrics.value("labelloop_consumer_lag_records", topic="predictions", partition="1") == 1


def test_lag_by_partition_from_end_and_committed_offsets() -> None:
    from aiokafka import TopicPartition

    ends = {TopicPartition("t", 0): 100, TopicPartition("t", 1): 50, TopicPartition("t", 2): 9}
    committed = {TopicPartition("t", 0): 90, TopicPartition("t", 2): 12}
    assert lag_by_partition(ends, committed) == {("t", 0): 10, ("t", 1): 50, ("t", 2): 0}


def test_the_exposition_follows_prometheus_conventions() -> None:
    metrics = LoopMetrics(process=True)
    metrics.decided("review", "low_confidence")
    metrics.observe_label(human_label())
    metrics.observe_pool(status())
    families = list(text_string_to_metric_families(metrics.exposition().decode()))
    ours = [family for family in families if family.name.startswith("labelloop_")]
    assert len(ours) >= 20
    assert any(family.name.startswith("process_") for family in families)
    for family in ours:
        assert family.documentation, family.name
        if family.type == "counter":
            assert all(sample.name.endswith("_total") for sample in family.samples), family.name
        for sample in family.samples:
            assert not sample.name.endswith("_created"), sample.name
            # Never an event or a labeler as a label: both grow without bound.
            assert not {"event_id", "worker_id", "worker", "key"} & set(sample.labels), sample
    names = metrics.family_names()
    assert {"labelloop_time_to_label_seconds_bucket", "labelloop_records_consumed_total"} <= names
    assert "labelloop_records_consumed" not in names
