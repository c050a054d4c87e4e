"""Shared building blocks of the wire contract: the base model, bounded ids and times.

Every value that crosses a topic is a :class:`WireModel`: JSON (UTF-8) on the
wire, validated on the way in, never pickled. Unknown fields are ignored (a
tolerant reader, so producers can add optional fields without breaking older
workers); a ``schema_version`` this code does not know is rejected, so a
breaking change is never silently misread.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import CoreSchema, core_schema

#: The largest value (in bytes of JSON) any model accepts on the wire; the
#: codec checks it before parsing, so a 10 MB record never reaches pydantic.
MAX_RECORD_BYTES = 900_000

#: Identifiers: event ids, worker ids, pool and model names.
Id = Annotated[
    str,
    # No stripping: " tx-1 " is refused, not silently turned into a key the producer never sent.
    StringConstraints(min_length=1, max_length=256, pattern=r"^[^\s\x00-\x1f]+$"),
]
#: A class label: what a labeler chooses. Taken exactly as sent, as ids are: stripping turned " "
#: into a refused empty label and " ok" into "ok", neither of which the exported JSON Schema (a
#: string of 1 to 128 characters) says.
ClassLabel = Annotated[str, StringConstraints(min_length=1, max_length=128)]
#: A short human-readable reason (why routed, why rejected).
Reason = Annotated[str, StringConstraints(min_length=1, max_length=512)]


#: A finite float (no NaN, no infinity; JSON has neither). Checked by pydantic-core itself, not by
#: a validator written in Python: a Label's four probabilities cost ~0.4 us more per decode that way.
#: The bounds are the largest double's: a JSON number beyond them (``1e999``, a 400-digit integer)
#: reads as infinity, and with them the exported JSON Schema refuses it too, as the loop does.
Finite = Annotated[float, Field(ge=-sys.float_info.max, le=sys.float_info.max, allow_inf_nan=False)]
#: A probability in [0, 1].
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]

#: The shape of an RFC 3339 date-time (ASCII classes only: ``\d`` takes other scripts' digits in
#: Python's and Rust's regex engines), without and with its offset.
_RFC3339_LOCAL = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]+)?"
)
_RFC3339_OFFSET = r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
#: As the exported JSON Schema states it, so that a validator which does not assert ``format``
#: (most do not by default) refuses what the loop refuses.
RFC3339_PATTERN = f"{_RFC3339_LOCAL}{_RFC3339_OFFSET}$"
#: What the loop checks before parsing: the offset is left to the datetime validator, so a naive
#: time fails as ``timezone_aware``, the error that says what is wrong.
_RFC3339_SHAPE = f"{_RFC3339_LOCAL}{_RFC3339_OFFSET}?$"


def _timestamp_schema(source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
    """A JSON timestamp is an RFC 3339 string; pydantic alone also read ``"1700000000"`` (epoch
    seconds), ``"2026-01-01 12:00Z"`` (no ``T``, no seconds) and ``"+0100"`` offsets.

    Both steps run in pydantic-core (no Python per value): the pattern, then the parse, which must be
    lax to take the string the first step hands it; the parse refuses what the shape lets through
    out of range (month 13, hour 24, 30 February). Python callers pass datetimes, as before.
    """
    return core_schema.json_or_python_schema(
        json_schema=core_schema.chain_schema(
            [
                core_schema.str_schema(pattern=_RFC3339_SHAPE, strict=True),
                core_schema.datetime_schema(tz_constraint="aware", strict=False),
            ]
        ),
        python_schema=handler(source),
    )


#: A timezone-aware timestamp (naive datetimes are rejected: times are UTC on the wire).
Timestamp = Annotated[
    AwareDatetime,
    GetPydanticSchema(_timestamp_schema),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN}),
]


def _exact_int_literal(source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
    """A JSON integer, then the literal: a bare ``Literal[1]`` also takes ``true`` and ``1.0`` (it
    compares by equality, ``True == 1``, and a literal cannot be made strict)."""
    return core_schema.chain_schema([core_schema.int_schema(strict=True), handler(source)])


#: ``schema_version`` of a version-1 model: the JSON integer 1, nothing equal to it.
SchemaVersion1 = Annotated[
    Literal[1],
    GetPydanticSchema(_exact_int_literal),
    WithJsonSchema({"const": 1, "type": "integer"}),
]

#: The config of the public models (PredictionEvent, Label, WorkerSkill and the models inside them):
#: strict types, so the loop refuses what their exported JSON Schema refuses. Lax mode read
#: ``"0.97"`` and ``true`` as floats, ``"3"`` and ``true`` as ints, ``1`` as a bool: a producer's
#: serialisation bug (Decimals as strings, flags as booleans) got Labels a schema-checking consumer
#: in another language would refuse. Strict types cost nothing measurable on decode (the RFC 3339
#: check of Timestamp costs ~0.2 us a timestamp, the [0, 1] bound of each score in pydantic-core
#: saves ~0.3 us an event). Internal models stay lax: only this code writes them.
STRICT: ConfigDict = ConfigDict(strict=True)


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
        """The UTF-8 JSON the model travels as.

        ``model_dump_json(exclude_none=True)``'s bytes, from the model's serializer directly: no
        Python frame with its keyword arguments around it, no str made and encoded again (~1 us of
        a Label's ~5 us encode; the router writes one per prediction).
        """
        encoded: bytes = self.__pydantic_serializer__.to_json(self, exclude_none=True)
        return encoded

    @classmethod
    def from_json_bytes(cls, raw: bytes) -> Self:
        """Parse and validate wire bytes (raises ``pydantic.ValidationError``)."""
        return cls.model_validate_json(raw)
