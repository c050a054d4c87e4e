"""Malformed records of many kinds, to show (and test) that bad input reaches the DLQ with its reason.

Each poison record is derived from a valid prediction, so it looks like
what a buggy producer would really send.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemas import MAX_RECORD_BYTES, PredictionEvent


@dataclass(frozen=True)
class PoisonRecord:
    """A record that must end in the DLQ, and the ``labelloop.error.kind`` it should get there."""

    kind: str
    expected_error: str
    key: bytes | None
    value: bytes | None


def _valid(event: PredictionEvent) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(event.to_json_bytes())
    return document


def _json(document: Any) -> bytes:
    return json.dumps(document).encode("utf-8")


def _mutate(event: PredictionEvent, change: Callable[[dict[str, Any]], None]) -> bytes:
    document = _valid(event)
    change(document)
    return _json(document)


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        target = document
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document.pop(name)


def poison_records(event: PredictionEvent) -> list[PoisonRecord]:
    """One poison record of each kind, built from ``event`` (each keyed by a fresh id).

    >>> from agents.simulation.stream import StreamSettings, simulate
    >>> event = next(simulate(StreamSettings(events=1, train_size=20))).event
    >>> kinds = [record.kind for record in poison_records(event)]
    >>> len(kinds) >= 12, len(set(kinds)) == len(kinds)
    (True, True)
    """
    base = event.event_id
    other = next(label for label in event.scores if label != event.predicted_label)

    def key(kind: str) -> bytes:
        return f"{base}-poison-{kind}".encode()

    def keyed(kind: str, change: Callable[[dict[str, Any]], None]) -> bytes:
        def rekey(document: dict[str, Any]) -> None:
            document["event_id"] = key(kind).decode()
            change(document)

        return _mutate(event, rekey)

    records = [
        PoisonRecord("not_json", "not_json", key("not_json"), b"{this is not json"),
        PoisonRecord("json_array", "wrong_type", key("json_array"), _json([_valid(event)])),
        PoisonRecord("json_string", "wrong_type", key("json_string"), _json("a prediction")),
        PoisonRecord(
            "missing_field",
            "missing_field",
            key("missing_field"),
            keyed("missing_field", _drop("scores")),
        ),
        PoisonRecord(
            "scores_not_summing_to_one",
            "invalid",
            key("scores_not_summing_to_one"),
            keyed(
                "scores_not_summing_to_one",
                _set(("scores",), {event.predicted_label: 0.7, other: 0.7}),
            ),
        ),
        PoisonRecord(
            "predicted_label_not_in_scores",
            "invalid",
            key("predicted_label_not_in_scores"),
            keyed("predicted_label_not_in_scores", _set(("predicted_label",), "unicorn")),
        ),
        PoisonRecord(
            "oversized_text",
            "invalid",
            key("oversized_text"),
            keyed("oversized_text", _set(("input", "text"), "x" * 50_000)),
        ),
        PoisonRecord(
            "non_finite_feature",
            "invalid",
            key("non_finite_feature"),
            keyed("non_finite_feature", _set(("input", "features"), {"x0": 1.0})).replace(
                b'{"x0": 1.0}', b'{"x0": NaN}'
            ),
        ),
        PoisonRecord(
            "huge_number",
            "invalid",
            key("huge_number"),
            keyed("huge_number", _set(("input", "features"), {"x0": 1.0})).replace(
                b'{"x0": 1.0}', b'{"x0": 1e999}'
            ),
        ),
        PoisonRecord(
            "unknown_schema_version",
            "unknown_schema_version",
            key("unknown_schema_version"),
            keyed("unknown_schema_version", _set(("schema_version",), 99)),
        ),
        PoisonRecord(
            "naive_timestamp",
            "invalid",
            key("naive_timestamp"),
            keyed("naive_timestamp", _set(("created_at",), "2026-01-01T00:00:00")),
        ),
        PoisonRecord(
            "empty_input", "invalid", key("empty_input"), keyed("empty_input", _set(("input",), {}))
        ),
        PoisonRecord("invalid_utf8", "not_utf8", key("invalid_utf8"), b'{"event_id": "\xff\xfe"}'),
        PoisonRecord("empty_value", "empty", key("empty_value"), b""),
        # Under the broker's 1 MB limit, over ours: refused before parsing.
        PoisonRecord(
            "too_large",
            "too_large",
            key("too_large"),
            keyed("too_large", _set(("metadata",), {"pad": "x" * 200})) + b" " * (MAX_RECORD_BYTES + 1_000),
        ),
        PoisonRecord("null_key", "bad_key", None, keyed("null_key", lambda document: None)),
        PoisonRecord(
            "key_not_event_id",
            "bad_key",
            f"someone-else-{base}".encode(),
            keyed("key_not_event_id", lambda document: None),
        ),
    ]
    return records


def unusual_records(event: PredictionEvent, *, ten_mb: bool = False) -> list[PoisonRecord]:
    """Malformed records a test author would not think of first, built from ``event``.

    Deep nesting, a 5,000-digit integer, a lone surrogate escape, a byte-order
    mark, UTF-16, overlong UTF-8, JSON ``null`` and a bare number, trailing
    garbage, a duplicate ``event_id`` member that changes the id, an id with
    whitespace or of 300 characters, 2,000 classes, a negative score, a
    ``schema_version`` given as a string, and (``ten_mb=True``) a 10 MB record,
    which only a topic whose ``max.message.bytes`` was raised lets through.

    >>> from agents.simulation.stream import StreamSettings, simulate
    >>> from schemas import PredictionEvent
    >>> from streams.codec import decode
    >>> from streams.errors import ContractError
    >>> event = next(simulate(StreamSettings(events=1, train_size=20))).event
    >>> refused = []
    >>> for record in unusual_records(event):
    ...     try:
    ...         decoded = decode(PredictionEvent, record.value)
    ...         refused.append(record.expected_error == "bad_key" and decoded.event_id.encode() != record.key)
    ...     except ContractError as error:
    ...         refused.append(error.kind == record.expected_error)
    >>> len(refused) >= 15, all(refused)
    (True, True)
    """
    base = event.event_id

    def key(kind: str) -> bytes:
        return f"{base}-odd-{kind}".encode()

    def document(kind: str) -> dict[str, Any]:
        valid = _valid(event)
        valid["event_id"] = key(kind).decode()
        return valid

    def keyed(kind: str, change: Callable[[dict[str, Any]], None]) -> bytes:
        valid = document(kind)
        change(valid)
        return _json(valid)

    def features(kind: str, raw: str) -> bytes:
        return keyed(kind, _set(("input", "features"), {"x0": 1.0})).replace(b'{"x0": 1.0}', raw.encode())

    other = next(label for label in event.scores if label != event.predicted_label)
    long_id = "x" * 300
    spaced_id = f"{base} with spaces"
    records = [
        PoisonRecord("deep_nesting", "not_json", key("deep_nesting"), b"[" * 100_000 + b"]" * 100_000),
        PoisonRecord(
            "huge_integer",
            "not_json",
            key("huge_integer"),
            features("huge_integer", '{"x0": ' + "9" * 5_000 + "}"),
        ),
        PoisonRecord(
            "lone_surrogate",
            "not_json",
            key("lone_surrogate"),
            features("lone_surrogate", '{"x\\ud800": 1.0}'),
        ),
        PoisonRecord("utf8_bom", "not_json", key("utf8_bom"), b"\xef\xbb\xbf" + _json(document("utf8_bom"))),
        PoisonRecord("utf16", "not_utf8", key("utf16"), json.dumps(document("utf16")).encode("utf-16")),
        PoisonRecord("overlong_utf8", "not_utf8", key("overlong_utf8"), b'{"event_id": "\xc0\xaf"}'),
        PoisonRecord("json_null", "wrong_type", key("json_null"), b"null"),
        PoisonRecord("json_number", "wrong_type", key("json_number"), b"42"),
        PoisonRecord(
            "trailing_garbage",
            "not_json",
            key("trailing_garbage"),
            _json(document("trailing_garbage")) + b" }{",
        ),
        PoisonRecord(
            "duplicate_member",
            "bad_key",
            key("duplicate_member"),
            _json(document("duplicate_member"))[:-1] + b', "event_id": "someone-else"}',
        ),
        PoisonRecord(
            "spaced_id", "invalid", spaced_id.encode(), keyed("spaced_id", _set(("event_id",), spaced_id))
        ),
        PoisonRecord("long_id", "invalid", long_id.encode(), keyed("long_id", _set(("event_id",), long_id))),
        PoisonRecord(
            "many_classes",
            "invalid",
            key("many_classes"),
            keyed("many_classes", _set(("scores",), {f"c{n}": 1 / 2_000 for n in range(2_000)})),
        ),
        PoisonRecord(
            "negative_score",
            "invalid",
            key("negative_score"),
            keyed("negative_score", _set(("scores",), {event.predicted_label: 1.5, other: -0.5})),
        ),
        PoisonRecord(
            "schema_version_string",
            "unknown_schema_version",
            key("schema_version_string"),
            keyed("schema_version_string", _set(("schema_version",), "1")),
        ),
    ]
    if ten_mb:
        padded = keyed("ten_mb", _set(("metadata",), {"pad": "x" * 200}))
        records.append(PoisonRecord("ten_mb", "too_large", key("ten_mb"), padded + b" " * 10_000_000))
    return records
