"""Every exception the project defines or raises on purpose belongs to the tree of streams/errors.py."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

from streams.errors import LabelloopError

REPO = Path(__file__).resolve().parents[1]
#: The shipped packages (bench/ is a tool that reports failures as it likes; tests/ raise at will).
PACKAGES = ("schemas", "streams", "agents", "labelloop")
#: Raised bare, these say nothing a caller can catch by meaning: each has a class in the tree.
BARE = {"Exception", "RuntimeError", "LookupError", "KeyError", "BaseException"}


def _modules() -> list[str]:
    names: list[str] = []
    for package in PACKAGES:
        names.append(package)
        module = importlib.import_module(package)
        walked = pkgutil.walk_packages(module.__path__, prefix=f"{package}.")
        names += [info.name for info in walked if not info.name.endswith(".__main__")]  # runs the CLI
    return sorted(names)


MODULES = _modules()


def _defined_exceptions() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for name in MODULES:
        module = importlib.import_module(name)
        found += [
            value
            for value in vars(module).values()
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == name
        ]
    return found


def test_the_walk_finds_the_packages_and_their_exceptions() -> None:
    assert len(MODULES) > 100
    names = {cls.__name__ for cls in _defined_exceptions()}
    assert {
        "ContractError",
        "DeliveryError",
        "SnapshotError",
        "CheckpointError",
        "AnswerRefusedError",
    } <= names


@pytest.mark.parametrize("cls", _defined_exceptions(), ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_every_exception_class_of_the_project_subclasses_the_root(cls: type[BaseException]) -> None:
    assert issubclass(cls, LabelloopError), (
        f"{cls.__module__}.{cls.__name__} stands outside streams/errors.py"
    )


def test_every_exception_class_is_named_in_the_trees_docstring() -> None:
    import streams.errors

    tree = streams.errors.__doc__ or ""
    missing = [cls.__name__ for cls in _defined_exceptions() if cls.__name__ not in tree]
    assert not missing, f"add them to the tree in streams/errors.py: {missing}"


def _bare_raises(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(raised, ast.Name) and raised.id in BARE:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} raise {raised.id}")
    return found


def test_shipped_code_raises_no_bare_runtime_lookup_or_key_error() -> None:
    bare = [
        line
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        for line in _bare_raises(path)
    ]
    assert not bare, "raise a class of streams/errors.py instead:\n" + "\n".join(bare)
