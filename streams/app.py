"""The faust app factory: one configured app per worker, no module-level app, no import side effects."""

from __future__ import annotations

import fcntl
import shutil
from pathlib import Path
from typing import IO, Any

import faust
from mode.utils.objects import cached_property

from streams.errors import ConfigError
from streams.settings import KafkaSettings, Settings
from streams.transport import FlowControl


def broker_credentials(kafka: KafkaSettings) -> faust.types.auth.CredentialsT | None:
    """faust credentials for the configured security protocol (None for PLAINTEXT).

    The TLS context is :meth:`KafkaSettings.ssl_context`, the one every aiokafka client uses.
    """
    context = kafka.ssl_context()
    if kafka.security_protocol.startswith("SASL"):
        password = kafka.password
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=password.get_secret_value() if password else None,
            mechanism=kafka.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


MIB = 1024**2

#: faust's RocksDB options for one partition of one event table (faust opens a database per table
#: partition, each with its own buffers and cache). faust's defaults (64 MiB write buffers, three of
#: them, a 2 GiB block cache, 3 bloom bits per key) would hold a whole run's ledger in memtables
#: and grow with every event, which is what the RocksDB store is for not to do. With these, one
#: database holds at most 2 x 2 MiB of memtables and 2 MiB of cached blocks (16 databases: 4
#: tables x 4 partitions); what grows with the events is the bloom filters and block indexes,
#: about 1.3 bytes per key (a probe of 1M ledger-like keys over 4 databases: 0.32 MB of table
#: readers each; with 8 MiB caches and 4 MiB buffers its RSS still grew 21 MB from 500k to 1M
#: keys, with these 2 MB).
ROCKSDB_OPTIONS: dict[str, Any] = {
    # The binding pyproject installs (faust would also take python-rocksdb if it were there).
    "driver": "rocksdict",
    "write_buffer_size": 2 * MIB,
    "max_write_buffer_number": 2,
    "block_cache_size": 2 * MIB,
    # 10 bits per key: ~1 % false positives. Most lookups are for new events (not there): with
    # faust's 3 bits, about one in six would read a block from disk for nothing.
    "bloom_filter_size": 10,
}


def table_store(settings: Settings, table: str, *, per_event: bool) -> tuple[str, dict[str, Any] | None]:
    """The faust store URL and options of ``table``: the event store for ``per_event`` tables.

    Tables whose size follows the work in flight (open tasks, pending learner examples) stay in
    memory whatever the setting.

    The URL names the table: faust takes a table's own store only when its URL is truthy, and
    yarl's ``URL("rocksdb://")`` (a scheme alone) is falsy, so ``store="rocksdb://"`` silently
    falls back to the app's memory store (robinhood/faust#564, never merged; still so in
    faust-streaming 0.15.3). With a path the URL is truthy, and faust's RocksDB store uses the path
    as the file name it would have derived from the table's name anyway.

    >>> table_store(Settings(event_store="rocksdb"), "labels-published", per_event=True)[0]
    'labelloop-rocksdb:labels-published'
    >>> table_store(Settings(event_store="rocksdb"), "dispatcher-open", per_event=False)
    ('memory://', None)
    """
    if per_event and settings.event_store == "rocksdb":
        # A copy each: faust's RocksDB store pops keys off the options it is given.
        # faust's RocksDB store, closed without a garbage collection per table
        # (streams/patches/faust_rocksdb_store.py).
        return f"labelloop-rocksdb:{table}", dict(ROCKSDB_OPTIONS)
    return "memory://", None


def claim_local_state(app: faust.App) -> IO[bytes]:
    """Lock ``app``'s data dir for this process and drop the event tables a previous one left.

    Returns the open lock file: the lock lasts as long as it stays open (the process's life).
    Raises :class:`~streams.errors.ConfigError` when another live worker holds the dir: two
    workers must never share one.

    Why drop them: a RocksDB table is written locally at once, while the records that make its
    entries true (the Label behind a ledger entry, the LabelRequest behind a router decision) and
    the entry's own changelog record wait in the producer. A worker killed then (SIGKILL, OOM,
    power) leaves entries on disk whose effects never reached Kafka; kept, they would make its
    successor skip those events for ever (lost, not doubled). The changelog is what reached
    Kafka, in order after the effects (one producer), so each new process rebuilds the tables
    from their changelogs alone, as the memory store always did; RocksDB keeps only the memory
    bounded. The cost: a restart reads whole changelogs, not only their tails.
    """
    data_dir = Path(app.conf.datadir)
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = (data_dir / "worker.lock").open("ab")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ConfigError(
            f"another worker uses the data dir {data_dir.parent}: give each worker its own"
            " (LABELLOOP_DATA_DIR)"
        ) from None
    shutil.rmtree(Path(app.conf.tabledir), ignore_errors=True)
    return lock


def create_app(settings: Settings, **overrides: Any) -> faust.App:
    """A faust app for ``settings``: raw bytes on every topic, tables with changelogs.

    Tables are in memory unless declared with :func:`table_store`'s RocksDB store.

    Topics are never declared by faust (``topic_allow_declare=False``): the
    catalogue creates them, with the partition counts faust expects.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # faust makes only the last level
    options: dict[str, Any] = {
        "broker": ";".join(f"labelloop://{server}" for server in settings.kafka.bootstrap_list),
        "broker_credentials": broker_credentials(settings.kafka),
        "processing_guarantee": settings.processing_guarantee,
        "producer_acks": -1,
        # 5 ms of linger lets aiokafka fill batches: at 0 faust's per-record sends wake the
        # sender for almost every record (bench: +14 % router throughput at 10 ms).
        "producer_linger": 0.005,
        # faust's topic without three event-loop rounds per record sent (streams/patches/faust_topic.py).
        "Topic": "streams.transport:Topic",
        "topic_partitions": settings.topics.partitions,
        "topic_replication_factor": settings.topics.replication_factor,
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        "consumer_auto_offset_reset": "earliest",
        "key_serializer": "raw",
        "value_serializer": "raw",
        "store": "memory://",
        "datadir": str(settings.data_dir / "faust"),
        "autodiscover": False,
        "web_enabled": settings.web_enabled,
        "web_port": settings.web_port,
        "web_host": "127.0.0.1",
        "table_standby_replicas": settings.standby_replicas,
        "stream_wait_empty": settings.stream_wait_empty,
        "broker_commit_interval": 1.0,
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": min(3.0, settings.session_timeout_s / 3),
    }
    options.update(overrides)
    return App(settings.app_id, **options)


class App(faust.App):
    """faust's app with :class:`streams.transport.FlowControl`: a second resume keeps what is queued."""

    @cached_property
    def flow_control(self) -> FlowControl:
        return FlowControl(loop=self.loop)
