"""Kafka's default partition of a keyed record (murmur2 of the key), as every Kafka producer computes it.

The loop's topics are co-partitioned by key: a Label or LabelRequest must land on the partition
the Java client, kafka-python, aiokafka and faust would choose for its key (the learner joins
them per partition). :func:`partition_for` is that choice, computed once per output by the
router instead of by aiokafka's ``send`` (its pure-Python murmur2 works byte by byte, and each
send copies the topic's partition set into two lists first). ``tests/streams/test_partitioner.py``
holds it to aiokafka's ``DefaultPartitioner``.

References
----------
Apache Kafka, ``org.apache.kafka.common.utils.Utils.murmur2`` and ``toPositive``
(``clients/src/main/java/org/apache/kafka/common/utils/Utils.java``).
"""

from __future__ import annotations

import struct

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_WORDS = struct.Struct("<I")


def murmur2(key: bytes) -> int:
    """Kafka's 32-bit MurmurHash2 of ``key`` (unsigned), four bytes at a time.

    >>> murmur2(b"21"), murmur2(b"")
    (3321034988, 275646681)
    """
    length = len(key)
    h = _SEED ^ length
    end = length & ~3
    for (k,) in _WORDS.iter_unpack(key[:end]):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    extra = length & 3
    if extra == 3:
        h ^= key[end + 2] << 16
    if extra >= 2:
        h ^= key[end + 1] << 8
    if extra:
        h = ((h ^ key[end]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions`` (Kafka's default partitioner for a keyed record).

    >>> partition_for(b"bench-0000001", 4) == partition_for(b"bench-0000001", 4) < 4
    True
    """
    return (murmur2(key) & 0x7FFFFFFF) % partitions
