"""Shared building blocks of the wire contract: the base model, bounded ids and times.

Every value that crosses a topic is a :class:`WireModel`: JSON (UTF-8) on the
wire, validated on the way in, never pickled. Unknown fields are ignored (a
tolerant reader, so producers can add optional fields without breaking older
workers); a ``schema_version`` this code does not know is rejected, so a
breaking change is never silently misread.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

#: The largest value (in bytes of JSON) any model accepts on the wire; the
#: codec checks it before parsing, so a 10 MB record never reaches pydantic.
MAX_RECORD_BYTES = 900_000

#: Identifiers: event ids, worker ids, pool and model names.
Id = Annotated[
    str,
    # No stripping: " tx-1 " is refused, not silently turned into a key the producer never sent.
    StringConstraints(min_length=1, max_length=256, pattern=r"^[^\s\x00-\x1f]+$"),
]
#: A class label: what a labeler chooses.
ClassLabel = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
#: A short human-readable reason (why routed, why rejected).
Reason = Annotated[str, StringConstraints(min_length=1, max_length=512)]


#: A finite float (no NaN, no infinity; JSON has neither). Checked by pydantic-core itself, not by
#: a validator written in Python: a Label's four probabilities cost ~0.4 us more per decode that way.
Finite = Annotated[float, Field(allow_inf_nan=False)]
#: A probability in [0, 1].
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
#: A timezone-aware timestamp (naive datetimes are rejected: times are UTC on the wire).
Timestamp = AwareDatetime


def utc_now() -> datetime:
    """The current time, tz-aware UTC (the default clock of the loop)."""
    return datetime.now(UTC)


class WireModel(BaseModel):
    """Base of every model that crosses a topic.

    Subclasses set ``SCHEMA_VERSION`` and declare
    ``schema_version: Literal[<n>] = <n>``.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        str_max_length=100_000,
        allow_inf_nan=False,
        ser_json_inf_nan="strings",
    )

    SCHEMA_VERSION: ClassVar[int] = 1

    def to_json_bytes(self) -> bytes:
        """The UTF-8 JSON the model travels as."""
        return self.model_dump_json(exclude_none=True).encode("utf-8")

    @classmethod
    def from_json_bytes(cls, raw: bytes) -> Self:
        """Parse and validate wire bytes (raises ``pydantic.ValidationError``)."""
        return cls.model_validate_json(raw)
