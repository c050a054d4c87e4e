"""What the demo replays and how the loop is set up for it (a model only: no Kafka, no worker)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DemoSettings(BaseModel):
    """What the demo replays and how the loop is set up for it.

    >>> DemoSettings(events=100).surge_factor
    3.0
    """

    model_config = ConfigDict(frozen=True)

    events: int = Field(default=4_000, ge=10)
    rate_per_s: float = Field(default=40.0, gt=0.0)
    #: The surge: the rate is multiplied by ``surge_factor`` between these shares of the run.
    surge_factor: float = Field(default=3.0, ge=1.0)
    surge_from: float = 0.2
    surge_to: float = 0.35
    malformed: int = Field(default=60, ge=0)
    timeout_s: float = Field(default=600.0, gt=0.0)
    accept_threshold: float = 0.7
    crowd_workers: int = 30
    crowd_mean_service_s: float = 1.0
    #: Simulated experts answering escalations and expert audits on the expert page.
    experts: int = Field(default=8, ge=0)
    expert_mean_service_s: float = 1.0
    #: Experts label the control group and the recall audit, so the estimates are not crowd noise.
    measurement_tier: Literal["crowd", "expert"] = "expert"
    #: Where the expert page listens during the demo (open it to answer alongside the bots).
    expert_port: int = Field(default=8765, ge=0, le=65_535)
    #: The worker's web server: the live dashboard and /metrics (another free port if taken).
    web_port: int = Field(default=6067, ge=1, le=65_535)
    #: Seconds between two samples of the dashboard (and of the report's plots).
    sample_every_s: float = Field(default=1.0, gt=0.0)
    seed: int = 42
    home: Path = Path(".labelloop/demo")
