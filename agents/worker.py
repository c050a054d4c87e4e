"""Assemble a worker: one faust app with every stage of the loop registered on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faust

from agents.aggregator import agent as aggregator_agent
from agents.dispatcher import agent as dispatcher_agent
from agents.learner import agent as learner_agent
from agents.learner.model import OnlineLearner, features_of
from agents.loop import Loop
from agents.monitor import agent as monitor_agent
from agents.monitor.detectors import ModelErrorMonitor
from agents.pools import agent as pools_agent
from agents.pools.base import LabelingBackend
from agents.pools.simulated import SimulatedCrowd
from agents.router import agent as router_agent
from agents.router.policy import Router
from agents.settings import StageSettings
from schemas import PredictionEvent, Suggestion, Tier
from streams.app import create_app
from streams.settings import Settings


@dataclass
class Worker:
    """A worker's app and the live objects a summary or a test may look at."""

    app: faust.App
    loop: Loop
    backends: dict[Tier, LabelingBackend]
    router: Router
    learners: dict[str, OnlineLearner] = field(default_factory=dict)
    monitors: dict[str, ModelErrorMonitor] = field(default_factory=dict)


def build_worker(settings: Settings, stages: StageSettings, **app_overrides: Any) -> Worker:
    """A faust app running the whole loop with the simulated crowd."""
    app = create_app(settings, **app_overrides)
    loop = Loop(app=app, settings=settings, stages=stages)
    truth_table = loop.table("sim-truth")
    backends: dict[Tier, LabelingBackend] = {
        "crowd": SimulatedCrowd(stages.pools.simulated, pools_agent.TableTruth(truth_table)),
    }
    learners = learner_agent.register(loop)

    def suggest(event: PredictionEvent) -> Suggestion | None:
        learner = learners.get(event.task)
        if learner is None or learner.seen == 0:
            return None
        guess = learner.predict(features_of(event.input, stages.learner.model))
        if guess is None:
            return None
        return Suggestion(label=guess[0], confidence=guess[1], model_name=f"online-{event.task}")

    router = router_agent.register(loop, suggest)
    dispatcher_agent.register(loop, backends)
    aggregator_agent.register(loop)
    monitors = monitor_agent.register(loop)
    pools_agent.register(loop, backends, truth_table)
    return Worker(app=app, loop=loop, backends=backends, router=router, learners=learners, monitors=monitors)
