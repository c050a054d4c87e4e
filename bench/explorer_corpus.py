"""The explorer benchmark's synthetic data: a million folded events, loop records, and their cached indexes.

:func:`synthetic_rows` makes events as the indexer would have folded them (Zipf-distributed
texts over a fixed vocabulary, seeded, so every run builds the same index);
:func:`build_sqlite`, :func:`build_postgres` and :func:`vectors_for` build the E1 indexes once
and keep them under ``.labelloop/bench-explorer/`` for the next run
(``LABELLOOP_BENCH_EXPLORER_REBUILD=1`` builds them again). :func:`e2_records` is E2's stream of
loop records. :mod:`bench.explorer_index` measures the queries over them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from agents.explorer.rows import EventRow
from agents.explorer.settings import ExplorerSettings
from agents.explorer.store import IndexStore
from agents.explorer.vectors import SimilarityIndex
from bench.workers import REPO

CACHE = REPO / ".labelloop" / "bench-explorer"
TASKS = ("support", "fraud", "moderation", "intent")
CLASSES = ("billing", "tech", "account", "shipping", "refund", "abuse", "spam", "other")
VOCABULARY = 5_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SETTINGS = ExplorerSettings()


def words() -> list[str]:
    """A fixed vocabulary of pronounceable words (word frequencies follow Zipf's law below)."""
    rng = np.random.default_rng(11)
    consonants, vowels = "bcdfghjklmnprstvz", "aeiou"
    made: set[str] = set()
    while len(made) < VOCABULARY:
        n = int(rng.integers(2, 5))
        made.add("".join(consonants[rng.integers(17)] + vowels[rng.integers(5)] for _ in range(n)))
    return sorted(made)


def synthetic_rows(n: int, vocabulary: list[str]) -> Iterator[EventRow]:
    """``n`` events as the indexer would have folded them: texts, predictions, labels, routes."""
    rng = np.random.default_rng(7)
    weights = 1.0 / np.arange(1, VOCABULARY + 1)
    weights /= weights.sum()
    chunk = 50_000
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        lengths = rng.integers(6, 18, size)
        tokens = rng.choice(VOCABULARY, size=int(lengths.sum()), p=weights)
        tasks = rng.integers(0, len(TASKS), size)
        predicted = rng.integers(0, len(CLASSES), size)
        confidence = rng.uniform(0.3, 1.0, size)
        route_draw = rng.uniform(0, 1, size)
        agree = rng.uniform(0, 1, size) < 0.7
        other = rng.integers(0, len(CLASSES), size)
        expert = rng.uniform(0, 1, size) < 0.15
        revised = rng.uniform(0, 1, size) < 0.03
        offset = 0
        for i in range(size):
            number = start + i
            text = " ".join(vocabulary[t] for t in tokens[offset : offset + lengths[i]])
            offset += int(lengths[i])
            draw = route_draw[i]
            route = (
                "accepted"
                if draw < 0.70
                else "low_confidence"
                if draw < 0.90
                else "control"
                if draw < 0.95
                else "audit"
                if draw < 0.98
                else "shed"
            )
            label = CLASSES[predicted[i]]
            human = route not in ("accepted", "shed")
            trusted = label if (not human or agree[i]) else CLASSES[other[i]]
            created = T0 + timedelta(milliseconds=500 * number)
            decided = created + timedelta(seconds=2 if not human else 90)
            revisions = 2 if revised[i] else 1
            event_id = f"ev-{number:07d}"
            task = TASKS[tasks[i]]
            yield EventRow(
                event_id=event_id,
                task=task,
                text=text,
                model_name="bench-model",
                model_version="1",
                predicted=label,
                confidence=float(confidence[i]),
                created_at=created,
                prediction_rank=2,
                prediction_key=f"{number:016x}",
                prediction_json=json.dumps(
                    {"event_id": event_id, "task": task, "input": {"text": text}, "predicted_label": label}
                ),
                trusted=trusted,
                source=("expert" if expert[i] else "crowd") if human or revisions > 1 else "model",
                revision=revisions,
                label_decided_at=decided,
                label_key=f"{number:016x}",
                label_route="accepted" if route == "shed" else route,
                label_shed=route == "shed",
                n_revisions=revisions,
                updated_at=decided,
            )


def build_sqlite(path: Path, n: int, vocabulary: list[str]) -> tuple[IndexStore, float]:
    """The SQLite index of ``n`` events (reused when a previous run built it); build seconds."""
    ok = path.with_suffix(".ok")
    if ok.exists() and path.exists() and not os.environ.get("LABELLOOP_BENCH_EXPLORER_REBUILD"):
        return IndexStore(f"sqlite:///{path}"), 0.0
    for stale in (path, ok, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    started = time.perf_counter()
    store = IndexStore(f"sqlite:///{path}")
    store.bulk_load(synthetic_rows(n, vocabulary))
    with store.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("ANALYZE"))
    ok.write_text(str(n))
    return store, time.perf_counter() - started


def vectors_for(store: IndexStore, folder: Path) -> tuple[SimilarityIndex, float]:
    """The vector index of the SQLite index (built once, saved, loaded by later runs)."""
    if (folder / "meta.json").exists() and not os.environ.get("LABELLOOP_BENCH_EXPLORER_REBUILD"):
        return SimilarityIndex.load(folder), 0.0
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    index = SimilarityIndex(dim=SETTINGS.hashed_dim)
    index.refresh(store, threads=2)
    index.save(folder)
    return index, time.perf_counter() - started


def build_postgres(n: int, vocabulary: list[str]) -> tuple[IndexStore, float, object]:
    """The PostgreSQL index of ``n`` events on the bench's own server (kept between runs)."""
    import psycopg

    from agents.explorer.pgserver import LocalPostgres

    server = LocalPostgres(CACHE / "pg", port=25433)
    server.start()
    name = f"explorer_{n}"
    plain = f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres"
    ok = CACHE / f"pg-{n}.ok"
    url = f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/{name}"
    if ok.exists() and not os.environ.get("LABELLOOP_BENCH_EXPLORER_REBUILD"):
        return IndexStore(url), 0.0, server
    ok.unlink(missing_ok=True)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    started = time.perf_counter()
    store = IndexStore(url)
    store.bulk_load(synthetic_rows(n, vocabulary))
    ok.write_text(str(n))
    return store, time.perf_counter() - started, server


def e2_records(events: int) -> list[tuple[str, str, bytes]]:
    """A loop's records for ``events`` events: every prediction, 30% reviewed (request, 3 answers)."""
    from schemas import CrowdAnswer, Label, LabelProvenance, LabelRequest, PredictionEvent, PredictionInput
    from streams.codec import encode

    vocabulary = words()
    rng = np.random.default_rng(3)
    made: list[tuple[str, str, bytes]] = []
    for n in range(events):
        event_id = f"ev-{n}"
        created = T0 + timedelta(milliseconds=10 * n)
        predicted = CLASSES[n % len(CLASSES)]
        confidence = float(rng.uniform(0.4, 0.99))
        text = " ".join(vocabulary[int(t)] for t in rng.integers(0, 2_000, 10))
        other = CLASSES[(n + 1) % len(CLASSES)]
        prediction = PredictionEvent(
            event_id=event_id,
            task=TASKS[n % len(TASKS)],
            model_name="bench-model",
            model_version="1",
            created_at=created,
            input=PredictionInput(text=text),
            predicted_label=predicted,
            scores={predicted: confidence, other: round(1 - confidence, 9)},
        )
        made.append(("predictions", event_id, encode(prediction)))
        reviewed = n % 10 < 3
        if reviewed:
            request = LabelRequest(
                prediction=prediction,
                route="low_confidence",
                reason="bench",
                priority=0.5,
                uncertainty=0.5,
                requested_at=created,
            )
            made.append(("label-requests", event_id, encode(request)))
            for worker in range(3):
                answer = CrowdAnswer(
                    event_id=event_id,
                    task_id=f"t-{event_id}",
                    pool="simulated",
                    worker_id=f"w{(n + worker) % 50}",
                    label=predicted,
                    time_spent_s=3.0,
                    answered_at=created + timedelta(seconds=worker + 1),
                )
                made.append(("crowd-answers", event_id, encode(answer)))
        label = Label(
            event_id=event_id,
            task=prediction.task,
            label=predicted,
            source="crowd" if reviewed else "model",
            confidence=0.9,
            route="low_confidence" if reviewed else "accepted",
            decided_at=created + timedelta(seconds=5),
            prediction_created_at=created,
            provenance=LabelProvenance(
                model_name="bench-model",
                model_version="1",
                model_label=predicted,
                model_confidence=confidence,
            ),
        )
        made.append(("labels", event_id, encode(label)))
    return made
