"""Fresh cluster metadata (every topic's partitions) from an aiokafka consumer's own client.

aiokafka's consumer knows only the topics it subscribed to (``partitions_for_topic`` answers
from that cache); a reader that assigns partitions by hand needs the partitions of a topic it
has not read yet. aiokafka has no public call for it: its client's ``fetch_all_metadata`` is
what ``AIOKafkaAdminClient`` would need a second connection for.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streams.patches.pins import Pin

UPSTREAM = "none filed: aiokafka 0.14 exposes no public all-topics metadata call on the consumer"
RELIES_ON = (
    Pin("aiokafka.consumer.consumer:AIOKafkaConsumer", "_client", assigned_in="__init__"),
    Pin("aiokafka.client:AIOKafkaClient", "fetch_all_metadata", parameters=("self",)),
    Pin("aiokafka.cluster:ClusterMetadata", "partitions_for_topic", parameters=("self", "topic")),
)


async def partitions_of(consumer: Any, topic: str, *, timeout_s: float = 30.0) -> set[int]:
    """The partition numbers of ``topic`` as the cluster has them now (empty if it does not exist)."""
    cluster = await asyncio.wait_for(consumer._client.fetch_all_metadata(), timeout_s)
    return set(cluster.partitions_for_topic(topic) or ())
