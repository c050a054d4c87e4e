"""The topic catalogue: every topic of the loop, created and verified before anything produces.

Broker auto-creation is off. All event topics share one partition count and
are keyed by ``event_id``, so they are co-partitioned: one worker owns an
event's whole state. faust table changelogs are in the catalogue too, with
the partition count of their source topic (faust refuses a mismatch).
:mod:`streams.topic_admin` creates, verifies and deletes the topics on a broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.errors import UnknownTopicError
from streams.settings import Settings

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
