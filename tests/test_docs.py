"""The README and docs/ stay true to the repository: links resolve, named commands exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from streams.cli import app

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
MAKE = re.compile(r"(?:^|`)make ([a-z][a-z0-9-]*)", re.MULTILINE)  # in code: `make x` or a line
LABELLOOP = re.compile(r"\blabelloop ([a-z][a-z-]*)(?: ([a-z][a-z|-]*))?")
TARGET = re.compile(r"^([A-Za-z][\w-]*):", re.MULTILINE)


def _relative_links(page: Path) -> list[str]:
    targets = [match.group(1) for match in LINK.finditer(page.read_text(encoding="utf-8"))]
    return [t for t in targets if not re.match(r"^[a-z]+:", t) and not t.startswith("#")]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    broken = [
        target for target in _relative_links(page) if not (page.parent / target.split("#", 1)[0]).exists()
    ]
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"


def test_the_readme_links_every_docs_page() -> None:
    linked = {Path(target).name for target in _relative_links(ROOT / "README.md")}
    assert {page.name for page in PAGES[1:]} <= linked


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_make_target_named_exists(page: Path) -> None:
    targets = set(TARGET.findall((ROOT / "Makefile").read_text(encoding="utf-8")))
    named = set(MAKE.findall(page.read_text(encoding="utf-8")))
    assert named <= targets, f"{page.relative_to(ROOT)} names missing make targets: {named - targets}"


def test_every_labelloop_command_in_the_readme_exists() -> None:
    root: Any = typer.main.get_command(app)  # a click group (typer vendors its own click)
    named = LABELLOOP.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(named) >= 10
    missing = []
    for command, subcommands in named:
        found = root.commands.get(command)
        if found is None:
            missing.append(command)
        elif hasattr(found, "commands"):
            for sub in filter(None, subcommands.split("|")):
                if sub not in found.commands:
                    missing.append(f"{command} {sub}")
    assert not missing, f"README names CLI commands that do not exist: {missing}"


def test_the_readme_stays_a_users_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 350
    assert {"demo", "test", "lint", "bench"} <= set(MAKE.findall(readme))
