"""How unsure a prediction is, from its scores alone: max-probability, margin and entropy.

Each measure is scaled to [0, 1] (0: certain, 1: as unsure as the measure can
say), so one threshold means the same thing whichever measure a policy uses.

References
----------
Settles, B. (2009). Active Learning Literature Survey, §3.1 (uncertainty
sampling: least confident, margin, entropy). University of Wisconsin–Madison.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

UncertaintyMeasure = Literal["max_probability", "margin", "entropy"]


def least_confidence(scores: Mapping[str, float]) -> float:
    """1 - the highest score.

    >>> round(least_confidence({"a": 0.7, "b": 0.2, "c": 0.1}), 3)
    0.3
    """
    return 1.0 - max(scores.values())


def margin(scores: Mapping[str, float]) -> float:
    """1 - (highest - second highest score): 1 when the top two tie.

    >>> round(margin({"a": 0.7, "b": 0.2, "c": 0.1}), 3)
    0.5
    >>> margin({"a": 1.0})
    0.0
    """
    top = sorted(scores.values(), reverse=True)
    second = top[1] if len(top) > 1 else 0.0
    return 1.0 - (top[0] - second)


def entropy(scores: Mapping[str, float]) -> float:
    """Shannon entropy over log(k): 1 for a uniform distribution over k classes.

    >>> entropy({"a": 0.5, "b": 0.5})
    1.0
    >>> entropy({"a": 1.0, "b": 0.0})
    0.0
    """
    if len(scores) < 2:
        return 0.0
    total = math.fsum(-p * math.log(p) for p in scores.values() if 0.0 < p < 1.0)
    return min(max(total / math.log(len(scores)), 0.0), 1.0)


MEASURES = {"max_probability": least_confidence, "margin": margin, "entropy": entropy}


def uncertainty(scores: Mapping[str, float], measure: UncertaintyMeasure) -> float:
    """The ``measure`` of ``scores``, in [0, 1]."""
    return MEASURES[measure](scores)
