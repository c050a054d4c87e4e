"""Bytes to schema objects and back; the reason a record failed, written as DLQ headers.

Decoding checks the size before parsing (a 10 MB record never reaches
pydantic), then UTF-8, then JSON and the model. Every failure is a
:class:`ContractError` whose ``kind`` and message go into the DLQ headers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError

from schemas.base import MAX_RECORD_BYTES, WireModel
from streams.errors import ContractError

M = TypeVar("M", bound=WireModel)
T = TypeVar("T")

#: Header names on DLQ records.
H_ERROR_KIND = "labelloop.error.kind"
H_ERROR_CLASS = "labelloop.error.class"
H_ERROR_MESSAGE = "labelloop.error.message"
H_SOURCE_TOPIC = "labelloop.source.topic"
H_SOURCE_PARTITION = "labelloop.source.partition"
H_SOURCE_OFFSET = "labelloop.source.offset"
H_STAGE = "labelloop.stage"
#: On a DLQ record whose original was too large to keep whole: its size and sha256.
H_ORIGINAL_BYTES = "labelloop.original.bytes"
H_ORIGINAL_SHA256 = "labelloop.original.sha256"
#: The largest original value a DLQ record keeps whole: a larger one would be refused by the
#: producer (faust's ~1,000,000-byte request limit) or the DLQ topic, and the record lost.
MAX_DLQ_VALUE_BYTES = 950_000
#: What the DLQ keeps of a larger value: its first bytes (enough to see what it was).
DLQ_PREFIX_BYTES = 64 * 1024
H_FAILED_AT = "labelloop.failed_at"
#: Who made a record, where a reader may skip it undecoded (``labelloop.origin``).
H_ORIGIN = "labelloop.origin"
#: The origin of the router's own revision-1 Labels of accepted events.
MODEL_LABEL_ORIGIN = b"router-accepted"
MODEL_LABEL_HEADERS: tuple[tuple[str, bytes], ...] = ((H_ORIGIN, MODEL_LABEL_ORIGIN),)
#: The origins a reader of human labels skips.
MODEL_LABELS = frozenset({MODEL_LABEL_ORIGIN})
MAX_REASON_CHARS = 2_000


def decode(model: type[M], raw: bytes | None, *, max_bytes: int = MAX_RECORD_BYTES) -> M:
    """Parse ``raw`` into ``model`` or raise :class:`ContractError` saying why.

    >>> from schemas import CrowdAnswer
    >>> decode(CrowdAnswer, b"[1, 2]")
    Traceback (most recent call last):
    ...
    streams.errors.ContractError: wrong_type: CrowdAnswer must be a JSON object, got array
    """
    present = _sized(raw, max_bytes)
    try:
        # The bytes themselves: pydantic-core refuses any invalid UTF-8 in them (as invalid JSON),
        # and a valid record is not copied into a str first. A refused one is told apart below.
        # The model's validator directly: ``model_validate_json`` is that call behind a Python
        # frame and five keyword arguments left at None (~0.6 us of a Label's ~7 us decode).
        decoded: M = model.__pydantic_validator__.validate_json(present)
        return decoded
    except ValidationError as error:
        text = _utf8(present)
        raise _contract_error(model.__name__, model.SCHEMA_VERSION, text, error) from None


def decode_json(adapter: TypeAdapter[T], raw: bytes | None, name: str, *, version: int = 1) -> T:
    """Like :func:`decode`, for a union of models (the ``commands`` topic)."""
    present = _sized(raw, MAX_RECORD_BYTES)
    try:
        return adapter.validate_json(present)
    except ValidationError as error:
        text = _utf8(present)
        raise _contract_error(name, version, text, error) from None


def _sized(raw: bytes | None, max_bytes: int) -> bytes:
    """The checks before parsing: present, within size."""
    if raw is None or len(raw) == 0:
        raise ContractError("empty: the record has no value", kind="empty")
    if len(raw) > max_bytes:
        raise ContractError(f"too_large: {len(raw)} bytes > {max_bytes}", kind="too_large")
    return raw


def _utf8(raw: bytes) -> str:
    """``raw`` as text, or the not_utf8 error (checked before the JSON's own errors are read)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ContractError(f"not_utf8: {error}", kind="not_utf8") from None


def _contract_error(name: str, version: int, text: str, error: ValidationError) -> ContractError:
    first = error.errors(include_url=False, include_input=False)
    if first and first[0]["type"] == "json_invalid":
        return ContractError(f"not_json: {first[0]['msg']}", kind="not_json")
    if first and first[0]["type"] == "model_type" and not first[0]["loc"]:
        kind_of = _JSON_TYPES.get(type(json.loads(text)).__name__, "value")
        return ContractError(f"wrong_type: {name} must be a JSON object, got {kind_of}", kind="wrong_type")
    if any(item["loc"][:1] == ("schema_version",) for item in first):
        return ContractError(
            f"unknown_schema_version: {name} understands schema_version {version}",
            kind="unknown_schema_version",
        )
    kind = "missing_field" if all(item["type"] == "missing" for item in first) else "invalid"
    details = "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or '<root>'}: {item['msg']}" for item in first
    )
    return ContractError(f"{kind}: {details}"[:MAX_REASON_CHARS], kind=kind)


_JSON_TYPES = {
    "list": "array",
    "str": "string",
    "int": "number",
    "float": "number",
    "bool": "boolean",
    "NoneType": "null",
}


def encode(value: WireModel) -> bytes:
    """The wire bytes of ``value`` (UTF-8 JSON, ``None`` fields left out)."""
    return value.to_json_bytes()


def encode_key(event_key: str) -> bytes:
    """Keys are UTF-8 strings on every topic."""
    return event_key.encode("utf-8")


def error_kind(error: BaseException) -> str:
    """The DLQ reason of an error: a contract error's kind, else ``processing_failed`` (a bounded set).

    >>> error_kind(ContractError("bad", kind="invalid_json")), error_kind(KeyError("x"))
    ('invalid_json', 'processing_failed')
    """
    return error.kind if isinstance(error, ContractError) else "processing_failed"


def dlq_kind(headers: Sequence[tuple[str, bytes]] | None) -> str:
    """The error kind a DLQ record's headers name (:func:`dlq_headers`).

    >>> dlq_kind([(H_ERROR_KIND, b"not_json")]), dlq_kind(None)
    ('not_json', 'processing_failed')
    """
    for name, value in headers or ():
        if name == H_ERROR_KIND:
            return value.decode("utf-8", "replace")
    return "processing_failed"


def dlq_headers(
    error: BaseException,
    *,
    stage: str,
    topic: str,
    partition: int,
    offset: int,
    failed_at: datetime,
    original: Sequence[tuple[str, bytes]] = (),
) -> list[tuple[str, bytes]]:
    """Headers of a DLQ record: why it failed and where it came from, plus its own headers."""
    kind = error_kind(error)
    message = error.message if isinstance(error, ContractError) else f"{type(error).__name__}: {error}"
    fields = {
        H_ERROR_KIND: kind,
        H_ERROR_CLASS: type(error).__name__,
        H_ERROR_MESSAGE: message[:MAX_REASON_CHARS],
        H_SOURCE_TOPIC: topic,
        H_SOURCE_PARTITION: str(partition),
        H_SOURCE_OFFSET: str(offset),
        H_STAGE: stage,
        H_FAILED_AT: failed_at.isoformat(),
    }
    return [*((name, value.encode("utf-8")) for name, value in fields.items()), *original]


def dlq_value(value: bytes | None) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The value a DLQ record carries, and headers that say what was cut.

    A value the DLQ can hold is kept as it is; a larger one (a 10 MB record on a
    topic whose limit was raised) is cut to its first :data:`DLQ_PREFIX_BYTES`,
    with its size and sha256 in headers, so it is dead-lettered instead of
    failing the send.

    >>> dlq_value(b"small")
    (b'small', [])
    >>> value, headers = dlq_value(b"x" * 10_000_000)
    >>> len(value), dict(headers)[H_ORIGINAL_BYTES]
    (65536, b'10000000')
    """
    if value is None or len(value) <= MAX_DLQ_VALUE_BYTES:
        return value, []
    digest = hashlib.sha256(value).hexdigest()
    return value[:DLQ_PREFIX_BYTES], [
        (H_ORIGINAL_BYTES, str(len(value)).encode()),
        (H_ORIGINAL_SHA256, digest.encode()),
    ]


def headers_dict(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    """Decode Kafka headers to text (invalid UTF-8 replaced): for readers of the DLQ."""
    return {name: value.decode("utf-8", "replace") for name, value in (headers or ())}
