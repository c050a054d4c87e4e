"""The remote crowd: the worker's side hands requests over and reports; the crowd process's answers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from agents.pools.base import LabelingBackend
from agents.pools.remote import RemoteCrowd, RemoteCrowdSettings
from agents.simulation.remote_crowd import answers_for
from tests import factories


def test_the_worker_hands_a_request_over_at_once_and_reports_what_it_was_told() -> None:
    crowd = RemoteCrowd(RemoteCrowdSettings(enabled=True, workers=4, overlap=2, labels_per_worker_min=3))
    assert isinstance(crowd, LabelingBackend)
    asyncio.run(crowd.label(factories.label_request("tx-1"), on_answer=None))
    crowd.pause()
    paused = crowd.status(datetime(2026, 1, 1, tzinfo=UTC))
    assert (paused.workers, paused.active, paused.capacity_per_min, paused.tasks_done) == (4, False, 0.0, 1)
    crowd.resume()
    crowd.resize(8)
    status = crowd.status(datetime(2026, 1, 1, tzinfo=UTC))
    assert (status.workers, status.capacity_per_min) == (8, 12.0)


def test_the_crowd_process_answers_with_distinct_labelers_that_agree_on_the_models_label() -> None:
    request = factories.label_request("tx-7")
    answers = answers_for(request, "remote", 3)
    assert [answer.worker_id for answer in answers] == ["remote-w0", "remote-w1", "remote-w2"]
    assert {answer.label for answer in answers} == {request.prediction.predicted_label}
    assert {(answer.event_id, answer.overlap, answer.pool) for answer in answers} == {("tx-7", 3, "remote")}
