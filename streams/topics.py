"""The topic catalogue: every topic of the loop, created and verified before anything produces.

Broker auto-creation is off. All event topics share one partition count and
are keyed by ``event_id``, so they are co-partitioned: one worker owns an
event's whole state. faust table changelogs are in the catalogue too, with
the partition count of their source topic (faust refuses a mismatch).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from streams.errors import ConfigError, UnknownTopicError
from streams.settings import Settings

log = logging.getLogger(__name__)

DAY_MS = 24 * 3_600 * 1_000


@dataclass(frozen=True)
class TopicSpec:
    """One topic family of the loop (the name without the prefix)."""

    suffix: str
    key: str
    value: str
    doc: str
    compacted: bool = False
    #: ``None``: the settings' partition count (co-partitioned with the event topics).
    partitions: int | None = None
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Topic:
    """A concrete topic: full name, partitions and broker configs."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]
    doc: str

    @property
    def compacted(self) -> bool:
        """True for a changelog topic (latest value per key is kept)."""
        return "compact" in self.configs.get("cleanup.policy", "")


CATALOGUE: tuple[TopicSpec, ...] = (
    TopicSpec(
        "predictions",
        "event_id",
        "PredictionEvent",
        "the public input contract",
        configs={"retention.ms": str(7 * DAY_MS)},
    ),
    TopicSpec(
        "predictions.dlq",
        "original key",
        "original bytes",
        "malformed or failed records of any topic; headers say why and where from",
        configs={"retention.ms": str(30 * DAY_MS)},
    ),
    TopicSpec("label-requests", "event_id", "LabelRequest", "events a human must label"),
    TopicSpec("crowd-answers", "event_id", "CrowdAnswer", "one record per worker answer"),
    TopicSpec(
        "labels",
        "event_id",
        "Label",
        "compacted changelog: the latest revision per event is the trusted label",
        compacted=True,
        configs={"min.compaction.lag.ms": str(DAY_MS)},
    ),
    TopicSpec("model-metrics", "model name", "ModelMetrics", "prequential and estimated metrics"),
    TopicSpec("drift-alerts", "detector", "DriftAlert", "what drifted, where, how sure"),
    TopicSpec(
        "commands",
        "pool or 'policy'",
        "PoolCommand | PolicyCommand",
        "operator and autoscaler commands",
        partitions=1,
    ),
    TopicSpec("pool-status", "pool name", "PoolStatus", "backlog, rates, workers, cost"),
    TopicSpec(
        "policy-status",
        "task",
        "PolicyStatus",
        "the routing policy in force (published on change)",
        compacted=True,
        partitions=1,
    ),
    TopicSpec(
        "aggregator-revisits",
        "event_id",
        "Revisit",
        "internal: re-aggregate a decided task whose workers' skills changed",
        configs={"retention.ms": str(7 * DAY_MS)},
    ),
    TopicSpec(
        "explorer-revisions",
        "event_id",
        "RevisionOrder",
        "internal: an operator's correction, bulk label or undo, published on labels by the"
        " partition's owner through the label ledger (agents/explorer/revise.py)",
        configs={"retention.ms": str(7 * DAY_MS)},
    ),
    TopicSpec(
        "explorer-actions",
        "action_id/part",
        "BulkAction",
        "compacted: the explorer's bulk actions (each event's prior label), so an undo outlives a restart",
        compacted=True,
        partitions=1,
    ),
    TopicSpec(
        "batch-state",
        "partition:first offset of a batch",
        "the batch's state changes (JSON)",
        "internal: the batch path's partition state (events routed, inputs awaiting labels,"
        " labels counted), one record per batch, written in the batch's transaction"
        " (streams/batches.py); a partition's owner rebuilds its state from it",
        compacted=True,
    ),
    TopicSpec(
        "dispatcher-done",
        "event_id",
        "TaskDone",
        "internal: a pool has every answer of a request (closes its open task)",
        configs={"retention.ms": str(7 * DAY_MS)},
    ),
    TopicSpec(
        "worker-skills",
        "pool/worker_id",
        "WorkerSkill",
        "compacted: each labeler's estimated skill (golden tasks, expert audits, Dawid–Skene)",
        compacted=True,
    ),
    TopicSpec(
        "simulation.truth",
        "event_id",
        "true label (JSON string)",
        "the simulation's truth side-channel: only the simulated crowd reads it",
        compacted=True,
    ),
)

#: faust tables of the worker (name -> source topic suffix); their changelogs are
#: ``<app_id>-<table>-changelog``, co-partitioned with the source.
TABLES: dict[str, str] = {
    # The highest revision published per event, by any stage (streams/ledger.py).
    "labels-published": "labels",
    "aggregator-tasks": "crowd-answers",
    # Requests handed to a pool and not finished: whoever owns the partition runs them.
    "dispatcher-open": "label-requests",
    "sim-truth": "simulation.truth",
    # Source positions already dead-lettered (the DLQ holds each bad record once).
    "dead-letters": "predictions",
}


@dataclass(frozen=True)
class TopicNames:
    """The full names of the loop's topics under one prefix."""

    prefix: str

    def __getitem__(self, suffix: str) -> str:
        if suffix not in _SUFFIXES:
            raise UnknownTopicError(f"no topic {suffix!r} in the catalogue")
        return f"{self.prefix}{suffix}"

    @property
    def predictions(self) -> str:
        return self["predictions"]

    @property
    def dlq(self) -> str:
        return self["predictions.dlq"]

    @property
    def label_requests(self) -> str:
        return self["label-requests"]

    @property
    def crowd_answers(self) -> str:
        return self["crowd-answers"]

    @property
    def labels(self) -> str:
        return self["labels"]

    @property
    def model_metrics(self) -> str:
        return self["model-metrics"]

    @property
    def drift_alerts(self) -> str:
        return self["drift-alerts"]

    @property
    def commands(self) -> str:
        return self["commands"]

    @property
    def pool_status(self) -> str:
        return self["pool-status"]

    @property
    def policy_status(self) -> str:
        return self["policy-status"]

    @property
    def batch_state(self) -> str:
        return self["batch-state"]

    @property
    def revisits(self) -> str:
        return self["aggregator-revisits"]

    @property
    def dispatcher_done(self) -> str:
        return self["dispatcher-done"]

    @property
    def worker_skills(self) -> str:
        return self["worker-skills"]

    @property
    def truth(self) -> str:
        return self["simulation.truth"]


_SUFFIXES = frozenset(spec.suffix for spec in CATALOGUE)


def topic_names(settings: Settings) -> TopicNames:
    """The topic names for ``settings``.

    >>> topic_names(Settings()).labels
    'labelloop.labels'
    """
    return TopicNames(settings.topics.prefix)


def changelog_name(settings: Settings, table: str) -> str:
    """The changelog topic faust uses for ``table`` (``<app_id>-<table>-changelog``)."""
    return f"{settings.app_id}-{table}-changelog"


def catalogue(settings: Settings) -> list[Topic]:
    """Every topic the loop needs under ``settings``, event topics first, then changelogs."""
    names = topic_names(settings)
    topics = [
        Topic(
            name=names[spec.suffix],
            partitions=spec.partitions or settings.topics.partitions,
            replication_factor=settings.topics.replication_factor,
            configs={"cleanup.policy": "compact" if spec.compacted else "delete", **spec.configs},
            doc=spec.doc,
        )
        for spec in CATALOGUE
    ]
    by_suffix = {spec.suffix: topic for spec, topic in zip(CATALOGUE, topics, strict=True)}
    for table, source in TABLES.items():
        topics.append(
            Topic(
                name=changelog_name(settings, table),
                partitions=by_suffix[source].partitions,
                replication_factor=settings.topics.replication_factor,
                configs={"cleanup.policy": "compact"},
                doc=f"changelog of the faust table {table!r}",
            )
        )
    return topics


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
