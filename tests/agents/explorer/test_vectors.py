"""'More like this': embeddings per task, hashed TF-IDF for the rest, refreshed from the database."""

from __future__ import annotations

from pathlib import Path

from agents.explorer.query import Explorer
from agents.explorer.rows import Facts
from agents.explorer.settings import ExplorerSettings
from agents.explorer.store import IndexStore
from agents.explorer.vectors import SimilarityIndex
from tests.agents.explorer.scenario import event


def index_of(events: list[object]) -> Explorer:
    store = IndexStore("sqlite://")
    facts = Facts()
    for record in events:
        facts.add(record)
    store.apply(facts, {})
    return Explorer(store, ExplorerSettings(hashed_dim=64))


def test_embeddings_decide_the_neighbours_of_an_embedded_event() -> None:
    explorer = index_of(
        [
            event(0, embedding=[1.0, 0.0, 0.0]),
            event(1, embedding=[0.9, 0.1, 0.0]),  # a different text, the nearest embedding
            event(6, embedding=[0.0, 0.0, 1.0]),  # the same text as ev-0, far in the embedding
            event(2, embedding=[1.0, 0.0]),  # another dimension: skipped and counted
        ]
    )
    hits = explorer.similar(event_id="ev-0", k=2)
    assert [hit.row.event_id for hit in hits] == ["ev-1", "ev-6"]
    assert explorer.vectors.skipped["embedding_dimension"] == 1
    # A free-text query has no embedding: it searches the TF-IDF vectors.
    assert explorer.similar(text="card declined shop", k=1)[0].row.event_id in {"ev-0", "ev-6"}


def test_events_with_features_only_have_a_vector_too() -> None:
    explorer = index_of(
        [
            event(0, features={"amount": 120.0, "night": 1.0}),
            event(1, features={"amount": 130.0, "night": 1.0}),
            event(2, features={"country_risk": 9.0}),
        ]
    )
    assert explorer.similar(event_id="ev-0", k=1)[0].row.event_id == "ev-1"


def test_refresh_adds_only_what_is_new_and_save_load_keeps_the_neighbours(tmp_path: Path) -> None:
    explorer = index_of([event(n) for n in range(6)])
    assert explorer.refresh_vectors() == 6
    assert explorer.refresh_vectors() == 0
    facts = Facts()
    facts.add(event(6))
    explorer.store.apply(facts, {})
    assert explorer.refresh_vectors() == 1
    before = explorer.vectors.search_text("card declined", task="support", k=3)
    explorer.vectors.save(tmp_path / "vectors")
    loaded = SimilarityIndex.load(tmp_path / "vectors")
    assert loaded.search_text("card declined", task="support", k=3) == before
    assert loaded.seen_seq == explorer.vectors.seen_seq


def test_a_thousand_near_duplicates_are_all_found() -> None:
    from agents.explorer.vectors import AnnIndex, HashedTfidf, tokens_of_text

    tfidf = HashedTfidf(dim=256)
    texts = [f"The printer on the {n % 7} floor is offline again, ticket {n}" for n in range(1_100)]
    tokens = [tokens_of_text(text) for text in texts]
    for document in tokens:
        tfidf.observe(document)
    import numpy as np

    index = AnnIndex(256)
    index.add(list(range(1, 1_101)), np.stack([tfidf.vector(document) for document in tokens]))
    hits = index.search(tfidf.vector(tokens[0]), 1_000)
    assert len(hits) == 1_000
    assert len({key for key, _ in hits}) == 1_000


def test_latest_many_is_latest_for_each() -> None:
    from tests.agents.explorer.scenario import scenario

    explorer = index_of(scenario())
    many = explorer.latest_many(["ev-3", "ev-10", "missing", "ev-3"])
    assert sorted(many) == ["ev-10", "ev-3"]
    assert many["ev-3"] == explorer.latest("ev-3")
