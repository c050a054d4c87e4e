"""The evidence the skill book keeps about one worker, and the arithmetic on it."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import datetime

from pydantic import BaseModel


class WorkerRecord(BaseModel):
    """The evidence about one worker: counts (mergeable by addition) and the latest refit."""

    pool: str = ""
    answers: int = 0
    golden_right: int = 0
    golden_total: int = 0
    audit_right: int = 0
    audit_total: int = 0
    agreed: int = 0
    agreement_total: int = 0
    #: Graded answers (golden and audits): true class -> answered class -> count.
    graded: dict[str, dict[str, int]] = {}
    dawid_skene_accuracy: float | None = None
    dawid_skene_answers: int = 0
    #: The latest refit's confusion: true class -> answered class -> probability.
    dawid_skene_confusion: dict[str, dict[str, float]] | None = None
    flagged: bool = False
    updated_at: datetime | None = None
    #: Answers with a time spent, and the sum of their log-times (the worker's typical speed).
    timed: int = 0
    log_time_sum: float = 0.0

    @property
    def graded_right(self) -> int:
        return self.golden_right + self.audit_right

    @property
    def graded_total(self) -> int:
        return self.golden_total + self.audit_total


def share(right: int, total: int) -> float | None:
    """``right / total``, or None when nothing was graded."""
    return right / total if total else None


def mean_total_variation(rows: Sequence[Mapping[str, float]], classes: Sequence[str]) -> float:
    """Mean total-variation distance between pairs of rows: 0 when the answer ignores the truth."""
    pairs = list(itertools.combinations(rows, 2))
    if not pairs:
        return 1.0
    return sum(0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in classes) for a, b in pairs) / len(pairs)
