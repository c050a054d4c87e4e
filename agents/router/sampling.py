"""The router's measurement samples: which accepted events join the control group or the recall audit.

Both samples are Poisson samples (every event is drawn independently) with a
known inclusion probability that rides along on the Label, so the estimators
in :mod:`agents.router.estimators` can weight each human label by 1/π without
bias. The draw for an event is a keyed hash of its ``event_id``: a replayed or
duplicated event is sampled the same way, and a salt reseeds the whole sample.

References
----------
Horvitz, D. G. & Thompson, D. J. (1952). A generalization of sampling without
replacement from a finite universe. JASA 47(260), 663–685.

Sawade, C., Landwehr, N. & Scheffer, T. (2010). Active estimation of
F-measures. NIPS 23 (the variance-optimal instrumental distribution of a
precision/recall estimate is proportional to the square root of the expected
squared error term).

Yilmaz, E., Hayes, P., Habib, R., Burgess, J. & Barber, D. (2021). Sample
efficient model evaluation. arXiv:2109.12043 (Poisson sampling of test points
for F1 and recall, optimal inclusion probabilities).

Hesterberg, T. (1995). Weighted average importance sampling and defensive
mixture distributions. Technometrics 37(2), 185–194.

Aumasson, J.-P., Neves, S., Wilcox-O'Hearn, Z. & Winnerlein, C. (2013).
BLAKE2: simpler, smaller, fast as MD5. RFC 7693 (keyed BLAKE2b as a PRF).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: BLAKE2b takes keys of at most 64 bytes; longer salts are hashed down to 64.
_MAX_KEY_BYTES = 64
#: 53 random bits make every double in [0, 1) on a 2**-53 grid equally likely.
_UNIT = 2.0**-53


def uniform_for(event_id: str, salt: str) -> float:
    """A deterministic uniform in [0, 1) for ``event_id``: keyed BLAKE2b of the id, salt as key.

    The same event and salt always give the same number (a replay is sampled
    the same way); different salts give independent numbers, so the control
    group and the audit never select the same events on purpose. Keying the
    hash, rather than hashing ``salt + event_id``, means ``("a", "bc")`` and
    ``("ab", "c")`` cannot collide.

    Examples
    --------
    >>> u = uniform_for("tx-1", "audit")
    >>> 0.0 <= u < 1.0, u == uniform_for("tx-1", "audit"), u == uniform_for("tx-1", "control")
    (True, True, False)
    """
    # A copy of the salt's keyed state, not a new keyed hash: the key block is hashed once per
    # salt, not once per event (the router draws twice for most events; same digest either way).
    keyed = _keyed(salt).copy()
    keyed.update(event_id.encode("utf-8"))
    return (int.from_bytes(keyed.digest(), "big") >> 11) * _UNIT


@functools.lru_cache(maxsize=64)
def _keyed(salt: str) -> Any:
    """BLAKE2b (8-byte digest) keyed by ``salt``, before any message: copied for each draw."""
    key = salt.encode("utf-8")
    if len(key) > _MAX_KEY_BYTES:
        key = hashlib.blake2b(key, digest_size=_MAX_KEY_BYTES).digest()
    return hashlib.blake2b(digest_size=8, key=key)


class AuditSettings(BaseModel):
    """The recall audit (``LABELLOOP_ROUTER__AUDIT__*``).

    The defaults come from the variance of the recall estimate (see
    :class:`AuditSampler`): ``exponent=0.5`` samples in proportion to the
    square root of the chance that an event is a false negative, and
    ``floor=0.1`` keeps part of the budget uniform, so every predicted class
    is audited and no weight exceeds 1 / (floor · rate).
    """

    model_config = ConfigDict(frozen=True)

    #: Expected share of accepted events that are audited (the audit's labeling budget).
    rate: float = Field(default=0.02, gt=0.0, le=1.0)
    #: g(s) = floor + s**exponent: 0.5 is variance-optimal for a calibrated model, 1.0 is plain PPS.
    exponent: float = Field(default=0.5, gt=0.0, le=4.0)
    #: Weight of an event with no chance of being a false negative; also the lowest inclusion
    #: probability relative to ``rate``, so no audit label ever weighs more than 1 / (floor * rate).
    floor: float = Field(default=0.1, gt=0.0, le=10.0)
    #: Audit this class's recall; None audits every class (the best-scored non-predicted class).
    positive_class: str | None = None
    #: Key of the audit's hash; change it to draw a new, independent audit sample.
    salt: str = Field(default="audit", min_length=1)


@dataclass(frozen=True, slots=True)
class AuditDecision:
    """An accepted event drawn into the recall audit: the class it audits, and its π."""

    audited_class: str
    inclusion_probability: float


class AuditSampler:
    """Importance sampling of accepted events for the recall audit.

    An accepted event of class ``c`` that the model called something else is a
    false negative of ``c``; the audit finds them. Each accepted event gets

        π = clip(rate · g(s) / mean_g, rate · floor, 1),   g(s) = floor + s**exponent,

    where ``s`` is the score of the audited class (``positive_class``, or the
    best-scored class other than the predicted one when ``positive_class`` is
    None) and ``mean_g`` is the running mean of ``g`` over the accepted events
    seen so far, so the expected audited share stays near ``rate``. An event
    predicted *as* ``positive_class`` cannot be one of its false negatives: it
    gets ``s = 0`` (the floor), which still samples its true positives, at the
    low rate their small weight in the recall's variance deserves.

    Why these defaults: the recall estimate TP̂ / (TP̂ + FN̂) has the
    linearised residual z = -R·(y - q) on an event predicted as another class
    (y = 1 for a miss, q that class's miss rate) and (1 - R)·(y - p) on one
    predicted as the audited class (p the precision there), once the estimator
    knows how many events were accepted per predicted class
    (:meth:`~agents.router.estimators.RecallEstimator.observe_accepted`). A
    Poisson sample's variance Σ (1 - π) z² / π is smallest, for a fixed
    expected size Σ π, at π ∝ sqrt(E[z² | s]) (Sawade et al., 2010). For a
    calibrated model P(miss | s) ≈ s, so π ∝ sqrt(s) where a miss is possible:
    ``exponent=0.5``. Plain PPS (``exponent=1``) concentrates harder on high
    scores and pays only when the model is calibrated there; in the bench its
    variance is 7–13% larger. Sure predictions of the audited class need
    little: their residual is (1 - R)·(y - p), small for a precise model. The
    floor is a defensive mixture (Hesterberg, 1995): floor / mean_g of the
    budget (about 40% in the bench) is spread uniformly, which keeps several
    audits in every predicted class of a short window (the estimate is
    unknown until there is one) and bounds each weight, so an overconfident
    miss at s ≈ 0 cannot blow the variance up. Without the accepted counts
    the estimator falls back to plain Horvitz–Thompson totals, whose
    true-positive total suffers from the light sampling of sure predictions:
    in the bench that audit is then about 1.1x as noisy as a uniform one,
    against about 0.8x with the counts.

    The decision itself is ``uniform_for(event_id, salt) < π``: a replayed
    event draws the same uniform (its π can move slightly with ``mean_g``; the
    π that rides on its Label is the one that counts).

    Parameters
    ----------
    settings
        Rate, shape of g and the audited class.

    Examples
    --------
    >>> sampler = AuditSampler(AuditSettings(rate=0.02, positive_class="fraud"))
    >>> for i in range(1000):
    ...     _ = sampler.decide(f"e{i}", {"fraud": (i % 20) / 100, "ok": 1 - (i % 20) / 100}, "ok")
    >>> low, _ = sampler.probability({"fraud": 0.01, "ok": 0.99}, "ok")
    >>> high, audited = sampler.probability({"fraud": 0.19, "ok": 0.81}, "ok")
    >>> audited, round(low, 4), round(high, 4), low < 0.02 < high
    ('fraud', 0.0104, 0.0278, True)
    """

    def __init__(self, settings: AuditSettings | None = None) -> None:
        self.settings = settings or AuditSettings()
        #: Accepted events seen, and the sum of their g: the running mean that normalises π.
        self.accepted = 0
        self.g_total = 0.0

    def audited_score(self, scores: Mapping[str, float], predicted_label: str) -> tuple[str, float]:
        """The audited class of an accepted event and its score ``s`` in [0, 1]."""
        positive = self.settings.positive_class
        if positive is not None:
            score = 0.0 if positive == predicted_label else scores.get(positive, 0.0)
            return positive, _probability(score)
        audited, best = predicted_label, -1.0
        for label, score in scores.items():
            # Ties break by class name, so the audited class never depends on dict order.
            if label != predicted_label and (score > best or (score == best and label < audited)):
                audited, best = label, score
        return audited, _probability(max(best, 0.0))

    def weight(self, score: float) -> float:
        """g(s) = floor + s**exponent: the unnormalised audit weight of an event."""
        return self.settings.floor + math.pow(score, self.settings.exponent)

    @property
    def mean_weight(self) -> float | None:
        """The running mean of g over the accepted events seen so far (None before the first)."""
        return self.g_total / self.accepted if self.accepted else None

    def probability(self, scores: Mapping[str, float], predicted_label: str) -> tuple[float, str]:
        """The inclusion probability the next :meth:`decide` would give this event, and its audited class.

        Pure: it does not count the event into the running mean.
        """
        pi, audited, _ = self._assess(scores, predicted_label)
        return pi, audited

    def decide(
        self, event_id: str, scores: Mapping[str, float], predicted_label: str
    ) -> AuditDecision | None:
        """Draw an accepted event into the audit (an :class:`AuditDecision`) or not (None).

        Counts the event into the running mean after computing its π, so π
        depends only on earlier events' scores, never on any label or draw.
        """
        pi, audited, g = self._assess(scores, predicted_label)
        self.accepted += 1
        self.g_total += g
        if uniform_for(event_id, self.settings.salt) < pi:
            return AuditDecision(audited_class=audited, inclusion_probability=pi)
        return None

    def _assess(self, scores: Mapping[str, float], predicted_label: str) -> tuple[float, str, float]:
        """π, the audited class and g of an event, against the running mean so far."""
        audited, score = self.audited_score(scores, predicted_label)
        settings = self.settings
        g = settings.floor + math.pow(score, settings.exponent)  # self.weight(score), inlined: hot path
        mean_g = self.g_total / self.accepted if self.accepted else g
        pi = min(max(settings.rate * g / mean_g, settings.rate * settings.floor), 1.0)
        return pi, audited, g

    def merge(self, other: AuditSampler) -> None:
        """Add another worker's running mean into this one (same settings assumed)."""
        self.accepted += other.accepted
        self.g_total += other.g_total


class ControlSampler:
    """The control group: a uniform share of would-be-accepted events goes to humans instead.

    An event joins when ``uniform_for(event_id, salt) < share``, so its
    inclusion probability is exactly ``share``, the share may change at any
    time (each label carries the share it was drawn at), and raising the
    share keeps every event that was already in: the samples are nested.

    Parameters
    ----------
    salt
        Key of the hash; distinct from the audit's so the two samples are independent.

    Examples
    --------
    >>> control = ControlSampler()
    >>> chosen = sum(control.decide(f"e{i}", 0.05) for i in range(10_000))
    >>> 400 < chosen < 600
    True
    >>> all(control.decide(f"e{i}", 0.10) for i in range(10_000) if control.decide(f"e{i}", 0.05))
    True
    """

    def __init__(self, salt: str = "control") -> None:
        self.salt = salt

    def decide(self, event_id: str, share: float) -> bool:
        """Whether a would-be-accepted event joins the control group; π = ``share``."""
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"control share must be in [0, 1], got {share!r}")
        return uniform_for(event_id, self.salt) < share


def _probability(score: float) -> float:
    """A score clipped to [0, 1] (float sums can overshoot 1 by an ulp); NaN is refused."""
    if 0.0 <= score <= 1.0:
        return score
    if math.isnan(score):
        raise ValueError("scores must be probabilities, got NaN")
    return min(max(score, 0.0), 1.0)
