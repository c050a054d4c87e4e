"""Corrections reach the router's estimators and the learner as the expert labels they are, once each.

Both read ``labels`` on the batch path; these tests drive their real handlers with real
batches (no Kafka), as their own tests do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path

from agents.explorer.actions import PriorLabel, correction, restoration
from agents.learner import agent as learner_agent
from agents.learner.model import LearnerSettings
from agents.loop import Loop
from agents.router import agent as router_agent
from agents.settings import StageSettings
from agents.simulation.stream import StreamSettings, simulate
from schemas import Label, RoutingTrace
from streams.app import create_app
from streams.batch import Batch
from streams.codec import encode, encode_key
from streams.runtime import Record
from streams.settings import Settings
from tests import factories

NOW = datetime(2026, 1, 3, tzinfo=UTC)


def _loop(tmp_path: Path) -> Loop:
    settings = Settings(data_dir=tmp_path)
    return Loop(app=create_app(settings), settings=settings, stages=StageSettings(learner=LearnerSettings()))


def _run(step: Awaitable[None] | None) -> None:
    async def wait() -> None:
        if step is not None:
            await step

    asyncio.run(wait())


def _deliver(loop: Loop, topic: str, values: list[Label], state: Batch | None = None) -> Batch:
    """One batch of ``values`` through the topic's batch handlers, committed (its effects run)."""
    records = [
        Record(encode_key(value.event_id), encode(value), topic, 0, offset)
        for offset, value in enumerate(values)
    ]
    batch = Batch(0, {topic: records}, state=None)
    if state is not None:
        for change in state.changes:
            batch.put(*change)
    _run(loop._batch_service().handlers[topic](batch, records))
    for effect in batch.effects:
        _run(effect())
    return batch


def test_the_estimators_count_a_correction_of_a_control_label_once(tmp_path: Path) -> None:
    loop = _loop(tmp_path)
    router_agent.register(loop)
    labels = loop.names.labels
    crowd = factories.human_label(
        "control", human_label="fraud", model_label="ok", inclusion_probability=0.25
    )
    first = _deliver(loop, labels, [crowd])
    fixed = correction(crowd, label="ok", operator="ana", reason="not fraud", now=NOW)
    # The correction, read twice (at least once delivery), in the batch after the crowd's label.
    second = _deliver(loop, labels, [fixed, fixed], state=first)
    assert loop.counters["router.estimator_labels"] == 1
    assert loop.counters["router.estimator_revisions"] == 1
    # An undo restores the crowd's label: a revision again, still one sample.
    prior = PriorLabel(event_id=crowd.event_id, revision=2, label="fraud", source="crowd", confidence=1.0)
    undo = restoration(fixed, prior, operator="bo", action_id="bulk-1", now=NOW)
    _deliver(loop, labels, [undo], state=second)
    assert loop.counters["router.estimator_labels"] == 1
    assert loop.counters["router.estimator_revisions"] == 2


def test_a_correction_of_an_accepted_label_is_no_sample_of_the_estimators(tmp_path: Path) -> None:
    loop = _loop(tmp_path)
    router_agent.register(loop)
    accepted = factories.human_label("accepted", source="model", human_label="ok", model_label="ok")
    fixed = correction(accepted, label="fraud", operator="ana", reason="chargeback", now=NOW)
    _deliver(loop, loop.names.labels, [fixed])
    # Operators pick what they correct: no known inclusion probability, so no Horvitz-Thompson sample.
    assert loop.counters["router.estimator_labels"] == 0
    assert loop.counters["router.estimator_revisions"] == 0


def test_the_learner_learns_a_correction_that_is_the_events_first_human_label_once(tmp_path: Path) -> None:
    loop = _loop(tmp_path)
    learners, _ = learner_agent.register(loop)
    names = loop.names
    event = next(simulated.event for simulated in simulate(StreamSettings(events=1, train_size=200)))
    trace = RoutingTrace(
        measure="margin", uncertainty=0.2, threshold=0.3, policy_version=1, audited_class="a"
    )
    audit = factories.label_request(event.event_id, route="audit").model_copy(
        update={"prediction": event, "routing": trace}
    )
    requests = [Record(encode_key(event.event_id), encode(audit), names.label_requests, 0, 1)]
    asked = Batch(0, {names.label_requests: requests}, state=None)
    _run(loop._batch_service().handlers[names.label_requests](asked, requests))
    # The router accepted it (revision 1); an operator corrects it before the audit's verdict comes.
    accepted = factories.human_label(
        "accepted", source="model", human_label="negative", event_id=event.event_id, task=event.task
    )
    fixed = correction(accepted, label="positive", operator="ana", reason="seen it", now=NOW)
    learned = _deliver(loop, names.labels, [fixed, fixed], state=asked)
    assert learners[event.task].seen == 1
    assert loop.counters["learner.corrections"] == 1
    # The audit's verdict comes later, as the next revision: the event was learned already.
    verdict = fixed.model_copy(
        update={
            "revision": 3,
            "supersedes": 2,
            "source": "crowd",
            "route": "audit",
            "provenance": accepted.provenance,
        }
    )
    _deliver(loop, names.labels, [verdict], state=learned)
    assert learners[event.task].seen == 1
    assert loop.counters["learner.learned"] == 1


def test_a_correction_without_a_waiting_input_leaves_no_state(tmp_path: Path) -> None:
    loop = _loop(tmp_path)
    learner_agent.register(loop)
    accepted = factories.human_label("accepted", source="model", human_label="ok")
    fixed = correction(accepted, label="fraud", operator="ana", reason="chargeback", now=NOW)
    batch = _deliver(loop, loop.names.labels, [fixed])
    assert batch.changes == []
    assert loop.counters["learner.learned"] == 0
