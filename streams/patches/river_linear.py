"""The private parts of River's linear pipeline that :mod:`agents.learner.linear` reads and writes.

The fused predict-then-learn step does River's arithmetic on River's own objects, so it reaches
for a logistic regression's weight vector (``_weights``) and for the pipeline's switch that makes
a scaler learn during prediction (``Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT``). A River that
renames them keeps the generic path (:func:`agents.learner.linear._plain_logistic` checks), and the
canary here fails, so the bump is seen.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from streams.patches.pins import Pin

UPSTREAM = "none filed: River 0.26 has no public fused predict-and-learn step"
RELIES_ON = (
    Pin("river.linear_model:LogisticRegression", "_weights", assigned_in="__init__"),
    Pin("river.compose:Pipeline", "_LEARN_UNSUPERVISED_DURING_PREDICT"),
    Pin("river.optim:SGD", "n_iterations", assigned_in="__init__"),
    Pin("river.preprocessing:StandardScaler", "vars", assigned_in="__init__"),
)

#: A logistic regression's weight vector (``river.utils.VectorDict``), read per class per step.
weights_of: Any = attrgetter("_weights")


def learns_during_predict() -> bool:
    """Whether River's pipelines let unsupervised steps learn in ``predict_*`` (``learn_during_predict``)."""
    from river import compose

    return bool(compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT)
