"""The explorer's GET JSON API over HTTP (aiohttp TestServer): answers, and clear 400s for bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agents.explorer.api import ExplorerApi
from agents.explorer.query import Explorer
from agents.explorer.rows import Facts
from agents.explorer.settings import ExplorerSettings
from agents.explorer.store import IndexStore
from tests.agents.explorer.scenario import scenario


def run(check: Callable[[TestClient[Any, Any]], Awaitable[None]], tmp_url: str) -> None:
    store = IndexStore(tmp_url)
    facts = Facts()
    for record in scenario():
        facts.add(record)
    store.apply(facts, {})
    app = web.Application()
    ExplorerApi(Explorer(store, ExplorerSettings(hashed_dim=64))).add_routes(app)

    async def go() -> None:
        async with TestClient(TestServer(app)) as client:
            await check(client)

    asyncio.run(go())


def test_records_record_and_similar(tmp_path: Any) -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        response = await client.get("/explorer/api/records", params={"q": "refund", "task": "support"})
        assert response.status == 200
        body = await response.json()
        assert body["total"] == 3
        assert {row["event_id"] for row in body["rows"]} == {"ev-1", "ev-3", "ev-7"}
        assert body["facets"]["task"] == {"support": 3}
        detail = await (await client.get("/explorer/api/records/ev-3")).json()
        assert [revision["revision"] for revision in detail["revisions"]] == [1, 2, 3]
        assert detail["answers"][0]["worker_id"] == "w1"
        assert (await client.get("/explorer/api/records/nope")).status == 404
        similar = await (
            await client.get("/explorer/api/similar", params={"event_id": "ev-1", "k": "2"})
        ).json()
        assert similar["hits"][0]["row"]["event_id"] == "ev-7"
        by_text = await client.get("/explorer/api/similar", params={"q": "card stolen", "task": "support"})
        assert (await by_text.json())["hits"][0]["row"]["event_id"] in {"ev-2", "ev-8"}
        alerts = await (await client.get("/explorer/api/alerts")).json()
        window = await client.get(
            "/explorer/api/records", params={"drift_window": alerts["alerts"][0]["alert_id"]}
        )
        assert (await window.json())["total"] == 5

    run(check, f"sqlite:///{tmp_path / 'x.sqlite3'}")


def test_bad_input_is_a_clear_400_and_changes_nothing(tmp_path: Any) -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        for params in (
            {"per_page": "100000"},
            {"sort": "x; DROP TABLE records"},
            {"conf_min": "abc"},
            {"route": "everywhere"},
            {"page": "100000", "per_page": "500"},
            {"unknown": "1"},
            {"q": "x" * 600},
        ):
            response = await client.get("/explorer/api/records", params=params)
            assert response.status == 400, params
            assert "error" in await response.json()
        for params in (
            {},
            {"event_id": "ev-1", "q": "x"},
            {"event_id": "ev-1", "k": "0"},
            {"q": "a", "k": "z"},
        ):
            assert (await client.get("/explorer/api/similar", params=params)).status == 400, params
        injected = await client.get("/explorer/api/records", params={"q": "'; DELETE FROM records; --"})
        assert (await injected.json())["total"] == 0
        assert (await (await client.get("/explorer/api/records")).json())["total"] == 12

    run(check, f"sqlite:///{tmp_path / 'x.sqlite3'}")
