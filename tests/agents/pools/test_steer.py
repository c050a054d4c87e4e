"""Operator commands steer the pool's autoscaler: scale pins it, release frees it, set moves its limits."""

from __future__ import annotations

from datetime import UTC, datetime

from agents.pools.agent import steer
from agents.pools.autoscaler import Autoscaler, AutoscalerSettings
from schemas import PoolCommand

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def command(action: str, issued_by: str = "operator:ada", **fields: object) -> PoolCommand:
    return PoolCommand.model_validate(
        {
            "pool": "simulated",
            "action": action,
            "issued_by": issued_by,
            "issued_at": WHEN,
            "reason": "test",
            **fields,
        }
    )


def test_an_operator_scale_pins_and_a_release_frees_the_autoscaler() -> None:
    scalers = {"simulated": Autoscaler(AutoscalerSettings())}
    steer(command("scale", workers=7), scalers)
    assert scalers["simulated"].is_pinned
    steer(command("release"), scalers)
    assert not scalers["simulated"].is_pinned


def test_the_autoscalers_own_commands_do_not_pin_it() -> None:
    scalers = {"simulated": Autoscaler(AutoscalerSettings())}
    steer(command("scale", issued_by="autoscaler", workers=9), scalers)
    assert not scalers["simulated"].is_pinned


def test_set_moves_the_limits_and_a_contradiction_keeps_the_old_ones() -> None:
    scalers = {"simulated": Autoscaler(AutoscalerSettings(max_workers=50))}
    steer(command("set", min_workers=3, sla_p95_s=30.0, budget_per_hour=12.5), scalers)
    settings = scalers["simulated"].settings
    assert (settings.min_workers, settings.max_workers, settings.sla_p95_s, settings.budget_per_hour) == (
        3,
        50,
        30.0,
        12.5,
    )
    steer(command("set", min_workers=80), scalers)  # above the maximum: refused, logged
    assert scalers["simulated"].settings.min_workers == 3
    steer(command("scale", workers=4), {"other": Autoscaler(AutoscalerSettings())})  # unknown pool: ignored
