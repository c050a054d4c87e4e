"""The explorer's facade: search with facets, the record page, "more like this", bulk selections.

:class:`Explorer` is the one facade the JSON API, the CLI and the bulk actions use; it reads
the index :mod:`agents.explorer.store` keeps (never Kafka) and the per-task vector index of
:mod:`agents.explorer.vectors`. What to list is an :class:`~agents.explorer.filters.ExplorerFilter`
(:mod:`agents.explorer.filters` turns it into bound SQL); what comes back are the records of
:mod:`agents.explorer.results` (both re-exported here, where their callers import them from).
"""

from __future__ import annotations

import heapq
import threading
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import ColumnElement, and_, bindparam, func, select
from sqlalchemy.engine import Connection

from agents.explorer.filters import MAX_PER_PAGE, SORTS, ExplorerFilter, conditions, ordering, text_first
from agents.explorer.results import FACETS, Hit, Page, RecordDetail, RecordRow, facet_counts
from agents.explorer.rows import EventRow
from agents.explorer.settings import ExplorerSettings
from agents.explorer.store import IndexStore
from agents.explorer.tables import alerts, answers, from_micros, records, revisions, row_from, skills
from agents.explorer.vectors import SimilarityIndex
from schemas import Label

if TYPE_CHECKING:
    from streams.settings import Settings

__all__ = [
    "MAX_PER_PAGE",
    "ONE_PASS_MAX",
    "SORTS",
    "Explorer",
    "ExplorerFilter",
    "Hit",
    "Page",
    "RecordDetail",
    "RecordRow",
]

#: A text search matching at most this many rows is answered from one read of them.
ONE_PASS_MAX = 50_000


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
    >>> from schemas.examples import human_label, prediction
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

    def search(self, f: ExplorerFilter) -> Page:
        """One page of the events matching ``f``, the total and the counts per facet value."""
        if f.per_page > self.settings.max_per_page:
            raise ValueError(f"per_page is at most {self.settings.max_per_page}")
        if (f.page - 1) * f.per_page > self.settings.max_offset:
            raise ValueError(f"pages go {self.settings.max_offset} rows deep: narrow the filter instead")
        with self.store.engine.connect() as conn:
            where = and_(*conditions(conn, f, is_sqlite=self.store.is_sqlite))
            if text_first(f):
                page = self._search_one_pass(conn, f, where)
                if page is not None:
                    return page
            page_rows = conn.execute(
                select(records)
                .where(where)
                .order_by(*ordering(f, is_sqlite=self.store.is_sqlite))
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
            total, facets = facet_counts((tuple(combo[:-1]), int(combo[-1])) for combo in combos)
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
        total, facets = facet_counts((tuple(row[2:]), 1) for row in matching)
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
            where = [*conditions(conn, f, is_sqlite=self.store.is_sqlite), records.c.revision.is_not(None)]
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
                order_by = ordering(f, is_sqlite=self.store.is_sqlite)
                chosen = [
                    event_id
                    for (event_id,) in conn.execute(
                        select(records.c.event_id).where(and_(*where)).order_by(*order_by).limit(cap)
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
