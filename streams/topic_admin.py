"""The loop's topics on a broker: create what the catalogue lacks, verify what exists, delete (resets).

Broker auto-creation is off, so :func:`create_topics` runs before anything produces (``labelloop
topics create``, the worker's start, the tests' and benches' setup); it is idempotent and refuses
an existing topic whose partition count or cleanup policy differs from :mod:`streams.topics`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from streams.errors import ConfigError
from streams.settings import Settings
from streams.topics import Topic, catalogue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicReport:
    """What ``create_topics`` did."""

    created: list[str]
    existing: list[str]


def _describe(admin: object, names: list[str]) -> Iterator[tuple[str, int]]:
    for described in admin.describe_topics(names):  # type: ignore[attr-defined]
        if described.get("error_code", 0) == 0:
            yield described["name"], len(described["partitions"])


def create_topics(settings: Settings, *, timeout_s: float = 30.0) -> TopicReport:
    """Create every catalogue topic that is missing; verify the ones that exist.

    Idempotent. Raises :class:`ConfigError` when an existing topic has another
    partition count or cleanup policy than the catalogue says.
    """
    from kafka.admin import KafkaAdminClient

    wanted = catalogue(settings)
    admin = KafkaAdminClient(client_id="labelloop-topics", **settings.kafka.kafka_python_options())
    try:
        existing = dict(_describe(admin, [topic.name for topic in wanted]))
        missing = [topic for topic in wanted if topic.name not in existing]
        if missing:
            result = admin.create_topics(
                {
                    topic.name: {
                        "num_partitions": topic.partitions,
                        "replication_factor": topic.replication_factor,
                        "configs": topic.configs,
                    }
                    for topic in missing
                },
                timeout_ms=int(timeout_s * 1000),
                raise_errors=False,
                wait_for_metadata=True,
            )
            for created in result["topics"]:
                # 36: TOPIC_ALREADY_EXISTS (another process won the race): verified below.
                if created["error_code"] not in (0, 36):
                    raise ConfigError(
                        f"could not create topic {created['name']}: error {created['error_code']} "
                        f"{created.get('error_message') or ''}".strip()
                    )
        _verify(admin, wanted)
        if missing:
            _wait_for_leaders(admin, [topic.name for topic in missing], timeout_s)
        return TopicReport(
            created=[topic.name for topic in missing],
            existing=[topic.name for topic in wanted if topic.name in existing],
        )
    finally:
        admin.close()


def _leaderless(described: list[dict[str, Any]]) -> list[str]:
    """The ``topic[partition]`` of every partition that has no leader yet in a describe_topics answer.

    >>> _leaderless([{"name": "t", "error_code": 0, "partitions": [
    ...     {"partition_index": 0, "error_code": 0, "leader_id": 1},
    ...     {"partition_index": 1, "error_code": 5, "leader_id": -1}]}])
    ['t[1]']
    >>> _leaderless([{"name": "u", "error_code": 3, "partitions": []}])
    ['u']
    """
    waiting: list[str] = []
    for topic in described:
        if topic.get("error_code", 0) != 0 or not topic.get("partitions"):
            waiting.append(topic["name"])
            continue
        waiting += [
            f"{topic['name']}[{partition['partition_index']}]"
            for partition in topic["partitions"]
            if partition.get("error_code", 0) != 0 or partition.get("leader_id", -1) < 0
        ]
    return waiting


def _wait_for_leaders(admin: object, names: list[str], timeout_s: float) -> None:
    """Return once every partition of the fresh topics ``names`` answers as its leader.

    A producer that writes to a partition whose leader is not serving yet is told
    ``NotLeaderForPartitionError`` and retries, and kafka-python logs a WARNING per retry: on a
    first run the console filled with them. The metadata names a leader before that broker
    serves the partition, so the wait is a request only the leader answers (ListOffsets, which
    kafka-python retries quietly on NotLeader). Past ``timeout_s`` the producers' own retries
    take over (nothing is lost), so this only logs which partitions were still waiting.
    """
    from kafka import TopicPartition
    from kafka.admin import OffsetSpec
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    while True:
        described = admin.describe_topics(names)  # type: ignore[attr-defined]
        waiting = _leaderless(described)
        if not waiting:
            specs = {
                TopicPartition(topic["name"], partition["partition_index"]): OffsetSpec.LATEST
                for topic in described
                for partition in topic["partitions"]
            }
            remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
            try:
                admin.list_partition_offsets(specs, timeout_ms=remaining_ms)  # type: ignore[attr-defined]
                return
            except KafkaError as error:
                waiting = [repr(error)]
        if time.monotonic() > deadline:
            log.info("partitions not served by a leader after %.0f s: %s", timeout_s, waiting[:5])
            return
        time.sleep(0.05)


def _verify(admin: object, wanted: list[Topic]) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType

    actual = dict(_describe(admin, [topic.name for topic in wanted]))
    problems = [
        f"{topic.name}: {actual.get(topic.name, 'no')} partitions, catalogue says {topic.partitions}"
        for topic in wanted
        if actual.get(topic.name) != topic.partitions
    ]
    described = admin.describe_configs(  # type: ignore[attr-defined]
        [ConfigResource(ConfigResourceType.TOPIC, topic.name, {"cleanup.policy": None}) for topic in wanted],
        config_filter="all",
    )
    policies = _cleanup_policies(described)
    problems += [
        f"{topic.name}: cleanup.policy={policies.get(topic.name)}, catalogue says "
        f"{topic.configs['cleanup.policy']}"
        for topic in wanted
        if topic.name in policies and policies[topic.name] != topic.configs["cleanup.policy"]
    ]
    if problems:
        raise ConfigError("existing topics do not match the catalogue: " + "; ".join(problems))


def _cleanup_policies(described: object) -> dict[str, str]:
    """Pull ``cleanup.policy`` per topic out of kafka-python's describe_configs answer."""
    policies: dict[str, str] = {}
    if isinstance(described, dict):
        for resources in described.values():
            if not isinstance(resources, dict):
                continue
            for name, configs in resources.items():
                if isinstance(configs, dict) and "cleanup.policy" in configs:
                    entry = configs["cleanup.policy"]
                    value = entry.get("value") if isinstance(entry, dict) else entry
                    if isinstance(value, str):
                        policies[name] = value
    return policies


def delete_topics(settings: Settings, *, timeout_s: float = 30.0) -> list[str]:
    """Delete every catalogue topic of ``settings`` that exists (for resets and tests)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(client_id="labelloop-topics", **settings.kafka.kafka_python_options())
    try:
        present = [name for name, _ in _describe(admin, [topic.name for topic in catalogue(settings)])]
        if present:
            admin.delete_topics(present, timeout_ms=int(timeout_s * 1000), raise_errors=False)
        return present
    finally:
        admin.close()
