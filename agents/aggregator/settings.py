"""The aggregator's settings: models only (reading them imports no aggregation code)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WeightedSettings(BaseModel):
    """The skill-weighted aggregator (``LABELLOOP_AGGREGATOR__WEIGHTED__*``)."""

    model_config = ConfigDict(frozen=True)

    #: Answers to wait for when neither the answers nor the request say.
    default_overlap: int = Field(default=3, ge=1, le=50)
    #: A crowd label less probable than this goes to the experts.
    escalate_below: float = Field(default=0.8, ge=0.0, le=1.0)
    #: Added to the request's priority for an escalation: above every crowd priority (those are <= 1).
    escalation_priority_boost: float = Field(default=1.0, ge=0.0)
    #: Share of confident crowd labels experts audit.
    audit_share: float = Field(default=0.05, ge=0.0, le=1.0)
    #: Key of the audit draw; change it to draw a new, independent audit sample.
    audit_salt: str = Field(default="crowd-audit", min_length=1)
    #: Accuracy assumed for an expert (the confidence of one expert's verdict).
    expert_accuracy: float = Field(default=0.97, gt=0.5, lt=1.0)
    #: Only aggregates at least this sure teach the voters' agreement.
    agreement_confidence: float = Field(default=0.9, gt=0.0, le=1.0)
    #: Recent events remembered per worker, to revisit when the worker is flagged.
    events_per_worker: int = Field(default=500, ge=1)


class SkillSettings(BaseModel):
    """How evidence becomes skill (``LABELLOOP_AGGREGATOR__SKILLS__*``)."""

    model_config = ConfigDict(frozen=True)

    #: Accuracy of a worker nobody knows anything about yet.
    prior_accuracy: float = Field(default=0.7, gt=0.0, lt=1.0)
    #: Weight of that prior, in answers.
    prior_strength: float = Field(default=4.0, gt=0.0)
    #: Weight of one agreement (or disagreement) with a confident aggregate, in graded answers.
    agreement_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    #: Weight of one answer behind a Dawid–Skene estimate, in graded answers.
    dawid_skene_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    #: At most this many answers of a Dawid–Skene estimate count (a refit is not the truth).
    dawid_skene_cap: int = Field(default=200, ge=1)
    #: Weight of the prior rows of a worker's confusion matrix, in answers per true class.
    confusion_strength: float = Field(default=4.0, gt=0.0)
    #: Graded answers (golden + audits) before the accuracy rule may flag a worker.
    min_graded: int = Field(default=10, ge=1)
    #: Flag when the upper credible bound of graded accuracy is below chance + this margin.
    spam_margin: float = Field(default=0.15, ge=0.0, le=1.0)
    #: Width of that credible bound, in posterior standard deviations.
    spam_z: float = Field(default=1.64, gt=0.0)
    #: Flag when the rows of the confusion matrix differ by less than this (mean total variation).
    spam_informativeness: float = Field(default=0.2, ge=0.0, le=1.0)
    #: Graded answers per true class before that class's row counts for the informativeness.
    min_graded_per_class: int = Field(default=5, ge=1)
    #: Answers in the window before a Dawid–Skene confusion may flag a worker.
    min_dawid_skene_answers: int = Field(default=30, ge=1)
    #: A worker whose typical answer time (geometric mean) is below this share of the crowd's
    #: (the median over workers) answers too fast to have read the task (Toloka's "fast responses"
    #: rule): a suspect, whose prior accuracy is ``suspect_prior_accuracy`` until evidence comes.
    #: 0 turns the rule off.
    fast_share: float = Field(default=0.35, ge=0.0, lt=1.0)
    #: Timed answers of a worker, and timed workers in the crowd, before the speed rule applies.
    fast_min_answers: int = Field(default=3, ge=1)
    fast_min_workers: int = Field(default=5, ge=1)
    #: The prior accuracy of a suspect (near chance for three classes; graded evidence and refits
    #: outweigh it as for anyone).
    suspect_prior_accuracy: float = Field(default=0.4, gt=0.0, lt=1.0)
