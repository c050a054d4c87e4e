"""The wire contract of Labelloop: one pydantic model per topic family.

Values are UTF-8 JSON validated by these models; nothing that crosses a topic
is pickled. Every model carries ``schema_version``.
"""

from schemas.answers import CrowdAnswer
from schemas.base import MAX_RECORD_BYTES, WireModel, utc_now
from schemas.drift import DriftAlert, DriftSignal
from schemas.labels import Label, LabelProvenance, LabelSource, RouteReason, RoutingTrace
from schemas.metrics import Estimate, ModelMetrics
from schemas.pools import Command, PolicyCommand, PolicyStatus, PoolAction, PoolCommand, PoolStatus
from schemas.predictions import PredictionEvent, PredictionInput
from schemas.requests import LabelRequest, Suggestion, Tier
from schemas.skills import WorkerSkill

__all__ = [
    "MAX_RECORD_BYTES",
    "Command",
    "CrowdAnswer",
    "DriftAlert",
    "DriftSignal",
    "Estimate",
    "Label",
    "LabelProvenance",
    "LabelRequest",
    "LabelSource",
    "ModelMetrics",
    "PolicyCommand",
    "PolicyStatus",
    "PoolAction",
    "PoolCommand",
    "PoolStatus",
    "PredictionEvent",
    "PredictionInput",
    "RouteReason",
    "RoutingTrace",
    "Suggestion",
    "Tier",
    "WireModel",
    "WorkerSkill",
    "utc_now",
]
