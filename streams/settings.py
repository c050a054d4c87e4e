"""Plumbing settings from the environment (``LABELLOOP_*``): Kafka connection, topics, the faust app.

Nested groups use ``__``: ``LABELLOOP_KAFKA__BOOTSTRAP_SERVERS=broker:9092``,
``LABELLOOP_TOPICS__PREFIX=prod.labelloop.``. Secrets are ``SecretStr`` and can
come from files (``LABELLOOP_KAFKA__SASL_PASSWORD_FILE``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.errors import ConfigError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseModel):
    """How every client (faust, the SDK, the CLI) reaches Kafka."""

    # hide_input_in_errors: a validation error must never repeat the password it was given.
    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    request_timeout_ms: int = Field(default=30_000, ge=1_000)

    @model_validator(mode="after")
    def _sasl_complete(self) -> Self:
        if self.security_protocol.startswith("SASL") and (
            self.sasl_mechanism is None or self.sasl_username is None or self.password is None
        ):
            raise ValueError(
                f"{self.security_protocol} needs sasl_mechanism, sasl_username and "
                "sasl_password (or sasl_password_file)"
            )
        return self

    @property
    def password(self) -> SecretStr | None:
        """The SASL password, from the setting or its file (the file wins when both are set)."""
        if self.sasl_password_file is not None:
            try:
                return SecretStr(self.sasl_password_file.read_text(encoding="utf-8").strip())
            except OSError as error:
                raise ConfigError(
                    f"cannot read sasl_password_file {self.sasl_password_file}: {error.strerror}"
                ) from None
        return self.sasl_password

    @property
    def bootstrap_list(self) -> list[str]:
        """``bootstrap_servers`` as a list of ``host:port``."""
        return [server.strip() for server in self.bootstrap_servers.split(",") if server.strip()]

    def kafka_python_options(self) -> dict[str, object]:
        """Connection options for kafka-python clients (producer, consumer, admin)."""
        options: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_list,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism is not None:
            password = self.password
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = password.get_secret_value() if password else None
        if self.ssl_cafile is not None:
            options["ssl_cafile"] = str(self.ssl_cafile)
        if self.ssl_certfile is not None:
            options["ssl_certfile"] = str(self.ssl_certfile)
        if self.ssl_keyfile is not None:
            options["ssl_keyfile"] = str(self.ssl_keyfile)
        return options


class TopicSettings(BaseModel):
    """Topic names and sizes. All event topics share one partition count (co-partitioning)."""

    model_config = ConfigDict(frozen=True)

    prefix: str = Field(default="labelloop.", pattern=r"^[A-Za-z0-9._-]*$", max_length=100)
    partitions: int = Field(default=4, ge=1, le=1_000)
    replication_factor: int = Field(default=1, ge=1, le=7)


class Settings(BaseSettings):
    """Everything the plumbing needs, read from ``LABELLOOP_*``.

    >>> Settings(topics=TopicSettings(prefix="demo.")).topics.prefix
    'demo.'
    """

    model_config = SettingsConfigDict(
        env_prefix="LABELLOOP_",
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    #: The faust app id: consumer group and the prefix of table changelog topics.
    app_id: str = Field(default="labelloop", pattern=r"^[A-Za-z0-9._-]+$", max_length=100)
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    #: Where workers keep local state (faust's data dir, model checkpoints).
    data_dir: Path = Path(".labelloop/worker")
    web_enabled: bool = False
    web_port: int = Field(default=6066, ge=1, le=65_535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: How long the group waits for a silent worker before giving its partitions to others
    #: (faust's default is 60 s; a killed worker's events wait that long).
    session_timeout_s: float = Field(default=30.0, ge=6.0, le=300.0)
    #: Wait for in-flight records to be acknowledged before giving partitions away in a rebalance.
    #: Label requests stay unacknowledged until their pool has every answer, so waiting can hold a
    #: group's rebalance; but off, a worker losing partitions keeps deciding tasks their new owner
    #: decides again (two revision-1 labels in the SIGKILL test). Leave it on (docs/scale-out.md).
    stream_wait_empty: bool = True
    #: How far back a worker reads a labels partition it takes over, to find Labels the previous
    #: owner published after its last commit (streams/ledger.py). At least twice the session
    #: timeout plus a margin; None for that.
    ledger_lookback_s: float | None = Field(default=None, ge=10.0, le=86_400.0)

    @property
    def label_lookback_s(self) -> float:
        """The labels read-back window in force: ``ledger_lookback_s``, or twice the session timeout + 30 s.

        >>> Settings(session_timeout_s=10).label_lookback_s
        50.0
        """
        if self.ledger_lookback_s is not None:
            return self.ledger_lookback_s
        return 2 * self.session_timeout_s + 30.0

    #: Warm copies of each table on other workers (faster takeover after a crash).
    standby_replicas: int = Field(default=0, ge=0, le=10)
