"""How the linear model's step schedule was chosen: candidates on tuning seeds, apart from L2's.

``python -m bench.learner_tuning`` (about 5 minutes; not part of ``make bench``)
plays every candidate learner through :mod:`bench.online_recovery`'s goal
sides (product routing and as many random labels) on seeds
:data:`TUNING_SEEDS`, which the L2 bench never uses (it measures seeds 1-10).
A candidate is the linear pipeline of :func:`build_model` with its SGD step
starting at 0.1 and halving after ``half_at`` labels (:class:`DecayingStep`;
None: the constant 0.1 of before), restarted by :class:`StepRestart` at ADWIN
confidence ``delta``. The rule, fixed before the candidates ran: among the
candidates whose product side recovers in every run, the lowest ratio of the
median labels to recover (product / random); the product default
(``LINEAR_STEP_HALF_AT``, ``RESTART_DELTA``) is the candidate it picks.

Its run of 2026-12-02 (median labels to recover, product / random, on the
tuning seeds; every candidate's product side recovered in 10 of 10): constant
0.1 120 / 40 (3.00); half_at 100, delta 0.002 600 / 1,400 (0.43); 200, 0.002
590 / 1,440 (0.41); 500, 0.002 560 / 670 (0.84); 100, 0.01 430 / 880 (0.49);
200, 0.01 505 / 1,255 (0.40): chosen.

Before this module a prototype (scoring the same seeds on the hold-outs and on
the exact population accuracy) also tried steps decaying like 1/sqrt(t)
(half_at 100 and 500): the product's side needed more labels than random
labels' there (585 vs 375, 340 vs 180), and clipping the importance weights at
20 instead of 1 made the product's side slower (1,190 labels, one run never
recovered): the weights stay clipped at 1 (see ``LearnerSettings``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

from river import linear_model, multiclass, optim, preprocessing

from agents.learner.model import LINEAR_LEARNING_RATE, OnlineLearner
from agents.learner.schedule import DecayingStep, StepRestart
from bench.online_recovery import _labels, one_run
from bench.recovery_stream import WINDOW

TUNING_SEEDS = tuple(range(101, 111))
#: (half_at, delta): the constant step first, then decaying ones restarted at ADWIN's default or sooner.
CANDIDATES: tuple[tuple[float | None, float], ...] = (
    (None, 0.0),
    (100, 0.002),
    (200, 0.002),
    (500, 0.002),
    (100, 0.01),
    (200, 0.01),
)


def learner(half_at: float | None, delta: float) -> Callable[[], OnlineLearner]:
    """A fresh candidate learner each call."""

    def make() -> OnlineLearner:
        step: float | DecayingStep = (
            LINEAR_LEARNING_RATE if half_at is None else DecayingStep(LINEAR_LEARNING_RATE, half_at)
        )
        model = preprocessing.StandardScaler() | multiclass.OneVsRestClassifier(
            linear_model.LogisticRegression(optimizer=optim.SGD(step), intercept_lr=step)
        )
        return OnlineLearner(model, WINDOW, None if half_at is None else StepRestart(delta))

    return make


def evaluate(half_at: float | None, delta: float) -> tuple[float, float, int]:
    """Median labels to recover (product, random) and the product's runs that recovered."""
    runs = [one_run(seed, reviews_only=False, make_learner=learner(half_at, delta)) for seed in TUNING_SEEDS]
    product = [r.product.recovery.labels_to_recover for r in runs]
    random_labels = [r.random.recovery.labels_to_recover for r in runs]
    recovered = sum(not math.isinf(value) for value in product)
    return statistics.median(product), statistics.median(random_labels), recovered


def main() -> None:
    scored = {}
    for half_at, delta in CANDIDATES:
        product, random_labels, recovered = evaluate(half_at, delta)
        ratio = product / random_labels if random_labels and not math.isinf(random_labels) else math.inf
        scored[(half_at, delta)] = (ratio, recovered)
        name = "constant 0.1" if half_at is None else f"half_at {half_at:g}, delta {delta:g}"
        print(
            f"{name:<26} product {_labels(product):>6}  random {_labels(random_labels):>6}  "
            f"ratio {ratio:.2f}  product recovered {recovered}/{len(TUNING_SEEDS)}",
            flush=True,
        )
    eligible = {key: value for key, value in scored.items() if value[1] == len(TUNING_SEEDS)}
    best = min(eligible, key=lambda key: eligible[key][0])
    print(f"chosen: half_at {best[0]}, delta {best[1]}")


if __name__ == "__main__":
    main()
