"""Where a worker's tables live: per-event tables in the event store, the rest in memory."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksStore
from faust.streams import _current_event

from agents.loop import Loop
from agents.settings import StageSettings
from schemas import Label, LabelRequest
from streams.app import ROCKSDB_OPTIONS, claim_local_state, create_app
from streams.errors import ConfigError
from streams.settings import Settings
from streams.stores import RocksStore as LabelloopRocksStore


def _loop(data_dir: Path, **settings: Any) -> Loop:
    configured = Settings(data_dir=data_dir, **settings)
    return Loop(app=create_app(configured), settings=configured, stages=StageSettings())


def test_per_event_tables_live_in_rocksdb_under_the_data_dir_with_bounded_buffers(tmp_path: Path) -> None:
    loop = _loop(tmp_path / "worker")
    ledger = loop.table("labels-published", per_event=True)
    store = ledger.data
    assert isinstance(store, RocksStore)
    assert store.use_rocksdict
    options = store.rocksdb_options
    assert options.write_buffer_size == ROCKSDB_OPTIONS["write_buffer_size"] < 64 * 1024**2
    assert options.max_write_buffer_number == ROCKSDB_OPTIONS["max_write_buffer_number"]
    assert options.block_cache_size == ROCKSDB_OPTIONS["block_cache_size"] < 2 * 1024**3
    assert options.bloom_filter_size == ROCKSDB_OPTIONS["bloom_filter_size"]
    assert (
        store.partition_path(3) == tmp_path / "worker" / "faust" / "v1" / "tables" / "labels-published-3.db"
    )
    # Tables sized by the work in flight stay in memory.
    assert isinstance(loop.table("dispatcher-open").data, MemoryStore)


def test_the_memory_event_store_keeps_every_table_in_memory(tmp_path: Path) -> None:
    loop = _loop(tmp_path / "worker", event_store="memory")
    assert isinstance(loop.table("labels-published", per_event=True).data, MemoryStore)


def test_the_event_store_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELLOOP_EVENT_STORE", "memory")
    assert Settings().event_store == "memory"
    monkeypatch.setenv("LABELLOOP_EVENT_STORE", "redis")
    with pytest.raises(ValueError, match="event_store"):
        Settings()
    monkeypatch.delenv("LABELLOOP_EVENT_STORE")
    assert Settings().event_store == "rocksdb"


@dataclass
class _Event:
    message: SimpleNamespace


@contextmanager
def _handling(partition: int) -> Iterator[None]:
    """As if a record of ``partition`` were being handled: faust's tables read and write its partition."""
    event = _Event(SimpleNamespace(partition=partition))
    token = _current_event.set(weakref.ref(event))  # type: ignore[arg-type]
    try:
        yield
    finally:
        _current_event.reset(token)


def test_a_new_worker_process_rebuilds_the_event_tables_from_their_changelogs(tmp_path: Path) -> None:
    """Entries a killed worker left on disk may have effects that never reached Kafka: not kept."""
    loop = _loop(tmp_path / "worker")
    lock = claim_local_state(loop.app)
    first = loop.table("labels-published", per_event=True).data
    tp = SimpleNamespace(topic="labels-published-changelog", partition=2)
    with _handling(2):
        first["e-1"] = "1"
        assert first["e-1"] == "1"
        # An event's entries live in its partition's database, not in the others'.
        with _handling(1):
            assert "e-1" not in first
    first.set_persisted_offset(tp, 41)
    asyncio.run(first.stop())  # as a SIGKILL would leave them: the files stay
    lock.close()  # the process is gone

    again = _loop(tmp_path / "worker")
    with claim_local_state(again.app):
        store = again.table("labels-published", per_event=True).data
        # Nothing persisted: faust reads the changelog from its start, as for the memory store.
        assert store.persisted_offset(tp) is None
        with _handling(2):
            assert "e-1" not in store
        asyncio.run(store.stop())


def test_a_stopping_store_closes_its_databases_without_collecting_garbage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """faust's own stop runs a full gc.collect() per table instead (seconds on a busy worker)."""
    loop = _loop(tmp_path / "worker")
    store = loop.table("labels-published", per_event=True).data
    assert isinstance(store, LabelloopRocksStore)
    with _handling(1):
        store["e-1"] = "1"
    collected: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda *args: collected.append(1) or 0)
    asyncio.run(store.stop())
    assert collected == []
    # Closed, so the same process opens it again at once (RocksDB's lock is released).
    again = _loop(tmp_path / "worker").table("labels-published", per_event=True).data
    with _handling(1):
        assert again["e-1"] == "1"
    asyncio.run(again.stop())


def test_two_live_workers_cannot_share_a_data_dir(tmp_path: Path) -> None:
    first = _loop(tmp_path / "worker")
    with claim_local_state(first.app):
        second = _loop(tmp_path / "worker")
        with pytest.raises(ConfigError, match="another worker uses the data dir"):
            claim_local_state(second.app)
    # Once the first is gone, the dir is free.
    claim_local_state(_loop(tmp_path / "worker").app).close()


def test_stages_reading_one_topic_share_one_agent_and_one_model(tmp_path: Path) -> None:
    loop = _loop(tmp_path / "worker")
    names = loop.names

    async def reads(value: Any, record: Any) -> None:
        pass

    loop.read(names.labels, Label, "monitor", reads, owner=True)
    loop.read(names.labels, Label, "learner", reads)
    assert list(loop.app.agents) == ["read-labels"]
    with pytest.raises(ValueError, match="has an owner already"):
        loop.read(names.labels, Label, "router", reads, owner=True)
    with pytest.raises(ValueError, match="is read as Label, not LabelRequest"):
        loop.read(names.labels, LabelRequest, "router", reads)
