"""One contract suite over every wire model: JSON round trip, versions, tolerant reading, UTC, frozen."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

import schemas
from schemas import (
    Command,
    CrowdAnswer,
    DriftAlert,
    Estimate,
    Label,
    LabelProvenance,
    LabelRequest,
    ModelMetrics,
    PolicyCommand,
    PolicyStatus,
    PoolCommand,
    PoolStatus,
    PredictionEvent,
    PredictionInput,
    Suggestion,
    WireModel,
    WorkerSkill,
)
from schemas.predictions import MAX_CLASSES, MAX_FEATURES, MAX_TEXT_CHARS, SCORE_SUM_TOLERANCE

WHEN = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def prediction_event() -> PredictionEvent:
    return PredictionEvent(
        event_id="tx-1",
        model_name="fraud",
        model_version="3",
        created_at=WHEN,
        input=PredictionInput(
            text="refund please", image_url="https://example.com/a.png", features={"amount": 12.5}
        ),
        predicted_label="ok",
        scores={"ok": 0.7, "fraud": 0.3},
        metadata={"region": "eu"},
    )


def label_request() -> LabelRequest:
    return LabelRequest(
        prediction=prediction_event(),
        route="low_confidence",
        reason="confidence 0.700 < threshold 0.800",
        priority=0.3,
        uncertainty=0.3,
        overlap=3,
        suggestion=Suggestion(label="ok", confidence=0.6, model_name="online-default"),
        requested_at=WHEN,
    )


def crowd_answer() -> CrowdAnswer:
    return CrowdAnswer(
        event_id="tx-1",
        task_id="tx-1/simulated",
        pool="simulated",
        worker_id="simulated-w3",
        label="fraud",
        time_spent_s=4.25,
        answered_at=WHEN,
        overlap=3,
    )


def label() -> Label:
    return Label(
        event_id="tx-1",
        label="fraud",
        source="crowd",
        confidence=2 / 3,
        route="low_confidence",
        reason="majority of 3",
        decided_at=WHEN,
        prediction_created_at=WHEN,
        provenance=LabelProvenance(
            model_name="fraud",
            model_version="3",
            model_label="ok",
            model_confidence=0.7,
            n_answers=3,
            pool="simulated",
            worker_ids=["w1", "w2", "w3"],
        ),
    )


def model_metrics() -> ModelMetrics:
    return ModelMetrics(
        model_name="online-default",
        kind="online",
        computed_at=WHEN,
        metrics={"prequential_accuracy": Estimate(value=0.8, lower=0.75, upper=0.85, n=400)},
    )


def drift_alert() -> DriftAlert:
    return DriftAlert(
        detector="adwin-model-error-default",
        detector_kind="ADWIN",
        signal="model_error",
        observation=1234,
        source_partition=2,
        source_offset=99,
        detected_at=WHEN,
        before=0.08,
        after=0.31,
        message="error rose",
    )


def pool_command() -> PoolCommand:
    return PoolCommand(
        pool="simulated", action="scale", workers=20, issued_by="operator", issued_at=WHEN, reason="surge"
    )


def policy_command() -> PolicyCommand:
    return PolicyCommand(
        accept_threshold=0.9,
        per_class_thresholds={"fraud": 0.95},
        control_share=0.05,
        issued_by="monitor",
        issued_at=WHEN,
        reason="drift",
    )


def pool_status() -> PoolStatus:
    return PoolStatus(
        pool="simulated",
        backend="simulated",
        tier="crowd",
        workers=10,
        active=True,
        backlog=42,
        in_progress=10,
        arrival_rate_per_min=30.0,
        capacity_per_min=120.0,
        overlap=3,
        answers_total=900,
        tasks_done=300,
        cost_per_label=0.05,
        reported_at=WHEN,
    )


def policy_status() -> PolicyStatus:
    return PolicyStatus(
        task="default",
        version=3,
        measure="entropy",
        accept_threshold=0.85,
        per_class_thresholds={"fraud": 0.95},
        control_share=0.05,
        audit_rate=0.02,
        target_backlog=200,
        updated_at=WHEN,
        reason="operator raised the threshold",
    )


def worker_skill() -> WorkerSkill:
    return WorkerSkill(
        worker_id="toloker-17",
        pool="toloka",
        accuracy=0.58,
        n_golden=25,
        golden_accuracy=0.52,
        n_audited=4,
        audited_accuracy=0.5,
        n_answers=310,
        agreement=0.55,
        dawid_skene_accuracy=0.6,
        flagged_spammer=True,
        updated_at=WHEN,
    )


#: A valid example of every model that travels on a topic.
EXAMPLES: dict[type[WireModel], Callable[[], WireModel]] = {
    PredictionEvent: prediction_event,
    LabelRequest: label_request,
    CrowdAnswer: crowd_answer,
    Label: label,
    ModelMetrics: model_metrics,
    DriftAlert: drift_alert,
    PoolCommand: pool_command,
    PolicyCommand: policy_command,
    PoolStatus: pool_status,
    PolicyStatus: policy_status,
    WorkerSkill: worker_skill,
}
WIRE_MODELS = pytest.mark.parametrize("model", list(EXAMPLES), ids=lambda model: model.__name__)


def document_of(value: WireModel) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(value.to_json_bytes())
    return document


def test_the_suite_covers_every_exported_versioned_model() -> None:
    exported = {getattr(schemas, name) for name in schemas.__all__}
    versioned = {
        value
        for value in exported
        if isinstance(value, type) and issubclass(value, WireModel) and "schema_version" in value.model_fields
    }
    assert versioned == set(EXAMPLES)


@WIRE_MODELS
def test_json_round_trip(model: type[WireModel]) -> None:
    value = EXAMPLES[model]()
    raw = value.to_json_bytes()
    assert isinstance(value, model)
    assert model.from_json_bytes(raw) == value
    assert model.from_json_bytes(raw).to_json_bytes() == raw


@WIRE_MODELS
def test_wire_bytes_are_model_dump_json_without_nones(model: type[WireModel]) -> None:
    """``to_json_bytes`` calls the serializer directly: the same bytes as pydantic's own dump."""
    value = EXAMPLES[model]()
    assert value.to_json_bytes() == value.model_dump_json(exclude_none=True).encode("utf-8")


@WIRE_MODELS
def test_every_model_carries_its_schema_version(model: type[WireModel]) -> None:
    value = EXAMPLES[model]()
    assert "schema_version" in model.model_fields
    assert document_of(value)["schema_version"] == model.SCHEMA_VERSION == 1


@WIRE_MODELS
def test_an_unknown_schema_version_is_rejected(model: type[WireModel]) -> None:
    document = document_of(EXAMPLES[model]()) | {"schema_version": 99}
    with pytest.raises(ValidationError) as caught:
        model.from_json_bytes(json.dumps(document).encode())
    assert [error["loc"] for error in caught.value.errors()] == [("schema_version",)]


@WIRE_MODELS
def test_unknown_fields_are_ignored(model: type[WireModel]) -> None:
    value = EXAMPLES[model]()
    document = document_of(value) | {"added_in_a_later_producer": {"nested": [1, 2]}}
    parsed = model.from_json_bytes(json.dumps(document).encode())
    assert parsed == value
    assert "added_in_a_later_producer" not in parsed.model_dump()


def test_a_drift_alert_names_its_class_in_an_optional_field_of_version_1() -> None:
    # Without a class the alert travels exactly as before the field existed (readers of v1 agree).
    assert "predicted_class" not in document_of(drift_alert())
    named = drift_alert().model_copy(update={"predicted_class": "fraud"})
    document = document_of(named)
    assert (document["predicted_class"], document["schema_version"]) == ("fraud", 1)
    assert DriftAlert.from_json_bytes(named.to_json_bytes()) == named


@WIRE_MODELS
def test_naive_datetimes_are_rejected(model: type[WireModel]) -> None:
    value = EXAMPLES[model]()
    timestamps = [name for name in model.model_fields if isinstance(getattr(value, name), datetime)]
    assert timestamps, f"{model.__name__} has no timestamp"
    for name in timestamps:
        document = document_of(value) | {name: "2026-01-01T12:00:00"}
        with pytest.raises(ValidationError) as caught:
            model.from_json_bytes(json.dumps(document).encode())
        assert caught.value.errors()[0]["loc"] == (name,)
        assert caught.value.errors()[0]["type"] == "timezone_aware"


@WIRE_MODELS
def test_models_are_frozen(model: type[WireModel]) -> None:
    value = EXAMPLES[model]()
    before = value.to_json_bytes()
    for name in model.model_fields:
        with pytest.raises(ValidationError, match="frozen"):
            setattr(value, name, getattr(value, name))
    assert value.to_json_bytes() == before


def test_nested_models_reject_an_unknown_schema_version_too() -> None:
    document = document_of(label_request())
    document["prediction"]["schema_version"] = 2
    with pytest.raises(ValidationError) as caught:
        LabelRequest.from_json_bytes(json.dumps(document).encode())
    assert caught.value.errors()[0]["loc"] == ("prediction", "schema_version")


# --- the Command union on `commands` ----------------------------------------------------

COMMANDS: TypeAdapter[PoolCommand | PolicyCommand] = TypeAdapter(Command)


@pytest.mark.parametrize("example", [pool_command, policy_command], ids=["pool", "policy"])
def test_the_command_union_picks_the_model_by_kind(example: Callable[[], WireModel]) -> None:
    command = example()
    parsed = COMMANDS.validate_json(command.to_json_bytes())
    assert type(parsed) is type(command)
    assert parsed == command


def test_set_and_release_commands_round_trip_through_the_union() -> None:
    limits = PoolCommand(
        pool="simulated",
        action="set",
        min_workers=2,
        max_workers=40,
        sla_p95_s=90.0,
        budget_per_hour=12.5,
        issued_by="operator:ada",
        issued_at=WHEN,
        reason="night shift",
    )
    release = PoolCommand(
        pool="simulated", action="release", issued_by="operator:ada", issued_at=WHEN, reason="over"
    )
    for command in (limits, release):
        assert COMMANDS.validate_json(command.to_json_bytes()) == command
    # A command written before the limits existed reads with them unset.
    old = COMMANDS.validate_python(document_of(pool_command()))
    assert isinstance(old, PoolCommand)
    assert (old.sla_p95_s, old.budget_per_hour) == (None, None)


@pytest.mark.parametrize(
    ("field", "value"), [("sla_p95_s", 0.0), ("budget_per_hour", -1.0), ("sla_p95_s", "NaN")]
)
def test_pool_limits_out_of_range_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        COMMANDS.validate_python(document_of(pool_command()) | {"action": "set", field: value})
    assert caught.value.errors()[0]["loc"][-1] == field


def test_the_command_union_rejects_an_unknown_kind() -> None:
    document = document_of(pool_command()) | {"kind": "reboot"}
    with pytest.raises(ValidationError) as caught:
        COMMANDS.validate_python(document)
    assert caught.value.errors()[0]["type"] == "union_tag_invalid"


def test_the_command_union_does_not_guess_by_shape() -> None:
    # A pool command's fields under kind "policy" are read as a (broken) policy command.
    document = document_of(pool_command()) | {"kind": "policy"}
    parsed = COMMANDS.validate_python(document)
    assert isinstance(parsed, PolicyCommand)
    assert parsed.accept_threshold is None


# --- PredictionEvent: the public input contract -----------------------------------------


def event_document(**changes: Any) -> dict[str, Any]:
    document = document_of(prediction_event())
    document.update(changes)
    return document


def parse_event(document: dict[str, Any]) -> PredictionEvent:
    """``document`` read as the wire reads it (JSON text: the model is strict, so a Python dict of
    JSON values would fail on its timestamp string, which only JSON input parses)."""
    return PredictionEvent.model_validate_json(json.dumps(document))


def rejected_at(document: dict[str, Any]) -> list[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as caught:
        parse_event(document)
    return [error["loc"] for error in caught.value.errors()]


@pytest.mark.parametrize(
    "model_input",
    [{"text": "hello"}, {"image_url": "s3://bucket/cat.jpg"}, {"features": {"amount": 1.0}}],
    ids=["text", "image_url", "features"],
)
def test_one_kind_of_input_is_enough(model_input: dict[str, Any]) -> None:
    assert (
        parse_event(event_document(input=model_input)).input.model_dump(exclude_none=True, mode="json")
        == model_input
    )


@pytest.mark.parametrize("model_input", [{}, {"features": {}}], ids=["nothing", "no_features"])
def test_an_input_without_content_is_rejected(model_input: dict[str, Any]) -> None:
    assert rejected_at(event_document(input=model_input)) == [("input",)]


def test_image_urls_have_allowed_schemes_only() -> None:
    assert rejected_at(event_document(input={"image_url": "file:///etc/passwd"})) == [("input", "image_url")]


@pytest.mark.parametrize(
    ("scores", "predicted_label"),
    [
        ({"ok": 1.5, "fraud": -0.5}, "ok"),  # sums to 1, outside [0, 1]
        ({"ok": 0.6, "fraud": 0.3}, "ok"),  # sums to 0.9
        ({"ok": 0.6, "fraud": 0.4 + 2 * SCORE_SUM_TOLERANCE}, "ok"),  # just beyond the tolerance
        ({"ok": 0.6, "fraud": 0.4}, "unicorn"),  # predicted label not scored
        ({}, "ok"),
    ],
    ids=["outside_unit_interval", "sum_0.9", "sum_beyond_tolerance", "label_not_scored", "no_scores"],
)
def test_scores_must_be_a_distribution_including_the_prediction(
    scores: dict[str, float], predicted_label: str
) -> None:
    assert rejected_at(event_document(scores=scores, predicted_label=predicted_label))


def test_scores_within_the_sum_tolerance_are_accepted() -> None:
    scores = {"ok": 0.6, "fraud": 0.4 + SCORE_SUM_TOLERANCE / 2}
    assert parse_event(event_document(scores=scores)).confidence == 0.6


@pytest.mark.parametrize("raw_score", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_scores_are_rejected_on_the_wire(raw_score: bytes) -> None:
    raw = json.dumps(event_document(scores={"ok": 1.0, "fraud": 0.0})).encode()
    poisoned = raw.replace(b'"fraud": 0.0', b'"fraud": ' + raw_score)
    assert poisoned != raw
    with pytest.raises(ValidationError) as caught:
        PredictionEvent.from_json_bytes(poisoned)
    assert caught.value.errors()[0]["loc"][:1] == ("scores",)


@pytest.mark.parametrize("score", [math.nan, math.inf])
def test_non_finite_scores_are_rejected_in_python(score: float) -> None:
    document = prediction_event().model_dump() | {"scores": {"ok": 1.0, "fraud": score}}
    with pytest.raises(ValidationError) as caught:
        PredictionEvent.model_validate(document)
    assert [error["loc"] for error in caught.value.errors()] == [("scores", "fraud")]


def test_text_is_bounded() -> None:
    assert parse_event(event_document(input={"text": "x" * MAX_TEXT_CHARS}))
    assert rejected_at(event_document(input={"text": "x" * (MAX_TEXT_CHARS + 1)})) == [("input", "text")]


def test_features_are_bounded() -> None:
    features = {f"f{index}": 1.0 for index in range(MAX_FEATURES)}
    assert parse_event(event_document(input={"features": features}))
    too_many = features | {"one-too-many": 1.0}
    assert rejected_at(event_document(input={"features": too_many})) == [("input", "features")]


def test_classes_are_bounded() -> None:
    def uniform(classes: int) -> dict[str, Any]:
        return event_document(
            scores={f"c{index}": 1 / classes for index in range(classes)}, predicted_label="c0"
        )

    assert len(parse_event(uniform(MAX_CLASSES)).scores) == MAX_CLASSES
    assert rejected_at(uniform(MAX_CLASSES + 1)) == [("scores",)]


@pytest.mark.parametrize("field", ["event_id", "model_name", "task"])
@pytest.mark.parametrize(
    "bad_id",
    ["x" * 257, "tx 1", "tx\t1", "tx\n1", "tx\x001", ""],
    ids=["257_chars", "space", "tab", "newline", "nul", "empty"],
)
def test_bad_ids_are_rejected(field: str, bad_id: str) -> None:
    assert rejected_at(event_document(**{field: bad_id})) == [(field,)]


def test_an_id_of_256_chars_is_accepted() -> None:
    assert parse_event(event_document(event_id="x" * 256)).event_id == "x" * 256


def test_ids_with_surrounding_whitespace_are_rejected() -> None:
    assert rejected_at(event_document(event_id=" tx-1 ")) == [("event_id",)]


@given(
    weights=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=2, max_size=20).filter(
        lambda weights: math.fsum(weights) > 1e-6
    )
)
def test_any_score_distribution_with_its_argmax_is_accepted_and_round_trips(weights: list[float]) -> None:
    total = math.fsum(weights)
    scores = {f"class-{index}": weight / total for index, weight in enumerate(weights)}
    predicted_label = max(scores, key=lambda name: scores[name])
    event = parse_event(event_document(scores=scores, predicted_label=predicted_label))
    assert event.confidence == max(scores.values())
    assert PredictionEvent.from_json_bytes(event.to_json_bytes()) == event
