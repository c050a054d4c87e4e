"""The demo's worker: one ``labelloop worker`` process, configured for the run through its environment."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from agents.simulation.demo.settings import DemoSettings
from streams import worker_process
from streams.settings import Settings


def free_port(preferred: int) -> int:
    """``preferred`` if nothing listens there on loopback, else a free port."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def worker_environment(settings: Settings, demo: DemoSettings, web_port: int) -> dict[str, str]:
    """The variables that make a worker process run the demo's loop (over this process's own)."""
    return {
        **os.environ,
        "LABELLOOP_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "LABELLOOP_TOPICS__PREFIX": settings.topics.prefix,
        "LABELLOOP_APP_ID": settings.app_id,
        "LABELLOOP_DATA_DIR": str(settings.data_dir),
        "LABELLOOP_ROUTER__ACCEPT_THRESHOLD": str(demo.accept_threshold),
        "LABELLOOP_POOLS__SIMULATED__WORKERS": str(demo.crowd_workers),
        "LABELLOOP_POOLS__SIMULATED__MEAN_SERVICE_S": str(demo.crowd_mean_service_s),
        "LABELLOOP_POOLS__SIMULATED__SEED": str(demo.seed),
        "LABELLOOP_POOLS__EXPERTS__PORT": str(demo.expert_port),
        "LABELLOOP_ROUTER__MEASUREMENT_TIER": demo.measurement_tier,
        "LABELLOOP_POOLS__SIMULATED_EXPERTS__EXPERTS": str(demo.experts),
        "LABELLOOP_POOLS__SIMULATED_EXPERTS__MEAN_SERVICE_S": str(demo.expert_mean_service_s),
        "LABELLOOP_OPERATOR__PORT": str(web_port),
        "LABELLOOP_DASHBOARD__SAMPLE_EVERY_S": str(demo.sample_every_s),
        # The report covers the whole run at this resolution.
        "LABELLOOP_DASHBOARD__MAX_POINTS": str(int(demo.timeout_s * 3 / demo.sample_every_s) + 1_000),
    }


def start_worker(
    settings: Settings, demo: DemoSettings, log_path: Path, web_port: int
) -> subprocess.Popen[bytes]:
    """Start the worker process (``streams.worker_process``), its output into ``log_path``."""
    return worker_process.start_worker(worker_environment(settings, demo, web_port), log_path)


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful stop), then SIGKILL after 30 s."""
    worker_process.stop_worker(process, timeout_s=30)
