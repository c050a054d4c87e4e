"""One way to run a worker as a process of its own: ``python -m labelloop worker``, started and stopped.

The demo, the integration tests and the drills all run real worker processes; they differ in the
environment they give it (its ``LABELLOOP_*`` settings) and in how they stop it (SIGTERM for a
graceful stop, SIGKILL for a crash), not in how it is launched. The worker runs in a session of
its own (a Ctrl-C in the terminal reaches the parent only), its output goes to a log file.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["WORKER_COMMAND", "start_worker", "stop_worker"]

#: The worker, every stage, as the ``labelloop worker`` command runs it.
WORKER_COMMAND: tuple[str, ...] = (sys.executable, "-m", "labelloop", "worker", "--loglevel", "info")


def start_worker(
    env: Mapping[str, str], log_path: Path, *, command: Sequence[str] = WORKER_COMMAND
) -> subprocess.Popen[bytes]:
    """Start a worker process with ``env`` (its whole environment), its output into ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:  # the child has its own copy of the descriptor
        return subprocess.Popen(
            list(command),
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_worker(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, *, timeout_s: float = 60.0
) -> int:
    """Send ``sig`` (SIGTERM: a graceful stop), SIGKILL after ``timeout_s``; return the exit code.

    >>> import subprocess, sys
    >>> sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    >>> stop_worker(sleeper, timeout_s=10) == -signal.SIGTERM
    True
    """
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
