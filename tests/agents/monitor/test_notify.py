"""The drift webhook: each reaction POSTed as JSON; a failing receiver is counted, never raised."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from agents.monitor.notify import WebhookNotifier
from agents.monitor.response import Reaction
from schemas import PolicyCommand

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


async def serve(status: int, received: list[dict[str, Any]]) -> tuple[web.AppRunner, str]:
    async def receive(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/hook"


def test_a_reaction_reaches_the_webhook_with_its_command() -> None:
    command = PolicyCommand(control_share=0.2, issued_by="monitor", issued_at=WHEN, reason="drift response")

    async def scenario() -> tuple[bool, list[dict[str, Any]]]:
        received: list[dict[str, Any]] = []
        runner, url = await serve(204, received)
        try:
            return await WebhookNotifier(url).notify(Reaction("raise", "raised", command)), received
        finally:
            await runner.cleanup()

    delivered, received = asyncio.run(scenario())
    assert delivered
    assert len(received) == 1
    assert received[0]["kind"] == "raise"
    assert received[0]["notice"] == "raised"
    assert received[0]["command"]["control_share"] == 0.2
    assert received[0]["command"]["issued_by"] == "monitor"


def test_a_failing_or_absent_receiver_is_counted_not_raised() -> None:
    async def scenario() -> tuple[bool, bool, WebhookNotifier]:
        runner, url = await serve(500, [])
        try:
            refused = WebhookNotifier(url)
            answered_500 = await refused.notify(Reaction("notify", "x"))
        finally:
            await runner.cleanup()
        # Nobody listens there any more: connection refused.
        absent = WebhookNotifier(url, timeout_s=2.0)
        return answered_500, await absent.notify(Reaction("notify", "x")), absent

    answered_500, connected, absent = asyncio.run(scenario())
    assert (answered_500, connected) == (False, False)
    assert (absent.sent, absent.failed) == (0, 1)
