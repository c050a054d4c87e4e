"""The one interface every labeling pool implements: simulated crowd, Toloka, experts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol, runtime_checkable

from schemas import CrowdAnswer, LabelRequest, PoolStatus, Tier

#: Where a pool reports each answer as it arrives (the dispatcher produces it to crowd-answers).
AnswerSink = Callable[[CrowdAnswer], Awaitable[None]]


@runtime_checkable
class LabelingBackend(Protocol):
    """A pool of labelers.

    ``label`` returns once the request has all the answers it asked for (its
    overlap), each reported through ``on_answer`` as it came. The dispatcher
    may cancel it (its partition moved to another worker, which starts the
    request again): a backend then withdraws the task and stays consistent.
    """

    name: str
    tier: Tier

    async def start(self) -> None:
        """Begin serving (spawn workers, open connections)."""

    async def stop(self) -> None:
        """Stop serving; unanswered requests stay unacknowledged."""

    async def label(self, request: LabelRequest, on_answer: AnswerSink) -> None:
        """Collect ``overlap`` answers for ``request``."""

    def status(self, now: datetime) -> PoolStatus:
        """The pool's state for ``pool-status``."""

    def resize(self, workers: int) -> None:
        """Set the number of workers (the autoscaler's and operators' lever)."""

    def pause(self) -> None:
        """Stop handing out tasks (answers in progress finish)."""

    def resume(self) -> None:
        """Hand out tasks again."""


class Companion(Protocol):
    """Something that runs beside the pools while they serve (the simulated experts on the expert page).

    Started after the pools, stopped before them; the pools' stage knows nothing else of it, so a
    production worker imports no simulation.
    """

    def start(self) -> None:
        """Begin (the pools are serving)."""

    async def stop(self) -> None:
        """End (before the pools stop)."""
