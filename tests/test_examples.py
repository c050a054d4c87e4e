"""The example files shipped in the repository stay valid."""

from __future__ import annotations

from pathlib import Path

from agents.router.policy import RouterSettings, load_policy

ROOT = Path(__file__).resolve().parent.parent


def test_the_example_policy_loads_as_written() -> None:
    policy = load_policy(RouterSettings(policy_file=ROOT / "policy.example.yaml"))
    assert policy.per_class_thresholds == {"fraud": 0.95}
    assert policy.audit.positive_class == "fraud"
    assert policy.capacity.target_backlog == 200
    assert policy.tuning.target_precision is None
