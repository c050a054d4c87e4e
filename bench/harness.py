"""The benchmark harness: rows with same-run baselines, goal lines, a table and a JSON file."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Row:
    """One measured figure against its baseline (``ratio = figure / baseline``)."""

    name: str
    figure: float
    baseline: float
    unit: str
    baseline_name: str

    @property
    def ratio(self) -> float:
        return self.figure / self.baseline if self.baseline else float("inf")


@dataclass(frozen=True)
class Goal:
    """A goal with an id from an issue; ``holds`` is decided by the measurement, never loosened."""

    goal_id: str
    figure: str
    goal: str
    holds: bool

    def line(self) -> str:
        return f"goal {self.goal_id}: {self.figure} (goal: {self.goal}) {'holds' if self.holds else 'FAILS'}"


def per_call_s(function: Callable[[], object], *, repeat: int = 5, number: int = 2_000) -> float:
    """Best-of-``repeat`` seconds per call (the least disturbed run on a shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            function()
        best = min(best, (time.perf_counter() - started) / number)
    return best


def report(rows: list[Row], goals: list[Goal]) -> str:
    """Print the table and the goal lines; write them as JSON under bench/results/."""
    lines = [f"{'benchmark':44} {'figure':>12} {'baseline':>12} {'ratio':>7}  baseline is"]
    for row in rows:
        lines.append(
            f"{row.name:44} {row.figure:>9.3g} {row.unit:2} {row.baseline:>9.3g} {row.unit:2} "
            f"{row.ratio:>6.2f}x  {row.baseline_name}"
        )
    lines += [goal.line() for goal in goals]
    text = "\n".join(lines)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"bench-{stamp}.json").write_text(
        json.dumps(
            {
                "when": stamp,
                "machine": f"{platform.machine()} python {platform.python_version()}",
                "rows": [asdict(row) | {"ratio": row.ratio} for row in rows],
                "goals": [asdict(goal) for goal in goals],
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return text
