"""The worker's metrics and dashboard routes, served by the worker's web server (the operator API's).

Routes
------
``GET /metrics``
    The worker's Prometheus registry (text format 0.0.4), for Prometheus to scrape.
``GET /`` and ``GET /dashboard``
    The live dashboard (plain HTML + JS; plotly.js served from the installed plotly wheel,
    nothing from the internet). It polls ``/dashboard/series.json``.
``GET /dashboard/series.json?minutes=30``
    The plotted series: samples of the same registry ``/metrics`` serves (see
    :mod:`agents.dashboard.timeline`), the drift alerts to mark, and the expert page's address.
``GET /dashboard/static/{dashboard.js,dashboard.css,plotly.min.js}``

None of these need the operator token (Prometheus scrapes without one, and the page shows
no more than ``/metrics`` does); the page's pool controls call ``/operator/pools/...``, which
do, with the token the operator types in (kept in the tab's session storage only).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from agents.dashboard.timeline import Sample, Timeline
from schemas import utc_now
from streams.metrics import CONTENT_TYPE, LoopMetrics

STATIC = resources.files(__package__) / "static"
_STATIC_FILES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
#: Plotly injects its own <style> elements: styles may be inline, scripts never.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DEFAULT_MINUTES = 30.0


def plotly_js() -> Path:
    """plotly.min.js as the installed plotly wheel ships it (no CDN, no download).

    >>> plotly_js().name
    'plotly.min.js'
    """
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the plotly package is not installed (pip install plotly)")
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"plotly ships no {path}")
    return path


@dataclass
class Dashboard:
    """The dashboard's state: the registry it samples and the samples so far.

    Parameters
    ----------
    metrics
        The worker's registry (the one ``/metrics`` serves).
    timeline
        Where samples are kept.
    expert_page
        The expert page's address once it listens (None: no expert page on this worker).
    clock
        The time of a sample.

    Examples
    --------
    >>> dashboard = Dashboard(LoopMetrics())
    >>> dashboard.metrics.decided("review", "control")
    >>> dashboard.sample()
    >>> dashboard.series()["totals"]["reviewed"]
    1.0
    """

    metrics: LoopMetrics
    timeline: Timeline = field(default_factory=Timeline)
    expert_page: Callable[[], str | None] = lambda: None
    clock: Callable[[], datetime] = utc_now

    def sample(self) -> None:
        """Take one sample of the registry."""
        self.timeline.add(Sample.of(self.metrics.snapshot(), self.clock()))

    def series(self, minutes: float | None = None) -> dict[str, Any]:
        """The series of the last ``minutes`` (None: every sample kept)."""
        since = None if minutes is None else self.clock() - timedelta(minutes=minutes)
        return self.timeline.series(
            self.metrics.recent_alerts,
            since=since,
            generated_at=self.clock().isoformat(),
            expert_page=self.expert_page(),
        )

    def add_routes(self, app: web.Application) -> None:
        """Serve ``/metrics`` and the dashboard from ``app`` (before it starts)."""
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/", self._index)
        app.router.add_get("/dashboard", self._page)
        app.router.add_get("/dashboard/series.json", self._series)
        app.router.add_get("/dashboard/static/{name}", self._static)

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def _index(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/dashboard")

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            text=page_html(),
            content_type="text/html",
            headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store"},
        )

    async def _series(self, request: web.Request) -> web.StreamResponse:
        try:
            minutes = float(request.query.get("minutes", DEFAULT_MINUTES))
        except ValueError:
            raise web.HTTPBadRequest(text="minutes must be a number") from None
        return web.json_response(
            self.series(minutes if minutes > 0 else None),
            dumps=json.dumps,
            headers={"Cache-Control": "no-store"},
        )

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "plotly.min.js":
            return web.FileResponse(
                plotly_js(),
                headers={"Content-Type": "text/javascript", "Cache-Control": "public, max-age=86400"},
            )
        if name not in _STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(
            text=(STATIC / name).read_text("utf-8"), content_type=_STATIC_FILES[name], charset="utf-8"
        )


def page_html() -> str:
    """The dashboard page as the worker serves it (scripts and styles by URL)."""
    return (STATIC / "dashboard.html").read_text("utf-8")
