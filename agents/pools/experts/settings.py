"""Settings of the expert pool's web page (``LABELLOOP_POOLS__EXPERTS__*``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ExpertPoolSettings(BaseModel):
    """The expert tier: where its page listens, how long a shown task is reserved, what it costs.

    Examples
    --------
    >>> settings = ExpertPoolSettings(token="s3cret")
    >>> settings.host, settings.port, settings.token
    ('127.0.0.1', 8765, SecretStr('**********'))
    """

    model_config = ConfigDict(frozen=True)

    name: str = "experts"
    #: Interface the page listens on; loopback by default (put a TLS proxy in front to share it).
    host: str = "127.0.0.1"
    #: TCP port of the page; 0 picks a free one (tests), read it back from ``ExpertPool.port``.
    port: int = Field(default=8765, ge=0, le=65_535)
    #: Seconds a task shown to an expert stays reserved for them before it goes back to the queue.
    lease_s: float = Field(default=300.0, gt=0.0)
    #: When set, every API call must carry it (header, cookie or ``?token=``); never logged.
    token: SecretStr | None = None
    #: Answers per task when the request does not say (experts are scarce: one by default).
    overlap: int = Field(default=1, ge=1, le=50)
    #: An expert counts as active when the page called the API within this many seconds.
    active_window_s: float = Field(default=120.0, gt=0.0)
    #: Assumed seconds per answer until the experts' own answers have been measured.
    default_service_s: float = Field(default=30.0, gt=0.0)
    #: How many recent answer times the service-time estimate uses (their median).
    service_window: int = Field(default=50, ge=1, le=10_000)
    #: Seconds between two polls of the page while nothing is waiting.
    poll_s: float = Field(default=2.0, gt=0.0, le=60.0)
    cost_per_label: float = Field(default=1.0, ge=0.0)
