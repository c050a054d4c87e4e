"""The online model's SGD step: a decaying schedule, restarted when the learner's own error rises.

A constant step tracks a drift quickly but never settles: at 0.1 the linear
model's accuracy on the whole population hovers 0.5-0.8 points (one standard
deviation) about its level, so whether it stays within a margin for a while is
partly chance. A step that decays like 1/t (Robbins and Monro; Bottou's
"optimal" schedule) settles, but then a drift finds it too slow to move. The
learner gets both: the step decays while its prequential error on the human
labels is steady, and starts again from the top when an ADWIN on that error
sees it rise (a fall, the model getting better, restarts nothing).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from river import drift, optim

from streams.patches.river_adwin import adwin_step

#: ADWIN's confidence on the learner's error stream: chosen by bench.learner_tuning on seeds L2 never uses.
RESTART_DELTA = 0.01


class DecayingStep(optim.base.Scheduler):  # type: ignore[misc]
    """A step of ``learning_rate * half_at / (half_at + t)``: it halves after ``half_at`` steps.

    ``t`` is the optimizer's step count, which :class:`StepRestart` sets back to 0.

    Parameters
    ----------
    learning_rate
        The step at ``t = 0``.
    half_at
        Steps after which the step is half its initial size.

    Examples
    --------
    >>> step = DecayingStep(0.1, half_at=200)
    >>> [round(step.get(t), 4) for t in (0, 200, 600)]
    [0.1, 0.05, 0.025]
    """

    def __init__(self, learning_rate: float, half_at: float) -> None:
        if learning_rate <= 0.0 or half_at <= 0.0:
            raise ValueError("learning_rate and half_at must be positive")
        self.learning_rate = learning_rate
        self.half_at = half_at

    def get(self, t: int) -> float:
        return self.learning_rate * self.half_at / (self.half_at + t)


def optimizers(model: Any) -> Iterator[optim.base.Optimizer]:
    """Every optimizer inside a River model: pipeline steps, one-vs-rest members, wrapped estimators."""
    optimizer = getattr(model, "optimizer", None)
    if isinstance(optimizer, optim.base.Optimizer):
        yield optimizer
    steps = getattr(model, "steps", None)
    if isinstance(steps, dict):
        for step in steps.values():
            yield from optimizers(step)
    for name in ("classifier", "model"):
        inner = getattr(model, name, None)
        if inner is not None and inner is not model:
            yield from optimizers(inner)
    members = getattr(model, "classifiers", None)
    if isinstance(members, dict):
        for member in members.values():
            yield from optimizers(member)


def decays(model: Any) -> bool:
    """Whether an optimizer of ``model`` follows a :class:`DecayingStep` (a restart means something)."""
    return any(isinstance(optimizer.lr, DecayingStep) for optimizer in optimizers(model))


class StepRestart:
    """Watches a learner's prequential error and restarts its model's step schedule when the error rises.

    Parameters
    ----------
    delta
        ADWIN's confidence (smaller: surer, later).

    Examples
    --------
    >>> from river import linear_model
    >>> model = linear_model.LogisticRegression(optimizer=optim.SGD(DecayingStep(0.1, 200)))
    >>> model.optimizer.n_iterations = 5_000  # a settled model: its step is 0.1 * 200 / 5,200
    >>> restart = StepRestart()
    >>> fired = [restart.update(right=i >= 1_000 or i % 10 != 0, model=model) for i in range(1_000)]
    >>> any(fired), model.optimizer.n_iterations  # the error fell from 10% to 0: no restart
    (False, 5000)
    >>> fired = [restart.update(right=i % 2 == 0, model=model) for i in range(300)]
    >>> restart.restarts, model.optimizer.n_iterations < 300  # it rose to 50%: the step starts again
    (1, True)
    """

    def __init__(self, delta: float = RESTART_DELTA) -> None:
        self.detector = drift.ADWIN(delta=delta)
        self.restarts = 0

    def update(self, right: bool, model: Any) -> bool:
        """Record one prequential outcome; restart ``model``'s schedule (and say so) if the error rose."""
        step = adwin_step(self.detector, 0.0 if right else 1.0)
        if step is None:
            return False
        width, total = step
        # The error fell, or stayed: ADWIN.estimation before the update against after it.
        if self.detector.estimation <= (total / width if width else 0.0):
            return False
        for optimizer in optimizers(model):
            optimizer.n_iterations = 0
        self.restarts += 1
        return True
