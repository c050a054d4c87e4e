"""Wire objects the tests build again and again, with defaults a test overrides by name.

Also the fake :class:`streams.runtime.Sender` (a topic) that records what was produced to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas import LabelRequest, RouteReason
from schemas.examples import WHEN, human_label, prediction

__all__ = ["WHEN", "FakeTopic", "Sent", "human_label", "label_request", "prediction"]


def label_request(event_id: str = "tx-1", *, route: RouteReason = "low_confidence") -> LabelRequest:
    """A LabelRequest for a two-class prediction of event ``event_id``."""
    return LabelRequest(
        prediction=prediction(event_id),
        route=route,
        reason="test",
        priority=0.4,
        uncertainty=0.4,
        requested_at=WHEN,
    )


@dataclass(frozen=True)
class Sent:
    key: bytes | None
    value: bytes | None
    headers: Any


@dataclass
class FakeTopic:
    """A Sender that remembers what was produced."""

    sent: list[Sent] = field(default_factory=list)

    async def send(self, *, key: bytes | None, value: bytes | None, headers: Any = None) -> None:
        self.sent.append(Sent(key, value, headers))
