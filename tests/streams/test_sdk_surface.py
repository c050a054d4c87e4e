"""The SDK's public surface: what a producer or consumer imports from streams.sdk, pinned."""

from __future__ import annotations

import inspect

import streams.sdk

#: Change this together with the SDK's docs: a name that goes is a break for every user.
SURFACE = {
    "DeliveryError",
    "KafkaSettings",
    "Label",
    "LabelReader",
    "PredictionEvent",
    "PredictionInput",
    "PredictionPublisher",
    "RawRecord",
    "Settings",
    "TopicSettings",
    "latest_labels",
    "read_records",
}


def test_the_sdk_exports_exactly_its_curated_surface() -> None:
    assert set(streams.sdk.__all__) == SURFACE
    assert len(streams.sdk.__all__) == len(SURFACE)  # no name twice


def test_every_exported_name_resolves_and_is_documented() -> None:
    for name in streams.sdk.__all__:
        value = getattr(streams.sdk, name)
        assert inspect.getdoc(value), f"streams.sdk.{name} has no docstring"
