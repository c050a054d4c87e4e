"""Decoding refuses every kind of bad record with a reason; DLQ headers say why and where from."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from agents.simulation.poison import PoisonRecord, poison_records
from schemas import CrowdAnswer, Label, PredictionEvent, PredictionInput
from streams.codec import (
    H_ERROR_CLASS,
    H_ERROR_KIND,
    H_ERROR_MESSAGE,
    H_FAILED_AT,
    H_SOURCE_OFFSET,
    H_SOURCE_PARTITION,
    H_SOURCE_TOPIC,
    H_STAGE,
    MAX_REASON_CHARS,
    decode,
    dlq_headers,
    encode,
    encode_key,
    headers_dict,
)
from streams.errors import ContractError
from streams.runtime import Record, decode_keyed, decode_or_skip
from tests import factories

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
EVENT = PredictionEvent(
    event_id="tx-1",
    model_name="fraud",
    model_version="3",
    created_at=WHEN,
    input=PredictionInput(text="refund please", features={"x0": 1.0}),
    predicted_label="ok",
    scores={"ok": 0.7, "fraud": 0.3},
)
POISON: dict[str, PoisonRecord] = {record.kind: record for record in poison_records(EVENT)}


def document(**changes: Any) -> dict[str, Any]:
    valid: dict[str, Any] = json.loads(EVENT.to_json_bytes())
    valid.update(changes)
    return valid


def raw(value: Any) -> bytes:
    return json.dumps(value).encode()


def refusal(raw_value: bytes | None, **options: int) -> ContractError:
    with pytest.raises(ContractError) as caught:
        decode(PredictionEvent, raw_value, **options)
    return caught.value


def test_a_valid_record_decodes_to_the_model() -> None:
    assert decode(PredictionEvent, encode(EVENT)) == EVENT


@pytest.mark.parametrize("raw_value", [None, b""], ids=["null", "zero_bytes"])
def test_an_empty_value_is_refused(raw_value: bytes | None) -> None:
    error = refusal(raw_value)
    assert (error.kind, error.message) == ("empty", "empty: the record has no value")


def test_a_value_over_max_bytes_is_refused_before_parsing() -> None:
    valid = encode(EVENT)
    assert decode(PredictionEvent, valid, max_bytes=len(valid)) == EVENT
    error = refusal(valid + b" ", max_bytes=len(valid))
    assert error.kind == "too_large"
    assert f"{len(valid) + 1} bytes > {len(valid)}" in error.message
    # Not even JSON: the size check comes first.
    assert refusal(b"x" * 11, max_bytes=10).kind == "too_large"


def test_invalid_utf8_is_refused() -> None:
    error = refusal(b'{"event_id": "\xff\xfe"}')
    assert error.kind == "not_utf8"
    assert "utf-8" in error.message


def test_broken_json_is_refused() -> None:
    error = refusal(b'{"event_id": "tx-1"')
    assert error.kind == "not_json"
    assert error.message.startswith("not_json: Invalid JSON")


@pytest.mark.parametrize(
    ("raw_value", "json_type"),
    [(b"[1, 2]", "array"), (b'"tx-1"', "string"), (b"null", "null"), (b"42", "number"), (b"4.2", "number")],
)
def test_a_json_value_that_is_not_an_object_is_refused(raw_value: bytes, json_type: str) -> None:
    error = refusal(raw_value)
    assert error.kind == "wrong_type"
    assert error.message == f"wrong_type: PredictionEvent must be a JSON object, got {json_type}"


def test_an_unknown_schema_version_is_refused() -> None:
    error = refusal(raw(document(schema_version=99)))
    assert error.kind == "unknown_schema_version"
    assert "schema_version 1" in error.message
    assert "PredictionEvent" in error.message


def test_a_missing_field_is_named() -> None:
    without_scores = document()
    del without_scores["scores"]
    error = refusal(raw(without_scores))
    assert error.kind == "missing_field"
    assert error.message == "missing_field: scores: Field required"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"created_at": "2026-01-01T00:00:00"}, "created_at"),
        ({"input": {"text": "x" * 20_001}}, "input.text"),
        ({"event_id": "tx 1"}, "event_id"),
        ({"scores": {"ok": 0.7, "fraud": 0.7}}, "scores sum to"),
    ],
    ids=["naive_time", "long_text", "id_with_space", "scores_sum"],
)
def test_an_invalid_field_is_named(changes: dict[str, Any], field: str) -> None:
    error = refusal(raw(document(**changes)))
    assert error.kind == "invalid"
    assert error.message.startswith("invalid: ")
    assert field in error.message


def test_missing_and_invalid_together_is_invalid() -> None:
    broken = document(created_at="yesterday")
    del broken["scores"]
    error = refusal(raw(broken))
    assert error.kind == "invalid"
    assert "scores: Field required" in error.message
    assert "created_at:" in error.message


def test_the_reason_is_bounded() -> None:
    features = {f"f{index}": "not a number" for index in range(500)}
    error = refusal(raw(document(input={"features": features})))
    assert error.kind == "invalid"
    assert len(error.message) == MAX_REASON_CHARS


def test_decode_serves_every_wire_model() -> None:
    with pytest.raises(ContractError) as caught:
        decode(CrowdAnswer, raw({"event_id": "tx-1"}))
    assert caught.value.kind == "missing_field"
    assert "worker_id: Field required" in caught.value.message


# --- DLQ headers ---------------------------------------------------------------------------


def test_dlq_headers_say_why_and_where_from_and_keep_the_original_headers() -> None:
    error = ContractError("missing_field: scores: Field required", kind="missing_field")
    original = [("traceparent", b"00-abc-def-01"), ("producer", b"\xff")]
    headers = dlq_headers(
        error,
        stage="router",
        topic="labelloop.predictions",
        partition=3,
        offset=1234,
        failed_at=WHEN,
        original=original,
    )
    assert headers[-2:] == original
    assert headers_dict(headers) == {
        H_ERROR_KIND: "missing_field",
        H_ERROR_CLASS: "ContractError",
        H_ERROR_MESSAGE: "missing_field: scores: Field required",
        H_SOURCE_TOPIC: "labelloop.predictions",
        H_SOURCE_PARTITION: "3",
        H_SOURCE_OFFSET: "1234",
        H_STAGE: "router",
        H_FAILED_AT: "2026-01-01T00:00:00+00:00",
        "traceparent": "00-abc-def-01",
        "producer": "\ufffd",
    }
    assert all(isinstance(value, bytes) for _, value in headers)


def test_an_unexpected_error_is_processing_failed() -> None:
    headers = headers_dict(
        dlq_headers(
            ZeroDivisionError("division by zero"),
            stage="learner",
            topic="labelloop.labels",
            partition=0,
            offset=7,
            failed_at=WHEN,
        )
    )
    assert headers[H_ERROR_KIND] == "processing_failed"
    assert headers[H_ERROR_CLASS] == "ZeroDivisionError"
    assert headers[H_ERROR_MESSAGE] == "ZeroDivisionError: division by zero"


def test_the_dlq_message_is_bounded() -> None:
    headers = headers_dict(
        dlq_headers(ValueError("x" * 10_000), stage="s", topic="t", partition=0, offset=0, failed_at=WHEN)
    )
    assert len(headers[H_ERROR_MESSAGE]) == MAX_REASON_CHARS


def test_keys_are_utf8() -> None:
    assert encode_key("tx-é") == "tx-é".encode()


# --- poison records through the keyed decoder ---------------------------------------------


def test_the_poison_kinds_are_distinct_and_cover_the_codec() -> None:
    assert len(POISON) == len(poison_records(EVENT))
    assert {record.expected_error for record in POISON.values()} == {
        "not_json",
        "wrong_type",
        "missing_field",
        "invalid",
        "unknown_schema_version",
        "not_utf8",
        "empty",
        "too_large",
        "bad_key",
    }


@pytest.mark.parametrize("kind", sorted(POISON))
def test_every_poison_record_is_refused_with_its_expected_kind(kind: str) -> None:
    poison = POISON[kind]
    record = Record(key=poison.key, value=poison.value, topic="labelloop.predictions", partition=0, offset=42)
    with pytest.raises(ContractError) as caught:
        decode_keyed(PredictionEvent, record)
    assert caught.value.kind == poison.expected_error
    assert decode_or_skip(PredictionEvent, record) is None


def test_a_valid_keyed_event_is_accepted() -> None:
    record = Record(
        key=encode_key(EVENT.event_id),
        value=encode(EVENT),
        topic="labelloop.predictions",
        partition=1,
        offset=0,
    )
    assert decode_keyed(PredictionEvent, record) == EVENT
    assert decode_or_skip(PredictionEvent, record) == EVENT


@pytest.mark.parametrize("raw_number", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
@pytest.mark.parametrize("field", [b'"confidence":1.0', b'"model_confidence":0.6'])
def test_a_non_finite_probability_in_a_label_is_a_contract_error(raw_number: bytes, field: bytes) -> None:
    raw = encode(factories.human_label("control"))
    poisoned = raw.replace(field, field.split(b":")[0] + b":" + raw_number)
    assert poisoned != raw
    with pytest.raises(ContractError) as caught:
        decode(Label, poisoned)
    assert caught.value.kind == "invalid"
    assert field.split(b":")[0].strip(b'"').decode() in str(caught.value)


@pytest.mark.parametrize("bad_bytes", [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82"])
@pytest.mark.parametrize("where", ["label", "ignored_field"])
def test_invalid_utf8_in_an_otherwise_valid_record_is_refused_as_such(bad_bytes: bytes, where: str) -> None:
    """pydantic reads the bytes directly: it must still refuse what is not UTF-8, and say so."""
    raw = encode(factories.human_label("control"))
    if where == "label":
        poisoned = raw.replace(b'"label":"fraud"', b'"label":"fr' + bad_bytes + b'aud"')
    else:
        poisoned = raw[:-1] + b',"note":"' + bad_bytes + b'"}'
    assert poisoned != raw
    with pytest.raises(ContractError) as caught:
        decode(Label, poisoned)
    assert caught.value.kind == "not_utf8"
