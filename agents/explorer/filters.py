"""The explorer's filter: the pydantic model parsed from query parameters, and the SQL it becomes.

Bad input is a ``ValidationError`` (a 400 in the API) before any SQL is built; every value reaches
the database as a bound parameter and free text only as the words
:func:`~agents.explorer.tables.fts_words` keeps. :class:`~agents.explorer.query.Explorer` turns a
filter into WHERE clauses with :func:`conditions` and into an ORDER BY with :func:`ordering`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import ColumnElement, column, exists, func, literal_column, select, text, true
from sqlalchemy.engine import Connection

from agents.explorer.rows import ExplorerRoute
from agents.explorer.tables import alerts, fts_words, labelers, records, to_micros

#: What ``sort`` may name, and the column it orders by.
SORTS = {
    "updated": records.c.updated_at,
    "created": records.c.created_at,
    "confidence": records.c.confidence,
    "revisions": records.c.n_revisions,
    "event_id": records.c.event_id,
}
MAX_PER_PAGE = 500


class ExplorerFilter(BaseModel):
    """Which events to list: every field optional; parsed from query parameters by :meth:`from_query`.

    ``since``/``until`` bound the prediction's ``created_at``; ``drift_window`` names a drift
    alert (``<detector>@<detected_at>``, as the record page and ``alerts`` list them) and keeps
    the events of its task (and class, when the alert names one) created from the alert until
    the detector's next alert.

    Examples
    --------
    >>> f = ExplorerFilter.from_query({"q": "refund", "conf_max": "0.7", "disagree": "true", "page": "2"})
    >>> f.q, f.conf_max, f.disagree, f.page
    ('refund', 0.7, True, 2)
    >>> from pydantic import ValidationError
    >>> try:
    ...     ExplorerFilter.from_query({"per_page": "100000"})
    ... except ValidationError as error:
    ...     print(error.errors()[0]["loc"])
    ('per_page',)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    q: str | None = Field(default=None, max_length=512)
    task: str | None = Field(default=None, max_length=128)
    predicted: str | None = Field(default=None, max_length=256)
    trusted: str | None = Field(default=None, max_length=256)
    source: Literal["model", "crowd", "expert"] | None = None
    route: ExplorerRoute | None = None
    conf_min: float | None = Field(default=None, ge=0.0, le=1.0)
    conf_max: float | None = Field(default=None, ge=0.0, le=1.0)
    disagree: bool | None = None
    min_revisions: int | None = Field(default=None, ge=0, le=1_000_000)
    labeler: str | None = Field(default=None, max_length=128)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    drift_window: str | None = Field(default=None, max_length=300)
    sort: str = "updated"
    order: Literal["asc", "desc"] = "desc"
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=50, ge=1, le=MAX_PER_PAGE)

    @field_validator("sort")
    @classmethod
    def _known_sort(cls, sort: str) -> str:
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}")
        return sort

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> Self:
        """The filter of a query string (empty values are absent; unknown names are refused)."""
        return cls.model_validate({name: value for name, value in params.items() if value != ""})


def text_first(f: ExplorerFilter) -> bool:
    """Whether the database must be steered to find the text's rows first (see :func:`filter_column`)."""
    return f.q is not None and bool(fts_words(f.q))


def filter_column(name: str, f: ExplorerFilter, *, is_sqlite: bool) -> ColumnElement[Any]:
    """``records.<name>`` in a filter or an ORDER BY, kept off its index in a text search.

    Neither planner can tell how few rows a text match holds. SQLite, with ``task = ?`` or an
    ORDER BY beside an FTS5 match, walks the task (or time) index over a quarter of a million
    rows testing each against the match (1.3 s over a million events); PostgreSQL ANDs the GIN
    bitmap with a b-tree bitmap of every ``low_confidence`` or ``crowd`` row (40 ms to build).
    An expression the indexes do not cover keeps the match's rows the driver: SQLite's
    documented unary ``+``, and ``coalesce(x, x)`` in PostgreSQL.

    >>> str(filter_column("task", ExplorerFilter(q="refund"), is_sqlite=True))
    '+records.task'
    >>> str(filter_column("task", ExplorerFilter(), is_sqlite=True))
    'records.task'
    """
    if not text_first(f):
        return records.c[name]
    spelled = f"+records.{name}" if is_sqlite else f"coalesce(records.{name}, records.{name})"
    return literal_column(spelled, type_=records.c[name].type)


def ordering(f: ExplorerFilter, *, is_sqlite: bool) -> list[ColumnElement[Any]]:
    """The ORDER BY of a filter: its sort column, then the row id (a stable order between pages)."""
    order = filter_column(SORTS[f.sort].name, f, is_sqlite=is_sqlite)
    if f.order == "asc":
        return [order.asc(), records.c.id.asc()]
    return [order.desc(), records.c.id.desc()]


def conditions(conn: Connection, f: ExplorerFilter, *, is_sqlite: bool) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a filter (bound parameters only)."""

    def c(name: str) -> ColumnElement[Any]:
        return filter_column(name, f, is_sqlite=is_sqlite)

    where: list[ColumnElement[bool]] = [c("listed") == true()]
    if f.q is not None:
        words = fts_words(f.q)
        if words:
            where.append(_text_match(words, is_sqlite=is_sqlite))
    for name in ("task", "predicted", "trusted", "source", "route"):
        value = getattr(f, name)
        if value is not None:
            where.append(c(name) == value)
    if f.conf_min is not None:
        where.append(c("confidence") >= f.conf_min)
    if f.conf_max is not None:
        where.append(c("confidence") <= f.conf_max)
    if f.disagree is not None:
        where.append(c("disagree") == f.disagree)
    if f.min_revisions is not None:
        where.append(c("n_revisions") >= f.min_revisions)
    if f.labeler is not None:
        where.append(
            exists().where(labelers.c.event_id == records.c.event_id, labelers.c.worker_id == f.labeler)
        )
    if f.since is not None:
        where.append(c("created_at") >= to_micros(f.since))
    if f.until is not None:
        where.append(c("created_at") < to_micros(f.until))
    if f.drift_window is not None:
        where += _drift_window(conn, f.drift_window)
    return where


def _text_match(words: list[str], *, is_sqlite: bool) -> ColumnElement[bool]:
    if is_sqlite:
        match = " ".join(f'"{word}"' for word in words)  # implicit AND of quoted words
        fts = text("SELECT rowid FROM records_fts WHERE records_fts MATCH :fts").bindparams(fts=match)
        return records.c.id.in_(fts.columns(column("rowid")))
    return text("records.tsv @@ plainto_tsquery('simple', :fts)").bindparams(fts=" ".join(words))  # type: ignore[return-value]


def _drift_window(conn: Connection, name: str) -> list[ColumnElement[bool]]:
    alert = conn.execute(select(alerts).where(alerts.c.alert_id == name)).mappings().first()
    if alert is None:
        return [records.c.id < 0]  # an unknown window holds no event
    following = conn.execute(
        select(func.min(alerts.c.detected_at)).where(
            alerts.c.detector == alert["detector"], alerts.c.detected_at > alert["detected_at"]
        )
    ).scalar_one()
    where = [records.c.task == alert["task"], records.c.created_at >= alert["detected_at"]]
    if following is not None:
        where.append(records.c.created_at < following)
    if alert["predicted_class"] is not None:
        where.append(records.c.predicted == alert["predicted_class"])
    return where
