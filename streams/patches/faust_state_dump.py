"""The worker's state dump (SIGUSR1): faust's and aiokafka's view of each partition, from their privates.

Not a patch: a reader of private state, for the one log that says why a partition does not move
(active, paused, buffered, positions, commits held, the oldest record a stream still handles).
Pinned like the patches, so a version bump that renames one of them fails the canary instead of
the dump (which never raises: a missing part is reported in the dump itself).
"""

from __future__ import annotations

from typing import Any

import faust

from streams.patches.pins import Pin

UPSTREAM = "none filed: faust 0.15 and aiokafka 0.14 have no public view of a partition's consumer state"
_BASE = "faust.transport.consumer:Consumer"
RELIES_ON = (
    Pin(_BASE, "_active_partitions", assigned_in="_reset_state"),
    Pin(_BASE, "_paused_partitions", assigned_in="_reset_state"),
    Pin(_BASE, "_buffered_partitions", assigned_in="__init__"),
    Pin(_BASE, "_committed_offset", assigned_in="__init__"),
    Pin(_BASE, "_read_offset", assigned_in="__init__"),
    Pin(_BASE, "_acked", assigned_in="__init__"),
    Pin(_BASE, "_gap", assigned_in="__init__"),
    Pin(_BASE, "_unacked_messages", assigned_in="__init__"),
    Pin(_BASE, "flow_active"),
    Pin("faust.transport.consumer:ThreadDelegateConsumer", "_thread", assigned_in="__init__"),
    Pin("faust.transport.drivers.aiokafka:AIOKafkaConsumerThread", "_ensure_consumer", parameters=("self",)),
    Pin("aiokafka.consumer.consumer:AIOKafkaConsumer", "_subscription", assigned_in="__init__"),
    Pin("aiokafka.consumer.subscription_state:TopicPartitionState", "_position", assigned_in="__init__"),
    Pin("faust.transport.conductor:Conductor", "_tp_index", assigned_in="__init__"),
)


def consumer_state(app: faust.App) -> list[str]:
    """One line per assigned partition: faust's active/paused/buffered view, aiokafka's position."""
    consumer: Any = app.consumer
    lines = [
        f"flow_active={consumer.flow_active} rebalancing={app.rebalancing} in_recovery={app.in_recovery}"
    ]
    active = consumer._active_partitions or set()
    try:
        kafka = consumer._thread._ensure_consumer()
        states = kafka._subscription.subscription.assignment
    except Exception as error:  # a diagnostic: never fail the dump
        return [*lines, f"no aiokafka state: {error!r}"]
    for tp in sorted(consumer.assignment()):
        state = states.state_value(tp) if states is not None else None
        position = getattr(state, "_position", None) if state is not None else None
        paused = getattr(state, "paused", None) if state is not None else None
        lines.append(
            f"{tp.topic}[{tp.partition}] active={tp in active} paused={tp in consumer._paused_partitions}"
            f" buffered={tp in consumer._buffered_partitions} kafka_paused={paused} position={position}"
            f" highwater={consumer.highwater(tp)} committed={consumer._committed_offset.get(tp)}"
            f" read={consumer._read_offset.get(tp)}"
        )
    conductor: Any = app.topics
    for tp in sorted(consumer.assignment()):
        channels = conductor._tp_index.get(tp) or ()
        queued = [channel.queue.qsize() for channel in channels]
        if not channels or any(queued):
            lines.append(f"{tp.topic}[{tp.partition}] to {len(channels)} channels, queued {queued}")
    floor = getattr(consumer, "commit_floor", None)
    if floor is not None:
        lines.append(f"commits held below dropped deliveries: {floor.held() or 'none'}")
    for tp in sorted(consumer.assignment()):
        acked = sorted(consumer._acked.get(tp, []))
        committed = consumer._committed_offset.get(tp)
        if acked and committed is not None and acked[0] > committed:
            gaps = sorted((gap.begin, gap.end) for gap in consumer._gap.get(tp, []))
            lines.append(
                f"commit of {tp.topic}[{tp.partition}] waits at {committed}: acked from {acked[:5]}"
                f" ({len(acked)} in all), gaps {gaps[:5]}"
            )
    lowest: dict[Any, Any] = {}
    for message in list(consumer._unacked_messages):
        if not message.acked and (message.tp not in lowest or message.offset < lowest[message.tp].offset):
            lowest[message.tp] = message
    for tp, message in sorted(lowest.items()):
        lines.append(
            f"oldest record a stream still handles: {tp.topic}[{tp.partition}] offset={message.offset}"
            f" refcount={message.refcount} generation={message.generation_id}"
            f" (now {app.consumer_generation_id})"
        )
    return lines
