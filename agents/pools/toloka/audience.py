"""Who may work a Toloka pool: an audience of languages and regions, as a toloka-kit pool filter.

One Toloker never works two copies of the same pool at once, so a second
pool with the same audience adds nobody: an extra pool pays off only when it
reaches other Tolokers. An :class:`Audience` names them (the languages of
their profile, the region Toloka finds from their IP address) and becomes the
pool's ``filter``, which Toloka evaluates for every Toloker who could see the
pool.

References
----------
Toloka pool filters: https://toloka.ai/docs/api/filters/
toloka-kit 1.2.3: ``toloka.client.filter`` (``Languages``, ``RegionByIp``).
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field
from toloka.client.filter import FilterAnd, FilterCondition, FilterOr, Languages, RegionByIp
from toloka.client.primitives.operators import InclusionOperator


class Audience(BaseModel):
    """The Tolokers one pool admits: any of ``languages`` and any of ``regions`` (empty: no limit).

    Parameters
    ----------
    name
        A short name, part of the pool's private name and of every log line about the pool.
    languages
        ISO 639-1 codes in upper case (``EN``, ``DE``): the Toloker's profile lists one of them.
    regions
        Toloka region ids (https://toloka.ai/docs/api/regions): the Toloker's IP is in one of them.
    reward_per_assignment
        USD per task suite of this pool; None pays what the main pool pays when it opens.

    Examples
    --------
    >>> german = Audience(name="de", languages=["DE"], regions=[96, 102])
    >>> german.filter().unstructure()["and"][0]
    {'or': [{'operator': 'IN', 'value': 'DE', 'key': 'languages', 'category': 'profile'}]}
    >>> [region.value for region in german.filter().and_[1].or_]
    [96, 102]
    >>> Audience(name="everyone").filter() is None
    True
    >>> german.key == Audience(name="de", languages=["DE"], regions=[96, 102]).key != Audience(name="de").key
    True
    """

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, max_length=24, pattern=r"^[A-Za-z0-9_.-]+$")
    languages: list[str] = Field(default_factory=list)
    regions: list[int] = Field(default_factory=list)
    reward_per_assignment: float | None = Field(default=None, ge=0.005)

    def filter(self) -> FilterCondition | None:
        """The pool filter of this audience (None admits every Toloker)."""
        groups: list[FilterCondition] = []
        if self.languages:
            groups.append(FilterOr([Languages(InclusionOperator.IN, code) for code in self.languages]))
        if self.regions:
            groups.append(FilterOr([RegionByIp(InclusionOperator.IN, region) for region in self.regions]))
        return FilterAnd(groups) if groups else None

    @property
    def key(self) -> str:
        """A short hash of who this audience admits and what it pays: another one gets another pool."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:8]
