"""'More like this': a vector per event and a per-task approximate nearest-neighbour index (usearch HNSW).

An event's vector is its producer's ``input.embedding`` when it has one (the dimension is fixed
per task by the first embedding the index sees; another dimension is skipped and counted), and
always a hashed TF-IDF vector of its text or features, so every event (and a free-text query)
has one: words (features as ``name`` and ``name=<log2 bucket>`` tokens) are hashed with CRC-32
into ``dim`` signed buckets (the hashing trick: no vocabulary to keep), weighted ``1 + log tf``
times the task's smoothed inverse document frequency, and L2-normalised; cosine similarity is
then the score.

Why usearch over faiss-cpu, measured on this 2-core machine (shared, so noisy) with 50,000
clustered, L2-normalised 256-d vectors, one thread, HNSW M=16, ef_construction=ef_search=64,
k=20, in one process, twice: usearch f16 (inner product) built 10,387 and 6,059 vectors/s,
answered in 0.11-0.12 ms p50 / 0.16 ms p95 with recall@20 0.998; faiss ``IndexHNSWFlat`` built
8,123/s, 0.12 ms p50 / 0.24 ms p95, recall 0.996, and keeps float32 (twice usearch f16's
memory). usearch's ``cos`` metric was 10x slower than inner product on unit vectors here, so
vectors are normalised once and searched by inner product. Beyond speed, usearch takes our
uint64 keys (``records.id``) directly, removes and replaces a key, reads a vector back by key
(``get``: "more like this" of an indexed event needs no recomputation) and saves one file;
faiss needs an ``IndexIDMap2`` wrapper and its HNSW cannot remove.

The index is derived state: it is built from the database (:meth:`SimilarityIndex.refresh`
reads every row with a ``vector_seq`` past what it holds), so every process serving the API
(the worker, the CLI) has its own, and a rebuilt database gives the same neighbours.
"""

from __future__ import annotations

import json
import logging
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select

from agents.explorer.store import IndexStore
from agents.explorer.tables import embeddings, records

log = logging.getLogger(__name__)
_WORD = re.compile(r"\w+", re.UNICODE)
Vector = NDArray[np.float32]
#: Indexes up to this size are searched exactly (every vector compared): exact and still fast.
EXACT_BELOW = 20_000


def tokens_of_text(text: str) -> list[str]:
    """The words TF-IDF counts (lower case; numbers kept).

    >>> tokens_of_text("Card DECLINED at 3am, card!")
    ['card', 'declined', 'at', '3am', 'card']
    """
    return _WORD.findall(text.lower())


def tokens_of_features(features: Mapping[str, float]) -> list[str]:
    """Features as tokens: the name, and the name with its value's signed log2 bucket.

    >>> tokens_of_features({"amount": 12.5, "night": 0.0})
    ['amount', 'amount=+3', 'night', 'night=0']
    """
    found: list[str] = []
    for name, value in sorted(features.items()):
        bucket = "0" if value == 0 else f"{'+' if value > 0 else '-'}{int(math.log2(abs(value) + 1))}"
        found += [name, f"{name}={bucket}"]
    return found


def tokens_of_prediction(prediction_json: str | None, text: str | None) -> list[str]:
    """An event's tokens: its text (or image URL), else its features."""
    if text:
        return tokens_of_text(text)
    if prediction_json is None:
        return []
    features = json.loads(prediction_json).get("input", {}).get("features") or {}
    return tokens_of_features(features)


def _bucket(token: str, dim: int) -> tuple[int, float]:
    h = zlib.crc32(token.encode("utf-8"))
    return h % dim, (1.0 if (h >> 31) & 1 else -1.0)


@dataclass
class HashedTfidf:
    """Hashed TF-IDF over one task's documents (document frequencies per bucket, no vocabulary).

    Examples
    --------
    >>> tfidf = HashedTfidf(dim=64)
    >>> for text in ["card declined", "card stolen", "refund please"]:
    ...     tfidf.observe(tokens_of_text(text))
    >>> a, b, c = (tfidf.vector(tokens_of_text(t)) for t in ["card declined", "declined card", "refund"])
    >>> round(float(a @ b), 3), float(a @ c) < 0.5
    (1.0, True)
    """

    dim: int
    n_docs: int = 0
    df: NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        self.df = np.zeros(self.dim, dtype=np.float64)

    def observe(self, tokens: Sequence[str]) -> None:
        """Count one document's buckets in the document frequencies."""
        self.n_docs += 1
        for index in {_bucket(token, self.dim)[0] for token in tokens}:
            self.df[index] += 1

    def vector(self, tokens: Sequence[str]) -> Vector:
        """The L2-normalised TF-IDF vector (all zeros when ``tokens`` is empty)."""
        vector = np.zeros(self.dim, dtype=np.float32)
        if not tokens:
            return vector
        idf = np.log((1.0 + self.n_docs) / (1.0 + self.df)) + 1.0
        for token, count in Counter(tokens).items():
            index, sign = _bucket(token, self.dim)
            vector[index] += sign * (1.0 + math.log(count)) * idf[index]
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector


class AnnIndex:
    """One usearch HNSW index keyed by ``records.id``: inner product over unit vectors (cosine), f16."""

    def __init__(self, dim: int) -> None:
        from usearch.index import Index

        self.dim = dim
        self.index = Index(
            ndim=dim, metric="ip", dtype="f16", connectivity=16, expansion_add=64, expansion_search=64
        )

    def __len__(self) -> int:
        return len(self.index)

    def add(self, keys: Sequence[int], vectors: Vector, *, threads: int = 1) -> None:
        if len(keys):
            vectors = _unit(vectors)
            present = np.asarray(self.index.contains(np.asarray(keys, dtype=np.uint64))).reshape(-1)
            if present.any():  # an event whose text or embedding changed: its vector is replaced
                self.index.remove(np.asarray(keys, dtype=np.uint64)[present])
            self.index.add(np.asarray(keys, dtype=np.uint64), vectors, threads=threads)

    def get(self, key: int) -> Vector | None:
        if key not in self.index:
            return None
        found = self.index.get(key)
        return None if found is None else np.asarray(found, dtype=np.float32).reshape(-1)

    def search(self, vector: Vector, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest keys and their similarity, best first.

        HNSW returns fewer than ``k`` among many near-duplicates (a thousand tickets of one
        outage: their graph neighbourhoods are each other, explorer_bulk's E3 saw 412 of 1,000),
        so a small index, a ``k`` that is a large share of it, or a short answer is searched exactly
        (brute force over f16 vectors: well under a millisecond per thousand).
        """
        size = len(self.index)
        if size == 0 or not np.any(vector):
            return []
        want = min(k, size)
        exact = size <= EXACT_BELOW or want * 10 >= size
        query = _unit(vector)
        matches = self.index.search(query, want, exact=exact)
        if not exact and len(matches.keys) < want:
            matches = self.index.search(query, want, exact=True)
        pairs = zip(matches.keys, matches.distances, strict=True)
        return [(int(key), 1.0 - float(distance)) for key, distance in pairs]


def _unit(vectors: Vector) -> Vector:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.asarray(
        np.where(norms > 0, vectors / np.where(norms > 0, norms, 1.0), vectors), dtype=np.float32
    )


@dataclass
class SimilarityIndex:
    """Every task's ANN indexes (TF-IDF, and embeddings where producers send them), fed from the database.

    Examples
    --------
    >>> from agents.explorer.rows import Facts
    >>> from schemas.examples import prediction
    >>> store = IndexStore("sqlite://")
    >>> facts = Facts()
    >>> for n, text in enumerate(["card declined", "card declined again", "refund please"]):
    ...     event = prediction(f"tx-{n}")
    ...     event = event.model_copy(update={"input": event.input.model_copy(update={"text": text})})
    ...     facts.add(event)
    >>> _ = store.apply(facts, {})
    >>> index = SimilarityIndex(dim=64)
    >>> index.refresh(store)
    3
    >>> [key for key, _ in index.search_text("declined card", task="default", k=2)]
    [1, 2]
    """

    dim: int = 256
    tfidf: dict[str, HashedTfidf] = field(default_factory=dict)
    text_index: dict[str, AnnIndex] = field(default_factory=dict)
    embedding_index: dict[str, AnnIndex] = field(default_factory=dict)
    #: The highest ``records.vector_seq`` folded in.
    seen_seq: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def refresh(self, store: IndexStore, *, threads: int = 1, chunk: int = 50_000) -> int:
        """Add every row written since the last refresh; how many were added."""
        added = 0
        while True:
            query = (
                select(
                    records.c.id,
                    records.c.task,
                    records.c.text,
                    records.c.prediction_json,
                    records.c.has_embedding,
                    records.c.vector_seq,
                    embeddings.c.vector,
                )
                .outerjoin(embeddings, embeddings.c.event_id == records.c.event_id)
                .where(records.c.vector_seq > self.seen_seq, records.c.listed)
                .order_by(records.c.vector_seq)
                .limit(chunk)
            )
            with store.engine.connect() as conn:
                batch = list(conn.execute(query))
            if not batch:
                return added
            self._add(batch, threads=threads)
            added += len(batch)
            self.seen_seq = int(batch[-1].vector_seq)

    def _add(self, batch: Iterable[Any], *, threads: int) -> None:
        by_task: dict[str, list[tuple[int, list[str]]]] = {}
        embedded: dict[str, list[tuple[int, bytes]]] = {}
        for row in batch:
            by_task.setdefault(row.task, []).append(
                (int(row.id), tokens_of_prediction(row.prediction_json, row.text))
            )
            if row.vector is not None:
                embedded.setdefault(row.task, []).append((int(row.id), row.vector))
        for task, documents in by_task.items():
            tfidf = self.tfidf.setdefault(task, HashedTfidf(self.dim))
            for _, tokens in documents:
                tfidf.observe(tokens)
            keep = [(key, tokens) for key, tokens in documents if tokens]
            if not keep:
                continue
            vectors = np.stack([tfidf.vector(tokens) for _, tokens in keep])
            self.text_index.setdefault(task, AnnIndex(self.dim)).add(
                [k for k, _ in keep], vectors, threads=threads
            )
        for task, rows in embedded.items():
            dim = len(rows[0][1]) // 4
            index = self.embedding_index.setdefault(task, AnnIndex(dim))
            fitting = [(key, raw) for key, raw in rows if len(raw) // 4 == index.dim]
            if len(fitting) < len(rows):
                self.skipped["embedding_dimension"] += len(rows) - len(fitting)
                log.warning(
                    "%d embeddings of task %s are not %d-d: not indexed",
                    len(rows) - len(fitting),
                    task,
                    index.dim,
                )
            if fitting:
                vectors = np.stack([np.frombuffer(raw, dtype=np.float32) for _, raw in fitting])
                index.add([key for key, _ in fitting], vectors, threads=threads)

    def search_key(self, key: int, task: str, *, k: int) -> list[tuple[int, float]]:
        """The neighbours of an indexed event (by its embedding if it has one, else its TF-IDF vector)."""
        for indexes in (self.embedding_index, self.text_index):
            index = indexes.get(task)
            vector = index.get(key) if index is not None else None
            if index is not None and vector is not None:
                return [(hit, score) for hit, score in index.search(vector, k + 1) if hit != key][:k]
        return []

    def search_text(self, text: str, *, task: str | None, k: int) -> list[tuple[int, float]]:
        """The events nearest a free-text query, in ``task`` or in every task (merged by score)."""
        tasks = [task] if task is not None else sorted(self.text_index)
        hits: list[tuple[int, float]] = []
        tokens = tokens_of_text(text)
        for name in tasks:
            index, tfidf = self.text_index.get(name), self.tfidf.get(name)
            if index is not None and tfidf is not None:
                hits += index.search(tfidf.vector(tokens), k)
        return sorted(hits, key=lambda hit: (-hit[1], hit[0]))[:k]

    def save(self, folder: Any) -> None:
        """Write the indexes and the TF-IDF counts to ``folder`` (a benchmark reuses them)."""
        from pathlib import Path

        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {
            "dim": self.dim,
            "seen_seq": self.seen_seq,
            "tasks": {},
            "embedding_tasks": {},
        }
        for n, (task, index) in enumerate(sorted(self.text_index.items())):
            index.index.save(str(path / f"text-{n}.usearch"))
            np.save(path / f"df-{n}.npy", self.tfidf[task].df)
            meta["tasks"][task] = {"n": n, "n_docs": self.tfidf[task].n_docs}
        for n, (task, index) in enumerate(sorted(self.embedding_index.items())):
            index.index.save(str(path / f"embedding-{n}.usearch"))
            meta["embedding_tasks"][task] = {"n": n, "dim": index.dim}
        (path / "meta.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, folder: Any) -> SimilarityIndex:
        """The index :meth:`save` wrote."""
        from pathlib import Path

        path = Path(folder)
        meta = json.loads((path / "meta.json").read_text())
        loaded = cls(dim=int(meta["dim"]), seen_seq=int(meta["seen_seq"]))
        for task, info in meta["tasks"].items():
            index = AnnIndex(loaded.dim)
            index.index.load(str(path / f"text-{info['n']}.usearch"))
            loaded.text_index[task] = index
            tfidf = HashedTfidf(loaded.dim, n_docs=int(info["n_docs"]))
            tfidf.df = np.load(path / f"df-{info['n']}.npy")
            loaded.tfidf[task] = tfidf
        for task, info in meta["embedding_tasks"].items():
            index = AnnIndex(int(info["dim"]))
            index.index.load(str(path / f"embedding-{info['n']}.usearch"))
            loaded.embedding_index[task] = index
        return loaded
