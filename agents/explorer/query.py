"""The explorer's queries: search with facets, the record page, "more like this", bulk selections.

:class:`Explorer` is the one facade the JSON API, the CLI and the bulk actions use; it reads
the index :mod:`agents.explorer.store` keeps (never Kafka) and the per-task vector index of
:mod:`agents.explorer.vectors`. Filters are a pydantic model (:class:`ExplorerFilter`) parsed
from query parameters, so bad input is a ``ValidationError`` (a 400 in the API) before any SQL
is built; every value reaches the database as a bound parameter and free text only as the
words :func:`~agents.explorer.store.fts_words` keeps.
"""

from __future__ import annotations

import heapq
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    column,
    exists,
    func,
    literal_column,
    select,
    text,
    true,
)
from sqlalchemy.engine import Connection

from agents.explorer.rows import EventRow, ExplorerRoute
from agents.explorer.settings import ExplorerSettings
from agents.explorer.store import (
    IndexStore,
    alerts,
    answers,
    from_micros,
    fts_words,
    labelers,
    records,
    revisions,
    row_from,
    skills,
    to_micros,
)
from agents.explorer.vectors import SimilarityIndex
from schemas import Label

if TYPE_CHECKING:
    from streams.settings import Settings

#: What ``sort`` may name, and the column it orders by.
SORTS = {
    "updated": records.c.updated_at,
    "created": records.c.created_at,
    "confidence": records.c.confidence,
    "revisions": records.c.n_revisions,
    "event_id": records.c.event_id,
}
#: The facets every page counts (per value, over the whole filter, not just the page).
FACETS = ("task", "predicted", "trusted", "source", "route")
MAX_FACET_VALUES = 50
MAX_PER_PAGE = 500
#: A text search matching at most this many rows is answered from one read of them.
ONE_PASS_MAX = 50_000


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


@dataclass(frozen=True)
class RecordRow:
    """One event, as listed."""

    event_id: str
    task: str
    text: str | None
    predicted: str
    confidence: float
    route: str | None
    trusted: str | None
    source: str | None
    revision: int | None
    n_revisions: int
    updated_at: datetime

    @classmethod
    def of(cls, row: EventRow) -> RecordRow:
        assert row.task is not None
        assert row.predicted is not None
        assert row.confidence is not None
        return cls(
            event_id=row.event_id,
            task=row.task,
            text=row.text,
            predicted=row.predicted,
            confidence=row.confidence,
            route=row.route,
            trusted=row.trusted,
            source=row.source,
            revision=row.revision,
            n_revisions=row.n_revisions,
            updated_at=row.updated_at if row.updated_at is not None else from_micros(0),
        )

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "updated_at": self.updated_at.isoformat()}


@dataclass(frozen=True)
class Page:
    """One page of a search: the total over the filter, the rows of the page, counts per facet value."""

    total: int
    rows: list[RecordRow]
    facets: dict[str, dict[str, int]]


@dataclass(frozen=True)
class RecordDetail:
    """The record page: the row, the prediction, the routing trace, every answer and every revision."""

    row: RecordRow
    prediction: dict[str, Any]
    routing: dict[str, Any] | None
    answers: list[dict[str, Any]]
    revisions: list[Label]

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row.to_json(),
            "prediction": self.prediction,
            "routing": self.routing,
            "answers": self.answers,
            "revisions": [label.model_dump(mode="json") for label in self.revisions],
        }


@dataclass(frozen=True)
class Hit:
    """A neighbour and its cosine similarity (1: the same direction)."""

    row: RecordRow
    score: float


def _facet_counts(
    combos: Iterable[tuple[tuple[Any, ...], int]],
) -> tuple[int, dict[str, dict[str, int]]]:
    """The total and the counts per facet value of (facet values, count) combinations."""
    total = 0
    counted: dict[str, Counter[str]] = {name: Counter() for name in FACETS}
    for values, count in combos:
        total += count
        for name, value in zip(FACETS, values, strict=True):
            counted[name]["(none)" if value is None else str(value)] += count
    return total, {
        name: dict(sorted(values.items(), key=lambda item: (-item[1], item[0]))[:MAX_FACET_VALUES])
        for name, values in counted.items()
    }


class Explorer:
    """Search, inspect and select events of the index.

    Parameters
    ----------
    store
        The index's database.
    settings
        Page limits and the hashed vector's dimension.

    Examples
    --------
    >>> from agents.explorer.rows import Facts
    >>> from tests.factories import human_label, prediction
    >>> explorer = Explorer(IndexStore("sqlite://"))
    >>> facts = Facts()
    >>> facts.add(prediction("tx-1")); facts.add(human_label(event_id="tx-1"))
    >>> _ = explorer.store.apply(facts, {})
    >>> page = explorer.search(ExplorerFilter(q="refund", disagree=True))
    >>> page.total, page.rows[0].trusted, page.facets["source"]
    (1, 'fraud', {'crowd': 1})
    >>> explorer.latest("tx-1").label, explorer.record("tx-1").revisions[0].revision
    ('fraud', 1)
    """

    def __init__(self, store: IndexStore, settings: ExplorerSettings | None = None) -> None:
        self.store = store
        self.settings = settings if settings is not None else ExplorerSettings()
        self.vectors = SimilarityIndex(dim=self.settings.hashed_dim)
        self._vectors_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, explorer: ExplorerSettings) -> Self:
        """The explorer of a worker or the CLI: the index at ``explorer.database_url`` or in the data dir.

        ``explorer`` is ``StageSettings().explorer`` (``LABELLOOP_EXPLORER__*``), passed in: the stages'
        settings import this package's, never the other way round.
        """
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(IndexStore(explorer.url_for(settings.data_dir)), explorer)

    # -- search -------------------------------------------------------------------------------

    def _text_first(self, f: ExplorerFilter) -> bool:
        """Whether the database must be steered to find the text's rows first (see :meth:`column`)."""
        return f.q is not None and bool(fts_words(f.q))

    def column(self, name: str, f: ExplorerFilter) -> ColumnElement[Any]:
        """``records.<name>`` in a filter or an ORDER BY, kept off its index in a text search.

        Neither planner can tell how few rows a text match holds. SQLite, with ``task = ?`` or an
        ORDER BY beside an FTS5 match, walks the task (or time) index over a quarter of a million
        rows testing each against the match (1.3 s over a million events); PostgreSQL ANDs the GIN
        bitmap with a b-tree bitmap of every ``low_confidence`` or ``crowd`` row (40 ms to build).
        An expression the indexes do not cover keeps the match's rows the driver: SQLite's
        documented unary ``+``, and ``coalesce(x, x)`` in PostgreSQL.
        """
        if not self._text_first(f):
            return records.c[name]
        spelled = f"+records.{name}" if self.store.is_sqlite else f"coalesce(records.{name}, records.{name})"
        return literal_column(spelled, type_=records.c[name].type)

    def conditions(self, conn: Connection, f: ExplorerFilter) -> list[ColumnElement[bool]]:
        """The WHERE clauses of a filter (bound parameters only)."""

        def c(name: str) -> ColumnElement[Any]:
            return self.column(name, f)

        where: list[ColumnElement[bool]] = [c("listed") == true()]
        if f.q is not None:
            words = fts_words(f.q)
            if words:
                where.append(self._text_match(words))
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
            where += self._drift_window(conn, f.drift_window)
        return where

    def _text_match(self, words: list[str]) -> ColumnElement[bool]:
        if self.store.is_sqlite:
            match = " ".join(f'"{word}"' for word in words)  # implicit AND of quoted words
            fts = text("SELECT rowid FROM records_fts WHERE records_fts MATCH :fts").bindparams(fts=match)
            return records.c.id.in_(fts.columns(column("rowid")))
        return text("records.tsv @@ plainto_tsquery('simple', :fts)").bindparams(fts=" ".join(words))  # type: ignore[return-value]

    def _drift_window(self, conn: Connection, name: str) -> list[ColumnElement[bool]]:
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

    def search(self, f: ExplorerFilter) -> Page:
        """One page of the events matching ``f``, the total and the counts per facet value."""
        if f.per_page > self.settings.max_per_page:
            raise ValueError(f"per_page is at most {self.settings.max_per_page}")
        if (f.page - 1) * f.per_page > self.settings.max_offset:
            raise ValueError(f"pages go {self.settings.max_offset} rows deep: narrow the filter instead")
        with self.store.engine.connect() as conn:
            where = and_(*self.conditions(conn, f))
            if self._text_first(f):
                page = self._search_one_pass(conn, f, where)
                if page is not None:
                    return page
            order = self.column(SORTS[f.sort].name, f)
            ordering = (
                [order.asc(), records.c.id.asc()] if f.order == "asc" else [order.desc(), records.c.id.desc()]
            )
            page_rows = conn.execute(
                select(records)
                .where(where)
                .order_by(*ordering)
                .limit(f.per_page)
                .offset((f.page - 1) * f.per_page)
            ).mappings()
            rows = [RecordRow.of(row_from(mapping)) for mapping in page_rows]
            # One scan for the total and every facet: counts per combination, summed per facet.
            combos = conn.execute(
                select(*(records.c[name] for name in FACETS), func.count())
                .where(where)
                .group_by(*(records.c[name] for name in FACETS))
            )
            total, facets = _facet_counts((tuple(combo[:-1]), int(combo[-1])) for combo in combos)
        return Page(total=total, rows=rows, facets=facets)

    def _search_one_pass(
        self, conn: Connection, f: ExplorerFilter, where: ColumnElement[bool]
    ) -> Page | None:
        """A text search's page, total and facets from ONE read of its matching rows (None: too many).

        The matching rows are read once (their sort key and facet columns, at most
        :data:`ONE_PASS_MAX`); the page is picked and the facets counted here, then only the
        page's rows are read whole. The SQL path reads every matching row twice (the sorted page,
        then the facets), which is most of a text search's time over a million events.
        """
        sort_column = SORTS[f.sort]
        matching = conn.execute(
            select(records.c.id, sort_column, *(records.c[name] for name in FACETS))
            .where(where)
            .limit(ONE_PASS_MAX + 1)
        ).all()
        if len(matching) > ONE_PASS_MAX:
            return None
        total, facets = _facet_counts((tuple(row[2:]), 1) for row in matching)
        start = (f.page - 1) * f.per_page

        def key(row: Any) -> tuple[bool, Any, int]:
            return (row[1] is not None, row[1], int(row[0]))

        pick = heapq.nsmallest if f.order == "asc" else heapq.nlargest
        chosen = [int(row[0]) for row in pick(start + f.per_page, matching, key=key)[start:]]
        by_id: dict[int, EventRow] = {}
        if chosen:
            mappings = conn.execute(
                select(records).where(records.c.id.in_(bindparam("ids", expanding=True))), {"ids": chosen}
            ).mappings()
            by_id = {int(m["id"]): row_from(m) for m in mappings}
        rows = [RecordRow.of(by_id[key_id]) for key_id in chosen if key_id in by_id]
        return Page(total=total, rows=rows, facets=facets)

    # -- one record ---------------------------------------------------------------------------

    def record(self, event_id: str) -> RecordDetail | None:
        """Everything the index knows of one event (None when it lists no such event)."""
        import json

        with self.store.engine.connect() as conn:
            found = self.store.load_rows(conn, [event_id])
            if event_id not in found or not found[event_id][2].listed:
                return None
            row = found[event_id][2]
            answered = conn.execute(
                select(answers, skills.c.skill_json)
                .outerjoin(skills, skills.c.worker_id == answers.c.worker_id)
                .where(answers.c.event_id == event_id)
                .order_by(answers.c.answered_at, answers.c.worker_id)
            ).mappings()
            answer_list = [
                {
                    "worker_id": a["worker_id"],
                    "answer": a["label"],
                    "golden": a["golden_label"] is not None,
                    "golden_label": a["golden_label"],
                    "pool": a["pool"],
                    "tier": a["tier"],
                    "skill": json.loads(a["skill_json"]) if a["skill_json"] is not None else None,
                    "at": from_micros(int(a["answered_at"])).isoformat(),
                }
                for a in answered
            ]
            revision_rows = conn.execute(
                select(revisions.c.label_json)
                .where(revisions.c.event_id == event_id)
                .order_by(revisions.c.revision, revisions.c.decided_at, revisions.c.key)
            )
            labels = [Label.from_json_bytes(raw.encode("utf-8")) for (raw,) in revision_rows]
        prediction = json.loads(row.prediction_json) if row.prediction_json is not None else {}
        routing = json.loads(row.routing_json) if row.routing_json is not None else None
        return RecordDetail(RecordRow.of(row), prediction, routing, answer_list, labels)

    def latest(self, event_id: str) -> Label | None:
        """The event's latest Label revision (the one ``labels`` holds as its truth), None without one."""
        found = self._latest_labels([event_id])
        return found[0] if found else None

    def latest_many(self, event_ids: list[str]) -> dict[str, Label]:
        """The latest Label of each of ``event_ids`` that has one (:meth:`latest` in one query per 500)."""
        return {label.event_id: label for label in self._latest_labels(list(dict.fromkeys(event_ids)))}

    def _latest_labels(self, event_ids: list[str]) -> list[Label]:
        if not event_ids:
            return []
        order = {event_id: n for n, event_id in enumerate(event_ids)}
        query = (
            select(revisions.c.event_id, revisions.c.label_json)
            .join(
                records,
                and_(
                    records.c.event_id == revisions.c.event_id,
                    records.c.revision == revisions.c.revision,
                    records.c.label_key == revisions.c.key,
                ),
            )
            .where(revisions.c.event_id.in_(bindparam("ids", expanding=True)))
        )
        found: list[tuple[int, Label]] = []
        with self.store.engine.connect() as conn:
            for start in range(0, len(event_ids), 500):
                for event_id, raw in conn.execute(query, {"ids": event_ids[start : start + 500]}):
                    found.append((order[event_id], Label.from_json_bytes(raw.encode("utf-8"))))
        return [label for _, label in sorted(found, key=lambda item: item[0])]

    # -- similarity ---------------------------------------------------------------------------

    def refresh_vectors(self, *, threads: int = 1) -> int:
        """Fold the rows written since the last call into the vector index; how many."""
        with self._vectors_lock:
            return self.vectors.refresh(self.store, threads=threads)

    def similar(
        self, *, event_id: str | None = None, text: str | None = None, task: str | None = None, k: int = 20
    ) -> list[Hit]:
        """The ``k`` events most like one event (never itself) or like a free text, best first."""
        if (event_id is None) == (text is None):
            raise ValueError("give exactly one of event_id and text")
        if not 1 <= k <= 10_000:
            raise ValueError("k must be between 1 and 10000")
        self.refresh_vectors()
        if event_id is not None:
            with self.store.engine.connect() as conn:
                found = self.store.load_rows(conn, [event_id])
            if event_id not in found or found[event_id][2].task is None:
                return []
            key, _, row = found[event_id]
            assert row.task is not None
            hits = self.vectors.search_key(key, task or row.task, k=k)
        else:
            assert text is not None
            hits = self.vectors.search_text(text, task=task, k=k)
        return self._hits(hits)

    def _hits(self, hits: list[tuple[int, float]]) -> list[Hit]:
        if not hits:
            return []
        with self.store.engine.connect() as conn:
            mappings = conn.execute(
                select(records).where(records.c.id.in_(bindparam("ids", expanding=True))),
                {"ids": [key for key, _ in hits]},
            ).mappings()
            by_id = {int(m["id"]): row_from(m) for m in mappings}
        return [
            Hit(RecordRow.of(by_id[key]), score) for key, score in hits if key in by_id and by_id[key].listed
        ]

    # -- selections for bulk actions ----------------------------------------------------------

    def select(
        self, f: ExplorerFilter | None = None, *, similar_to: str | None = None, k: int = 1000, cap: int
    ) -> list[Label]:
        """The latest Label of each matching event (at most ``cap``), for bulk actions.

        With ``similar_to``, the ``k`` events most like that one (and matching ``f`` when given);
        else the events matching ``f`` in its sort order. Events without any Label yet are not
        selected (a revision needs one to supersede).
        """
        if cap < 1:
            raise ValueError("cap must be at least 1")
        f = f if f is not None else ExplorerFilter()
        with self.store.engine.connect() as conn:
            where = [*self.conditions(conn, f), records.c.revision.is_not(None)]
            if similar_to is not None:
                ids = [hit.row.event_id for hit in self.similar(event_id=similar_to, k=k)]
                if not ids:
                    return []
                matching = {
                    event_id
                    for (event_id,) in conn.execute(
                        select(records.c.event_id).where(
                            and_(*where), records.c.event_id.in_(bindparam("ids", expanding=True))
                        ),
                        {"ids": ids},
                    )
                }
                chosen = [event_id for event_id in ids if event_id in matching][:cap]
            else:
                order = self.column(SORTS[f.sort].name, f)
                ordering = (
                    [order.asc(), records.c.id.asc()]
                    if f.order == "asc"
                    else [order.desc(), records.c.id.desc()]
                )
                chosen = [
                    event_id
                    for (event_id,) in conn.execute(
                        select(records.c.event_id).where(and_(*where)).order_by(*ordering).limit(cap)
                    )
                ]
        return self._latest_labels(chosen)

    def alerts(self) -> list[dict[str, Any]]:
        """The drift alerts the index holds, newest first (their ids name drift windows)."""
        with self.store.engine.connect() as conn:
            return [
                {
                    "alert_id": a["alert_id"],
                    "detector": a["detector"],
                    "task": a["task"],
                    "signal": a["signal"],
                    "predicted_class": a["predicted_class"],
                    "detected_at": from_micros(int(a["detected_at"])).isoformat(),
                }
                for a in conn.execute(
                    select(alerts).order_by(alerts.c.detected_at.desc()).limit(200)
                ).mappings()
            ]
