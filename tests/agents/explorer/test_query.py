"""The Explorer facade over an index of the scenario, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from agents.explorer.query import Explorer, ExplorerFilter
from agents.explorer.rows import Facts
from agents.explorer.settings import ExplorerSettings
from agents.explorer.store import IndexStore
from tests.agents.explorer.scenario import scenario


@pytest.fixture
def explorer(store_url: str) -> Iterator[Explorer]:
    store = IndexStore(store_url)
    facts = Facts()
    for record in scenario():
        facts.add(record)
    store.apply(facts, {})
    yield Explorer(store, ExplorerSettings(hashed_dim=64))
    store.dispose()


def ids(page: object) -> list[str]:
    return [row.event_id for row in page.rows]  # type: ignore[attr-defined]


def test_text_search_and_filters(explorer: Explorer) -> None:
    assert sorted(ids(explorer.search(ExplorerFilter(q="refund")))) == ["ev-1", "ev-3", "ev-7", "ev-9"]
    assert sorted(ids(explorer.search(ExplorerFilter(q="refund", task="support")))) == [
        "ev-1",
        "ev-3",
        "ev-7",
    ]
    assert sorted(ids(explorer.search(ExplorerFilter(q="Card, STOLEN!")))) == ["ev-2", "ev-8"]
    page = explorer.search(ExplorerFilter(source="crowd", disagree=True))
    assert sorted(ids(page)) == ["ev-1", "ev-5"]
    assert page.total == 2
    assert ids(explorer.search(ExplorerFilter(min_revisions=2))) == ["ev-3"]
    assert ids(explorer.search(ExplorerFilter(route="shed"))) == ["ev-10"]
    assert sorted(ids(explorer.search(ExplorerFilter(labeler="w2", trusted="tech")))) == [
        "ev-1",
        "ev-5",
        "ev-9",
    ]
    low = explorer.search(ExplorerFilter(conf_min=0.6, conf_max=0.65))
    assert sorted(ids(low)) == ["ev-2", "ev-3"]


def test_facets_count_the_whole_filter_not_the_page(explorer: Explorer) -> None:
    page = explorer.search(ExplorerFilter(per_page=2))
    assert page.total == 12
    assert len(page.rows) == 2
    assert page.facets["task"] == {"support": 9, "fraud": 3}
    assert sum(page.facets["route"].values()) == 12
    assert page.facets["route"]["shed"] == 1


def test_sort_and_pages(explorer: Explorer) -> None:
    first = explorer.search(ExplorerFilter(sort="confidence", order="asc", per_page=5))
    second = explorer.search(ExplorerFilter(sort="confidence", order="asc", per_page=5, page=2))
    confidences = [row.confidence for row in first.rows + second.rows]
    assert confidences == sorted(confidences)
    assert len(set(ids(first)) & set(ids(second))) == 0
    newest = explorer.search(ExplorerFilter(per_page=1)).rows[0]
    assert newest.event_id == "ev-3"  # its last revision is the latest record


def test_time_range_and_drift_window(explorer: Explorer) -> None:
    from datetime import timedelta

    from tests.agents.explorer.scenario import T0

    since = explorer.search(ExplorerFilter(since=T0 + timedelta(minutes=10)))
    assert sorted(ids(since)) == ["ev-10", "ev-11"]
    [alert] = explorer.alerts()
    window = explorer.search(ExplorerFilter(drift_window=alert["alert_id"]))
    assert sorted(ids(window)) == ["ev-4", "ev-5", "ev-6", "ev-7", "ev-8"]
    assert explorer.search(ExplorerFilter(drift_window="nope@2026")).total == 0


def test_record_page(explorer: Explorer) -> None:
    detail = explorer.record("ev-3")
    assert detail is not None
    assert [label.revision for label in detail.revisions] == [1, 2, 3]
    assert [a["worker_id"] for a in detail.answers] == ["w1", "w2"]
    assert detail.answers[0]["skill"]["accuracy"] == 0.93
    assert detail.prediction["input"]["text"] == "refund for a double charge"
    assert detail.routing is not None
    assert detail.routing["threshold"] == 0.8
    assert explorer.record("missing") is None
    assert detail.to_json()["row"]["event_id"] == "ev-3"


def test_latest_and_select(explorer: Explorer) -> None:
    latest = explorer.latest("ev-3")
    assert latest is not None
    assert (latest.revision, latest.label) == (3, "billing")
    assert explorer.latest("ev-10").routing.budget is not None  # type: ignore[union-attr]
    chosen = explorer.select(ExplorerFilter(task="fraud"), cap=2)
    assert len(chosen) == 2
    assert all(label.task == "fraud" for label in chosen)
    similar = explorer.select(similar_to="ev-0", k=5, cap=10)
    assert 0 < len(similar) <= 5
    assert "ev-0" not in [label.event_id for label in similar]


def test_similar_by_event_and_by_text(explorer: Explorer) -> None:
    hits = explorer.similar(event_id="ev-1", k=3)
    assert hits
    assert hits[0].row.event_id == "ev-7"
    assert hits[0].score == pytest.approx(1.0, abs=1e-2)
    by_text = explorer.similar(text="refund double charge", k=2)
    assert by_text[0].row.event_id in {"ev-3", "ev-9"}
    with pytest.raises(ValueError, match="exactly one"):
        explorer.similar(k=3)


def test_bad_filters_are_refused(explorer: Explorer) -> None:
    for params in (
        {"per_page": "501"},
        {"sort": "password"},
        {"route": "nowhere"},
        {"conf_min": "2"},
        {"page": "0"},
        {"since": "yesterday"},
        {"since": "2026-01-01T00:00:00"},
        {"bogus": "1"},
    ):
        with pytest.raises(ValidationError):
            ExplorerFilter.from_query(params)
    with pytest.raises(ValueError, match="deep"):
        explorer.search(ExplorerFilter(page=100_000, per_page=500))
    injected = explorer.search(ExplorerFilter(q="refund'); DELETE FROM records; --"))
    assert injected.total == 0
    assert explorer.search(ExplorerFilter()).total == 12


def test_a_text_search_answers_the_same_in_one_pass_and_in_sql(
    explorer: Explorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agents.explorer.query as query

    filters = [
        ExplorerFilter(q="card", sort="confidence", order="asc", per_page=2, page=2),
        ExplorerFilter(q="refund", sort="updated", per_page=3),
        ExplorerFilter(q="the", sort="event_id", order="desc", per_page=4, page=2),
    ]
    one_pass = [explorer.search(f) for f in filters]
    monkeypatch.setattr(query, "ONE_PASS_MAX", 0)  # every search overflows: the SQL path
    in_sql = [explorer.search(f) for f in filters]
    assert one_pass == in_sql
    assert [len(page.rows) for page in one_pass] == [2, 3, 4]
