"""The explorer's tables: their definitions, the dialect's full-text index, and row <-> column values.

The tables hold what :mod:`agents.explorer.rows` folds: ``records`` (one row per event),
``answers``, ``revisions``, ``labelers``, ``skills``, ``alerts``, ``embeddings``, and
``offsets`` (the next offset of each topic partition the indexer read);
:class:`~agents.explorer.store.IndexStore` reads and writes them.

Only full-text search differs between the two databases: SQLite keeps an external-content FTS5
table over ``records.text`` (the text is stored once), PostgreSQL a generated ``tsvector``
column with a GIN index ("simple" configuration: no stemming, like FTS5's unicode61). Times are
integer microseconds since the epoch (UTC) in both, so sorting and equality are exact.
"""

from __future__ import annotations

import re
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
    text,
)

from agents.explorer.rows import EventRow

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


def create_tables(engine: Engine) -> None:
    """Create the tables and the dialect's full-text index when missing (idempotent).

    >>> from sqlalchemy import create_engine, inspect
    >>> engine = create_engine("sqlite://")
    >>> create_tables(engine); create_tables(engine)
    >>> "records_fts" in inspect(engine).get_table_names()
    True
    """
    metadata.create_all(engine)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
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


def drop_tables(engine: Engine) -> None:
    """Drop every table of the index and its full-text index."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TABLE IF EXISTS records_fts"))
    metadata.drop_all(engine)
