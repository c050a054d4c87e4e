"""A throwaway local PostgreSQL server from Debian's binaries, for the explorer's tests and benchmark.

Like ``streams/broker.py`` for Kafka: ``initdb`` into a folder, ``pg_ctl start`` on a loopback
port, trust authentication (nothing listens beyond 127.0.0.1), ``fsync=off`` (a test server's
data is thrown away). PostgreSQL refuses to run as root, so as root the server runs as the
unprivileged ``nobody`` through ``runuser``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from streams.errors import ConfigError


def binary(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, else where Debian's ``postgresql`` puts it (newest version)."""
    found = shutil.which(name)
    if found is not None:
        return found
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    return str(candidates[-1]) if candidates else None


def binaries_present() -> bool:
    """Whether ``initdb`` and ``pg_ctl`` are installed (Debian's ``postgresql`` package)."""
    return binary("initdb") is not None and binary("pg_ctl") is not None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalPostgres:
    """A PostgreSQL server in ``folder`` (a new temporary folder by default), started and stopped here.

    ``url`` is the SQLAlchemy URL of its ``postgres`` database once started.
    """

    def __init__(self, folder: Path | None = None, *, port: int | None = None) -> None:
        self.folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="labelloop-pg-"))
        self._owned = folder is None
        self.port = port if port is not None else _free_port()
        self._as_nobody = os.geteuid() == 0

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def running(self) -> bool:
        """Whether a server runs on this data folder (a previous run left it up, or another process)."""
        if not (self.data / "postmaster.pid").exists():
            return False
        try:
            self._run("pg_ctl", "-D", str(self.data), "status")
        except ConfigError:
            return False
        return True

    def _run(self, *command: str) -> None:
        program = binary(command[0]) or command[0]
        argv = [program, *command[1:]]
        argv = ["runuser", "-u", "nobody", "--", *argv] if self._as_nobody else argv
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=self.folder, check=False)
        if done.returncode != 0:
            raise ConfigError(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")

    def start(self) -> str:
        """initdb (first time) and start; the URL."""
        if not binaries_present():
            raise ConfigError("initdb/pg_ctl are not on PATH (apt-get install postgresql)")
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._as_nobody:
            os.chown(self.folder, 65534, 65534)
            self.folder.chmod(0o700)
        if not (self.data / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            )
        if self.running():
            return self.url
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=256MB -c max_wal_size=4GB"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
            "-w",
            "start",
        )
        return self.url

    def stop(self, *, remove: bool | None = None) -> None:
        """Stop the server (and remove its folder when this object made it, or ``remove``)."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        if remove if remove is not None else self._owned:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
