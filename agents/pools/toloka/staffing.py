"""Staffing a Toloka pool: the reward step, extra pools for other audiences, where a new task goes.

The autoscaler asks for a headcount; Toloka has no "add workers" call, so the
backend has two levers, pulled in a fixed order. Short of Tolokers, it first
raises the reward (:func:`next_reward`, up to ``reward_max``); once the reward
is at its maximum and still too few work, it opens an extra pool for another
audience (:func:`next_extra_pools`), one per cooldown. On the way down the
order is reversed: extra pools close first (the newest first, and only when
the others still staff the target without it), and the reward falls only once
none is open. New tasks go to the open pool with the fewest open tasks per
active Toloker (:func:`pick_pool`).

These are pure functions of the state, the time and the settings; the backend
(:mod:`agents.pools.toloka.backend`) applies them through toloka-kit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

#: What to do with the extra pools: open one more, close the newest, or nothing (None).
ExtraPoolMove = Literal["open", "close"]


def next_reward(
    reward: float,
    target_workers: int,
    active_workers: int,
    reward_min: float | None,
    reward_max: float | None,
    step: float,
) -> float:
    """The reward one step toward ``target_workers``, within ``[reward_min, reward_max]``.

    No bounds: the reward stays. Short of workers: up one step (capped at the
    maximum); more than asked for: down one step (not below the minimum).

    >>> next_reward(0.10, target_workers=20, active_workers=8, reward_min=0.05, reward_max=0.12, step=0.25)
    0.12
    >>> next_reward(0.12, 4, 8, 0.05, 0.2, 0.25)
    0.096
    >>> next_reward(0.10, 20, 8, None, None, 0.25)
    0.1
    """
    if reward_min is None and reward_max is None:
        return reward
    low = reward_min if reward_min is not None else 0.0
    high = reward_max if reward_max is not None else float("inf")
    if active_workers < target_workers:
        wanted = min(high, reward * (1.0 + step))
    elif active_workers > target_workers:
        wanted = max(low, reward / (1.0 + step))
    else:
        wanted = reward
    return round(min(high, max(low, wanted)), 4)


def reward_exhausted(reward: float, reward_min: float | None, reward_max: float | None) -> bool:
    """True when the reward cannot rise any more: at ``reward_max``, or fixed (no bounds).

    >>> reward_exhausted(0.07, 0.03, 0.07), reward_exhausted(0.05, 0.03, 0.07)
    (True, False)
    >>> reward_exhausted(0.02, None, None)  # a fixed reward
    True
    >>> reward_exhausted(0.50, 0.03, None)  # only a minimum: the reward may always rise
    False
    """
    if reward_min is None and reward_max is None:
        return True
    return reward_max is not None and reward >= reward_max


def next_extra_pools(
    *,
    target_workers: int,
    active_workers: int,
    without_newest: int,
    reward_maxed: bool,
    open_extra: int,
    max_extra: int,
    since_change_s: float | None,
    cooldown_s: float,
) -> ExtraPoolMove | None:
    """Open one more extra pool, close the newest one, or do nothing.

    Parameters
    ----------
    target_workers
        Tolokers the autoscaler (or an operator) asks for.
    active_workers
        Tolokers working the open pools now.
    without_newest
        Tolokers who would still work if the newest open extra pool closed (those
        who worked only there are lost); ``active_workers`` when none is open.
    reward_maxed
        The reward cannot rise any more (:func:`reward_exhausted`): extra pools come second.
    open_extra, max_extra
        Extra pools open now, and the most that may be.
    since_change_s, cooldown_s
        Seconds since an extra pool last opened or closed (None: never), and the
        least between two such changes: Tolokers need time to find a new pool, and
        a pool opened and closed at once would waste its golden tasks.

    The hysteresis: a pool opens while the pools fall short of the target, and
    closes only once the others staff the target without it; in between (more
    Tolokers than asked for, but not without the newest pool) nothing moves.

    Examples
    --------
    >>> def move(**changes):
    ...     state = dict(target_workers=6, active_workers=2, without_newest=2, reward_maxed=True,
    ...                  open_extra=0, max_extra=2, since_change_s=None, cooldown_s=600.0)
    ...     return next_extra_pools(**(state | changes))
    >>> move(), move(reward_maxed=False), move(open_extra=2), move(since_change_s=60.0)
    ('open', None, None, None)
    >>> move(target_workers=3, active_workers=6, without_newest=2, open_extra=1)  # still needed
    >>> move(target_workers=2, active_workers=6, without_newest=2, open_extra=1)
    'close'
    >>> move(target_workers=2, active_workers=6, without_newest=2, open_extra=1, since_change_s=60.0)
    >>> move(active_workers=6, without_newest=6, open_extra=3)  # more open than now allowed
    'close'
    """
    if since_change_s is not None and since_change_s < cooldown_s:
        return None
    if open_extra > max_extra:
        return "close"
    if active_workers < target_workers:
        return "open" if reward_maxed and open_extra < max_extra else None
    if open_extra > 0 and without_newest >= target_workers:
        return "close"
    return None


@dataclass(frozen=True)
class PoolLoad:
    """One open pool as a place for a new task: its open tasks and its active Tolokers."""

    pool_id: str
    open_tasks: int
    active_workers: int

    @property
    def tasks_per_worker(self) -> float:
        """Open tasks per active Toloker (a pool nobody works yet counts as one Toloker)."""
        return self.open_tasks / max(1, self.active_workers)


def pick_pool(loads: Sequence[PoolLoad]) -> str:
    """The pool a new task goes to: the fewest open tasks per active Toloker (the first of equals).

    >>> pick_pool([PoolLoad("main", 40, 2), PoolLoad("extra-de", 0, 0)])
    'extra-de'
    >>> pick_pool([PoolLoad("main", 40, 4), PoolLoad("extra-de", 12, 1)])
    'main'
    >>> pick_pool([PoolLoad("main", 0, 0), PoolLoad("extra-de", 0, 0)])
    'main'
    """
    if not loads:
        raise ValueError("no open pool to upload to")
    return min(loads, key=lambda load: load.tasks_per_worker).pool_id
