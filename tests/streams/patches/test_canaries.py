"""Canaries: every patch of another library still finds the private parts it relies on, as they were.

A version bump of faust, mode, aiokafka, rocksdict or River that renames a private attribute or
changes an overridden method's parameters fails here, one test per pin, naming the patch and its
upstream issue, instead of misbehaving in a worker.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import streams.patches
from streams.patches.pins import Pin


def _patch_modules() -> list[ModuleType]:
    names = [info.name for info in pkgutil.iter_modules(streams.patches.__path__) if info.name != "pins"]
    return [importlib.import_module(f"streams.patches.{name}") for name in sorted(names)]


PATCHES = _patch_modules()
PINS = [(module, pin) for module in PATCHES for pin in module.RELIES_ON]


def test_there_are_patches_and_each_one_names_its_upstream_issue_and_its_pins() -> None:
    assert len(PATCHES) >= 12
    for module in PATCHES:
        assert isinstance(module.UPSTREAM, str), module.__name__
        assert module.UPSTREAM, module.__name__
        assert module.RELIES_ON, f"{module.__name__} pins nothing"
        assert all(isinstance(pin, Pin) for pin in module.RELIES_ON)
        assert module.__doc__, module.__name__


@pytest.mark.parametrize(
    ("module", "pin"), PINS, ids=[f"{m.__name__.rsplit('.', 1)[1]}:{p.owner}.{p.name}" for m, p in PINS]
)
def test_the_private_part_a_patch_relies_on_is_still_there(module: ModuleType, pin: Pin) -> None:
    broken = pin.broken()
    assert broken is None, f"{module.__name__} (waits on: {module.UPSTREAM}): {broken}"


def test_a_pin_fails_when_a_signature_or_an_assignment_changes() -> None:
    assert Pin("faust.stores.rocksdb:Store", "stop", parameters=("self", "timeout")).broken()
    assert Pin("faust.stores.rocksdb:Store", "_no_such_dbs", assigned_in="__init__").broken()
    assert Pin("faust.stores.rocksdb:Store", "_no_such_method").broken()
