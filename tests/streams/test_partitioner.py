"""Our murmur2 partition of a key is the one aiokafka's (and Kafka's) default partitioner chooses."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.partitioner import murmur2, partition_for

KAFKA = DefaultPartitioner()


@settings(max_examples=2_000)
@given(key=st.binary(max_size=300), partitions=st.integers(min_value=1, max_value=1_000))
def test_partition_is_aiokafkas_default_for_any_key(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    assert murmur2(key) == aiokafka_murmur2(key)
    assert partition_for(key, partitions) == KAFKA(key, every, every)


def test_partition_of_event_ids_of_every_length_and_script() -> None:
    keys = [f"bench-{i:07d}".encode() for i in range(2_000)]
    keys += [("tx-" + "é" * n + "ü" * (n % 3)).encode() for n in range(64)]
    for partitions in (1, 3, 4, 12):
        every = list(range(partitions))
        assert [partition_for(key, partitions) for key in keys] == [KAFKA(key, every, every) for key in keys]
