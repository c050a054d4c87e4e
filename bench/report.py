"""docs/benchmarks.md from bench/results/*.json: the figures are written by code, never copied by hand.

``make bench`` calls :func:`write` after its run; ``python -m bench.report`` rewrites the page (and the
goal summary in README.md) from the latest JSON already there, without running a benchmark:

    python -m bench.report                      # the latest `make bench` JSON under bench/results/
    python -m bench.report --json FILE          # a given run
    python -m bench.report --results DIR --out docs/benchmarks.md --readme README.md
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import RESULTS, ROOT

DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
README = ROOT / "README.md"
SUITE = "make bench"
README_START = "<!-- bench:goals:start (written by python -m bench.report; do not edit) -->"
README_END = "<!-- bench:goals:end -->"
_GOAL_ID = re.compile(r"^([A-Z]\d+)\b")
UNGROUPED = ""


@dataclass(frozen=True)
class BenchRun:
    """One JSON file of ``bench.harness.report``: when, what ran, where, rows and goals."""

    path: Path
    when: datetime
    suite: str
    machine: str
    source: dict[str, Any]
    rows: list[dict[str, Any]]
    goals: list[dict[str, Any]]

    @classmethod
    def load(cls, path: Path) -> BenchRun:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            path=path,
            when=datetime.strptime(data["when"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC),
            suite=data.get("suite", ""),
            machine=data.get("machine", ""),
            source=data.get("source") or {},
            rows=list(data.get("rows", [])),
            goals=list(data.get("goals", [])),
        )

    @property
    def is_whole_run(self) -> bool:
        return self.suite == SUITE


def load_runs(results: Path = RESULTS) -> list[BenchRun]:
    """Every run under ``results``, oldest first."""
    return sorted((BenchRun.load(path) for path in results.glob("bench-*.json")), key=lambda run: run.when)


def latest_whole_run(runs: Sequence[BenchRun]) -> BenchRun:
    """The newest ``make bench`` run. JSON written before runs named their suite carries none: then
    the run with the most goals is taken as the whole one (the newest among equals)."""
    if not runs:
        raise FileNotFoundError("no bench-*.json under bench/results/: run `make bench` first")
    named = [run for run in runs if run.is_whole_run]
    if named:
        return named[-1]
    return max(runs, key=lambda run: (len(run.goals), run.when))


def goal_line(goal: dict[str, Any]) -> str:
    verdict = "holds" if goal["holds"] else "FAILS"
    return f"goal {goal['goal_id']}: {goal['figure']} (goal: {goal['goal']}) {verdict}"


def _number(value: float) -> str:
    return f"{value:.3g}"


def _ratio(value: float) -> str:
    return "inf" if value == float("inf") else f"{value:.2f}x"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _group(row: dict[str, Any]) -> str:
    """The table a row belongs to: the module that measured it, else its goal id, else none."""
    if row.get("bench"):
        return str(row["bench"])
    found = _GOAL_ID.match(row["name"].strip())
    return found.group(1) if found else UNGROUPED


def describe_source(run: BenchRun) -> list[str]:
    """The commit and the machine, as table rows; what a JSON did not record is said so."""
    source = run.source
    missing = "not recorded (JSON written before runs recorded it)"
    if "commit" in source:
        dirty = source.get("dirty")
        state = {True: " (with uncommitted changes)", False: " (clean)", None: ""}[dirty]
        commit = f"`{source['commit']}`{state}"
    else:
        commit = missing
    ram = f"{source['ram_gb']} GB" if source.get("ram_gb") is not None else missing
    return [
        f"| when | {run.when:%Y-%m-%d %H:%M:%S} UTC |",
        f"| results file | `bench/results/{run.path.name}` |",
        f"| commit | {commit} |",
        f"| CPU | {_cell(source.get('cpu_model', missing))} |",
        f"| cores | {source.get('cores', missing)} |",
        f"| RAM | {ram} |",
        f"| Python | {_cell(source.get('python', run.machine or missing))} |",
        f"| OS | {_cell(source.get('os', missing))} |",
    ]


def render(run: BenchRun, later: Sequence[BenchRun] = ()) -> str:
    """The whole of docs/benchmarks.md for ``run``, with the single benchmarks run after it."""
    held = [goal for goal in run.goals if goal["holds"]]
    lines = [
        "# Benchmarks",
        "",
        "<!-- Written by bench/report.py from the JSON of a `make bench` run: do not edit by hand.",
        "     `make bench` rewrites it; `python -m bench.report` rewrites it from the latest JSON. -->",
        "",
        f"The latest `make bench`: {len(run.goals)} goals, {len(held)} hold, "
        f"{len(run.goals) - len(held)} fail; {len(run.rows)} measured rows.",
        "",
        "Every figure is measured against a baseline in the same run (the ratio column): on a shared",
        "machine the absolute rates move with whatever else runs, the ratios much less. What each",
        "benchmark measures, how to run it alone, and what the failing goals say:",
        "[benchmark-notes.md](benchmark-notes.md).",
        "",
        "| run | |",
        "|---|---|",
        *describe_source(run),
        "",
        "## Goals",
        "",
        "| goal | result | the goal |",
        "|---|---|---|",
    ]
    for goal in run.goals:
        verdict = "holds" if goal["holds"] else "**FAILS**"
        lines.append(f"| {goal['goal_id']} | {verdict} | {_cell(goal['goal'])} |")
    lines += ["", "The goal lines as printed:", "", "```"]
    lines += [goal_line(goal) for goal in run.goals]
    lines += ["```", "", "## Rows", ""]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in run.rows:
        groups.setdefault(_group(row), []).append(row)
    # Rows of a JSON that did not record their benchmark, and carry no goal id, come last.
    ungrouped = groups.pop(UNGROUPED, None)
    if ungrouped:
        groups[UNGROUPED] = ungrouped
    for name, rows in groups.items():
        title = "without a goal id" if name == UNGROUPED else name
        lines += [
            f"### {title}",
            "",
            "| benchmark | figure | baseline | ratio | baseline is |",
            "|---|---:|---:|---:|---|",
        ]
        for row in rows:
            unit = f" {row['unit']}" if row["unit"] else ""
            lines.append(
                f"| {_cell(row['name'].strip())} | {_number(row['figure'])}{unit} "
                f"| {_number(row['baseline'])}{unit} | {_ratio(row['ratio'])} "
                f"| {_cell(row['baseline_name'])} |"
            )
        lines.append("")
    if later:
        lines += [
            "## Single benchmarks run after it",
            "",
            "Goal lines of runs of one module (`python -m bench.<module>`) newer than the run above.",
            "",
        ]
        for single in later:
            commit = single.source["commit"]
            lines += [f"{single.when:%Y-%m-%d %H:%M:%S} UTC, `{commit}`:", "", "```"]
            lines += [goal_line(goal) for goal in single.goals] or ["(no goal line)"]
            lines += ["```", ""]
    return "\n".join(lines).rstrip() + "\n"


def readme_summary(run: BenchRun) -> str:
    """The few lines README.md shows between its markers: which goals hold, from which run."""
    held = ", ".join(goal["goal_id"] for goal in run.goals if goal["holds"]) or "none"
    failed = ", ".join(goal["goal_id"] for goal in run.goals if not goal["holds"]) or "none"
    commit = str(run.source["commit"])[:12] if "commit" in run.source else "commit not recorded"
    return "\n".join(
        [
            README_START,
            f"Latest `make bench` ({run.when:%Y-%m-%d}, {commit}): goals holding: {held}; failing: {failed}.",
            README_END,
        ]
    )


def replace_marked_block(text: str, block: str) -> str:
    """``text`` with its marked block replaced by ``block``; a text without markers is refused."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError("README.md has no bench goals markers")
    return text[:start] + block + text[end + len(README_END) :]


def write(
    *,
    results: Path = RESULTS,
    out: Path = DOCS_PAGE,
    readme: Path | None = README,
    run_path: Path | None = None,
) -> BenchRun:
    """Write ``out`` (and the marked block of ``readme``) from a run: the latest whole one by default."""
    runs = load_runs(results)
    run = BenchRun.load(run_path) if run_path else latest_whole_run(runs)
    # Single-module runs after it, when they say which code they measured (older JSON does not:
    # on a machine shared by several branches, a figure without its commit misleads).
    later = [
        other
        for other in runs
        if other.when > run.when and not other.is_whole_run and "commit" in other.source
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(run, later), encoding="utf-8")
    if readme is not None and readme.exists():
        text = readme.read_text(encoding="utf-8")
        try:
            readme.write_text(replace_marked_block(text, readme_summary(run)), encoding="utf-8")
        except ValueError as missing:  # after an hour of benchmarks, the page still gets written
            print(f"{readme}: {missing}; its goal summary is not updated", file=sys.stderr)
    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="the run to write (default: the latest make bench)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON runs are")
    parser.add_argument("--out", type=Path, default=DOCS_PAGE, help="the page to write")
    parser.add_argument("--readme", type=Path, default=README, help="the README whose block to update")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    args = parser.parse_args(argv)
    run = write(
        results=args.results,
        out=args.out,
        readme=None if args.no_readme else args.readme,
        run_path=args.json,
    )
    print(f"wrote {args.out} from {run.path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
