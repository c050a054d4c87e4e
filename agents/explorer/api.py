"""The explorer's GET JSON API, served by the worker's web server beside the dashboard.

Routes
------
``GET /explorer/api/records?<ExplorerFilter params>``
    ``{"total", "rows": [...], "facets": {facet: {value: count}}}``.
``GET /explorer/api/records/{event_id}``
    The record page as JSON (404 when the index lists no such event).
``GET /explorer/api/similar?event_id=...|q=...&task=&k=``
    ``{"hits": [{"row": {...}, "score": f}]}``.
``GET /explorer/api/alerts``
    The drift alerts (their ``alert_id`` is a ``drift_window`` filter).

Read-only like the dashboard (no token; the POST routes of ``actions_api.py`` need one). Bad
parameters are a 400 saying which and why (never echoing the value); nothing is written.
Queries are blocking database calls: they run in a thread, so the worker's event loop (and
the loop's agents on it) never waits for one.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from agents.explorer.query import Explorer, ExplorerFilter

MAX_K = 200


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400, headers={"Cache-Control": "no-store"})


def _reasons(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'query'}: {item['msg']}" for item in error.errors()
    )


def _json(body: dict[str, Any]) -> web.Response:
    return web.json_response(body, dumps=json.dumps, headers={"Cache-Control": "no-store"})


class ExplorerApi:
    """The GET routes over one :class:`Explorer`."""

    def __init__(self, explorer: Explorer) -> None:
        self.explorer = explorer

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/explorer/api/records", self._records)
        app.router.add_get("/explorer/api/records/{event_id}", self._record)
        app.router.add_get("/explorer/api/similar", self._similar)
        app.router.add_get("/explorer/api/alerts", self._alerts)

    async def _records(self, request: web.Request) -> web.StreamResponse:
        try:
            f = ExplorerFilter.from_query(request.query)
        except ValidationError as error:
            return _bad_request(_reasons(error))
        try:
            page = await asyncio.to_thread(self.explorer.search, f)
        except ValueError as error:
            return _bad_request(str(error))
        return _json(
            {"total": page.total, "rows": [row.to_json() for row in page.rows], "facets": page.facets}
        )

    async def _record(self, request: web.Request) -> web.StreamResponse:
        event_id = request.match_info["event_id"]
        if not 0 < len(event_id) <= 128:
            return _bad_request("event_id must be 1 to 128 characters")
        detail = await asyncio.to_thread(self.explorer.record, event_id)
        if detail is None:
            return web.json_response({"error": "no such event in the index"}, status=404)
        return _json(detail.to_json())

    async def _similar(self, request: web.Request) -> web.StreamResponse:
        unknown = set(request.query) - {"event_id", "q", "task", "k"}
        if unknown:
            return _bad_request(f"unknown parameters: {', '.join(sorted(unknown))[:200]}")
        event_id = request.query.get("event_id") or None
        text = request.query.get("q") or None
        task = request.query.get("task") or None
        if (event_id is None) == (text is None):
            return _bad_request("give exactly one of event_id and q")
        if (text is not None and len(text) > 512) or (event_id is not None and len(event_id) > 128):
            return _bad_request("q is at most 512 characters, event_id at most 128")
        try:
            k = int(request.query.get("k", "20"))
        except ValueError:
            return _bad_request("k must be an integer")
        if not 1 <= k <= MAX_K:
            return _bad_request(f"k must be between 1 and {MAX_K}")
        hits = await asyncio.to_thread(
            lambda: self.explorer.similar(event_id=event_id, text=text, task=task, k=k)
        )
        return _json({"hits": [{"row": hit.row.to_json(), "score": hit.score} for hit in hits]})

    async def _alerts(self, request: web.Request) -> web.StreamResponse:
        return _json({"alerts": await asyncio.to_thread(self.explorer.alerts)})
