"""The explorer's database: one SQLAlchemy 2 Core layer over SQLite (FTS5) and PostgreSQL (tsvector + GIN).

The tables hold what :mod:`agents.explorer.rows` folds: ``records`` (one row per event),
``answers``, ``revisions``, ``labelers``, ``skills``, ``alerts``, ``embeddings``, and
``offsets`` (the next offset of each topic partition the indexer read). :meth:`IndexStore.apply`
writes a batch's facts AND the offsets it read in one transaction, so after a crash the indexer
resumes exactly where its last committed batch ended; a redelivered record folds into the same
row (:func:`~agents.explorer.rows.merge` is idempotent) and its child facts are primary keys.

Only full-text search differs between the two databases: SQLite keeps an external-content FTS5
table over ``records.text`` (the text is stored once), PostgreSQL a generated ``tsvector``
column with a GIN index ("simple" configuration: no stemming, like FTS5's unicode61). Times are
integer microseconds since the epoch (UTC) in both, so sorting and equality are exact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from agents.explorer.rows import EventRow, Facts

metadata = MetaData()

records = Table(
    "records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("task", String(128)),
    Column("text", Text),
    Column("model_name", String(128)),
    Column("model_version", String(64)),
    Column("predicted", String(256)),
    Column("confidence", Float),
    Column("created_at", BigInteger),
    Column("prediction_rank", Integer, nullable=False),
    Column("prediction_key", String(16), nullable=False),
    Column("prediction_json", Text),
    Column("has_embedding", Boolean, nullable=False),
    Column("trusted", String(256)),
    Column("source", String(16)),
    Column("revision", Integer),
    Column("label_decided_at", BigInteger),
    Column("label_key", String(16), nullable=False),
    Column("label_route", String(32)),
    Column("label_reason", Text),
    Column("label_routing_json", Text),
    Column("label_shed", Boolean, nullable=False),
    Column("n_revisions", Integer, nullable=False),
    Column("requested_at", BigInteger),
    Column("request_key", String(16), nullable=False),
    Column("request_route", String(32)),
    Column("request_routing_json", Text),
    Column("updated_at", BigInteger),
    # Derived from the above, stored so filters and facets are plain indexed columns.
    Column("route", String(32)),
    Column("disagree", Boolean),
    Column("listed", Boolean, nullable=False),
    #: Raised whenever what the vector index sees of the row changes (text, embedding, listed):
    #: :class:`~agents.explorer.vectors.SimilarityIndex` reads the rows past the last it holds.
    Column("vector_seq", BigInteger, nullable=False),
    Index("records_vector_seq", "vector_seq"),
    Index("records_task_updated", "task", "updated_at"),
    Index("records_updated", "updated_at"),
    Index("records_created", "created_at"),
    Index("records_predicted", "predicted"),
    Index("records_trusted", "trusted"),
    Index("records_route", "route"),
    Index("records_source", "source"),
    Index("records_confidence", "confidence"),
    Index("records_revisions", "n_revisions"),
)
answers = Table(
    "answers",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("worker_id", String(128), primary_key=True),
    Column("task_id", String(128), primary_key=True),
    Column("answered_at", BigInteger, primary_key=True),
    Column("label", String(256), nullable=False),
    Column("golden_label", String(256)),
    Column("pool", String(128), nullable=False),
    Column("tier", String(16), nullable=False),
)
revisions = Table(
    "revisions",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("key", String(16), primary_key=True),
    Column("decided_at", BigInteger, nullable=False),
    Column("label_json", Text, nullable=False),
)
labelers = Table(
    "labelers",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("worker_id", String(128), primary_key=True),
    Index("labelers_worker", "worker_id", "event_id"),
)
skills = Table(
    "skills",
    metadata,
    Column("worker_id", String(128), primary_key=True),
    Column("key", String(64), nullable=False),
    Column("accuracy", Float, nullable=False),
    Column("skill_json", Text, nullable=False),
)
alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", String(256), primary_key=True),
    Column("detector", String(128), nullable=False),
    Column("task", String(128), nullable=False),
    Column("signal", String(32), nullable=False),
    Column("predicted_class", String(256)),
    Column("detected_at", BigInteger, nullable=False),
    Column("alert_json", Text, nullable=False),
)
embeddings = Table(
    "embeddings",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("task", String(128), nullable=False),
    Column("dim", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
)
offsets = Table(
    "offsets",
    metadata,
    Column("topic", String(256), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)

#: The tables whose content is the index (``offsets`` says how far it read, not what it holds).
CONTENT_TABLES = (records, answers, revisions, labelers, skills, alerts, embeddings)
_ROW_FIELDS = tuple(f.name for f in fields(EventRow))
_TIME_FIELDS = frozenset({"created_at", "label_decided_at", "requested_at", "updated_at"})
_CHUNK = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    """A tz-aware datetime as integer microseconds since the epoch.

    >>> to_micros(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC))
    1000000
    """
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    """The inverse of :func:`to_micros` (UTC).

    >>> from_micros(1_000_000).isoformat()
    '1970-01-01T00:00:01+00:00'
    """
    from datetime import timedelta

    return _EPOCH + timedelta(microseconds=micros)


def row_values(row: EventRow) -> dict[str, Any]:
    """The ``records`` columns of ``row`` (without ``id``)."""
    values: dict[str, Any] = {}
    for name in _ROW_FIELDS:
        value = getattr(row, name)
        if name in _TIME_FIELDS and value is not None:
            value = to_micros(value)
        values[name] = value
    values["route"] = row.route
    values["disagree"] = row.disagree
    values["listed"] = row.listed
    return values


def row_from(mapping: Any) -> EventRow:
    """The EventRow of a ``records`` row."""
    values: dict[str, Any] = {}
    for name in _ROW_FIELDS:
        value = mapping[name]
        if name in _TIME_FIELDS and value is not None:
            value = from_micros(int(value))
        elif name in ("has_embedding", "label_shed"):
            value = bool(value)
        values[name] = value
    return EventRow(**values)


_FTS_WORD = re.compile(r"\w+", re.UNICODE)


def fts_words(query: str) -> list[str]:
    """The words of a free-text query, as both databases' full-text search splits them.

    Punctuation and operators are dropped, so a query is never FTS or SQL syntax.

    >>> fts_words('refund "please" OR; DROP TABLE records --')
    ['refund', 'please', 'or', 'drop', 'table', 'records']
    """
    return [word.lower() for word in _FTS_WORD.findall(query)][:32]


class IndexStore:
    """The explorer's tables on one database (SQLite file or PostgreSQL), created when missing.

    Examples
    --------
    >>> from tests.factories import human_label, prediction
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
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            if self.is_sqlite:
                conn.execute(
                    text(
                        "CREATE VIRTUAL TABLE IF NOT EXISTS records_fts USING fts5("
                        "text, content='records', content_rowid='id', tokenize='unicode61')"
                    )
                )
            else:
                conn.execute(
                    text(
                        "ALTER TABLE records ADD COLUMN IF NOT EXISTS tsv tsvector GENERATED ALWAYS AS "
                        "(to_tsvector('simple'::regconfig, coalesce(text, ''))) STORED"
                    )
                )
                conn.execute(text("CREATE INDEX IF NOT EXISTS records_tsv ON records USING gin (tsv)"))

    def drop(self) -> None:
        """Drop every table of the index (``labelloop explorer rebuild`` starts from nothing)."""
        with self.engine.begin() as conn:
            if self.is_sqlite:
                conn.execute(text("DROP TABLE IF EXISTS records_fts"))
        metadata.drop_all(self.engine)

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
