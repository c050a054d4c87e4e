"""The learner stage's wiring without Kafka: per-task model kinds, the opt-in for the model's labels."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agents.learner import agent as learner_agent
from agents.learner.model import LearnerSettings
from agents.loop import Loop
from agents.monitor import agent as monitor_agent
from agents.settings import StageSettings
from agents.simulation.stream import StreamSettings, simulate
from schemas import Label, PredictionEvent
from streams.app import create_app
from streams.batch import Batch
from streams.codec import MODEL_LABEL_HEADERS, encode, encode_key
from streams.runtime import Record
from streams.settings import Settings
from tests import factories


def _loop(tmp_path: Path, learner: LearnerSettings) -> Loop:
    settings = Settings(data_dir=tmp_path)
    return Loop(app=create_app(settings), settings=settings, stages=StageSettings(learner=learner))


def _accepted(event: PredictionEvent) -> Label:
    """The model's own Label of ``event``, as the router publishes it when it accepts."""
    label = event.predicted_label
    return factories.human_label(
        "accepted",
        source="model",
        human_label=label,
        model_label=label,
        event_id=event.event_id,
        task=event.task,
    )


def test_by_default_the_learner_takes_nothing_from_the_router(tmp_path: Path) -> None:
    learners, accepted = learner_agent.register(_loop(tmp_path, LearnerSettings()))
    assert (learners, accepted) == ({}, None)


def test_opted_in_it_learns_accepted_labels_unscored_in_the_tasks_own_kind(
    tmp_path: Path,
) -> None:
    loop = _loop(tmp_path, LearnerSettings(learn_model_labels=True, models={"tickets": "tree"}))
    learners, accepted = learner_agent.register(loop)
    assert accepted is not None
    events = [simulated.event for simulated in simulate(StreamSettings(events=300, train_size=200))]
    for event in events:
        accepted(event, _accepted(event))
    learner = learners[events[0].task]
    # Learned (it predicts what the production model said), but not scored: its prequential
    # figures are about human labels only.
    assert learner.seen == 0
    guesses = [learner.predict(dict(event.input.features or {})) for event in events[-100:]]
    agreed = sum(
        guess is not None and guess[0] == event.predicted_label
        for guess, event in zip(guesses, events[-100:], strict=True)
    )
    assert agreed >= 80
    assert loop.counters["learner.learned_model_labels"] == len(events)
    tickets = events[0].model_copy(update={"task": "tickets"})
    accepted(tickets, _accepted(tickets))
    assert type(learners["tickets"].model).__name__ == "HoeffdingAdaptiveTreeClassifier"


def test_a_request_read_in_one_batch_is_learned_with_its_label_once_the_labels_batch_is_committed(
    tmp_path: Path,
) -> None:
    loop = _loop(tmp_path, LearnerSettings())
    learners, _ = learner_agent.register(loop)
    handlers = loop._batch_service().handlers
    names = loop.names
    event = next(simulated.event for simulated in simulate(StreamSettings(events=1, train_size=200)))
    request = factories.label_request(event.event_id).model_copy(update={"prediction": event})
    asked = Record(encode_key(event.event_id), encode(request), names.label_requests, 0, 3)
    routed = Batch(0, {names.label_requests: [asked]}, state=None)
    asyncio.run(handlers[names.label_requests](routed, [asked]))
    assert [(namespace, key) for namespace, key, _ in routed.changes] == [
        (learner_agent.PENDING, event.event_id)
    ]
    label = factories.human_label(
        "low_confidence",
        human_label="positive",
        model_label="negative",
        event_id=event.event_id,
        task=event.task,
    )
    record = Record(encode_key(event.event_id), encode(label), names.labels, 0, 7)
    # The labels' batch sees the request's batch's state (committed before the label could exist).
    labelled = Batch(0, {names.labels: [record]}, state=None)
    labelled.put(*routed.changes[0])
    asyncio.run(handlers[names.labels](labelled, [record]))
    assert labelled.changes[-1] == (learner_agent.PENDING, event.event_id, None)
    assert event.task not in learners or learners[event.task].seen == 0  # nothing before the commit
    for effect in labelled.effects:
        result = effect()
        if result is not None:
            asyncio.run(result)
    assert learners[event.task].seen == 1
    assert loop.counters["learner.learned"] == 1


def test_the_routers_own_labels_are_skipped_undecoded_by_the_readers_of_human_labels(tmp_path: Path) -> None:
    loop = _loop(tmp_path, LearnerSettings())
    learner_agent.register(loop)
    monitor_agent.register(loop)  # the owner of the labels' DLQ
    handle = loop._batch_service().handlers[loop.names.labels]
    # Not even a Label: a reader that decoded it would dead-letter it.
    marked = Record(b"tx-1", b"not json", loop.names.labels, 0, 1, headers=MODEL_LABEL_HEADERS)
    batch = Batch(0, {loop.names.labels: [marked]}, state=None)
    asyncio.run(handle(batch, [marked]))
    assert batch.out == []
    assert batch.changes == []
    assert batch.effects == []
    unmarked = Record(b"tx-1", b"not json", loop.names.labels, 0, 2)
    asyncio.run(handle(batch, [unmarked]))
    assert [produced.topic for produced in batch.out] == [loop.names.dlq]
