"""One prequential step (predict, then learn) of the linear pipeline, in one pass over the features.

River's ``StandardScaler | OneVsRestClassifier(LogisticRegression)`` answers
``predict_proba_one`` and then ``learn_one`` as two walks through the
pipeline: the scaler transforms ``x`` (statistics before this example), each
class's model takes a dot product; then the scaler learns ``x``, transforms
it again (statistics after), each class's model takes a dot product again,
steps its intercept and weights. Most of that time is the walk itself: the
pipeline's plan, the one-vs-rest dicts, a masked weight view per model and
call, the loss and the optimizer behind their methods.

:class:`LinearStep` does the same arithmetic on the same River objects in one
pass: per feature it scales with the statistics before the update (for the
prediction), updates them (Welford, as River) and scales again (for the
gradient); per class the two dot products, the logistic loss's gradient,
the intercept's and the weights' SGD steps. Nothing is shared that River
computes differently: the prediction uses the statistics before this
example, the gradient those after it, as in the pipeline. The state stays in
the pipeline's own objects (scaler statistics, each model's weights,
intercept and optimizer's iteration count), so a checkpoint is the River
pipeline it always was, and the generic path and this one can follow each
other on the same model.

It applies only to the exact shape :func:`agents.learner.model.build_model`
builds for ``linear`` (see :meth:`LinearStep.of`); anything else (another
loss, an L1 or L2 penalty, another initializer or optimizer, a windowed
scaler) keeps River's generic path.
"""

from __future__ import annotations

from math import exp
from typing import Any

from river import base, compose, linear_model, multiclass, optim, preprocessing, utils

from agents.learner.schedule import DecayingStep
from streams.patches.river_linear import learns_during_predict, weights_of


class LinearStep:
    """Predict-then-learn for ``StandardScaler | OneVsRestClassifier(LogisticRegression)``.

    Parameters
    ----------
    pipeline
        The River pipeline it reads and updates (see :meth:`of`).

    Examples
    --------
    The same predictions and the same model as River's two calls:

    >>> from agents.learner.model import build_model
    >>> fused, generic = build_model("linear"), build_model("linear")
    >>> step = LinearStep.of(fused)
    >>> stream = [({"a": float(i % 3), "b": float(i % 5)}, "yes" if i % 3 else "no") for i in range(300)]
    >>> agree = []
    >>> for x, y in stream:
    ...     guess = step.observe(x, y)
    ...     probabilities = generic.predict_proba_one(x)
    ...     generic.learn_one(x, y)
    ...     expected = max(probabilities, key=probabilities.get) if probabilities else None
    ...     agree.append((guess[0] if guess else None) == expected)
    >>> all(agree), fused["OneVsRestClassifier"].classifiers["yes"].weights == (
    ...     generic["OneVsRestClassifier"].classifiers["yes"].weights)
    (True, True)
    """

    def __init__(self, pipeline: compose.Pipeline) -> None:
        steps = list(pipeline.steps.values())
        self.pipeline = pipeline
        self.scaler: preprocessing.StandardScaler = steps[0]
        self.ovr: multiclass.OneVsRestClassifier = steps[1]

    @classmethod
    def of(cls, model: base.Classifier) -> LinearStep | None:
        """The step for ``model`` when it has the linear pipeline's exact shape, else None."""
        if type(model) is not compose.Pipeline or len(model.steps) != 2:
            return None
        scaler, ovr = model.steps.values()
        if type(scaler) is not preprocessing.StandardScaler or not scaler.with_std:
            return None
        if getattr(scaler, "window_size", None) is not None:
            return None
        if type(ovr) is not multiclass.OneVsRestClassifier:
            return None
        if not all(_plain_logistic(clf) for clf in (ovr.classifier, *ovr.classifiers.values())):
            return None
        return cls(model)

    def observe(self, x: dict[Any, float], y: Any, weight: float = 1.0) -> tuple[Any, float, float] | None:
        """Predict ``x``, then learn ``(x, y)`` with ``weight``.

        Returns the predicted class, its probability and the probability the
        prediction gave ``y`` (0 for a class it had never seen), or None when
        no class had been learned yet: what ``predict_proba_one`` before
        ``learn_one`` would have given.
        """
        if learns_during_predict():
            return self._generic(x, y, weight)  # the scaler learns in predict too: River's path
        scaler = self.scaler
        counts, means, variances = scaler.counts, scaler.means, scaler.vars
        # Per feature: scaled with the statistics before this example (the prediction's x), then
        # StandardScaler.learn_one (Welford) and its transform_one with the new ones (the gradient's).
        scaled: list[tuple[Any, float, float]] = []
        keep = scaled.append
        for i, xi in x.items():
            mean, variance = means[i], variances[i]
            delta = xi - mean
            before = delta / variance**0.5 if variance else 0.0
            counts[i] = count = counts[i] + 1
            means[i] = new_mean = mean + delta / count
            variances[i] = variance = variance + (delta * (xi - new_mean) - variance) / count
            keep((i, before, (xi - new_mean) / variance**0.5 if variance else 0.0))

        # Per class: its model's weights do not move between the prediction and its gradient, so
        # one pass takes both dot products (each summed in feature order, as River does). A class
        # never seen gets a fresh model (OneVsRestClassifier.learn_one) that learns but was not in
        # the prediction; it comes last, as in the one-vs-rest dict.
        ovr = self.ovr
        classifiers = ovr.classifiers
        unpredicted = len(classifiers)
        if y not in classifiers:
            classifiers[y] = ovr.classifier.clone()
        positive: list[tuple[Any, float]] = []
        total = 0.0
        for label, model in classifiers.items():
            weights = weights_of(model)
            while True:
                dot_before = dot_after = 0.0
                try:
                    for i, before, after in scaled:
                        wi = weights[i]  # a subscript: half the cost of VectorDict.get(i, 0.0)
                        dot_before += wi * before
                        dot_after += wi * after
                    break
                except KeyError:
                    # A feature this class has no weight for yet weighs 0 (River's Zeros initializer);
                    # the SGD step below writes every feature of x, so it would be there after anyway.
                    _zero_missing(weights, scaled)
            intercept = model.intercept
            if unpredicted:
                unpredicted -= 1
                z = dot_before + intercept  # river.utils.math.sigmoid, inline (it runs per class)
                p = 0.0 if z < -30 else 1.0 if z > 30 else 1 / (1 + exp(-z))
                positive.append((label, p))
                total += p
            # LogisticRegression.learn_one: optim.losses.Log.gradient (inline), weighted and clipped;
            # SGD on the intercept and the weights.
            loss = model.loss
            if label == y:
                sign, lw = 1, loss.weight_pos
            else:
                sign, lw = -1, loss.weight_neg
            z = (dot_after + intercept) * sign
            if z > 18.0:
                gradient = lw * exp(-z) * -sign
            elif z < -18.0:
                gradient = float(lw * -sign)
            else:
                gradient = lw * -sign / (exp(z) + 1.0)
            gradient = gradient * weight
            clip = model.clip_gradient  # utils.math.clamp(gradient, -clip, clip)
            if gradient > clip:
                gradient = float(clip)
            elif gradient < -clip:
                gradient = float(-clip)
            optimizer = model.optimizer
            iteration = optimizer.n_iterations
            # The steps' schedulers at this iteration: DecayingStep.get inline (build_model's),
            # any other through its get.
            step = model.intercept_lr
            if type(step) is DecayingStep:
                half_at = step.half_at
                model.intercept = intercept - step.learning_rate * half_at / (half_at + iteration) * gradient
            else:
                model.intercept = intercept - step.get(iteration) * gradient
            step = optimizer.lr
            if type(step) is DecayingStep:
                half_at = step.half_at
                rate = step.learning_rate * half_at / (half_at + iteration)
            else:
                rate = step.get(iteration)
            for i, _, after in scaled:
                weights[i] = weights[i] - rate * (after * gradient)
            optimizer.n_iterations = iteration + 1
        if not positive:
            return None
        # OneVsRestClassifier.predict_proba_one: each model's sigmoid, normalised to sum to 1.
        best_label, best_p, p_y = None, -1.0, 0.0
        share = 1 / len(positive)
        for label, p in positive:
            p = p / total if total else share
            if p > best_p:  # the first of equals, as max() over the dict
                best_label, best_p = label, p
            if label == y:
                p_y = p
        return best_label, best_p, p_y

    def _generic(self, x: dict[Any, float], y: Any, weight: float) -> tuple[Any, float, float] | None:
        probabilities = self.pipeline.predict_proba_one(x)
        if weight == 1.0:
            self.pipeline.learn_one(x, y)
        else:
            self.pipeline.learn_one(x, y, w=weight)
        if not probabilities:
            return None
        label = max(probabilities, key=lambda name: probabilities[name])
        return label, float(probabilities[label]), float(probabilities.get(y, 0.0))


def _zero_missing(weights: utils.VectorDict, scaled: list[tuple[Any, float, float]]) -> None:
    """A weight of 0 for each feature of ``scaled`` that ``weights`` lacks, in the features' order
    (the order the SGD step would add them in)."""
    for i, _, _ in scaled:
        if i not in weights:
            weights[i] = 0.0


def _plain_logistic(model: Any) -> bool:
    """A LogisticRegression this step computes exactly: log loss, SGD, zero init, no penalty."""
    return (
        type(model) is linear_model.LogisticRegression
        and type(model.loss) is optim.losses.Log
        and type(model.optimizer) is optim.SGD
        and type(model.initializer) is optim.initializers.Zeros
        and model.l1 == 0
        and model.l2 == 0
        # The private parts it reads and writes (a River that renamed them keeps the generic path,
        # and the canary of streams/patches/river_linear.py fails; the tests compare this step
        # with River's bit for bit, so a changed formula shows there).
        and isinstance(getattr(model, "_weights", None), utils.VectorDict)
        and isinstance(getattr(model.optimizer, "n_iterations", None), int)
    )
