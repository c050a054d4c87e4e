"""Local broker launcher: the official Apache Kafka (single-node KRaft) run from Maven Central jars.

Machines without a Docker engine still get a real broker: ``broker/pom.xml`` names the
broker's runtime jars, Maven copies them into ``<home>/libs`` and ``kafka.Kafka`` runs
on them as one JVM that is both broker and controller, listening on 127.0.0.1 only.
Everything lives under ``home`` (default ``.labelloop/kafka``)::

    libs/               runtime jars + .labelloop-stamp.json (sha256 of the pom they came from)
    data/               log.dirs (topic partitions and the KRaft metadata log)
    logs/broker.out     the JVM's stdout/stderr
    logs/server.log     the broker's log4j2 log (*.prev: the run before)
    server.properties   log4j2.properties   cluster.id   broker.pid   .lock

POSIX only (signals, sessions, ``fcntl`` locks). One ``LocalBroker`` per thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.errors import BrokerError

__all__ = [
    "BrokerError",
    "BrokerSettings",
    "BrokerStatus",
    "LocalBroker",
    "is_reachable",
    "java_major_version",
    "log4j2_properties",
    "render_properties",
    "scram_listener_properties",
    "server_properties",
    "wait_until_reachable",
]

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POM = REPO_ROOT / "broker" / "pom.xml"
MIN_JAVA_MAJOR = 17  # Kafka 4.x brokers need Java 17+
DOCKER_HINT = (
    "or run Kafka in Docker instead: `docker compose up -d kafka`, then "
    "LABELLOOP_KAFKA__BOOTSTRAP_SERVERS=localhost:29092"
)
STAMP_NAME = ".labelloop-stamp.json"
_PROBE_TIMEOUT_S = 2.0
_MVN_TIMEOUT_S = 900.0
_JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')
_PROPERTY_KEY = re.compile(r"^[A-Za-z0-9._-]+$")
_CLUSTER_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
_LOG_ERROR = re.compile(r"^\[[^]]*\] (ERROR|FATAL) ")
_EPHEMERAL_HINT = "Linux picks client ports from 32768-60999 by default"
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


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


def server_properties(
    settings: BrokerSettings,
    data_dir: Path,
    extra_properties: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The broker's server.properties; ``extra_properties`` override (e.g. SASL listeners later).

    Examples
    --------
    >>> props = server_properties(BrokerSettings(port=19092, controller_port=19093), Path("/d"))
    >>> props["listeners"]
    'PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093'
    >>> props["auto.create.topics.enable"]
    'false'
    """
    port, controller_port = settings.port, settings.controller_port
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        # Static voters: `format` must then run without --standalone (4.1 rejects the pair).
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        # Every topic comes from the catalogue (faust needs matching partition counts).
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.cleaner.enable": "true",  # the labels topic is compacted
    }
    properties.update(extra_properties or {})
    return properties


def scram_listener_properties(
    settings: BrokerSettings,
    *,
    sasl_plaintext_port: int | None = None,
    sasl_ssl_port: int | None = None,
    ssl_port: int | None = None,
    keystore_pem: Path | None = None,
    truststore_pem: Path | None = None,
) -> dict[str, str]:
    """Extra listeners for :meth:`LocalBroker.start`: SCRAM over SASL_PLAINTEXT and SASL_SSL, mutual TLS.

    The PLAINTEXT listener on ``settings.port`` stays (the controller, the launcher's
    probe and the brokers' own traffic use it). TLS listeners read PEM files:
    ``keystore_pem`` holds the broker's private key (PKCS#8, unencrypted) and its
    certificate chain, ``truststore_pem`` the CA that signed the clients'
    certificates; the ``SSL`` listener requires a client certificate (mutual TLS).

    Examples
    --------
    >>> props = scram_listener_properties(BrokerSettings(port=39800, controller_port=39801),
    ...                                   sasl_plaintext_port=39802)
    >>> props["advertised.listeners"]
    'PLAINTEXT://127.0.0.1:39800,SASL_PLAINTEXT://127.0.0.1:39802'
    >>> props["sasl.enabled.mechanisms"]
    'SCRAM-SHA-256,SCRAM-SHA-512'
    """
    ports = {"SASL_PLAINTEXT": sasl_plaintext_port, "SASL_SSL": sasl_ssl_port, "SSL": ssl_port}
    listeners = [f"PLAINTEXT://127.0.0.1:{settings.port}"]
    listeners += [f"{name}://127.0.0.1:{port}" for name, port in ports.items() if port is not None]
    protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
    protocols += [f"{name}:{name}" for name, port in ports.items() if port is not None]
    properties = {
        "listeners": ",".join([*listeners, f"CONTROLLER://127.0.0.1:{settings.controller_port}"]),
        "advertised.listeners": ",".join(listeners),
        "listener.security.protocol.map": ",".join(protocols),
        "sasl.enabled.mechanisms": ",".join(SCRAM_MECHANISMS),
    }
    for name in ("SASL_PLAINTEXT", "SASL_SSL"):
        if ports[name] is None:
            continue
        for mechanism in SCRAM_MECHANISMS:
            properties[f"listener.name.{name.lower()}.{mechanism.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
    if sasl_ssl_port is not None or ssl_port is not None:
        if keystore_pem is None or truststore_pem is None:
            raise ValueError("TLS listeners need keystore_pem and truststore_pem")
        properties |= {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore_pem),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(truststore_pem),
        }
        if ssl_port is not None:
            properties["listener.name.ssl.ssl.client.auth"] = "required"
    return properties


def log4j2_properties(log_file: Path) -> dict[str, str]:
    """Minimal log4j2 config: INFO to one plain file, noisy packages at WARN.

    The file appends: log4j2 re-initialises while Kafka shuts down, and a truncating
    appender then wipes the run's log. The launcher sets the previous run's log aside.
    """
    properties = {
        "status": "warn",
        # Kafka logs its own shutdown from its shutdown hook; log4j2's hook would stop
        # logging first (and re-initialise, printing a warning to broker.out).
        "shutdownHook": "disable",
        "appender.file.type": "File",
        "appender.file.name": "FILE",
        "appender.file.fileName": str(log_file),
        "appender.file.layout.type": "PatternLayout",
        "appender.file.layout.pattern": "[%d] %p %m (%c)%n",
        "rootLogger.level": "INFO",
        "rootLogger.appenderRef.file.ref": "FILE",
    }
    quiet = {
        "cleaner": "kafka.log.LogCleaner",
        "storage": "org.apache.kafka.storage",
        "request": "kafka.request.logger",
    }
    for name, package in quiet.items():
        properties[f"logger.{name}.name"] = package
        properties[f"logger.{name}.level"] = "WARN"
    return properties


def render_properties(properties: Mapping[str, str], header: str = "") -> str:
    r"""Java .properties text; backslashes escaped, line breaks refused.

    Examples
    --------
    >>> print(render_properties({"log.dirs": r"C:\kafka"}), end="")
    log.dirs=C:\\kafka
    """
    lines = [f"# {line}" for line in header.splitlines()]
    for key, value in properties.items():
        if not _PROPERTY_KEY.match(key):
            raise ValueError(f"invalid property name {key!r}")
        if "\n" in value or "\r" in value:
            raise ValueError(f"property {key} must be one line, got {value!r}")
        lines.append(f"{key}={value.replace(chr(92), chr(92) * 2)}")
    return "\n".join(lines) + "\n"


def java_major_version(version_output: str) -> int | None:
    """The major Java version from ``java -version`` output, None if it has none.

    Examples
    --------
    >>> java_major_version('openjdk version "17.0.15" 2025-04-15')
    17
    >>> java_major_version('java version "1.8.0_351"')
    8
    >>> java_major_version('openjdk version "21-ea" 2023-09-19')
    21
    """
    match = _JAVA_VERSION.search(version_output)
    if match is None:
        return None
    major = int(match[1])
    return int(match[2]) if major == 1 and match[2] else major


def is_reachable(bootstrap: str, timeout_s: float = _PROBE_TIMEOUT_S) -> bool:
    """True if a Kafka broker at ``bootstrap`` answers a metadata request (TCP probe first)."""
    endpoints = _parse_bootstrap(bootstrap)
    if not any(_tcp_open(host, port, timeout_s) for host, port in endpoints):
        return False
    # Imported here: kafka-python loads ~200 protocol schemas (0.2 s) at import.
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    timeout_ms = max(int(timeout_s * 1000), 100)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=[_join_host_port(host, port) for host, port in endpoints],
            client_id="labelloop-broker-probe",
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
        )
    except (KafkaError, OSError) as exc:
        logger.debug("no Kafka at %s: %s", bootstrap, exc)
        return False
    try:
        admin.list_topics()
    except (KafkaError, OSError) as exc:
        logger.debug("metadata request to %s failed: %s", bootstrap, exc)
        return False
    finally:
        admin.close()
    return True


def wait_until_reachable(bootstrap: str, timeout_s: float) -> None:
    """Block until a broker at ``bootstrap`` (local or external) answers, else raise BrokerError."""
    if not _poll_until_reachable(bootstrap, timeout_s, alive=lambda: True):
        raise BrokerError(
            f"no Kafka broker answered a metadata request at {bootstrap} within {timeout_s:g} s"
        )


class LocalBroker:
    """A single-node KRaft broker (broker and controller in one JVM) on 127.0.0.1.

    ``start`` is idempotent: when something already answers on the port it returns the
    bootstrap string and starts nothing. The broker runs detached (its own session), so
    it outlives the Python process that started it until ``stop`` is called.

    Parameters
    ----------
    settings
        Ports, folder, heap and timeouts; ``None`` reads ``LABELLOOP_BROKER_*`` from the env.

    Examples
    --------
    >>> broker = LocalBroker(BrokerSettings(port=19092, controller_port=19093))
    >>> broker.bootstrap
    '127.0.0.1:19092'
    """

    def __init__(self, settings: BrokerSettings | None = None) -> None:
        self.settings = settings if settings is not None else BrokerSettings()
        self.home = self.settings.home.expanduser().resolve()
        self.libs_dir = self.home / "libs"
        self.data_dir = self.home / "data"
        self.logs_dir = self.home / "logs"
        self.server_properties_file = self.home / "server.properties"
        self.log4j2_file = self.home / "log4j2.properties"
        self.pid_file = self.home / "broker.pid"
        self._cluster_id_file = self.home / "cluster.id"
        self._lock_file = self.home / ".lock"
        self._process: subprocess.Popen[bytes] | None = None
        self._java: str | None = None
        self._lock_depth = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.settings.port}"

    def artifacts_ready(self) -> bool:
        """True when ``libs/`` holds every jar fetched for the current pom."""
        try:
            stamp = json.loads((self.libs_dir / STAMP_NAME).read_text())
        except (OSError, ValueError):
            return False
        jars = stamp.get("jars") if isinstance(stamp, dict) else None
        return (
            stamp.get("pom_sha256") == self._pom_sha256()
            and isinstance(jars, list)
            and bool(jars)
            and all((self.libs_dir / str(jar)).is_file() for jar in jars)
        )

    def ensure_artifacts(self) -> None:
        """Check Java, and fetch the broker jars with Maven unless the pom's jars are in place."""
        with self._locked():
            self._java_path()
            if self.artifacts_ready():
                return
            mvn = _require_tool("mvn", "Maven fetches the Kafka jars from Maven Central")
            pom = self.settings.pom_path
            digest = self._pom_sha256()
            # Fetch into a fresh folder so jars of an older pom never share the classpath.
            staging = self.home / "libs.partial"
            shutil.rmtree(staging, ignore_errors=True)
            logger.info("fetching the Kafka broker jars named in %s (first time ~25 s)", pom)
            goal = ["dependency:copy-dependencies", "-DincludeScope=runtime"]
            command = [mvn, "-B", "-q", "-f", str(pom), *goal, f"-DoutputDirectory={staging}"]
            try:
                result = subprocess.run(
                    command, capture_output=True, text=True, timeout=_MVN_TIMEOUT_S, check=False
                )
            except subprocess.TimeoutExpired as exc:
                raise BrokerError(f"mvn did not finish within {exc.timeout:g} s") from exc
            if result.returncode != 0:
                output = _last_lines(result.stdout + result.stderr, 30)
                raise BrokerError(
                    f"mvn could not fetch the Kafka jars (exit {result.returncode}):\n"
                    f"{output}\nFix the above, {DOCKER_HINT}"
                )
            jars = sorted(jar.name for jar in staging.glob("*.jar"))
            if not jars:
                raise BrokerError(f"mvn copied no jars from {pom} into {staging}")
            stamp = {"pom": str(pom), "pom_sha256": digest, "jars": jars}
            _write_atomic(staging / STAMP_NAME, json.dumps(stamp, indent=2) + "\n")
            shutil.rmtree(self.libs_dir, ignore_errors=True)
            staging.rename(self.libs_dir)

    def start(
        self,
        extra_properties: Mapping[str, str] | None = None,
        scram_users: Mapping[str, str] | None = None,
    ) -> str:
        """Start the broker unless one answers already; return the bootstrap string.

        ``extra_properties`` are added to server.properties (overriding ours) and only
        take effect when this call launches the broker. ``scram_users`` (name to password)
        get SCRAM-SHA-256 and SCRAM-SHA-512 credentials when the storage is formatted
        (the first start of a fresh ``home``): a broker with a SASL listener (see
        :func:`scram_listener_properties`) then admits them.
        """
        with self._locked():
            if is_reachable(self.bootstrap):
                return self.bootstrap
            pid = self._running_pid()
            if pid is not None:  # launched elsewhere and still starting up
                self._await_startup(lambda: self._running_pid() == pid, owned=False)
                return self.bootstrap
            listeners = server_properties(self.settings, self.data_dir, extra_properties)["listeners"]
            for host, port in listener_addresses(listeners):
                if not _can_bind(host, port):
                    raise BrokerError(
                        f"{_join_host_port(host, port)} is taken by another socket, so the broker at "
                        f"{self.bootstrap} could not listen there; stop what holds it or choose other ports "
                        "(LABELLOOP_BROKER_PORT, LABELLOOP_BROKER_CONTROLLER_PORT). Fixed ports "
                        f"belong below the ephemeral range ({_EPHEMERAL_HINT}), where no client "
                        "connection's local port can land."
                    )
            self.ensure_artifacts()
            self._write_config(extra_properties)
            self._format_storage(scram_users or {})
            process = self._launch()
            self._await_startup(lambda: process.poll() is None, owned=True)
            return self.bootstrap

    def stop(self, timeout_s: float = 30) -> bool:
        """SIGTERM our broker, SIGKILL it after ``timeout_s``; False if none was running."""
        with self._locked():
            pid = self._running_pid()
            if pid is None:
                self.pid_file.unlink(missing_ok=True)
                return False
            _signal(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout_s):
                logger.warning("Kafka (pid %d) ignored SIGTERM for %g s; killing it", pid, timeout_s)
                _signal(pid, signal.SIGKILL)
                self._wait_exit(pid, 10)
            self.pid_file.unlink(missing_ok=True)
            self._process = None
            return True

    def status(self) -> BrokerStatus:
        return BrokerStatus(
            pid=self._running_pid(),
            reachable=is_reachable(self.bootstrap),
            bootstrap=self.bootstrap,
        )

    # -- steps of start -------------------------------------------------------------

    def _write_config(self, extra_properties: Mapping[str, str] | None) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        header = "Written by labelloop (streams/broker.py) on every start; edits are overwritten."
        server = server_properties(self.settings, self.data_dir, extra_properties)
        _write_atomic(self.server_properties_file, render_properties(server, header))
        log4j2 = log4j2_properties(self.logs_dir / "server.log")
        _write_atomic(self.log4j2_file, render_properties(log4j2, header))

    def _format_storage(self, scram_users: Mapping[str, str]) -> None:
        if (self.data_dir / "meta.properties").is_file():
            return  # formatted before; `--ignore-formatted` would skip it anyway, a JVM later
        config = str(self.server_properties_file)
        scram: list[str] = []
        for name, password in scram_users.items():
            if not _PROPERTY_KEY.match(name) or any(c in password for c in ',[]"\n'):
                raise BrokerError(f'SCRAM user {name!r}: use [A-Za-z0-9._-] and a password without ,[]"')
            for mechanism in SCRAM_MECHANISMS:
                scram += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
        self._storage_tool("format", "-t", self._cluster_id(), "-c", config, "--ignore-formatted", *scram)

    def _cluster_id(self) -> str:
        """The stored cluster id, so a restart (or a re-format) keeps the same cluster."""
        with contextlib.suppress(OSError):
            stored = self._cluster_id_file.read_text().strip()
            if _CLUSTER_ID.match(stored):
                return stored
        cluster_id = self._storage_tool("random-uuid").strip().splitlines()[-1]
        if not _CLUSTER_ID.match(cluster_id):
            raise BrokerError(f"StorageTool random-uuid printed {cluster_id!r}, not a cluster id")
        _write_atomic(self._cluster_id_file, cluster_id + "\n")
        return cluster_id

    def _storage_tool(self, *args: str) -> str:
        classpath = str(self.libs_dir / "*")  # java expands the wildcard itself
        command = [self._java_path(), "-cp", classpath, "kafka.tools.StorageTool", *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            output = _last_lines(result.stdout + result.stderr, 30)
            raise BrokerError(f"kafka StorageTool {args[0]} failed (exit {result.returncode}):\n{output}")
        return result.stdout

    def _launch(self) -> subprocess.Popen[bytes]:
        heap_mb = self.settings.heap_mb
        jvm_flags = [f"-Xms{min(256, heap_mb)}m", f"-Xmx{heap_mb}m"]
        jvm_flags.append(f"-Dlog4j2.configurationFile={self.log4j2_file}")
        classpath, config = str(self.libs_dir / "*"), str(self.server_properties_file)
        command = [self._java_path(), *jvm_flags, "-cp", classpath, "kafka.Kafka", config]
        for name in ("broker.out", "server.log"):  # keep one previous run, tail only this one
            with contextlib.suppress(FileNotFoundError):
                (self.logs_dir / name).replace(self.logs_dir / f"{name}.prev")
        with (self.logs_dir / "broker.out").open("wb") as out:
            process = subprocess.Popen(
                command,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._process = process
        _write_atomic(self.pid_file, f"{process.pid}\n")
        logger.info("started Kafka (pid %d) on %s", process.pid, self.bootstrap)
        return process

    def _await_startup(self, alive: Callable[[], bool], *, owned: bool) -> None:
        timeout_s = self.settings.start_timeout_s
        if _poll_until_reachable(self.bootstrap, timeout_s, alive):
            return
        if alive():
            if owned:  # never leave a half-started broker behind
                self.stop(timeout_s=10)
            reason = f"did not answer a metadata request within {timeout_s:g} s"
        else:
            self.pid_file.unlink(missing_ok=True)
            reason = "exited during startup"
        raise BrokerError(f"the local Kafka broker at {self.bootstrap} {reason}.\n{self._log_tail()}")

    # -- process and file helpers ---------------------------------------------------

    def _java_path(self) -> str:
        if self._java is None:
            self._java = _find_java()
        return self._java

    def _pom_sha256(self) -> str:
        pom = self.settings.pom_path
        try:
            return hashlib.sha256(pom.read_bytes()).hexdigest()
        except OSError as exc:
            raise BrokerError(
                f"cannot read the broker pom {pom} ({exc.strerror}); set LABELLOOP_BROKER_POM, {DOCKER_HINT}"
            ) from exc

    def _running_pid(self) -> int | None:
        """The pid in the pid file if that process is alive and is this home's broker."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._is_alive(pid) and self._is_our_broker(pid) else None

    def _is_our_broker(self, pid: int) -> bool:
        """Guards against a stale pid file whose pid now belongs to another process."""
        if not Path("/proc").is_dir():
            return True  # no cheap way to check (macOS): trust the pid file
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"kafka.Kafka" in cmdline and bytes(self.server_properties_file) in cmdline

    def _is_alive(self, pid: int) -> bool:
        if self._process is not None and self._process.pid == pid:
            return self._process.poll() is None
        with contextlib.suppress(ChildProcessError):  # reap it if it is our (zombie) child
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._is_alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def _log_tail(self) -> str:
        """The first ERROR/FATAL lines of server.log (the cause) and the tails of both logs."""
        parts = []
        with contextlib.suppress(OSError):
            text = (self.logs_dir / "server.log").read_text(errors="replace")
            errors = [line for line in text.splitlines() if _LOG_ERROR.match(line)][:10]
            if errors:
                parts.append("--- first ERROR lines of server.log ---\n" + "\n".join(errors))
        for name, lines in (("broker.out", 20), ("server.log", 40)):
            with contextlib.suppress(OSError):
                tail = _last_lines((self.logs_dir / name).read_text(errors="replace"), lines)
                if tail.strip():
                    parts.append(f"--- {self.logs_dir / name} (last {lines} lines) ---\n{tail}")
        return "\n".join(parts) or f"(no output in {self.logs_dir})"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive file lock on home, so concurrent starts (e.g. test workers) launch once."""
        if self._lock_depth:  # start() calls ensure_artifacts() and stop() under the lock
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        self.home.mkdir(parents=True, exist_ok=True)
        with self._lock_file.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0
                fcntl.flock(lock, fcntl.LOCK_UN)


def _find_java() -> str:
    java = _require_tool("java", f"the Kafka broker runs on Java {MIN_JAVA_MAJOR}+")
    try:
        result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"`{java} -version` failed: {exc}") from exc
    output = result.stderr + result.stdout  # java -version writes to stderr
    major = java_major_version(output)
    if major is None:
        raise BrokerError(f"cannot read a Java version from `{java} -version`: {output.strip()!r}")
    if major < MIN_JAVA_MAJOR:
        raise BrokerError(
            f"Kafka 4 needs Java {MIN_JAVA_MAJOR} or newer, but {java} is Java {major}. "
            f"Put a newer JDK first on PATH, {DOCKER_HINT}"
        )
    return java


def _require_tool(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BrokerError(f"`{name}` is not on PATH ({why}). Install it, {DOCKER_HINT}")
    return path


def _poll_until_reachable(bootstrap: str, timeout_s: float, alive: Callable[[], bool]) -> bool:
    """True once a metadata request succeeds; False at the deadline or once ``alive()`` is False."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if is_reachable(bootstrap, timeout_s=min(_PROBE_TIMEOUT_S, max(remaining, 0.1))):
            return True
        if not alive() or time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


def _parse_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    endpoints = []
    for entry in bootstrap.split(","):
        address = entry.strip().rpartition("://")[2]  # tolerate kafka://host:port
        if not address:
            continue
        host, colon, port = address.rpartition(":")
        if not colon or "]" in port:  # no port given (bare host or [ipv6])
            host, port = address, "9092"
        endpoints.append((host.strip("[]"), int(port)))
    if not endpoints:
        raise ValueError(f"no host:port in bootstrap {bootstrap!r}")
    return endpoints


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listener_addresses(listeners: str) -> list[tuple[str, int]]:
    """The (host, port) of each entry of a ``listeners`` property.

    Examples
    --------
    >>> listener_addresses("PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093")
    [('127.0.0.1', 19092), ('127.0.0.1', 19093)]
    """
    return _parse_bootstrap(listeners)


def _can_bind(host: str, port: int) -> bool:
    """True when a listening socket could take ``host:port`` now (as the JVM binds it: SO_REUSEADDR).

    A connect probe misses what blocks a listener most often on a busy machine: a
    client connection whose ephemeral local port happens to be this one.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _tcp_open(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _last_lines(text: str, count: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-count:])


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temp file and rename, so a reader never sees half a config."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text)
    os.replace(temp, path)
