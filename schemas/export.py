"""Export the JSON Schema of the public models to ``schemas/json/`` (``python -m schemas.export``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from schemas.base import WireModel
from schemas.labels import Label
from schemas.predictions import PredictionEvent
from schemas.skills import WorkerSkill

#: The public contract: what producers write and consumers read.
PUBLIC_MODELS: dict[str, type[WireModel]] = {
    "prediction-event": PredictionEvent,
    "label": Label,
    "worker-skill": WorkerSkill,
}
JSON_DIR = Path(__file__).parent / "json"


def render(model: type[WireModel]) -> str:
    """The JSON Schema of ``model`` (validation mode), as stable, sorted text."""
    schema = model.model_json_schema(mode="validation")
    schema["$id"] = f"https://labelloop.dev/schemas/{model.__name__}/v{model.SCHEMA_VERSION}.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def schema_path(name: str, directory: Path = JSON_DIR) -> Path:
    """Where the schema of the public model called ``name`` is exported."""
    return directory / f"{name}.schema.json"


def export(directory: Path = JSON_DIR) -> list[Path]:
    """Write every public schema; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in PUBLIC_MODELS.items():
        path = schema_path(name, directory)
        path.write_text(render(model), encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path = JSON_DIR) -> list[Path]:
    """Exported schemas that differ from the models (empty when the export is current)."""
    return [
        schema_path(name, directory)
        for name, model in PUBLIC_MODELS.items()
        if not schema_path(name, directory).exists()
        or schema_path(name, directory).read_text(encoding="utf-8") != render(model)
    ]


if __name__ == "__main__":  # pragma: no cover - a developer command
    for written_path in export():
        sys.stdout.write(f"wrote {written_path}\n")
