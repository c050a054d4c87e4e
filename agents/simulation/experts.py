"""Simulated experts for local runs: bots that answer on the expert pool the way the page does.

In production people answer on the expert page (:mod:`agents.pools.experts`);
in the demo nobody is there to, so a few seeded bots take the next task with
:meth:`ExpertPool.next_task` and answer with :meth:`ExpertPool.submit`, the
two calls the page makes. Experts are slow and nearly always right: each bot
answers the side-channel truth with probability ``accuracy`` after a
log-normal think time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable

from pydantic import BaseModel, ConfigDict, Field

from agents.pools.experts import AnswerRefusedError, ExpertPool
from agents.simulation.crowd_workers import TruthSource
from streams.errors import BackendError

log = logging.getLogger(__name__)


class SimulatedExpertSettings(BaseModel):
    """Bots on the expert page (``LABELLOOP_POOLS__SIMULATED_EXPERTS__*``); 0 experts: none."""

    model_config = ConfigDict(frozen=True)

    experts: int = Field(default=0, ge=0, le=100)
    accuracy: float = Field(default=0.98, ge=0.0, le=1.0)
    #: Mean seconds an expert thinks about one task.
    mean_service_s: float = Field(default=4.0, gt=0.0)
    #: Seconds between two looks at an empty queue.
    poll_s: float = Field(default=0.5, gt=0.0)
    seed: int = 11


class SimulatedExperts:
    """``experts`` bots answering on ``pool`` until :meth:`stop`.

    Examples
    --------
    >>> import asyncio
    >>> from datetime import datetime, UTC
    >>> from agents.pools.experts import ExpertPoolSettings
    >>> from schemas import LabelRequest, PredictionEvent, PredictionInput
    >>> class Truth:
    ...     def true_label(self, event_id): return "cat"
    >>> async def demo():
    ...     pool = ExpertPool(ExpertPoolSettings())
    ...     bots = SimulatedExperts(SimulatedExpertSettings(experts=1, accuracy=1.0, mean_service_s=0.001,
    ...                                                     poll_s=0.001), pool, Truth())
    ...     bots.start()
    ...     event = PredictionEvent(event_id="e1", model_name="m", model_version="1",
    ...                             created_at=datetime(2026, 1, 1, tzinfo=UTC),
    ...                             input=PredictionInput(text="meow"), predicted_label="dog",
    ...                             scores={"dog": 0.6, "cat": 0.4})
    ...     request = LabelRequest(prediction=event, route="escalation", reason="crowd unsure",
    ...                            tier="expert", priority=2.0, uncertainty=0.4,
    ...                            requested_at=event.created_at)
    ...     answers = []
    ...     async def keep(answer): answers.append(answer)
    ...     await pool.label(request, keep)
    ...     await bots.stop()
    ...     return [(a.pool, a.worker_id, a.label) for a in answers]
    >>> asyncio.run(demo())
    [('experts', 'sim-expert-0', 'cat')]
    """

    def __init__(
        self,
        settings: SimulatedExpertSettings,
        pool: ExpertPool,
        truth: TruthSource,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.truth = truth
        self._sleep = sleep
        self._tasks: list[asyncio.Task[None]] = []
        self.answered = 0

    def start(self) -> None:
        """Start the bots (idempotent)."""
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(
                self._work(f"sim-expert-{index}", random.Random(f"{self.settings.seed}/{index}"))
            )
            for index in range(self.settings.experts)
        ]

    async def stop(self) -> None:
        """Stop every bot; a task a bot held goes back to the queue when its lease runs out."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _work(self, expert: str, rng: random.Random) -> None:
        settings = self.settings
        sigma = 0.5
        while True:
            shown, _ = self.pool.next_task(expert)
            if shown is None:
                await self._sleep(settings.poll_s)
                continue
            request = shown.request
            await self._sleep(rng.lognormvariate(math.log(settings.mean_service_s) - sigma**2 / 2, sigma))
            classes = sorted(request.prediction.scores)
            truth = self.truth.true_label(request.event_id) or request.prediction.predicted_label
            wrong = [label for label in classes if label != truth]
            label = truth if not wrong or rng.random() < settings.accuracy else rng.choice(wrong)
            try:
                await self.pool.submit(expert, request.event_id, label)
                self.answered += 1
            except (AnswerRefusedError, BackendError) as error:  # closed meanwhile, or the sink failed
                log.info("simulated expert %s: answer to %s not used: %s", expert, request.event_id, error)
