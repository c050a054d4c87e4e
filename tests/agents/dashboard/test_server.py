"""/metrics and the dashboard over HTTP (aiohttp TestServer), on the operator API's listener."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from agents.dashboard.server import PAGE_POLICY, Dashboard, plotly_js
from agents.operator_api import OperatorApi
from schemas import PoolCommand
from streams.metrics import LoopMetrics
from streams.operator import PoolBoard
from tests.factories import WHEN


def test_metrics_and_dashboard_need_no_token_while_the_pool_api_still_does() -> None:
    sent: list[PoolCommand] = []

    async def send(command: PoolCommand) -> None:
        sent.append(command)

    metrics = LoopMetrics()
    metrics.decided("review", "control")
    dashboard = Dashboard(metrics, clock=lambda: WHEN, expert_page=lambda: "http://127.0.0.1:8765/")
    dashboard.sample()
    api = OperatorApi(send, PoolBoard(), token=SecretStr("tok"), clock=lambda: WHEN)
    dashboard.add_routes(api.app)

    async def main() -> None:
        async with TestClient(TestServer(api.app)) as client:
            scraped = await client.get("/metrics")
            assert scraped.status == 200
            assert scraped.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert (
                'labelloop_router_decisions_total{action="review",reason="control"} 1.0'
                in await scraped.text()
            )

            index = await client.get("/", allow_redirects=False)
            assert (index.status, index.headers["Location"]) == (302, "/dashboard")
            page = await client.get("/dashboard")
            assert page.status == 200
            assert page.headers["Content-Security-Policy"] == PAGE_POLICY
            html = await page.text()
            assert '<script src="/dashboard/static/plotly.min.js">' in html
            assert "cdn" not in html.lower()

            series = await (await client.get("/dashboard/series.json?minutes=0")).json()
            assert series["totals"]["reviewed"] == 1.0
            assert series["expert_page"] == "http://127.0.0.1:8765/"
            assert (await client.get("/dashboard/series.json?minutes=soon")).status == 400

            plotly = await client.get("/dashboard/static/plotly.min.js")
            assert plotly.status == 200
            assert len(await plotly.read()) == plotly_js().stat().st_size > 1_000_000
            for name in ("dashboard.js", "dashboard.css"):
                assert (await client.get(f"/dashboard/static/{name}")).status == 200
            assert (await client.get("/dashboard/static/..%2Fserver.py")).status == 404

            refused = await client.post("/operator/pools/simulated/scale", json={"workers": 3})
            assert refused.status == 401
            accepted = await client.post(
                "/operator/pools/simulated/scale",
                json={"workers": 3},
                headers={"Authorization": "Bearer tok"},
            )
            assert accepted.status == 202

    asyncio.run(main())
    assert [(command.action, command.workers) for command in sent] == [("scale", 3)]


def test_the_page_uses_only_the_worker_and_text_never_markup() -> None:
    from agents.dashboard.server import STATIC

    script: Any = (STATIC / "dashboard.js").read_text("utf-8")
    assert "innerHTML" not in script
    assert "eval(" not in script
    assert "http://" not in script
    assert "https://" not in script
