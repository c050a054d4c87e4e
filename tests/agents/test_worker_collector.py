"""A worker process's garbage collector: start-up objects frozen, the young threshold raised (bench F1)."""

from __future__ import annotations

import gc

from agents.worker import tune_collector
from streams.settings import Settings


def test_the_collector_is_tuned_and_what_was_made_before_is_frozen() -> None:
    before = gc.get_threshold()
    try:
        made = [[index] for index in range(1_000)]  # objects alive at start, as the app's are
        returned = tune_collector(Settings(gc_young_threshold=50_000))
        assert returned == before
        assert gc.get_threshold() == (50_000, before[1], before[2])
        assert gc.get_freeze_count() >= len(made)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_none_leaves_pythons_collector_as_it_is() -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    assert tune_collector(Settings(gc_young_threshold=None)) == before
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen
