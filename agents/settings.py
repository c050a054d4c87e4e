"""Settings of the loop's stages (``LABELLOOP_<STAGE>__*``), each group defined by its stage."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents.aggregator.dawid_skene import DawidSkeneSettings
from agents.aggregator.settings import SkillSettings, WeightedSettings
from agents.dashboard.agent import DashboardSettings
from agents.explorer.settings import ExplorerSettings
from agents.learner.model import LearnerSettings
from agents.monitor.detectors import MonitorSettings
from agents.operator_api import OperatorApiSettings
from agents.pools.autoscaler import AutoscalerSettings
from agents.pools.experts import ExpertPoolSettings
from agents.pools.remote import RemoteCrowdSettings
from agents.pools.toloka.client import TolokaSettings
from agents.router.policy import RouterSettings
from agents.simulation.crowd_workers import SimulatedCrowdSettings
from agents.simulation.experts import SimulatedExpertSettings


class PoolSettings(BaseModel):
    """The labeling pools of a worker (``LABELLOOP_POOLS__*``)."""

    model_config = ConfigDict(frozen=True)

    simulated: SimulatedCrowdSettings = SimulatedCrowdSettings()
    #: Toloka through toloka-kit; ``enabled=True`` makes it the crowd tier instead of the simulated crowd.
    toloka: TolokaSettings = TolokaSettings()
    #: A crowd outside the worker that reads label-requests itself; ``enabled=True`` makes it the
    #: crowd tier (agents/pools/remote.py).
    remote: RemoteCrowdSettings = RemoteCrowdSettings()
    #: The expert tier's web page; ``enabled=False`` sends expert requests to the crowd.
    experts: ExpertPoolSettings = ExpertPoolSettings()
    experts_enabled: bool = True
    #: The autoscaler (Erlang C against the time-to-label SLA): off unless enabled.
    autoscaler_enabled: bool = False
    autoscaler: AutoscalerSettings = AutoscalerSettings()
    #: Bots answering on the expert page for local runs (0: none; people answer there).
    simulated_experts: SimulatedExpertSettings = SimulatedExpertSettings()
    #: Seconds between two PoolStatus reports.
    status_every_s: float = Field(default=2.0, gt=0.0)


class DispatcherSettings(BaseModel):
    """The dispatcher (``LABELLOOP_DISPATCHER__*``)."""

    model_config = ConfigDict(frozen=True)

    #: Crowd requests one worker has with its pool at once (more wait in Kafka).
    concurrency: int = Field(default=200, ge=1, le=5_000)
    #: Expert requests one worker has with its experts at once (people take minutes; these only wait).
    expert_concurrency: int = Field(default=500, ge=1, le=5_000)
    #: How often a worker starts the open tasks of partitions it owns that nobody works on here
    #: (after a crash or a rebalance moved them).
    recover_every_s: float = Field(default=2.0, gt=0.0, le=600.0)


class AggregatorSettings(BaseModel):
    """The aggregator (``LABELLOOP_AGGREGATOR__*``)."""

    model_config = ConfigDict(frozen=True)

    default_overlap: int = Field(default=3, ge=1, le=50)
    weighted: WeightedSettings = WeightedSettings()
    skills: SkillSettings = SkillSettings()
    dawid_skene: DawidSkeneSettings = DawidSkeneSettings()
    #: Seconds between two checks whether a Dawid–Skene refit is due.
    refit_every_s: float = Field(default=5.0, gt=0.0)


class StageSettings(BaseSettings):
    """Every stage's settings, read from ``LABELLOOP_*``.

    >>> StageSettings().router.accept_threshold
    0.8
    """

    model_config = SettingsConfigDict(
        env_prefix="LABELLOOP_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    router: RouterSettings = RouterSettings()
    dispatcher: DispatcherSettings = DispatcherSettings()
    pools: PoolSettings = PoolSettings()
    aggregator: AggregatorSettings = AggregatorSettings()
    learner: LearnerSettings = LearnerSettings()
    monitor: MonitorSettings = MonitorSettings()
    #: The worker's web server (``LABELLOOP_OPERATOR__*``): pool commands behind a token,
    #: ``/metrics`` and the dashboard.
    operator: OperatorApiSettings = OperatorApiSettings()
    #: How the dashboard samples the metrics (``LABELLOOP_DASHBOARD__*``).
    dashboard: DashboardSettings = DashboardSettings()
    #: The record explorer's index and indexer (``LABELLOOP_EXPLORER__*``).
    explorer: ExplorerSettings = ExplorerSettings()
