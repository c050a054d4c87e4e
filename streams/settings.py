"""Plumbing settings from the environment (``LABELLOOP_*``): Kafka connection, topics, the faust app.

Nested groups use ``__``: ``LABELLOOP_KAFKA__BOOTSTRAP_SERVERS=broker:9092``,
``LABELLOOP_TOPICS__PREFIX=prod.labelloop.``. Secrets are ``SecretStr`` and can
come from files (``LABELLOOP_KAFKA__SASL_PASSWORD_FILE``).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.errors import ConfigError
from streams.secrets import resolve_secret

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseModel):
    """How every client (faust, the SDK, the CLI, the operator tools) reaches Kafka.

    ``security_protocol`` picks the listener: ``SASL_SSL`` / ``SASL_PLAINTEXT``
    with SCRAM (``sasl_mechanism``, ``sasl_username``, ``sasl_password`` or
    ``sasl_password_file``), ``SSL`` with a client certificate for mutual TLS
    (``ssl_certfile`` + ``ssl_keyfile``, ``ssl_key_password[_file]`` when the key
    is encrypted), ``ssl_cafile`` to trust a private CA. Every client is built
    from :meth:`kafka_python_options` or :meth:`aiokafka_options`, so the same
    settings reach all of them.

    Examples
    --------
    >>> kafka = KafkaSettings(bootstrap_servers="k1:9096", security_protocol="SASL_PLAINTEXT",
    ...                       sasl_mechanism="SCRAM-SHA-512", sasl_username="loop",
    ...                       sasl_password="s3cret")
    >>> "s3cret" in repr(kafka) + str(kafka.model_dump())
    False
    >>> kafka.password.get_secret_value()
    's3cret'
    >>> sorted(kafka.aiokafka_options())[:3]
    ['bootstrap_servers', 'request_timeout_ms', 'sasl_mechanism']
    """

    # hide_input_in_errors: a validation error must never repeat the password it was given.
    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(default=None, repr=False)
    sasl_password_file: Path | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = Field(default=None, repr=False)
    ssl_key_password_file: Path | None = None
    #: Check the broker's certificate names the host we dialled (leave on outside tests).
    ssl_check_hostname: bool = True
    request_timeout_ms: int = Field(default=30_000, ge=1_000)

    @model_validator(mode="after")
    def _security_complete(self) -> Self:
        protocol = self.security_protocol
        if protocol.startswith("SASL") and (
            self.sasl_mechanism is None
            or self.sasl_username is None
            or (self.sasl_password is None and self.sasl_password_file is None)
        ):
            raise ValueError(
                f"{protocol} needs sasl_mechanism, sasl_username and sasl_password (or sasl_password_file)"
            )
        if not protocol.startswith("SASL") and self.sasl_mechanism is not None:
            raise ValueError(
                f"sasl_mechanism is set but security_protocol is {protocol}: it would be ignored"
            )
        tls = (self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile)
        if protocol not in ("SSL", "SASL_SSL") and any(path is not None for path in tls):
            # A CA or client certificate given for a plaintext listener: the operator meant TLS.
            raise ValueError(
                f"ssl_* files are set but security_protocol is {protocol}: they would be ignored"
            )
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError("ssl_keyfile needs ssl_certfile (the client certificate for mutual TLS)")
        return self

    @property
    def password(self) -> SecretStr | None:
        """The SASL password, from the setting or its file (the file wins when both are set)."""
        return resolve_secret(self.sasl_password, self.sasl_password_file, "sasl_password_file")

    @property
    def key_password(self) -> SecretStr | None:
        """The password of an encrypted ``ssl_keyfile`` (the file wins when both are set)."""
        return resolve_secret(self.ssl_key_password, self.ssl_key_password_file, "ssl_key_password_file")

    @property
    def bootstrap_list(self) -> list[str]:
        """``bootstrap_servers`` as a list of ``host:port``."""
        return [server.strip() for server in self.bootstrap_servers.split(",") if server.strip()]

    @property
    def uses_tls(self) -> bool:
        """True for ``SSL`` and ``SASL_SSL``."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of the aiokafka clients (faust included); None without TLS.

        Verifies the broker against ``ssl_cafile`` (else the system CAs) and
        presents the client certificate when one is set (mutual TLS).
        """
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(
            cafile=str(self.ssl_cafile) if self.ssl_cafile is not None else None
        )
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile is not None:
            key_password = self.key_password
            try:
                context.load_cert_chain(
                    str(self.ssl_certfile),
                    str(self.ssl_keyfile) if self.ssl_keyfile else None,
                    password=key_password.get_secret_value() if key_password else None,
                )
            except (OSError, ssl.SSLError) as error:
                # Names the files, never the key password.
                raise ConfigError(
                    f"cannot load the client certificate {self.ssl_certfile} / {self.ssl_keyfile}: "
                    f"{getattr(error, 'strerror', None) or error.__class__.__name__}"
                ) from None
        return context

    def kafka_python_options(self) -> dict[str, object]:
        """Connection options for kafka-python clients (producer, consumer, admin)."""
        options: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_list,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
            # kafka-python 3 retries a refused bootstrap (bad credentials, a TLS handshake the broker
            # rejects) with backoff until its own bootstrap_timeout_ms (30 s), whatever
            # request_timeout_ms says: one knob bounds both.
            "bootstrap_timeout_ms": self.request_timeout_ms,
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
        key_password = self.key_password
        if key_password is not None:
            options["ssl_password"] = key_password.get_secret_value()
        if self.uses_tls and not self.ssl_check_hostname:
            options["ssl_check_hostname"] = False
        return options

    def confluent_options(self) -> dict[str, object]:
        """Connection options for confluent-kafka (librdkafka): the batch path's consumer and producer.

        >>> KafkaSettings(bootstrap_servers="k1:9092, k2:9092").confluent_options()["bootstrap.servers"]
        'k1:9092,k2:9092'
        """
        options: dict[str, object] = {
            "bootstrap.servers": ",".join(self.bootstrap_list),
            "security.protocol": self.security_protocol,
            "socket.timeout.ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism is not None:
            password = self.password
            options["sasl.mechanism"] = self.sasl_mechanism
            options["sasl.username"] = self.sasl_username
            options["sasl.password"] = password.get_secret_value() if password else None
        if self.ssl_cafile is not None:
            options["ssl.ca.location"] = str(self.ssl_cafile)
        if self.ssl_certfile is not None:
            options["ssl.certificate.location"] = str(self.ssl_certfile)
        if self.ssl_keyfile is not None:
            options["ssl.key.location"] = str(self.ssl_keyfile)
        key_password = self.key_password
        if key_password is not None:
            options["ssl.key.password"] = key_password.get_secret_value()
        if self.uses_tls:
            options["ssl.endpoint.identification.algorithm"] = "https" if self.ssl_check_hostname else "none"
        return options

    def reader_options(self) -> dict[str, object]:
        """:meth:`aiokafka_options` for a consumer: read committed, as every reader of the loop must.

        The router writes its outputs in transactions (``streams/batches.py``); a reader that
        read uncommitted would see what a killed worker's aborted transaction held.
        """
        return {**self.aiokafka_options(), "isolation_level": "read_committed"}

    def kafka_python_reader_options(self) -> dict[str, object]:
        """:meth:`kafka_python_options` for a consumer: read committed (:meth:`reader_options`)."""
        return {**self.kafka_python_options(), "isolation_level": "read_committed"}

    def aiokafka_options(self) -> dict[str, object]:
        """Connection options for aiokafka clients (the operator tools, snapshots, broadcast readers).

        The same security faust's workers get (:func:`streams.app.broker_credentials`).
        """
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
        context = self.ssl_context()
        if context is not None:
            options["ssl_context"] = context
        return options


class TopicSettings(BaseModel):
    """Topic names and sizes. All event topics share one partition count (co-partitioning)."""

    model_config = ConfigDict(frozen=True)

    prefix: str = Field(default="labelloop.", pattern=r"^[A-Za-z0-9._-]*$", max_length=100)
    partitions: int = Field(default=4, ge=1, le=1_000)
    replication_factor: int = Field(default=1, ge=1, le=7)


class BatchSettings(BaseModel):
    """The router's batch path (``streams/batches.py``, ``LABELLOOP_BATCH__*``): one transaction's size."""

    model_config = ConfigDict(frozen=True)

    #: Records per fetch, over all partitions (all of them in one transaction).
    max_records: int = Field(default=4_000, ge=1, le=100_000)
    #: How long a fetch waits when nothing is buffered (the loop then fetches again).
    poll_timeout_ms: int = Field(default=200, ge=1, le=10_000)
    #: How long the broker holds a fetch for more data (it answers as soon as there is any).
    fetch_max_wait_ms: int = Field(default=100, ge=0, le=10_000)
    max_partition_fetch_bytes: int = Field(default=1024**2, ge=1024, le=64 * 1024**2)
    #: The most librdkafka pre-fetches ahead of the batch path, in kB (its
    #: ``queued.max.messages.kbytes``; its default, 64 MB, filled up over a backlog and read as
    #: memory growth: bench F6). 32 MB keeps the fetches ahead of a 4,000-record poll (8 MB cost
    #: F1 a fifth of its rate) with the memory flat (F6 -1.1 % where 64 MB gave +10.8 %).
    prefetch_kbytes: int = Field(default=32_768, ge=1_024, le=2_097_151)
    #: After a poll's first record, how long more are gathered into its transaction: fewer, larger
    #: transactions (each costs ~5 broker requests) for at most this much latency.
    gather_ms: int = Field(default=0, ge=0, le=1_000)
    #: Producer linger. It costs no latency: the commit sends what is queued at once (librdkafka's
    #: flush ignores linger.ms), and meanwhile the poll's records leave in few, large requests.
    linger_ms: int = Field(default=50, ge=0, le=1_000)
    #: The broker aborts a transaction left open this long: a worker SIGKILLed and never restarted
    #: on its data dir (a restarted one aborts its own at once) holds its partitions' outputs from
    #: read-committed readers this long, so it is short. A transaction lasts milliseconds here.
    transaction_timeout_s: float = Field(default=10.0, ge=1.0, le=900.0)
    #: Fault drill only: SIGKILL the worker once this many transactions have been produced, before
    #: the last one's commit (``tests/integration/test_batches.py``). Never set it in production.
    kill_before_commit_after: int | None = Field(default=None, ge=1)


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
    batch: BatchSettings = BatchSettings()
    #: The faust app id: consumer group and the prefix of table changelog topics.
    app_id: str = Field(default="labelloop", pattern=r"^[A-Za-z0-9._-]+$", max_length=100)
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    #: Where workers keep local state (faust's data dir, the event tables, model checkpoints).
    #: One per worker: two workers on one machine must not share it (RocksDB locks its files).
    data_dir: Path = Path(".labelloop/worker")
    #: Where the tables with an entry per event live (the label ledger, the router's decisions
    #: and estimates, the aggregator's task states): ``rocksdb`` on disk under ``data_dir``, with
    #: memory bounded by its buffers and caches (streams/app.py), or ``memory`` in the worker's
    #: heap, which grows with every event the worker has ever seen. Both recover from the
    #: tables' changelogs; RocksDB only reads the changelog past what it already holds.
    event_store: Literal["rocksdb", "memory"] = "rocksdb"
    #: A worker process's garbage-collector threshold for its youngest generation (Python's is
    #: 700 allocations): a batch keeps thousands of objects alive until it is committed, and each
    #: young collection walked them again (with the objects the worker made at start, frozen out
    #: of every collection, half of the router's CPU per event at 700, bench F1). None: Python's.
    gc_young_threshold: int | None = Field(default=50_000, ge=100, le=10_000_000)
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
