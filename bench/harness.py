"""The benchmark harness: rows with same-run baselines, goal lines, a table and a JSON file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Row:
    """One measured figure against its baseline (``ratio = figure / baseline``)."""

    name: str
    figure: float
    baseline: float
    unit: str
    baseline_name: str
    bench: str = ""  # the module that measured it (``make bench`` fills it in), for the grouped tables

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


def provenance(root: Path = ROOT) -> dict[str, object]:
    """Which code and machine a run measured: commit, dirty flag, CPU, cores, RAM, Python, OS."""
    git = ["git", "-C", str(root)]
    try:
        commit = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        # Untracked files count too: a new bench module changes what ran.
        dirty: bool | None = bool(
            subprocess.run(
                [*git, "status", "--porcelain"], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown (not a git checkout)", None
    return {
        "commit": commit,
        "dirty": dirty,
        "cpu_model": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "ram_gb": _ram_gb(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(),
    }


def _proc_field(path: str, field: str) -> str | None:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == field:
            return value.strip()
    return None


def _ram_gb() -> float | None:
    total_kb = _proc_field("/proc/meminfo", "MemTotal")
    return round(int(total_kb.split()[0]) / 1024**2, 1) if total_kb else None


def report(rows: list[Row], goals: list[Goal], *, suite: str = "", results: Path | None = None) -> str:
    """Print the table and the goal lines; write them as JSON under bench/results/.

    ``suite`` names what ran (``make bench`` passes ``"make bench"``; a single module's run leaves it
    empty), so ``bench.report`` can tell a whole run from one benchmark run again.
    """
    lines = [f"{'benchmark':44} {'figure':>12} {'baseline':>12} {'ratio':>7}  baseline is"]
    for row in rows:
        lines.append(
            f"{row.name:44} {row.figure:>9.3g} {row.unit:2} {row.baseline:>9.3g} {row.unit:2} "
            f"{row.ratio:>6.2f}x  {row.baseline_name}"
        )
    lines += [goal.line() for goal in goals]
    text = "\n".join(lines)
    directory = RESULTS if results is None else results
    directory.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (directory / f"bench-{stamp}.json").write_text(
        json.dumps(
            {
                "when": stamp,
                "suite": suite,
                "machine": f"{platform.machine()} python {platform.python_version()}",
                "source": provenance(),
                "rows": [asdict(row) | {"ratio": row.ratio} for row in rows],
                "goals": [asdict(goal) for goal in goals],
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return text
