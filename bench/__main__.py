"""``make bench``: run every benchmark and print one table (written as JSON under bench/results/)."""

from __future__ import annotations

import sys

from bench import router_body
from bench.harness import Goal, Row, report


def main() -> int:
    rows: list[Row] = []
    goals: list[Goal] = []
    rows += router_body.run()
    sys.stdout.write(report(rows, goals) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
