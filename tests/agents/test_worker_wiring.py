"""The worker's wiring: what a worker reads depends on the pools it runs (no broker needed to build it)."""

from __future__ import annotations

from pathlib import Path

from agents.pools.toloka.client import TolokaSettings
from agents.settings import PoolSettings, StageSettings
from agents.simulation.experts import SimulatedExpertSettings
from agents.worker import build_worker
from streams.settings import Settings


def _agent_names(tmp_path: Path, pools: PoolSettings) -> set[str]:
    worker = build_worker(Settings(data_dir=tmp_path), StageSettings(pools=pools))
    try:
        return {agent.name for agent in worker.app.agents.values()}
    finally:
        if worker.local_state is not None:
            worker.local_state.close()


def test_a_worker_with_the_simulated_crowd_reads_the_simulations_truth(tmp_path: Path) -> None:
    assert "simulation-truth" in _agent_names(tmp_path, PoolSettings())


def test_a_worker_with_toloka_and_people_on_the_expert_page_never_reads_it(tmp_path: Path) -> None:
    pools = PoolSettings(
        toloka=TolokaSettings(enabled=True, token="t"),
        simulated_experts=SimulatedExpertSettings(experts=0),
    )
    names = _agent_names(tmp_path, pools)
    assert "simulation-truth" not in names
    assert "pool-commands" in names  # the pools' stage is there all the same
