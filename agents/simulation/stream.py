"""A drifting stream scored by a frozen "production model": the demo's and the tests' input.

The stream is River's SEA generator (three features in [0, 10], the label is
whether x0 + x1 exceeds a threshold, with label noise); part way it drifts
to another threshold (``ConceptDriftStream``, width >= 50 as River needs).
The production model is a River logistic regression trained once on the
first concept and then frozen, as a deployed model is: after the drift it
is confidently wrong on a band of inputs, which the loop must notice.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from river import linear_model, preprocessing
from river.datasets import synth

from schemas import PredictionEvent, PredictionInput, utc_now

CLASSES = ("positive", "negative")


class StreamSettings(BaseModel):
    """The simulated stream (``labelloop demo`` options)."""

    model_config = ConfigDict(frozen=True)

    events: int = Field(default=4_000, ge=1)
    #: SEA variants: thresholds 8, 9, 7, 9.5.
    variant_before: int = Field(default=0, ge=0, le=3)
    variant_after: int = Field(default=2, ge=0, le=3)
    #: Where the drift is centred, as a share of the events (>= 1 means no drift).
    drift_at: float = Field(default=0.5, ge=0.0)
    drift_width: int = Field(default=100, ge=50)
    noise: float = Field(default=0.05, ge=0.0, le=0.5)
    train_size: int = Field(default=2_000, ge=10)
    seed: int = 42
    model_name: str = "sea-classifier"
    model_version: str = "1"
    task: str = "default"
    run_id: str = "run"


@dataclass(frozen=True)
class SimulatedEvent:
    """One prediction and the truth only the simulation knows."""

    index: int
    event: PredictionEvent
    truth: str


def _label(y: bool) -> str:
    return CLASSES[0] if y else CLASSES[1]


def _features(x: dict[Any, float]) -> dict[str, float]:
    return {f"x{key}": float(value) for key, value in x.items()}


def train_production_model(settings: StreamSettings) -> Any:
    """A logistic regression trained on the first concept only (then frozen)."""
    model: Any = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    training = synth.SEA(variant=settings.variant_before, noise=settings.noise, seed=settings.seed + 1)
    for x, y in itertools.islice(training, settings.train_size):
        model.learn_one(_features(x), y)
    return model


def drift_width(settings: StreamSettings) -> int:
    """The drift's width in events: ``drift_width``, widened for long runs.

    River's sigmoid overflows math.exp once position / width passes ~177 (a 40k-event
    run with the default width): the drift is widened just enough for long runs.

    >>> drift_width(StreamSettings(events=4_000)), drift_width(StreamSettings(events=40_000))
    (100, 134)
    """
    return max(settings.drift_width, int(settings.events * settings.drift_at) // 150 + 1)


def drift_window(settings: StreamSettings) -> tuple[int, int]:
    """The drift's first and last event: its centre less and plus half its width.

    >>> drift_window(StreamSettings(events=20_000))
    (9950, 10050)
    """
    position = int(settings.events * settings.drift_at)
    half = drift_width(settings) // 2
    return position - half, position + half


def concept_sample(
    settings: StreamSettings, after: bool, size: int, seed: int
) -> list[tuple[dict[str, float], str]]:
    """``size`` labeled inputs of the concept before (or after) the drift, named as the events name them.

    Drawn from a generator of their own (``seed``): a held-out sample of the concept.

    >>> sample = concept_sample(StreamSettings(), after=True, size=2, seed=5)
    >>> sorted(sample[0][0]), sample[0][1] in CLASSES
    (['x0', 'x1', 'x2'], True)
    """
    variant = settings.variant_after if after else settings.variant_before
    generator = synth.SEA(variant=variant, noise=settings.noise, seed=seed)
    return [(_features(x), _label(y)) for x, y in itertools.islice(generator, size)]


def drifting_stream(settings: StreamSettings) -> Iterator[tuple[dict[Any, float], bool]]:
    """SEA with an abrupt-ish drift centred at ``drift_at`` of the run (or none)."""
    before = synth.SEA(variant=settings.variant_before, noise=settings.noise, seed=settings.seed)
    if settings.drift_at >= 1.0:
        return iter(before)
    after = synth.SEA(variant=settings.variant_after, noise=settings.noise, seed=settings.seed + 2)
    stream = synth.ConceptDriftStream(
        stream=before,
        drift_stream=after,
        seed=settings.seed,
        position=int(settings.events * settings.drift_at),
        width=drift_width(settings),
    )
    return iter(stream)


def simulate(settings: StreamSettings, clock: Any = utc_now) -> Iterator[SimulatedEvent]:
    """The stream as PredictionEvents scored by the frozen model, with their truth.

    >>> events = list(simulate(StreamSettings(events=5, train_size=50)))
    >>> [e.event.event_id for e in events][:2], sorted(events[0].event.scores)
    (['run-0000000', 'run-0000001'], ['negative', 'positive'])
    """
    model = train_production_model(settings)
    for index, (x, y) in enumerate(itertools.islice(drifting_stream(settings), settings.events)):
        features = _features(x)
        p_positive = float(model.predict_proba_one(features).get(True, 0.5))
        # Round so the JSON stays short; keep the pair summing to exactly 1.
        p_positive = min(max(round(p_positive, 6), 0.0), 1.0)
        scores = {CLASSES[0]: p_positive, CLASSES[1]: round(1.0 - p_positive, 6)}
        created_at: datetime = clock()
        yield SimulatedEvent(
            index=index,
            event=PredictionEvent(
                event_id=f"{settings.run_id}-{index:07d}",
                task=settings.task,
                model_name=settings.model_name,
                model_version=settings.model_version,
                created_at=created_at,
                input=PredictionInput(features={k: round(v, 6) for k, v in features.items()}),
                predicted_label=max(scores, key=lambda label: scores[label]),
                scores=scores,
            ),
            truth=_label(y),
        )
