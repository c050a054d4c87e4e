"""Does the monitor catch drift? The product's ModelErrorMonitor on River's synthetic streams.

Goal **L1** of the issue: on at least three River synthetic streams with a
known abrupt drift point, drift is detected within 1,000 events of the drift
point in at least 90% of seeded runs, with at most one false alarm per 100,000
events; a gradual drift is reported with its delay.

Each stream (:data:`CASES`) has a production model trained once on the first
concept (a fixed training seed, as the demo's :mod:`agents.simulation.stream`
does) and then frozen. A seeded run plays the first concept for ``drift_at``
events, then switches to the second concept's generator at exactly that index
(a known drift point; River's ``ConceptDriftStream`` would blur it and
overflows at narrow widths), and feeds the model's 0/1 error on every event,
with the class the model predicted, to
:class:`agents.monitor.detectors.ModelErrorMonitor` with the product's default
:class:`MonitorSettings` through ``observe_error`` (what ``observe`` calls for
each label it counts, with the label's ``provenance.model_label``). So the
monitor runs as configured by default: an ADWIN on the error over all labels
and one per predicted class (``error_per_class``), an alarm being any of them
firing. Those defaults (ADWIN delta 0.02, a cut test at every label) were
chosen by :mod:`bench.drift_tuning` on seeds this bench never uses.
So an "event" here is one labeled event the monitor counts; in the product
``observe`` counts only first human labels of its route (the control group by
default), so in stream time the delays stretch by the inverse of that share.

- **delay**: events after the drift point up to and including the alarm; a
  run is a detection when its first alarm at or after the drift point has a
  delay <= 1,000 (undetected runs count as an infinite delay in the
  percentiles).
- **false alarms**: alarms before the drift point of every run, plus alarms on
  one long run per stream without drift, plus alarms before the gradual
  drift's start; the goal's rate is pooled over all those no-drift events
  (at least 100,000 of them are needed to claim it), with a row per stream.
- **gradual**: SEA through a wide ``ConceptDriftStream``; the delay from the
  transition's start (``position - width / 2``) and from its middle.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from river import linear_model, preprocessing, tree
from river.datasets import synth

from agents.monitor.detectors import ModelErrorMonitor, MonitorSettings
from bench.harness import Goal, Row

RUNS = 30
WITHIN = 1_000
GOAL_DETECTION = 0.90
GOAL_FALSE_PER_100K = 1.0
TRAIN_SEED = 0
TRAIN_SIZE = 2_000
#: Seed offsets of the two concepts' generators in a run (the training stream uses TRAIN_SEED).
FIRST_SEED, SECOND_SEED = 1_000, 2_000
GRADUAL_POSITION = 5_000
GRADUAL_WIDTH = 2_000
GRADUAL_AFTER = 4_000
#: The monitor as the product configures it by default.
PRODUCT = MonitorSettings()

Sample = tuple[dict[Any, Any], Any]


@dataclass(frozen=True)
class DriftCase:
    """A stream with a known abrupt drift: ``concept(0 or 1, seed)`` builds each side's generator."""

    name: str
    description: str
    concept: Callable[[int, int], Iterable[Sample]]
    model: Callable[[], Any]
    drift_at: int
    after: int
    no_drift_events: int


def _sea(concept: int, seed: int) -> Iterable[Sample]:
    # The demo's drift: threshold 8 (variant 0) -> 7 (variant 2), 5% label noise.
    stream: Iterable[Sample] = synth.SEA(variant=(0, 2)[concept], noise=0.05, seed=seed)
    return stream


def _agrawal(concept: int, seed: int) -> Iterable[Sample]:
    stream: Iterable[Sample] = synth.Agrawal(
        classification_function=(0, 2)[concept], perturbation=0.05, seed=seed
    )
    return stream


def _sine(concept: int, seed: int) -> Iterable[Sample]:
    stream: Iterable[Sample] = synth.Sine(classification_function=(0, 2)[concept], has_noise=False, seed=seed)
    return stream


def _logistic() -> Any:
    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


def _tree() -> Any:
    return tree.HoeffdingTreeClassifier(grace_period=100)


CASES: dict[str, DriftCase] = {
    case.name: case
    for case in (
        DriftCase("sea", "SEA variant 0->2, logistic", _sea, _logistic, 5_000, 2_000, 100_000),
        # Agrawal's generator costs ~70 us an event: shorter runs keep the bench under 40 s.
        DriftCase("agrawal", "Agrawal function 0->2, tree", _agrawal, _tree, 2_000, 1_000, 10_000),
        DriftCase("sine", "Sine function 0->2, tree", _sine, _tree, 5_000, 2_000, 100_000),
    )
}


def train(case: DriftCase) -> Any:
    """The production model: trained on the first concept only, then frozen."""
    model = case.model()
    for x, y in itertools.islice(case.concept(0, TRAIN_SEED), TRAIN_SIZE):
        model.learn_one(x, y)
    return model


@dataclass(frozen=True, slots=True)
class Monitored:
    """One stream through the frozen model and the product's monitor."""

    alarms: tuple[int, ...]
    errors_before: int
    errors_after: int


def monitor_stream(
    model: Any,
    stream: Iterable[Sample],
    events: int,
    split: int,
    settings: MonitorSettings = PRODUCT,
) -> Monitored:
    """Feed the model's 0/1 error on ``events`` events; alarm indices, errors either side of ``split``."""
    monitor = ModelErrorMonitor(settings, task="bench")
    alarms: list[int] = []
    errors = [0, 0]
    for i, (x, y) in enumerate(itertools.islice(stream, events)):
        predicted = model.predict_one(x)
        error = predicted != y
        errors[i >= split] += error
        # Labels carry the production model's prediction as a class name (a string).
        if monitor.observe_error(error, str(predicted)) is not None:
            alarms.append(i)
    return Monitored(tuple(alarms), errors[0], errors[1])


@dataclass(frozen=True, slots=True)
class DriftRun:
    """One seeded run: the delay of the first alarm at or after ``drift_at`` (inf if none)."""

    delay: float
    false_alarms: int
    error_before: float
    error_after: float


def abrupt_stream(case: DriftCase, seed: int) -> Iterator[Sample]:
    """The first concept for ``drift_at`` events, then the second one (the drift point is exact)."""
    first = itertools.islice(case.concept(0, FIRST_SEED + seed), case.drift_at)
    return itertools.chain(first, case.concept(1, SECOND_SEED + seed))


def drift_run(case: DriftCase, model: Any, seed: int, settings: MonitorSettings = PRODUCT) -> DriftRun:
    """One abrupt-drift run of ``case`` with ``seed``."""
    seen = monitor_stream(
        model, abrupt_stream(case, seed), case.drift_at + case.after, case.drift_at, settings
    )
    after = [alarm for alarm in seen.alarms if alarm >= case.drift_at]
    return DriftRun(
        delay=float(after[0] - case.drift_at + 1) if after else math.inf,
        false_alarms=len(seen.alarms) - len(after),
        error_before=seen.errors_before / case.drift_at,
        error_after=seen.errors_after / case.after,
    )


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (inf values, undetected runs, sort last)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: DriftCase
    runs: list[DriftRun]
    no_drift_alarms: int
    no_drift_events: int

    @property
    def detection(self) -> float:
        return sum(run.delay <= WITHIN for run in self.runs) / len(self.runs)

    @property
    def median_delay(self) -> float:
        """The runs' median delay (an undetected run counts as infinite)."""
        return statistics.median(run.delay for run in self.runs)

    @property
    def false_alarms(self) -> int:
        return sum(run.false_alarms for run in self.runs) + self.no_drift_alarms

    @property
    def quiet_events(self) -> int:
        """No-drift events watched: every run's first concept and the no-drift run."""
        return len(self.runs) * self.case.drift_at + self.no_drift_events

    @property
    def false_per_100k(self) -> float:
        return 100_000 * self.false_alarms / self.quiet_events


def measure(
    case: DriftCase,
    seeds: Sequence[int],
    no_drift_events: int,
    settings: MonitorSettings = PRODUCT,
    quiet_seed: int = FIRST_SEED - 1,
) -> CaseResult:
    """``case``'s seeded drift runs and one no-drift run of ``no_drift_events`` (stream ``quiet_seed``)."""
    model = train(case)
    runs = [drift_run(case, model, seed, settings) for seed in seeds]
    quiet = monitor_stream(model, case.concept(0, quiet_seed), no_drift_events, no_drift_events, settings)
    return CaseResult(case, runs, len(quiet.alarms), no_drift_events)


@dataclass(frozen=True, slots=True)
class GradualResult:
    from_start: list[float]
    from_middle: list[float]
    false_alarms: int
    #: The transition's start: events before it are no-drift events.
    start: int


def gradual(seeds: Sequence[int]) -> GradualResult:
    """SEA 0->2 through a ConceptDriftStream of width GRADUAL_WIDTH centred at GRADUAL_POSITION."""
    model = train(CASES["sea"])
    start = GRADUAL_POSITION - GRADUAL_WIDTH // 2
    from_start: list[float] = []
    from_middle: list[float] = []
    false_alarms = 0
    for seed in seeds:
        stream = synth.ConceptDriftStream(
            stream=_sea(0, FIRST_SEED + seed),
            drift_stream=_sea(1, SECOND_SEED + seed),
            position=GRADUAL_POSITION,
            width=GRADUAL_WIDTH,
            seed=seed,
        )
        seen = monitor_stream(model, stream, GRADUAL_POSITION + GRADUAL_AFTER, start)
        after = [alarm for alarm in seen.alarms if alarm >= start]
        false_alarms += len(seen.alarms) - len(after)
        first = after[0] if after else math.inf
        from_start.append(first - start + 1)
        from_middle.append(first - GRADUAL_POSITION + 1)
    return GradualResult(from_start, from_middle, false_alarms, start)


def _delay(value: float) -> str:
    return "none" if math.isinf(value) else f"{value:.0f}"


def run(
    *,
    runs: int = RUNS,
    streams: Sequence[str] = tuple(CASES),
    no_drift_events: int | None = None,
) -> tuple[list[Row], list[Goal]]:
    """Measure L1: ``runs`` seeded runs per stream; ``no_drift_events`` overrides the long quiet runs."""
    started = time.perf_counter()
    seeds = range(1, runs + 1)
    rows: list[Row] = []
    results = [
        measure(
            CASES[name],
            seeds,
            CASES[name].no_drift_events if no_drift_events is None else no_drift_events,
        )
        for name in streams
    ]
    for result in results:
        case, delays = result.case, [run.delay for run in result.runs]
        rows += [
            Row(
                f"L1 {case.description}: found <= {WITHIN:,} ev",
                100 * result.detection,
                100 * GOAL_DETECTION,
                "%",
                f"goal; {len(delays)} runs, drift at {case.drift_at:,}",
            ),
            Row(
                "L1   median delay (95th as baseline)",
                result.median_delay,
                percentile(delays, 0.95),
                "ev",
                "95th percentile delay",
            ),
            Row(
                "L1   false alarms per 100k events",
                result.false_per_100k,
                GOAL_FALSE_PER_100K,
                "",
                f"goal; {result.false_alarms} in {result.quiet_events:,} no-drift ev",
            ),
            Row(
                "L1   model error after drift",
                statistics.fmean(run.error_after for run in result.runs),
                statistics.fmean(run.error_before for run in result.runs),
                "",
                "error before the drift",
            ),
        ]
    slow = gradual(seeds)
    rows += [
        Row(
            f"L1 gradual SEA (width {GRADUAL_WIDTH:,}): delay from start",
            statistics.median(slow.from_start),
            percentile(slow.from_start, 0.95),
            "ev",
            "95th percentile",
        ),
        Row(
            "L1   delay from the middle",
            statistics.median(slow.from_middle),
            percentile(slow.from_middle, 0.95),
            "ev",
            "95th percentile",
        ),
    ]

    detection_ok = all(result.detection >= GOAL_DETECTION for result in results)
    false_alarms = sum(result.false_alarms for result in results) + slow.false_alarms
    quiet_events = sum(result.quiet_events for result in results) + len(seeds) * slow.start
    false_per_100k = 100_000 * false_alarms / quiet_events
    false_ok = false_per_100k <= GOAL_FALSE_PER_100K and quiet_events >= 100_000
    rows.append(
        Row(
            "L1 false alarms per 100k, all streams",
            false_per_100k,
            GOAL_FALSE_PER_100K,
            "",
            f"goal; {false_alarms} in {quiet_events:,} no-drift ev",
        )
    )
    streams_text = "; ".join(
        f"{result.case.name} {100 * result.detection:.0f}% "
        f"(median {_delay(result.median_delay)}, "
        f"{result.false_alarms} false in {result.quiet_events:,})"
        for result in results
    )
    why = []
    if len(results) < 3:
        why.append(f"only {len(results)} streams")
    why += [
        f"{result.case.name} found in {100 * result.detection:.0f}% < {100 * GOAL_DETECTION:.0f}% "
        f"(model error only {statistics.fmean(r.error_before for r in result.runs):.3f} -> "
        f"{statistics.fmean(r.error_after for r in result.runs):.3f})"
        for result in results
        if result.detection < GOAL_DETECTION
    ]
    if quiet_events < 100_000:
        why.append(f"only {quiet_events:,} no-drift events watched")
    elif not false_ok:
        why.append(f"{false_per_100k:.2f} false alarms per 100k")
    figure = (
        f"found within {WITHIN:,} events of the drift over {runs} seeded runs each: {streams_text}; "
        f"gradual SEA median delay {_delay(statistics.median(slow.from_start))} from start, "
        f"{_delay(statistics.median(slow.from_middle))} from middle; "
        f"{false_alarms} false alarms in {quiet_events:,} no-drift events"
        + (f" [fails: {', '.join(why)}]" if why else "")
    )
    goal = Goal(
        "L1",
        figure,
        f">= {100 * GOAL_DETECTION:.0f}% within {WITHIN:,} events on >= 3 streams, "
        f"<= {GOAL_FALSE_PER_100K:g} false alarm per 100k events",
        detection_ok and false_ok and len(results) >= 3,
    )
    rows.append(Row("L1   bench wall time", time.perf_counter() - started, 40.0, "s", "budget"))
    return rows, [goal]


if __name__ == "__main__":
    from bench.harness import report

    print(report(*run()))
