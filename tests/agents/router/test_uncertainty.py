"""Uncertainty measures: in [0, 1], 0 when certain, largest when uniform, one order for two classes."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from agents.router.uncertainty import (
    MEASURES,
    UncertaintyMeasure,
    entropy,
    least_confidence,
    margin,
    uncertainty,
)

ALL_MEASURES: list[UncertaintyMeasure] = ["max_probability", "margin", "entropy"]


def uniform(k: int) -> dict[str, float]:
    return {f"c{index}": 1.0 / k for index in range(k)}


def binary(top: float) -> dict[str, float]:
    """Two classes, ``top`` the higher score (in [0.5, 1])."""
    return {"yes": top, "no": 1.0 - top}


@st.composite
def distributions(draw: st.DrawFn) -> dict[str, float]:
    """A probability vector over 1 to 12 classes, zeros allowed."""
    weights = draw(
        st.lists(st.floats(min_value=0.0, max_value=1.0, allow_subnormal=False), min_size=1, max_size=12)
    )
    assume(sum(weights) > 1e-6)
    total = math.fsum(weights)
    return {f"c{index}": weight / total for index, weight in enumerate(weights)}


def test_uncertainty_dispatches_to_each_measure() -> None:
    assert set(MEASURES) == set(ALL_MEASURES)
    scores = {"a": 0.7, "b": 0.2, "c": 0.1}
    assert uncertainty(scores, "max_probability") == least_confidence(scores)
    assert uncertainty(scores, "margin") == margin(scores)
    assert uncertainty(scores, "entropy") == entropy(scores)


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ({"a": 0.7, "b": 0.2, "c": 0.1}, {"max_probability": 0.3, "margin": 0.5}),
        ({"a": 0.9, "b": 0.1}, {"max_probability": 0.1, "margin": 0.2}),
        ({"a": 0.5, "b": 0.3, "c": 0.2}, {"max_probability": 0.5, "margin": 0.8}),
        ({"a": 0.4, "b": 0.4, "c": 0.2}, {"max_probability": 0.6, "margin": 1.0}),
    ],
)
def test_known_values_of_least_confidence_and_margin(
    scores: dict[str, float], expected: dict[str, float]
) -> None:
    assert least_confidence(scores) == pytest.approx(expected["max_probability"])
    assert margin(scores) == pytest.approx(expected["margin"])


def test_entropy_is_shannon_entropy_over_log_k() -> None:
    # H(0.9, 0.1) in nats, over log 2.
    expected = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2)
    assert entropy({"a": 0.9, "b": 0.1}) == pytest.approx(expected)
    assert entropy({"a": 0.9, "b": 0.1}) == pytest.approx(0.4690, abs=1e-4)
    # Half the mass on each of two of four classes: log 2 / log 4.
    assert entropy({"a": 0.5, "b": 0.5, "c": 0.0, "d": 0.0}) == pytest.approx(0.5)
    # The same scores over more classes are less uncertain relative to the maximum.
    assert entropy({"a": 0.5, "b": 0.5, "c": 0.0}) == pytest.approx(math.log(2) / math.log(3))


@pytest.mark.parametrize("measure", ALL_MEASURES)
@pytest.mark.parametrize(
    "scores",
    [{"a": 1.0}, {"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0, "c": 0.0}],
    ids=["one_class", "two_classes", "three_classes"],
)
def test_a_certain_prediction_has_no_uncertainty(
    measure: UncertaintyMeasure, scores: dict[str, float]
) -> None:
    assert uncertainty(scores, measure) == 0.0


@pytest.mark.parametrize("k", [2, 3, 5, 10])
def test_the_uniform_distribution_is_the_most_uncertain(k: int) -> None:
    assert least_confidence(uniform(k)) == pytest.approx(1.0 - 1.0 / k)
    assert margin(uniform(k)) == pytest.approx(1.0)
    assert entropy(uniform(k)) == pytest.approx(1.0)


@given(scores=distributions())
def test_every_measure_is_in_the_unit_interval_and_at_most_the_uniform_value(
    scores: dict[str, float],
) -> None:
    flat = uniform(len(scores))
    for measure in ALL_MEASURES:
        value = uncertainty(scores, measure)
        assert 0.0 <= value <= 1.0
        assert value <= uncertainty(flat, measure) + 1e-9


# Strictly above 1/2, so the first score is the highest and the two never tie.
TOP = st.floats(min_value=0.5, max_value=1.0, exclude_min=True)


@given(first=TOP, second=TOP)
def test_for_two_classes_the_measures_order_predictions_identically(first: float, second: float) -> None:
    assume(abs(first - second) > 1e-6)  # beyond float rounding of the entropy
    surer, less_sure = max(first, second), min(first, second)
    for measure in ALL_MEASURES:
        # Every measure decreases strictly with the highest score, so all rank alike.
        assert uncertainty(binary(surer), measure) < uncertainty(binary(less_sure), measure)


@given(top=TOP)
def test_for_two_classes_the_measures_are_functions_of_the_highest_score(top: float) -> None:
    scores = binary(top)
    assert least_confidence(scores) == pytest.approx(1.0 - top)
    assert margin(scores) == pytest.approx(2.0 * (1.0 - top))
    assert margin(scores) == pytest.approx(2.0 * least_confidence(scores))
