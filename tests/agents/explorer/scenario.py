"""A small stream of every record kind the explorer indexes, as the loop would publish it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas import (
    CrowdAnswer,
    DriftAlert,
    Label,
    LabelProvenance,
    LabelRequest,
    PredictionEvent,
    PredictionInput,
    RoutingTrace,
    WireModel,
    WorkerSkill,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TEXTS = [
    "card declined at the shop",
    "refund please, the parcel never came",
    "the card was stolen yesterday",
    "refund for a double charge",
    "login fails after the update",
    "app crashes when paying by card",
]


def event(
    n: int,
    *,
    task: str = "support",
    predicted: str = "billing",
    confidence: float = 0.6,
    embedding: list[float] | None = None,
    features: dict[str, float] | None = None,
) -> PredictionEvent:
    other = "tech" if predicted != "tech" else "billing"
    text = TEXTS[n % len(TEXTS)] if features is None else None
    return PredictionEvent(
        event_id=f"ev-{n}",
        task=task,
        model_name="router-model",
        model_version="7",
        created_at=T0 + timedelta(minutes=n),
        input=PredictionInput(text=text, features=features, embedding=embedding),
        predicted_label=predicted,
        scores={predicted: confidence, other: round(1 - confidence, 9)},
    )


def label_of(
    prediction: PredictionEvent,
    *,
    label: str,
    source: str = "crowd",
    revision: int = 1,
    route: str = "low_confidence",
    workers: tuple[str, ...] = (),
    minutes: int = 5,
    routing: RoutingTrace | None = None,
    reason: str | None = None,
) -> Label:
    return Label(
        event_id=prediction.event_id,
        task=prediction.task,
        label=label,
        source=source,  # type: ignore[arg-type]
        revision=revision,
        supersedes=revision - 1 if revision > 1 else None,
        confidence=0.9,
        route=route,  # type: ignore[arg-type]
        reason=reason,
        routing=routing,
        decided_at=prediction.created_at + timedelta(minutes=minutes),
        prediction_created_at=prediction.created_at,
        provenance=LabelProvenance(
            model_name=prediction.model_name,
            model_version=prediction.model_version,
            model_label=prediction.predicted_label,
            model_confidence=prediction.confidence,
            n_answers=len(workers),
            pool="simulated" if workers else None,
            worker_ids=list(workers),
        ),
    )


def answer(
    prediction: PredictionEvent, worker: str, label: str, *, minutes: int = 2, golden: str | None = None
) -> CrowdAnswer:
    return CrowdAnswer(
        event_id=prediction.event_id,
        task_id=f"task-{prediction.event_id}",
        pool="simulated",
        worker_id=worker,
        label=label,
        time_spent_s=4.0,
        answered_at=prediction.created_at + timedelta(minutes=minutes),
        golden_label=golden,
    )


def scenario() -> list[WireModel]:
    """Twelve events: accepted, reviewed by the crowd (disagreeing), corrected twice, shed, one alert."""
    records: list[WireModel] = []
    trace = RoutingTrace(measure="max_probability", uncertainty=0.4, threshold=0.8, policy_version=1)
    for n in range(12):
        predicted = "billing" if n % 3 else "tech"
        prediction = event(
            n, predicted=predicted, confidence=0.55 + n * 0.03, task="support" if n < 9 else "fraud"
        )
        records.append(prediction)
        if n % 2 == 0:  # accepted by the router
            records.append(label_of(prediction, label=predicted, source="model", route="accepted", minutes=0))
            continue
        records.append(
            LabelRequest(
                prediction=prediction,
                route="low_confidence",
                reason="confidence below 0.8",
                priority=0.4,
                uncertainty=0.4,
                routing=trace,
                requested_at=prediction.created_at + timedelta(seconds=1),
            )
        )
        crowd = "tech" if n % 4 == 1 else predicted
        records += [answer(prediction, "w1", crowd), answer(prediction, "w2", crowd, minutes=3)]
        records.append(label_of(prediction, label=crowd, workers=("w1", "w2"), routing=trace))
    # ev-3: corrected by an expert, then corrected again.
    third = event(3, predicted="tech", confidence=0.55 + 3 * 0.03)
    records.append(
        label_of(third, label="tech", source="expert", revision=2, minutes=20, reason="operator fix")
    )
    records.append(label_of(third, label="billing", source="expert", revision=3, minutes=30, reason="undo"))
    # ev-10 was shed by the capacity gate: accepted, with the review's trace and its budget.
    tenth = event(10, predicted="billing", confidence=0.55 + 10 * 0.03, task="fraud")
    shed_trace = trace.model_copy(update={"budget": "review budget 0/min"})
    records.append(
        label_of(tenth, label="billing", source="model", route="accepted", minutes=1, routing=shed_trace)
    )
    records.append(
        WorkerSkill(
            worker_id="w1",
            pool="simulated",
            accuracy=0.91,
            n_golden=10,
            n_audited=0,
            n_answers=50,
            flagged_spammer=False,
            updated_at=T0,
        )
    )
    records.append(
        WorkerSkill(
            worker_id="w1",
            pool="simulated",
            accuracy=0.93,
            n_golden=12,
            n_audited=0,
            n_answers=60,
            flagged_spammer=False,
            updated_at=T0 + timedelta(hours=1),
        )
    )
    records.append(
        DriftAlert(
            detector="adwin-support",
            detector_kind="ADWIN",
            signal="model_error",
            task="support",
            observation=40,
            detected_at=T0 + timedelta(minutes=4),
            before=0.1,
            after=0.3,
            message="error rose",
        )
    )
    return records
