"""The pure staffing core: reward first then extra pools on the way up, the reverse on the way down."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from agents.pools.toloka.audience import Audience
from agents.pools.toloka.client import TolokaSettings
from agents.pools.toloka.staffing import next_extra_pools, next_reward, reward_exhausted
from agents.settings import StageSettings


def simulate(targets: list[int], reachable: list[int], *, max_extra: int = 2) -> list[tuple[float, int]]:
    """Steer one step per target as the backend does (reward, then extra pools); (reward, extras) after each.

    ``reachable[k]`` is how many Tolokers work with ``k`` extra pools open at the top reward;
    below the top reward only ``reachable[0] - 1`` do.
    """
    reward, extras, trace = 0.04, 0, []
    low, high, step = 0.03, 0.05, 0.25
    for target in targets:
        active = reachable[extras] if reward >= high else reachable[0] - 1
        wanted = next_reward(reward, target, active, low, high, step)
        if wanted > reward or (wanted < reward and extras == 0):
            reward = wanted
        else:
            move = next_extra_pools(
                target_workers=target,
                active_workers=active,
                without_newest=reachable[max(0, extras - 1)],
                reward_maxed=reward_exhausted(reward, low, high),
                open_extra=extras,
                max_extra=max_extra,
                since_change_s=None,
                cooldown_s=0.0,
            )
            extras += {"open": 1, "close": -1, None: 0}[move]
        trace.append((reward, extras))
    return trace


def test_up_the_reward_moves_first_then_extra_pools_open_and_down_they_close_before_the_reward_falls() -> (
    None
):
    trace = simulate([9] * 4 + [2] * 4, reachable=[3, 6, 9])
    assert trace == [
        (0.05, 0),  # the reward rises to its maximum first
        (0.05, 1),  # then one extra pool per step
        (0.05, 2),
        (0.05, 2),  # staffed
        (0.05, 1),  # the target falls: the newest extra pool closes first
        (0.05, 0),
        (0.04, 0),  # only then does the reward fall
        (0.04, 0),  # and stays where the Tolokers left match the target
    ]


def test_an_extra_pool_stays_while_the_others_cannot_staff_the_target_without_it() -> None:
    # 3 Tolokers without the extra pool, 6 with it: a target of 4 keeps it, though 6 > 4.
    assert simulate([6, 6, 4, 4], reachable=[3, 6], max_extra=1)[-1] == (0.05, 1)


def test_extra_pools_come_from_the_environment_with_distinct_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "LABELLOOP_POOLS__TOLOKA__EXTRA_POOLS",
        json.dumps(
            [
                {"name": "de", "languages": ["DE"]},
                {"name": "tr", "regions": [983], "reward_per_assignment": 0.03},
            ]
        ),
    )
    monkeypatch.setenv("LABELLOOP_POOLS__TOLOKA__EXTRA_POOLS_MAX", "1")
    monkeypatch.setenv("LABELLOOP_POOLS__TOLOKA__AUDIENCE", '{"name": "en", "languages": ["EN"]}')
    toloka = StageSettings().pools.toloka
    assert [audience.name for audience in toloka.extra_pools] == ["de", "tr"]
    assert toloka.extra_pools[1].reward_per_assignment == 0.03
    assert toloka.audience == Audience(name="en", languages=["EN"])
    assert toloka.max_extra_pools == 1
    assert TolokaSettings().max_extra_pools == 0, "by default no extra pool"
    with pytest.raises(ValidationError, match="distinct names"):
        TolokaSettings(extra_pools=(Audience(name="de"), Audience(name="de", languages=["DE"])))
