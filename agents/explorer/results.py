"""What the explorer's queries answer: a listed row, a page with its facet counts, a record page, a hit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agents.explorer.rows import EventRow
from agents.explorer.tables import from_micros
from schemas import Label

#: The facets every page counts (per value, over the whole filter, not just the page).
FACETS = ("task", "predicted", "trusted", "source", "route")
MAX_FACET_VALUES = 50


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


def facet_counts(
    combos: Iterable[tuple[tuple[Any, ...], int]],
) -> tuple[int, dict[str, dict[str, int]]]:
    """The total and the counts per facet value of (facet values, count) combinations.

    >>> combos = [(("t", "a", None, "crowd", "crowd"), 2), (("t", "b", "b", "model", "auto"), 1)]
    >>> total, facets = facet_counts(combos)
    >>> total, facets["predicted"], facets["trusted"]
    (3, {'a': 2, 'b': 1}, {'(none)': 2, 'b': 1})
    """
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
