"""The labeling spec of the Toloka pool: instructions, label set, interface, reward, overlap, golden tasks.

The spec lives in the repo as YAML (``spec.yaml`` next to this module is the
default) and is turned into a toloka-kit :class:`~toloka.client.Project`
whose task interface is built with toloka-kit's template builder. A spec's
:attr:`LabelingSpec.fingerprint` names the project and pool it creates, so a
restart reuses them and a changed spec gets new ones.

References
----------
Toloka template builder: https://toloka.ai/docs/template-builder/
toloka-kit ``toloka.client.project.template_builder``.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from toloka.client import Project
from toloka.client.project.field_spec import JsonSpec, StringSpec, UrlSpec
from toloka.client.project.task_spec import TaskSpec
from toloka.client.project.template_builder import (
    GroupFieldOption,
    InputData,
    ListViewV1,
    OutputData,
    RadioGroupFieldV1,
    RequiredConditionV1,
    TextViewV1,
)
from toloka.client.project.view_spec import TemplateBuilderViewSpec

from schemas import LabelRequest

#: The task's output field: the chosen class.
OUTPUT_FIELD = "label"


class LabelClass(BaseModel):
    """One class a Toloker can choose: its wire value and the title shown."""

    model_config = ConfigDict(frozen=True)

    value: str = Field(min_length=1, max_length=128)
    title: str = Field(min_length=1, max_length=256)


class GoldenTask(BaseModel):
    """A honeypot: an input with a known answer."""

    model_config = ConfigDict(frozen=True)

    input: dict[str, Any]
    label: str

    @property
    def key(self) -> str:
        """A stable key of this golden task (its input and answer)."""
        return hashlib.sha256(json.dumps([self.input, self.label], sort_keys=True).encode()).hexdigest()[:16]


class LabelingSpec(BaseModel):
    """What Tolokers see and choose from.

    Examples
    --------
    >>> spec = LabelingSpec.load()
    >>> spec.class_values, spec.overlap_min, len(spec.golden) > 0
    (['positive', 'negative'], 2, True)
    >>> project = spec.project()
    >>> sorted(project.task_spec.input_spec), list(project.task_spec.output_spec)
    (['event_id', 'features', 'image_url', 'suggestion', 'text'], ['label'])
    >>> project.task_spec.output_spec["label"].allowed_values
    ['positive', 'negative']
    """

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, max_length=64)
    public_name: str = Field(min_length=1, max_length=256)
    public_description: str = Field(min_length=1)
    instructions: str = Field(min_length=1)
    classes: list[LabelClass] = Field(min_length=2)
    reward_per_assignment: float = Field(default=0.02, ge=0.005)
    overlap_min: int = Field(default=2, ge=1, le=50)
    overlap_max: int = Field(default=5, ge=1, le=50)
    golden: list[GoldenTask] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> LabelingSpec:
        if self.overlap_min > self.overlap_max:
            raise ValueError(f"overlap_min {self.overlap_min} exceeds overlap_max {self.overlap_max}")
        values = self.class_values
        if len(set(values)) != len(values):
            raise ValueError(f"duplicate class values in {values}")
        unknown = sorted({golden.label for golden in self.golden} - set(values))
        if unknown:
            raise ValueError(f"golden answers {unknown} are not classes of the spec")
        return self

    @classmethod
    def load(cls, path: Path | str | None = None) -> LabelingSpec:
        """Read a spec from YAML (the packaged default when ``path`` is None)."""
        if path is None:
            text = resources.files(__package__).joinpath("spec.yaml").read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        return cls.model_validate(yaml.safe_load(text))

    @property
    def class_values(self) -> list[str]:
        """The class values, in the spec's order."""
        return [label.value for label in self.classes]

    @property
    def fingerprint(self) -> str:
        """A short hash of the whole spec: the project and pool of another spec are never reused."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]

    def task_spec(self) -> TaskSpec:
        """Input and output fields, and the interface (template builder)."""
        view = ListViewV1(
            items=[
                TextViewV1(InputData("text", default=""), label="Case"),
                TextViewV1(InputData("suggestion", default="-"), label="Model suggestion"),
                RadioGroupFieldV1(
                    OutputData(OUTPUT_FIELD),
                    [GroupFieldOption(label.value, label.title) for label in self.classes],
                    label="Class",
                    validation=RequiredConditionV1(),
                ),
            ]
        )
        return TaskSpec(
            input_spec={
                "event_id": StringSpec(required=True, hidden=True),
                "text": StringSpec(required=False),
                "image_url": UrlSpec(required=False),
                "features": JsonSpec(required=False),
                "suggestion": StringSpec(required=False),
            },
            output_spec={OUTPUT_FIELD: StringSpec(required=True, allowed_values=self.class_values)},
            view_spec=TemplateBuilderViewSpec(view=view),
        )

    def project(self) -> Project:
        """The toloka-kit project of this spec (not yet created)."""
        return Project(
            public_name=self.public_name,
            public_description=self.public_description,
            public_instructions=self.instructions,
            private_comment=self.project_key,
            task_spec=self.task_spec(),
            assignments_issuing_type="AUTOMATED",
        )

    @property
    def project_key(self) -> str:
        """What the project's private comment says, to find it again."""
        return f"labelloop:{self.name}:{self.fingerprint}"


def input_values(request: LabelRequest) -> dict[str, Any]:
    """The task input of a request: the event id and what the model saw (and its suggestion).

    >>> from datetime import datetime, UTC
    >>> from schemas import PredictionEvent, PredictionInput
    >>> event = PredictionEvent(event_id="e1", model_name="m", model_version="1",
    ...                         created_at=datetime(2026, 1, 1, tzinfo=UTC),
    ...                         input=PredictionInput(text="hello", features={"x0": 1.5}),
    ...                         predicted_label="positive", scores={"positive": 0.6, "negative": 0.4})
    >>> request = LabelRequest(prediction=event, route="low_confidence", reason="low",
    ...                        priority=0.4, uncertainty=0.4, requested_at=event.created_at)
    >>> input_values(request)
    {'event_id': 'e1', 'text': 'hello', 'features': {'x0': 1.5}}
    """
    seen = request.prediction.input
    values: dict[str, Any] = {"event_id": request.event_id}
    if seen.text is not None:
        values["text"] = seen.text
    if seen.image_url is not None:
        values["image_url"] = str(seen.image_url)
    if seen.features:
        values["features"] = dict(seen.features)
    if request.suggestion is not None:
        values["suggestion"] = request.suggestion.label
    return values
