"""The error tree of Labelloop: every failure we raise on purpose has a class and its context.

::

    LabelloopError
     ├── ContractError      bad input: the record goes to the DLQ with this reason
     ├── BackendError       a labeling backend failed
     │    ├── RetryableBackendError   try again later (``retry_after_s``): backpressure, never a drop
     │    └── RejectedBackendError    the backend refused for good
     ├── ConfigError        settings or topics are wrong; the process should not start
     └── BrokerError        the local Kafka broker could not be fetched, started or reached
"""

from __future__ import annotations


class LabelloopError(Exception):
    """Root of every error Labelloop raises on purpose.

    Carries where it happened when known (event, topic, partition, offset), so a
    log line or a DLQ header can say exactly which record failed.
    """

    def __init__(
        self,
        message: str,
        *,
        event_id: str | None = None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.event_id = event_id
        self.topic = topic
        self.partition = partition
        self.offset = offset

    def __str__(self) -> str:
        where = [
            f"{name}={value}"
            for name, value in (
                ("event_id", self.event_id),
                ("topic", self.topic),
                ("partition", self.partition),
                ("offset", self.offset),
            )
            if value is not None
        ]
        return f"{self.message} ({', '.join(where)})" if where else self.message


class ContractError(LabelloopError):
    """A record breaks the wire contract; ``message`` is the reason written to the DLQ.

    >>> str(ContractError("scores sum to 0.8", topic="labelloop.predictions", offset=7))
    'scores sum to 0.8 (topic=labelloop.predictions, offset=7)'
    """

    def __init__(self, message: str, *, kind: str = "invalid", **where: object) -> None:
        super().__init__(message, **where)  # type: ignore[arg-type]
        #: A short machine-readable class of the failure (``not_json``, ``too_large``, ...).
        self.kind = kind


class BackendError(LabelloopError):
    """A labeling backend (Toloka, experts, the simulated crowd) failed."""


class RetryableBackendError(BackendError):
    """The backend is busy or rate-limited: retry after ``retry_after_s`` (backpressure)."""

    def __init__(self, message: str, *, retry_after_s: float, **where: object) -> None:
        super().__init__(message, **where)  # type: ignore[arg-type]
        self.retry_after_s = retry_after_s


class RejectedBackendError(BackendError):
    """The backend refused the work for good."""


class ConfigError(LabelloopError):
    """Settings, policy files or existing topics do not fit; fix and restart."""


class BrokerError(LabelloopError):
    """The local Kafka broker could not be fetched, started or reached."""
