"""The explorer's database: one SQLAlchemy 2 Core layer over SQLite (FTS5) and PostgreSQL (tsvector + GIN).

:class:`IndexStore` reads and writes the tables of :mod:`agents.explorer.tables`.
:meth:`IndexStore.apply` writes a batch's facts AND the offsets it read in one transaction, so
after a crash the indexer resumes exactly where its last committed batch ended; a redelivered
record folds into the same row (:func:`~agents.explorer.rows.merge` is idempotent) and its child
facts are primary keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, Table, bindparam, create_engine, event, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from agents.explorer.rows import EventRow, Facts
from agents.explorer.tables import (
    CONTENT_TABLES,
    alerts,
    answers,
    create_tables,
    drop_tables,
    embeddings,
    labelers,
    offsets,
    records,
    revisions,
    row_from,
    row_values,
    skills,
    to_micros,
)

_CHUNK = 500


class IndexStore:
    """The explorer's tables on one database (SQLite file or PostgreSQL), created when missing.

    Examples
    --------
    >>> from schemas.examples import human_label, prediction
    >>> store = IndexStore("sqlite://")
    >>> facts = Facts()
    >>> facts.add(prediction("tx-1")); facts.add(human_label(event_id="tx-1"))
    >>> store.apply(facts, {("labelloop.labels", 0): 1})
    1
    >>> store.row("tx-1").trusted, store.offsets()
    ('fraud', {('labelloop.labels', 0): 1})
    >>> store.apply(facts, {})  # the same records again: nothing changes
    0
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, echo=echo, future=True)
        self.dialect = self.engine.dialect.name
        self._sql: dict[tuple[Any, ...], str] = {}
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"the explorer runs on SQLite or PostgreSQL, not {self.dialect}")
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.create()

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def create(self) -> None:
        """Create the tables and the full-text index when missing (idempotent)."""
        create_tables(self.engine)

    def drop(self) -> None:
        """Drop every table of the index (``labelloop explorer rebuild`` starts from nothing)."""
        drop_tables(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    def _insert(self, table: Table) -> Any:
        return (sqlite.insert if self.is_sqlite else postgresql.insert)(table)

    def _upsert_sql(self, table: Table, names: Sequence[str], conflict: Sequence[str], update: bool) -> str:
        """``INSERT ... ON CONFLICT`` as both databases spell it, in the driver's own parameter style.

        The indexer's writes go straight to the driver's ``executemany`` with it: SQLAlchemy's
        per-row parameter processing was a third of the indexer's time, and these columns
        need none (ints, floats, strings, bools, bytes).
        """
        key = (table.name, tuple(names), tuple(conflict), update)
        cached = self._sql.get(key)
        if cached is not None:
            return cached
        markers = [f":{name}" if self.is_sqlite else f"%({name})s" for name in names]
        quoted = [f'"{name}"' for name in names]
        sql = (
            f"INSERT INTO {table.name} ({', '.join(quoted)}) VALUES ({', '.join(markers)}) "
            f"ON CONFLICT ({', '.join(conflict)}) "
        )
        if update:
            sql += "DO UPDATE SET " + ", ".join(f'"{n}" = excluded."{n}"' for n in names if n not in conflict)
        else:
            sql += "DO NOTHING"
        self._sql[key] = sql
        return sql

    def load_rows(self, conn: Connection, event_ids: Iterable[str]) -> dict[str, tuple[int, int, EventRow]]:
        """The stored rows of ``event_ids`` (id, vector_seq, row), chunked to keep each IN list short."""
        found: dict[str, tuple[int, int, EventRow]] = {}
        query = select(records).where(records.c.event_id.in_(bindparam("ids", expanding=True)))
        for chunk in _chunks(list(event_ids), _CHUNK):
            for mapping in conn.execute(query, {"ids": chunk}).mappings():
                found[mapping["event_id"]] = (
                    int(mapping["id"]),
                    int(mapping["vector_seq"]),
                    row_from(mapping),
                )
        return found

    def apply(self, facts: Facts, read_up_to: Mapping[tuple[str, int], int]) -> int:
        """Fold ``facts`` into the index and record ``read_up_to`` in one transaction; rows changed.

        ``read_up_to`` maps (topic, partition) to the next offset to read.
        """
        with self.engine.begin() as conn:
            changed = self._apply_rows(conn, facts.rows)
            self._apply_children(conn, facts)
            if read_up_to:
                statement = self._insert(offsets)
                statement = statement.on_conflict_do_update(
                    index_elements=[offsets.c.topic, offsets.c.partition],
                    set_={"next_offset": statement.excluded.next_offset},
                )
                conn.execute(
                    statement,
                    [
                        {"topic": topic, "partition": partition, "next_offset": offset}
                        for (topic, partition), offset in read_up_to.items()
                    ],
                )
        return changed

    def _apply_rows(self, conn: Connection, incoming: Mapping[str, EventRow]) -> int:
        if not incoming:
            return 0
        from agents.explorer.rows import merge

        stored = self.load_rows(conn, incoming)
        writes: list[dict[str, Any]] = []
        text_changes: list[tuple[str, str | None, str | None]] = []
        next_seq: int | None = None
        for event_id, row in incoming.items():
            before = stored.get(event_id)
            merged = row if before is None else merge(before[2], row)
            if before is not None and merged == before[2]:
                continue
            values = row_values(merged)
            seen = (before[2].listed, before[2].text, before[2].has_embedding) if before else None
            if seen != (merged.listed, merged.text, merged.has_embedding):
                if next_seq is None:
                    next_seq = int(
                        conn.execute(select(func.coalesce(func.max(records.c.vector_seq), 0))).scalar_one()
                    )
                next_seq += 1
                values["vector_seq"] = next_seq
            else:
                values["vector_seq"] = before[1] if before else 0
            writes.append(values)
            old_text = before[2].text if before is not None else None
            if merged.text != old_text:
                text_changes.append((event_id, old_text, merged.text))
        if not writes:
            return 0
        conn.exec_driver_sql(self._upsert_sql(records, list(writes[0]), ["event_id"], True), writes)
        if self.is_sqlite and text_changes:
            ids = {event_id: stored[event_id][0] for event_id, _, _ in text_changes if event_id in stored}
            missing = [event_id for event_id, _, _ in text_changes if event_id not in ids]
            query = select(records.c.event_id, records.c.id).where(
                records.c.event_id.in_(bindparam("ids", expanding=True))
            )
            for chunk in _chunks(missing, _CHUNK):
                ids.update({event_id: int(rowid) for event_id, rowid in conn.execute(query, {"ids": chunk})})
            deletes = [{"id": ids[e], "text": old} for e, old, _ in text_changes if old is not None]
            inserts = [{"id": ids[e], "text": new} for e, _, new in text_changes if new is not None]
            if deletes:
                conn.execute(
                    text("INSERT INTO records_fts(records_fts, rowid, text) VALUES ('delete', :id, :text)"),
                    deletes,
                )
            if inserts:
                conn.execute(text("INSERT INTO records_fts(rowid, text) VALUES (:id, :text)"), inserts)
        return len(writes)

    def _apply_children(self, conn: Connection, facts: Facts) -> None:
        def ignore(table: Table, rows: Sequence[dict[str, Any]]) -> None:
            if rows:
                keys = [column.name for column in table.primary_key.columns]
                conn.exec_driver_sql(self._upsert_sql(table, list(rows[0]), keys, False), list(rows))

        ignore(
            answers,
            [
                {
                    "event_id": a.event_id,
                    "worker_id": a.worker_id,
                    "task_id": a.task_id,
                    "answered_at": to_micros(a.answered_at),
                    "label": a.label,
                    "golden_label": a.golden_label,
                    "pool": a.pool,
                    "tier": a.tier,
                }
                for a in facts.answers
            ],
        )
        ignore(
            revisions,
            [
                {
                    "event_id": r.event_id,
                    "revision": r.revision,
                    "key": r.key,
                    "decided_at": to_micros(r.decided_at),
                    "label_json": r.label_json,
                }
                for r in facts.revisions
            ],
        )
        ignore(labelers, [{"event_id": e, "worker_id": w} for e, w in sorted(facts.labelers)])
        ignore(
            alerts,
            [
                {
                    "alert_id": a.alert_id,
                    "detector": a.detector,
                    "task": a.task,
                    "signal": a.signal,
                    "predicted_class": a.predicted_class,
                    "detected_at": to_micros(a.detected_at),
                    "alert_json": a.alert_json,
                }
                for a in facts.alerts
            ],
        )
        import numpy as np

        ignore(
            embeddings,
            [
                {
                    "event_id": event_id,
                    "task": task,
                    "dim": len(vector),
                    "vector": np.asarray(vector, dtype=np.float32).tobytes(),
                }
                for event_id, (task, vector) in facts.embeddings.items()
            ],
        )
        if facts.skills:
            latest: dict[str, Any] = {}
            for skill in facts.skills:
                if skill.worker_id not in latest or skill.key > latest[skill.worker_id].key:
                    latest[skill.worker_id] = skill
            statement = self._insert(skills)
            statement = statement.on_conflict_do_update(
                index_elements=[skills.c.worker_id],
                set_={
                    "key": statement.excluded.key,
                    "accuracy": statement.excluded.accuracy,
                    "skill_json": statement.excluded.skill_json,
                },
                where=statement.excluded.key > skills.c.key,
            )
            conn.execute(
                statement,
                [
                    {
                        "worker_id": s.worker_id,
                        "key": s.key,
                        "accuracy": s.accuracy,
                        "skill_json": s.skill_json,
                    }
                    for s in latest.values()
                ],
            )

    def row(self, event_id: str) -> EventRow | None:
        """The stored row of one event."""
        with self.engine.connect() as conn:
            found = self.load_rows(conn, [event_id])
        return found[event_id][2] if event_id in found else None

    def offsets(self) -> dict[tuple[str, int], int]:
        """The next offset of each partition the index has read."""
        with self.engine.connect() as conn:
            return {
                (topic, int(partition)): int(offset)
                for topic, partition, offset in conn.execute(select(offsets))
            }

    def count(self) -> int:
        """How many events are listed."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(records.c.listed)).scalar_one())

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every table's content, sorted, without surrogate ids: two equal indexes dump equal."""
        dumped: dict[str, list[tuple[Any, ...]]] = {}
        with self.engine.connect() as conn:
            for table in CONTENT_TABLES:
                columns = [column for column in table.c if column.name not in ("id", "vector_seq")]
                dumped[table.name] = sorted(
                    (tuple(row) for row in conn.execute(select(*columns))), key=lambda row: repr(row)
                )
        return dumped

    def bulk_load(self, rows: Iterable[EventRow], *, batch: int = 20_000) -> int:
        """Insert new rows fast (a benchmark's million events): no merge, one statement per batch.

        PostgreSQL gets COPY; SQLite an executemany per batch in one transaction, then the
        FTS index rebuilt from the content table in one pass.
        """
        total = 0
        names = [column.name for column in records.c if column.name not in ("id", "tsv")]
        if self.is_sqlite:
            with self.engine.begin() as conn:
                for chunk in _chunks_iter(rows, batch):
                    conn.execute(
                        records.insert(),
                        [row_values(row) | {"vector_seq": total + n + 1} for n, row in enumerate(chunk)],
                    )
                    total += len(chunk)
                conn.execute(text("INSERT INTO records_fts(records_fts) VALUES ('rebuild')"))
            return total
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            with cursor.copy(f"COPY records ({', '.join(names)}) FROM STDIN") as copy:
                for row in rows:
                    values = row_values(row) | {"vector_seq": total + 1}
                    copy.write_row([values[name] for name in names])
                    total += 1
            raw.commit()
        finally:
            raw.close()
        with self.engine.begin() as conn:
            conn.execute(text("ANALYZE records"))
        return total

    def bulk_embeddings(self, vectors: Iterable[tuple[str, str, bytes, int]], *, batch: int = 20_000) -> None:
        """Insert (event_id, task, float32 bytes, dim) rows fast (the benchmark's embeddings)."""
        with self.engine.begin() as conn:
            for chunk in _chunks_iter(vectors, batch):
                conn.execute(
                    embeddings.insert(),
                    [{"event_id": e, "task": t, "vector": v, "dim": d} for e, t, v, d in chunk],
                )


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # WAL: the worker's API reads while the indexer writes; NORMAL: a crash loses at most the
    # last transactions, which the indexer reads again from its stored offsets.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _chunks_iter(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
