"""What the demo has seen on the output topics, filled by a reader thread."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from schemas import DriftAlert, Label, ModelMetrics, PolicyStatus, PoolStatus, WorkerSkill
from streams.revisions import supersedes
from streams.settings import Settings
from streams.topics import TopicNames, topic_names


@dataclass
class LoopView:
    """What the demo has seen on the output topics (filled by a reader thread)."""

    labels: dict[str, Label] = field(default_factory=dict)
    first_revisions: dict[str, Label] = field(default_factory=dict)
    label_records: int = 0
    #: The latest status of each pool (the crowd and the experts).
    pools: dict[str, PoolStatus] = field(default_factory=dict)
    #: The latest published skill of each labeler.
    skills: dict[str, WorkerSkill] = field(default_factory=dict)
    #: The latest metrics per kind ("online": the River model, "production": precision and recall).
    metrics: dict[str, ModelMetrics] = field(default_factory=dict)
    alerts: list[DriftAlert] = field(default_factory=list)
    #: Every routing policy the router published (at start, then after each command).
    policies: list[PolicyStatus] = field(default_factory=list)
    dlq_kinds: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def read_into(settings: Settings, view: LoopView, stop: threading.Event) -> None:
    """Read every output topic from its start into ``view`` until ``stop`` is set (a thread's body)."""
    from kafka import KafkaConsumer

    names = topic_names(settings)
    consumer = KafkaConsumer(
        names.labels,
        names.pool_status,
        names.model_metrics,
        names.drift_alerts,
        names.policy_status,
        names.dlq,
        names.worker_skills,
        group_id=None,
        enable_auto_commit=False,  # no group, nothing to commit (kafka-python WARNs otherwise)
        auto_offset_reset="earliest",
        client_id="labelloop-demo-view",
        **settings.kafka.kafka_python_reader_options(),
    )
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=200).values():
                with view.lock:
                    for record in records:
                        observe(view, names, record)
    finally:
        consumer.close()


def observe(view: LoopView, names: TopicNames, record: Any) -> None:
    """Take one record of an output topic into ``view`` (the latest revision of a Label wins)."""
    if record.topic == names.labels:
        label = Label.from_json_bytes(record.value)
        view.label_records += 1
        if label.revision == 1:
            view.first_revisions[label.event_id] = label
        current = view.labels.get(label.event_id)
        if current is None or supersedes(label, current):
            view.labels[label.event_id] = label
    elif record.topic == names.pool_status:
        status = PoolStatus.from_json_bytes(record.value)
        view.pools[status.pool] = status
    elif record.topic == names.worker_skills:
        skill = WorkerSkill.from_json_bytes(record.value)
        view.skills[skill.worker_id] = skill
    elif record.topic == names.model_metrics:
        snapshot = ModelMetrics.from_json_bytes(record.value)
        view.metrics[snapshot.kind] = snapshot
    elif record.topic == names.drift_alerts:
        view.alerts.append(DriftAlert.from_json_bytes(record.value))
    elif record.topic == names.policy_status:
        view.policies.append(PolicyStatus.from_json_bytes(record.value))
    elif record.topic == names.dlq:
        headers = {name: value.decode("utf-8", "replace") for name, value in record.headers or ()}
        view.dlq_kinds[headers.get("labelloop.error.kind", "?")] += 1
