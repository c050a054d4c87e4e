"""The batch path's pure parts without Kafka: a batch's outputs, state and rollback; the partition state."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streams.batch import Batch, BatchSender
from streams.batch_clients import fetch
from streams.batch_state import MAX_OUTPUT_BYTES, SEEN, PartitionState, changes_of, changes_value, seen_keys
from streams.batches import TransactionalBatches
from streams.errors import ContractError
from streams.runtime import DeadLetters, Output, Record, handle_record
from streams.settings import Settings
from tests import factories


def test_a_record_that_fails_midway_leaves_only_its_dlq_record_in_the_batch() -> None:
    batch = Batch(0, {}, state=None)
    out = Output(BatchSender(batch, "labels"))
    dead_letters = DeadLetters(BatchSender(batch, "dlq"), stage="router")
    good = Record(b"e-1", b"{}", "predictions", 0, 10)
    bad = Record(b"e-2", b"{}", "predictions", 0, 11)

    async def route(record: Record) -> None:
        point = batch.savepoint()
        try:
            await out.send(record.key_text or "", factories.human_label(event_id=record.key_text or ""))
            batch.mark(record.key_text or "")
            batch.after_commit(lambda: None)
            if record.offset == 11:
                raise RuntimeError("a bug after the first output")
        except BaseException:
            batch.rollback(point)
            raise

    assert asyncio.run(handle_record(good, route, dead_letters))
    assert not asyncio.run(handle_record(bad, route, dead_letters))
    assert [(produced.topic, produced.key) for produced in batch.out] == [("labels", b"e-1"), ("dlq", b"e-2")]
    assert batch.changes == [(SEEN, "e-1", "")]
    assert len(batch.effects) == 1
    assert batch.seen("e-1")
    assert not batch.seen("e-2")  # read again (a fixed worker), it is routed


def test_an_output_keeps_the_partition_its_handler_computed_and_a_rollback_drops_it() -> None:
    batch = Batch(0, {}, state=None)
    batch.send("labels", b"e-1", b"{}", partition=3)
    point = batch.savepoint()
    batch.send("labels", b"e-2", b"{}", partition=1)
    batch.rollback(point)
    batch.send("label-requests", b"e-3", b"{}")
    assert [(out.key, out.partition) for out in batch.out] == [(b"e-1", 3), (b"e-3", None)]


def test_an_output_the_producer_would_refuse_is_a_contract_error_of_its_record() -> None:
    batch = Batch(0, {}, state=None)
    with pytest.raises(ContractError, match="too_large") as refused:
        batch.send("label-requests", b"e-1", b"x" * (MAX_OUTPUT_BYTES + 1))
    assert refused.value.kind == "too_large"
    assert batch.out == []


def test_the_changes_of_a_batch_survive_the_changelog_and_rebuild_the_state(tmp_path: Path) -> None:
    batch = Batch(0, {}, state=None)
    batch.mark("e-1")
    batch.put("pending", "e-2", '{"x": {"a": 1.0}}')
    batch.put("pending", "e-2", None)
    batch.put("pending", "e-3", "{}")
    wire = changes_value(batch.changes)
    assert changes_of(wire) == batch.changes
    assert seen_keys(wire) == ["e-1"]
    state = PartitionState(tmp_path / "p0")
    try:
        state.apply(changes_of(wire))
        assert state.known(SEEN, ["e-1", "e-9"]) == frozenset({"e-1"})
        assert state.get("pending", "e-2") is None
        assert state.get("pending", "e-3") == "{}"
        # A batch over that state sees it, with its own changes on top.
        later = Batch(0, {}, state=state, known=state.known(SEEN, ["e-1"]))
        assert later.seen("e-1")
        later.put("pending", "e-3", None)
        assert later.get("pending", "e-3") is None
        assert state.get("pending", "e-3") == "{}"  # not until the batch is committed
    finally:
        state.close()
    assert not (tmp_path / "p0").exists()


class _FakeConsumer:
    """What :func:`streams.batch_clients.fetch` calls of a confluent consumer: ``poll``, ``consume``."""

    def __init__(self, buffered: list[int], arriving: list[int]) -> None:
        self.buffered, self.arriving = buffered, arriving
        self.waited_s = 0.0

    def poll(self, timeout_s: float) -> int | None:
        return self.buffered.pop(0) if self.buffered else None

    def consume(self, most: int, timeout_s: float) -> list[int]:
        taken, self.buffered = self.buffered[:most], self.buffered[most:]
        if len(taken) < most and timeout_s > 0:  # librdkafka waits for ``most`` or the timeout
            self.waited_s += timeout_s
            more, self.arriving = self.arriving[: most - len(taken)], self.arriving[most - len(taken) :]
            taken += more
        return taken


def test_a_fetch_takes_what_is_buffered_without_waiting_and_gathers_only_when_asked() -> None:
    consumer = _FakeConsumer([1, 2, 3], arriving=[4, 5])
    assert fetch(consumer, 10, 0.2) == [1, 2, 3]
    assert consumer.waited_s == 0.0  # never the whole poll timeout for a few records
    assert fetch(consumer, 10, 0.2) == []
    gathering = _FakeConsumer([1, 2], arriving=[3, 4, 5])
    assert fetch(gathering, 4, 0.2, gather_s=0.01) == [1, 2, 3, 4]  # up to ``most``
    assert 0 < gathering.waited_s <= 0.01


def test_a_worker_keeps_its_transactional_id_in_its_data_dir(tmp_path: Path) -> None:
    def service(data_dir: Path) -> TransactionalBatches:
        settings = Settings(app_id="app", data_dir=data_dir)
        return TransactionalBatches(settings, name="batches", handlers={}, state_topic="s")

    first = service(tmp_path / "w0").transactional_id()
    assert first.startswith("app-batches-")
    # Restarted on its data dir (after a SIGKILL): the same id, which aborts what it left open.
    assert service(tmp_path / "w0").transactional_id() == first
    assert service(tmp_path / "w1").transactional_id() != first  # another worker, another id
