"""The explorer benchmark's data and measured queries on a tiny index (E1's path without its million)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.explorer.query import Explorer
from bench.explorer_corpus import SETTINGS, build_sqlite, synthetic_rows, vectors_for, words
from bench.explorer_index import filters, time_queries


def test_the_synthetic_events_are_the_same_every_run() -> None:
    vocabulary = words()
    first = [row.text for row in synthetic_rows(50, vocabulary)]
    assert first == [row.text for row in synthetic_rows(50, vocabulary)]
    assert len(set(first)) == 50


def test_a_built_index_is_reused_and_answers_the_measured_queries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LABELLOOP_BENCH_EXPLORER_REBUILD", raising=False)
    vocabulary = words()
    path = tmp_path / "sqlite-300.sqlite3"
    store, built_s = build_sqlite(path, 300, vocabulary)
    assert built_s > 0
    assert store.count() == 300
    store.dispose()
    store, reused_s = build_sqlite(path, 300, vocabulary)
    assert reused_s == 0.0
    assert store.count() == 300
    explorer = Explorer(store, SETTINGS)
    explorer.vectors, vectors_s = vectors_for(store, tmp_path / "vectors-300")
    assert vectors_s > 0
    assert vectors_for(store, tmp_path / "vectors-300")[1] == 0.0
    searches, similar, _ = time_queries(explorer, vocabulary, 300)  # every similar query finds neighbours
    assert len(searches) == len(similar) == len(filters(vocabulary, 200))
    store.dispose()
