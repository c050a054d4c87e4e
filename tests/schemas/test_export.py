"""The exported JSON Schema in ``schemas/json/`` is what the models say, and only the public models."""

from __future__ import annotations

import json
from pathlib import Path

from schemas import Label, PredictionEvent, WorkerSkill
from schemas.export import JSON_DIR, PUBLIC_MODELS, export, render, schema_path, stale

PUBLIC_FILES = sorted(f"{name}.schema.json" for name in PUBLIC_MODELS)


def test_the_committed_schemas_are_current() -> None:
    outdated = [str(path) for path in stale()]
    assert outdated == [], f"JSON Schema out of date: {outdated}; run `make schemas` and commit the result"


def test_the_committed_directory_holds_only_public_schemas() -> None:
    assert sorted(path.name for path in JSON_DIR.glob("*.json")) == PUBLIC_FILES


def test_the_public_contract_is_the_prediction_event_the_label_and_worker_skills() -> None:
    assert dict(PUBLIC_MODELS) == {
        "prediction-event": PredictionEvent,
        "label": Label,
        "worker-skill": WorkerSkill,
    }


def test_export_writes_exactly_the_public_models(tmp_path: Path) -> None:
    written = export(tmp_path / "json")
    assert sorted(path.name for path in written) == PUBLIC_FILES
    assert sorted(path.name for path in (tmp_path / "json").iterdir()) == PUBLIC_FILES
    for name, model in PUBLIC_MODELS.items():
        schema = json.loads(schema_path(name, tmp_path / "json").read_text(encoding="utf-8"))
        assert schema["title"] == model.__name__
        assert schema["$id"] == f"https://labelloop.dev/schemas/{model.__name__}/v1.json"
        assert "schema_version" in schema["properties"]
    assert stale(tmp_path / "json") == []


def test_stale_names_a_missing_schema(tmp_path: Path) -> None:
    export(tmp_path)
    missing = schema_path("label", tmp_path)
    missing.unlink()
    assert stale(tmp_path) == [missing]


def test_stale_names_a_modified_schema(tmp_path: Path) -> None:
    export(tmp_path)
    edited = schema_path("prediction-event", tmp_path)
    original = edited.read_text(encoding="utf-8")
    loosened = original.replace('"maxLength": 256', '"maxLength": 512')
    assert loosened != original
    edited.write_text(loosened, encoding="utf-8")
    assert stale(tmp_path) == [edited]


def test_stale_names_everything_in_an_empty_directory(tmp_path: Path) -> None:
    assert stale(tmp_path) == [schema_path(name, tmp_path) for name in PUBLIC_MODELS]


def test_render_is_stable_text() -> None:
    text = render(PredictionEvent)
    assert text == render(PredictionEvent)
    assert text.endswith("}\n")
    assert json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n" == text
