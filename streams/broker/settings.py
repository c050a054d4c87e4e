"""Where and how the local broker runs (:class:`BrokerSettings`) and what ``status`` reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POM = REPO_ROOT / "broker" / "pom.xml"
DOCKER_HINT = (
    "or run Kafka in Docker instead: `docker compose up -d kafka`, then "
    "LABELLOOP_KAFKA__BOOTSTRAP_SERVERS=localhost:29092"
)


class BrokerSettings(BaseSettings):
    """Where and how the local broker runs; each field reads ``LABELLOOP_BROKER_<FIELD>``.

    Parameters
    ----------
    port
        PLAINTEXT listener on 127.0.0.1 (the bootstrap port clients use).
    controller_port
        KRaft controller listener on 127.0.0.1.
    home
        Project-local folder for jars, data, logs and config; relative to the working dir.
    heap_mb
        JVM maximum heap.
    start_timeout_s
        How long ``start`` waits for the broker to answer a metadata request.
    pom
        The Maven pom naming the broker jars; ``None`` means ``broker/pom.xml`` in the repo.

    Examples
    --------
    >>> settings = BrokerSettings(port=19092, controller_port=19093, pom=None)
    >>> settings.port, settings.pom_path.name
    (19092, 'pom.xml')
    """

    model_config = SettingsConfigDict(env_prefix="LABELLOOP_BROKER_", frozen=True)

    port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(default=9093, ge=1, le=65535)
    home: Path = Path(".labelloop/kafka")
    heap_mb: int = Field(default=512, ge=128)
    start_timeout_s: float = Field(default=90, gt=0)
    pom: Path | None = None

    @model_validator(mode="after")
    def _ports_differ(self) -> BrokerSettings:
        if self.port == self.controller_port:
            raise ValueError("port and controller_port must differ")
        return self

    @property
    def pom_path(self) -> Path:
        return self.pom if self.pom is not None else DEFAULT_POM


@dataclass(frozen=True)
class BrokerStatus:
    """A snapshot: the pid of our broker process (None if not running) and whether Kafka answers."""

    pid: int | None
    reachable: bool
    bootstrap: str

    @property
    def running(self) -> bool:
        return self.pid is not None
