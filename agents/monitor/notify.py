"""Tell operators about a drift response: a JSON POST to a webhook (a chat or paging bridge), and the log."""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
from pydantic import AnyHttpUrl

from agents.monitor.response import Reaction

log = logging.getLogger(__name__)


def reaction_document(reaction: Reaction) -> dict[str, Any]:
    """What the webhook receives: the kind, the notice and the command (as on ``commands``), if any.

    >>> reaction_document(Reaction("notify", "queue rate rose"))
    {'kind': 'notify', 'notice': 'queue rate rose', 'command': None}
    """
    command = reaction.command
    return {
        "kind": reaction.kind,
        "notice": reaction.notice,
        "command": None if command is None else json.loads(command.model_dump_json()),
    }


class WebhookNotifier:
    """POST each reaction as JSON to ``url``; a failure is logged and never stops the monitor.

    Parameters
    ----------
    url
        The webhook (e.g. a chat incoming-webhook or an alert manager's receiver).
    timeout_s
        The whole request's deadline: a slow receiver must not hold the monitor up for long.
    """

    def __init__(self, url: AnyHttpUrl, timeout_s: float = 5.0) -> None:
        self.url = str(url)
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.sent = 0
        self.failed = 0

    async def notify(self, reaction: Reaction) -> bool:
        """Send ``reaction``; True when the receiver answered 2xx."""
        try:
            async with (
                aiohttp.ClientSession(timeout=self.timeout) as session,
                session.post(self.url, json=reaction_document(reaction)) as response,
            ):
                if 200 <= response.status < 300:
                    self.sent += 1
                    return True
                log.error("drift webhook %s answered %d", self.url, response.status)
        except (aiohttp.ClientError, TimeoutError) as error:
            log.error("drift webhook %s failed: %s", self.url, error or type(error).__name__)
        self.failed += 1
        return False
