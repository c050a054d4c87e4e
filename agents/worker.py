"""Assemble a worker: one faust app with every stage of the loop registered on it."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from dataclasses import dataclass, field
from typing import IO, Any

import faust

from agents import operator_api
from agents.aggregator import agent as aggregator_agent
from agents.aggregator.skills import SkillBook
from agents.aggregator.weighted import WeightedVoteAggregator
from agents.dashboard import agent as dashboard_agent
from agents.dashboard.server import Dashboard
from agents.dispatcher import agent as dispatcher_agent
from agents.explorer import agent as explorer_agent
from agents.explorer.agent import ExplorerStage
from agents.learner import agent as learner_agent
from agents.learner.model import OnlineLearner, features_of
from agents.loop import Loop
from agents.monitor import agent as monitor_agent
from agents.monitor.response import ResponsePolicy
from agents.monitor.signals import TaskMonitor
from agents.pools import agent as pools_agent
from agents.pools.base import LabelingBackend
from agents.pools.experts import ExpertPool
from agents.pools.remote import RemoteCrowd
from agents.pools.toloka.backend import TolokaBackend
from agents.router import agent as router_agent
from agents.router.policy import Router
from agents.settings import StageSettings
from agents.simulation import truth as simulation_truth
from agents.simulation.experts import SimulatedExperts
from agents.simulation.simulated_crowd import SimulatedCrowd, ban_rule
from agents.simulation.truth import TableTruth
from schemas import CrowdAnswer, PredictionEvent, Suggestion, Tier
from streams.app import claim_local_state, create_app
from streams.patches.faust_state_dump import consumer_state
from streams.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Worker:
    """A worker's app and the live objects a summary or a test may look at."""

    app: faust.App
    loop: Loop
    backends: dict[Tier, LabelingBackend]
    router: Router
    aggregator: WeightedVoteAggregator
    learners: dict[str, OnlineLearner] = field(default_factory=dict)
    monitors: dict[str, TaskMonitor] = field(default_factory=dict)
    response: ResponsePolicy | None = None
    #: ``/metrics`` and the dashboard (None when the worker's web server is off).
    dashboard: Dashboard | None = None
    #: The record explorer (its index, API and indexer; None without the web server or when disabled).
    explorer: ExplorerStage | None = None
    #: The lock on the worker's data dir (:func:`~streams.app.claim_local_state`), held while open.
    local_state: IO[bytes] | None = None


def build_worker(settings: Settings, stages: StageSettings, **app_overrides: Any) -> Worker:
    """A faust app running the whole loop: the crowd (simulated or Toloka) and the expert page."""
    app = create_app(settings, **app_overrides)
    local_state = claim_local_state(app)
    loop = Loop(app=app, settings=settings, stages=stages)
    pools = stages.pools
    truths: list[TableTruth] = []

    def truth() -> TableTruth:
        """The simulation's truth, registered the first time a simulated labeler asks for it: a
        worker without simulated labelers (Toloka and the expert page only) never reads it."""
        if not truths:
            truths.append(simulation_truth.register(loop))
        return truths[0]

    # One book of worker skills: the aggregator weighs votes by it, the pools stop asking by it.
    book = SkillBook(stages.aggregator.skills)
    crowd: LabelingBackend
    if pools.remote.enabled:
        # Its labelers read label-requests and answer on crowd-answers themselves.
        crowd = RemoteCrowd(pools.remote)
    elif pools.toloka.enabled:
        # Golden answers grade Tolokers; they go to crowd-answers like any answer (the aggregator
        # scores the worker and never lets them vote).
        golden = loop.output(loop.names.crowd_answers)

        async def report_golden(answer: CrowdAnswer) -> None:
            await golden.send(answer.event_id, answer)
            loop.metrics.observe_answer(answer)

        crowd = TolokaBackend(pools.toloka, accuracy_of=book.accuracy_of, golden_sink=report_golden)
    else:
        # Flagged or too-fast workers get no more tasks (like Toloka's QC bans); newcomers take their seats.
        crowd = SimulatedCrowd(
            pools.simulated, truth(), accuracy_of=book.accuracy_of, is_banned=ban_rule(book)
        )
    backends: dict[Tier, LabelingBackend] = {"crowd": crowd}
    # The simulated crowd's newcomers warm up before they work: its autoscaler counts that.
    warmup_s = {crowd.name: pools.simulated.warmup_s} if isinstance(crowd, SimulatedCrowd) else {}
    bots: SimulatedExperts | None = None
    experts: ExpertPool | None = None
    if pools.experts_enabled:
        experts = ExpertPool(pools.experts)
        backends["expert"] = experts
        if pools.simulated_experts.experts:
            bots = SimulatedExperts(pools.simulated_experts, experts, truth())
    learners, learn_accepted = learner_agent.register(loop)

    def suggest(event: PredictionEvent) -> Suggestion | None:
        learner = learners.get(event.task)
        if learner is None or learner.seen == 0:
            return None
        guess = learner.predict(features_of(event.input, stages.learner.kind_for(event.task)))
        if guess is None:
            return None
        return Suggestion(label=guess[0], confidence=guess[1], model_name=f"online-{event.task}")

    monitors, response, watch = monitor_agent.register(loop)
    router = router_agent.register(loop, suggest, watch, learn_accepted)
    dispatcher_agent.register(loop, backends)
    aggregator = aggregator_agent.register(loop, book)
    pools_agent.register(loop, backends, bots, warmup_s)
    api = operator_api.register(loop, stages.operator)
    dashboard = None
    explorer = None
    if api is not None:
        dashboard = dashboard_agent.register(loop, api.app, stages.dashboard)
        dashboard.expert_page = lambda: _expert_page(experts)
        if stages.explorer.enabled:
            explorer = explorer_agent.register(loop, api.app, stages.explorer, stages.operator)

    @app.task  # type: ignore[untyped-decorator]
    async def stacks_on_sigusr1() -> None:
        # `kill -USR1 <pid>` logs where every asyncio task of the worker waits (a stalled
        # partition's agent shows up there); no debugger or extra package needed.
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, lambda: log_task_stacks(app))

    return Worker(
        app=app,
        loop=loop,
        backends=backends,
        router=router,
        aggregator=aggregator,
        learners=learners,
        monitors=monitors,
        response=response,
        dashboard=dashboard,
        explorer=explorer,
        local_state=local_state,
    )


def tune_collector(settings: Settings) -> tuple[int, int, int]:
    """Set a worker process's garbage collector for the batch path; returns the thresholds before.

    Everything made so far (the app, its stages, the models, pydantic's validators) is moved to
    the collector's permanent generation (``gc.freeze``): it lives as long as the worker, and a
    full collection walked all of it each time. The youngest generation's threshold is raised
    to ``settings.gc_young_threshold``: the hot path allocates a few dozen objects per event
    and holds a batch's of them until its commit. Memory freed by reference counting (nearly
    all of it) is freed as before; only cyclic garbage waits longer to be collected.
    """
    before = gc.get_threshold()
    if settings.gc_young_threshold is not None:
        gc.collect()
        gc.freeze()
        gc.set_threshold(settings.gc_young_threshold, before[1], before[2])
    return before


def log_task_stacks(app: faust.App | None = None) -> None:
    """Log where every asyncio task of the running loop waits (one WARNING per task).

    ``Task.print_stack`` shows a suspended coroutine's outermost frame only; this
    follows the chain of awaits down to the innermost one. With ``app``, the
    consumer's view of its partitions comes first (assigned, paused, fetching).
    """
    if app is not None:
        log.warning("consumer partitions (SIGUSR1):\n%s", "\n".join(consumer_state(app)))
    tasks = asyncio.all_tasks()
    log.warning("%d asyncio tasks (SIGUSR1):", len(tasks))
    for task in sorted(tasks, key=lambda task: task.get_name()):
        log.warning("task %s:\n%s", task.get_name(), "\n".join(await_chain(task.get_coro())))


def await_chain(awaitable: Any) -> list[str]:
    """``file:line function`` for each coroutine or generator in ``awaitable``'s chain of awaits."""
    where: list[str] = []
    while awaitable is not None and len(where) < 64:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is not None:
            where.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    return where


def _expert_page(experts: ExpertPool | None) -> str | None:
    """The expert page's address once it listens (the dashboard links to it)."""
    if experts is None:
        return None
    try:
        port = experts.port
    except RuntimeError:  # not listening (yet)
        return None
    host = experts.settings.host
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}/"
