"""How the model-error detector's defaults were chosen: candidates on tuning seeds, apart from L1's.

``python -m bench.drift_tuning`` (about 2 minutes; not part of ``make bench``)
plays every candidate ADWIN configuration through :mod:`bench.drift_detection`'s
streams with seeds :data:`TUNING_SEEDS` and no-drift stream seed
:data:`QUIET_SEED`, which the L1 bench never uses (it measures seeds 1-30 and
no-drift seed 999). The rule, fixed before the candidates ran: among the
configurations with at most half the allowed false-alarm rate (0.5 per 100,000
no-drift events, pooled over the streams), take the one whose worst stream's
detection rate is highest; ties go to fewer false alarms, and then (added when
the per-class error detectors made every candidate find every drift, and two
tied on false alarms too) to the shorter median delay on the slowest stream.
The product default (:class:`agents.monitor.detectors.MonitorSettings`
``error_delta``, ``error_clock``) is the configuration it picks. The
candidates run the monitor as configured otherwise by default, so with one
detector per predicted class besides the overall one (``error_per_class``).
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.monitor.detectors import MonitorSettings
from bench.drift_detection import CASES, GOAL_FALSE_PER_100K, CaseResult, measure

TUNING_SEEDS = tuple(range(1_001, 1_031))
QUIET_SEED = 777
#: No-drift events per stream (Agrawal's generator is ~15x slower).
QUIET_EVENTS = {"sea": 1_000_000, "agrawal": 100_000, "sine": 1_000_000}
#: (delta, clock): River's default, then more sensitive ones, tested every 32nd or every label.
CANDIDATES: tuple[tuple[float, int], ...] = (
    (0.002, 32),
    (0.002, 1),
    (0.01, 32),
    (0.01, 1),
    (0.02, 32),
    (0.02, 1),
    (0.03, 32),
    (0.05, 32),
)


def evaluate(delta: float, clock: int) -> list[CaseResult]:
    """One candidate on every stream's tuning seeds."""
    settings = MonitorSettings(error_delta=delta, error_clock=clock)
    return [
        measure(case, TUNING_SEEDS, QUIET_EVENTS[name], settings, quiet_seed=QUIET_SEED)
        for name, case in CASES.items()
    ]


def false_per_100k(results: Sequence[CaseResult]) -> float:
    """False alarms per 100,000 no-drift events, pooled over the streams."""
    return 100_000 * sum(r.false_alarms for r in results) / sum(r.quiet_events for r in results)


def choose(scored: dict[tuple[float, int], list[CaseResult]]) -> tuple[float, int]:
    """The rule in the module docstring."""
    quiet_enough = {
        candidate: results
        for candidate, results in scored.items()
        if false_per_100k(results) <= GOAL_FALSE_PER_100K / 2
    }
    return max(
        quiet_enough,
        key=lambda candidate: (
            min(r.detection for r in quiet_enough[candidate]),
            -false_per_100k(quiet_enough[candidate]),
            -max(r.median_delay for r in quiet_enough[candidate]),
        ),
    )


def main() -> None:
    scored = {}
    for delta, clock in CANDIDATES:
        results = scored[delta, clock] = evaluate(delta, clock)
        streams = ", ".join(
            f"{r.case.name} {100 * r.detection:.0f}% (median delay {r.median_delay:g})" for r in results
        )
        false_alarms = sum(r.false_alarms for r in results)
        quiet = sum(r.quiet_events for r in results)
        print(
            f"delta {delta:<6g} clock {clock:>2}: found within 1,000: {streams}; "
            f"{false_alarms} false alarms in {quiet:,} no-drift events "
            f"({false_per_100k(results):.2f} per 100k)",
            flush=True,
        )
    delta, clock = choose(scored)
    print(f"chosen: delta {delta:g}, clock {clock}")


if __name__ == "__main__":
    main()
