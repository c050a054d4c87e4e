"""The local broker's process: configure, format, launch, supervise and stop one KRaft JVM.

Everything lives under ``home`` (see :mod:`streams.broker`); a file lock on it makes concurrent
starts (test workers, several shells) launch one broker, and a pid file lets any process stop it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from streams.broker.artifacts import artifacts_ready, fetch_artifacts, find_java
from streams.broker.config import (
    _PROPERTY_KEY,
    SCRAM_MECHANISMS,
    log4j2_properties,
    render_properties,
    server_properties,
)
from streams.broker.files import last_lines, write_atomic
from streams.broker.probes import (
    can_bind,
    is_reachable,
    join_host_port,
    listener_addresses,
    poll_until_reachable,
)
from streams.broker.settings import BrokerSettings, BrokerStatus
from streams.errors import BrokerError

logger = logging.getLogger(__name__)

_CLUSTER_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
_LOG_ERROR = re.compile(r"^\[[^]]*\] (ERROR|FATAL) ")
_EPHEMERAL_HINT = "Linux picks client ports from 32768-60999 by default"


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
        return artifacts_ready(self.libs_dir, self.settings.pom_path)

    def ensure_artifacts(self) -> None:
        """Check Java, and fetch the broker jars with Maven unless the pom's jars are in place."""
        with self._locked():
            self._java_path()
            if not self.artifacts_ready():
                fetch_artifacts(self.home, self.libs_dir, self.settings.pom_path)

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
                if not can_bind(host, port):
                    raise BrokerError(
                        f"{join_host_port(host, port)} is taken by another socket, so the broker at "
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
        header = "Written by labelloop (streams/broker/) on every start; edits are overwritten."
        server = server_properties(self.settings, self.data_dir, extra_properties)
        write_atomic(self.server_properties_file, render_properties(server, header))
        log4j2 = log4j2_properties(self.logs_dir / "server.log")
        write_atomic(self.log4j2_file, render_properties(log4j2, header))

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
        write_atomic(self._cluster_id_file, cluster_id + "\n")
        return cluster_id

    def _storage_tool(self, *args: str) -> str:
        classpath = str(self.libs_dir / "*")  # java expands the wildcard itself
        command = [self._java_path(), "-cp", classpath, "kafka.tools.StorageTool", *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            output = last_lines(result.stdout + result.stderr, 30)
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
        write_atomic(self.pid_file, f"{process.pid}\n")
        logger.info("started Kafka (pid %d) on %s", process.pid, self.bootstrap)
        return process

    def _await_startup(self, alive: Callable[[], bool], *, owned: bool) -> None:
        timeout_s = self.settings.start_timeout_s
        if poll_until_reachable(self.bootstrap, timeout_s, alive):
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
            self._java = find_java()
        return self._java

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
                tail = last_lines((self.logs_dir / name).read_text(errors="replace"), lines)
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


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
