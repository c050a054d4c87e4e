"""The index's database on SQLite and on a real PostgreSQL: idempotent writes, equal dumps."""

from __future__ import annotations

import random

from agents.explorer.rows import Facts
from agents.explorer.store import IndexStore
from agents.explorer.tables import fts_words
from tests.agents.explorer.scenario import scenario


def facts_of(records: list[object]) -> Facts:
    facts = Facts()
    for record in records:
        facts.add(record)
    return facts


def test_a_redelivered_batch_changes_nothing(store_url: str) -> None:
    store = IndexStore(store_url)
    records = scenario()
    assert store.apply(facts_of(records), {("t", 0): len(records)}) == 12
    before = store.dump()
    assert store.apply(facts_of(records), {("t", 0): len(records)}) == 0
    assert store.dump() == before
    assert store.offsets() == {("t", 0): len(records)}
    store.dispose()


def test_batches_in_any_order_and_split_give_the_same_index(store_url: str, tmp_path_factory: object) -> None:
    records = scenario()
    one = IndexStore(store_url)
    one.apply(facts_of(records), {})
    expected = one.dump()
    one.drop()
    one.create()
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    for start in range(0, len(shuffled), 7):  # small batches, reverse-chronological mix
        one.apply(facts_of(shuffled[start : start + 7]), {})
    assert one.dump() == expected
    assert one.count() == 12
    one.dispose()


def test_the_latest_skill_wins_whatever_the_order(store_url: str) -> None:
    store = IndexStore(store_url)
    skills = [r for r in scenario() if type(r).__name__ == "WorkerSkill"]
    store.apply(facts_of([skills[1]]), {})
    store.apply(facts_of([skills[0]]), {})
    assert [row[2] for row in store.dump()["skills"]] == [0.93]
    store.dispose()


def test_sql_looking_text_is_only_words() -> None:
    assert fts_words("'); DROP TABLE records; --") == ["drop", "table", "records"]
    assert fts_words('NEAR("a" b) * ^ :') == ["near", "a", "b"]
