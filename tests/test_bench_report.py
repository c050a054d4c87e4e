"""docs/benchmarks.md is written from the bench JSON: every goal line, every row, the commit and machine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import report as bench_report
from bench.harness import Goal, Row, provenance, report

FIXTURES = Path(__file__).parent / "fixtures" / "bench"
WHOLE = "bench-20261202T100000Z.json"  # a `make bench` run with its source recorded
LEGACY = "bench-20261201T100000Z.json"  # written before runs named their suite and source
SINGLE = "bench-20261202T120000Z.json"  # one module run after the whole run


@pytest.fixture
def results(tmp_path: Path) -> Path:
    directory = tmp_path / "results"
    shutil.copytree(FIXTURES, directory)
    return directory


def _readme(tmp_path: Path) -> Path:
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# Project\n\nBefore.\n\n{bench_report.README_START}\nold\n{bench_report.README_END}\n\nAfter.\n",
        encoding="utf-8",
    )
    return readme


def test_the_page_holds_every_goal_line_and_row_of_the_latest_whole_run(
    results: Path, tmp_path: Path
) -> None:
    out = tmp_path / "docs" / "benchmarks.md"
    run = bench_report.write(results=results, out=out, readme=_readme(tmp_path))
    assert run.path.name == WHOLE  # the newer single-module run is not taken for the whole one
    page = out.read_text(encoding="utf-8")
    data = json.loads((results / WHOLE).read_text(encoding="utf-8"))
    for goal in data["goals"]:
        assert bench_report.goal_line(goal) in page
    for row in data["rows"]:
        assert f"| {row['name']} |" in page
    for table in ("### router_body", "### router_capacity", "### toloka_cycle"):
        assert table in page
    assert "| R4 backlog in a 10x surge, capacity-blind | 1.29e+04 ev | 200 ev | 64.33x |" in page
    assert "| C1 faults injected | 562 | 0 | inf |" in page
    assert "`0123456789abcdef0123456789abcdef01234567` (with uncommitted changes)" in page
    for machine in ("Test CPU @ 2.00GHz", "| cores | 2 |", "7.8 GB", "CPython 3.11.7", "Linux-6.1"):
        assert machine in page
    assert "| F1 | **FAILS** |" in page
    assert "| R4 | holds |" in page
    # The single benchmark run after it is listed with its own commit, not mixed into the tables.
    assert "## Single benchmarks run after it" in page
    assert "`fedcba9876543210fedcba9876543210fedcba98`" in page
    assert "router 4,000 events/s" in page.split("## Single benchmarks run after it")[1]
    assert "router on Kafka (events/s)" not in page.split("## Single benchmarks run after it")[0]


def test_the_readme_block_between_its_markers_says_which_goals_hold(results: Path, tmp_path: Path) -> None:
    readme = _readme(tmp_path)
    bench_report.write(results=results, out=tmp_path / "benchmarks.md", readme=readme)
    text = readme.read_text(encoding="utf-8")
    assert "\nold\n" not in text
    assert text.startswith("# Project\n\nBefore.")
    assert "After." in text
    assert "goals holding: R4; failing: F1." in text
    assert "(2026-12-02, 0123456789ab)" in text
    # Run again: the block is replaced, not added twice.
    bench_report.write(results=results, out=tmp_path / "benchmarks.md", readme=readme)
    assert readme.read_text(encoding="utf-8") == text
    with pytest.raises(ValueError, match="markers"):
        bench_report.replace_marked_block("no markers here", "block")
    # A README without the markers is left alone; the page is still written.
    readme.write_text("no markers here\n", encoding="utf-8")
    bench_report.write(results=results, out=tmp_path / "again.md", readme=readme)
    assert readme.read_text(encoding="utf-8") == "no markers here\n"
    assert (tmp_path / "again.md").exists()


def test_a_run_written_before_the_source_was_recorded_says_so(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    for newer in (WHOLE, SINGLE):
        (results / newer).unlink()
    # A later single-module run that does not say which commit it measured is not listed.
    unsourced = json.loads((FIXTURES / SINGLE).read_text(encoding="utf-8"))
    del unsourced["source"]
    (results / SINGLE).write_text(json.dumps(unsourced), encoding="utf-8")
    run = bench_report.write(results=results, out=out, readme=None)
    assert run.path.name == LEGACY
    page = out.read_text(encoding="utf-8")
    assert "| commit | not recorded" in page
    assert "| Python | x86_64 python 3.11.7 |" in page
    assert "Single benchmarks run after it" not in page
    # A `|` inside a goal is escaped so the table keeps its columns.
    assert r">= 0.7x passthrough \| >= 10,000/s" in page
    # Rows without their module are grouped by their goal id.
    assert "### R1" in page
    assert page.index("### R1") < page.index("### without a goal id")


def test_the_cli_rewrites_the_page_from_a_given_json_without_running_a_bench(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "benchmarks.md"
    args = ["--results", str(results), "--json", str(results / LEGACY), "--out", str(out)]
    assert bench_report.main([*args, "--no-readme"]) == 0
    assert f"from {LEGACY}" in capsys.readouterr().out
    assert "99.0% of 200 runs cover" in out.read_text(encoding="utf-8")


def test_no_results_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make bench"):
        bench_report.write(results=tmp_path, out=tmp_path / "benchmarks.md", readme=None)


def test_the_harness_records_the_suite_commit_and_machine(tmp_path: Path) -> None:
    report(
        [Row("thing", 2.0, 4.0, "us", "other", bench="router_body")],
        [Goal("R9", "x", "y", True)],
        suite="make bench",
        results=tmp_path,
    )
    (written,) = tmp_path.glob("bench-*.json")
    data = json.loads(written.read_text(encoding="utf-8"))
    assert data["suite"] == "make bench"
    assert data["rows"][0]["bench"] == "router_body"
    source = provenance()
    assert data["source"].keys() == source.keys()
    assert len(str(source["commit"])) == 40
    assert isinstance(source["dirty"], bool)
    assert isinstance(source["cores"], int)
    assert source["cores"] >= 1
