"""The error tree of Labelloop: every failure we raise on purpose has a class and its context.

::

    LabelloopError
     ├── ContractError      bad input: the record goes to the DLQ with this reason
     │    └── OperatorCommandError    an operator command that cannot be sent (which field, why)
     ├── BackendError       a labeling backend failed
     │    ├── RetryableBackendError   try again later (``retry_after_s``): backpressure, never a drop
     │    └── RejectedBackendError    the backend refused for good
     ├── AnswerRefusedError an expert's answer that cannot be used (``kind`` says why;
     │                      agents/pools/experts/expert_queue.py, with its refusal kinds)
     ├── ActionError        a record-explorer action that cannot be carried out as asked
     │                      (``status``: the 4xx the API answers; agents/explorer/actions.py)
     ├── ConfigError        settings or topics are wrong; the process should not start
     │    ├── UnknownTopicError       a topic the catalogue does not have (also a KeyError)
     │    └── NoPoolError             no labeling pool serves a request's tier (also a LookupError)
     ├── BrokerError        the local Kafka broker could not be fetched, started or reached
     ├── DeliveryError      Kafka did not acknowledge one or more published records (the SDK)
     ├── SnapshotError      a label snapshot could not be read, written or replayed
     ├── CheckpointError    a model checkpoint that cannot be used (missing, torn, corrupt)
     └── NotStartedError    a server or client used before it was started (also a RuntimeError)

Each one is defined here, where the tree is, except :class:`AnswerRefusedError`, which carries
the expert queue's own refusal kinds, and the explorer's ``ActionError``, which carries its status;
the modules that raise them re-export them, so
``from streams.sdk import DeliveryError`` and the like keep working.
``tests/test_errors.py`` walks the packages: every exception class the project defines is in
this tree, and shipped code raises no bare ``RuntimeError``, ``LookupError`` or ``Exception``.
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


class UnknownTopicError(ConfigError, KeyError):
    """A topic name the catalogue does not have (a ``KeyError`` too: topic names are a mapping)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return LabelloopError.__str__(self)


class NoPoolError(ConfigError, LookupError):
    """No labeling pool serves a request's tier (and there is no crowd to fall back on)."""


class BrokerError(LabelloopError):
    """The local Kafka broker could not be fetched, started or reached."""


class DeliveryError(LabelloopError):
    """Kafka did not acknowledge one or more published records."""


class SnapshotError(LabelloopError):
    """A snapshot could not be read, written or replayed."""


class CheckpointError(LabelloopError):
    """A checkpoint that cannot be used (missing, torn, corrupt, or from another River)."""


class NotStartedError(LabelloopError, RuntimeError):
    """A server or client was used before it was started (a ``RuntimeError`` too: a caller's bug).

    >>> isinstance(NotStartedError("the expert page is not running"), RuntimeError)
    True
    """


class OperatorCommandError(ContractError):
    """An operator command that cannot be sent: the message says which field and why."""

    def __init__(self, message: str, **where: object) -> None:
        super().__init__(message, kind="bad_command", **where)
