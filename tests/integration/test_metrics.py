"""/metrics of a real worker during a run: its counters agree exactly with the records on the topics."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.simulation.poison import poison_records
from agents.simulation.stream import StreamSettings, simulate
from schemas import CrowdAnswer, Label
from streams.codec import headers_dict
from streams.sdk import PredictionPublisher
from streams.topics import topic_names
from tests.integration.conftest import LoopUnderTest, TopicWatcher, publish_with_truth

pytestmark = pytest.mark.kafka

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(port: int) -> Samples:
    """Every sample /metrics serves now, by sample name."""
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def total(samples: Samples, name: str, **where: str) -> float:
    return sum(
        value
        for labels, value in samples.get(name, [])
        if all(labels.get(key) == wanted for key, wanted in where.items())
    )


def test_metrics_count_exactly_what_the_topics_hold(loop_under_test: Callable[..., LoopUnderTest]) -> None:
    loop = loop_under_test(LABELLOOP_ROUTER__ACCEPT_THRESHOLD="0.7")
    names = topic_names(loop.settings)
    stream = list(simulate(StreamSettings(events=300, train_size=300, run_id=loop.settings.app_id)))
    poison = [record for simulated in stream[:2] for record in poison_records(simulated.event)]
    watched = (names.labels, names.label_requests, names.crowd_answers, names.dlq)
    watcher = TopicWatcher(loop.settings, *watched)
    try:
        loop.start_worker()
        port = loop.web_port()
        with PredictionPublisher(loop.settings) as publisher:
            publish_with_truth(publisher, names.truth, stream[:150])
            for record in poison:
                publisher.publish_raw(record.key, record.value)
            publisher.flush()
            # Scraped mid-run too: the endpoint answers while the loop works.
            watcher.wait_for(
                lambda: watcher.count(names.labels) >= 50, 120, "the first labels", loop.worker_logs
            )
            during = scrape(port)
            assert (
                total(during, "labelloop_records_consumed_total", stage="router", topic="predictions") >= 50
            )
            publish_with_truth(publisher, names.truth, stream[150:])

        def labeled() -> set[str]:
            return {Label.from_json_bytes(r.value or b"").event_id for r in watcher.records[names.labels]}

        watcher.wait_for(
            lambda: len(labeled()) >= len(stream) and watcher.count(names.dlq) >= len(poison),
            180,
            "every label and every DLQ record",
            loop.worker_logs,
        )
        # The loop is quiet once every request has its answers and the labels stop coming; then the
        # counters must agree exactly (they count as each send is handed to the producer).
        settled: Samples = {}
        counts: dict[str, int] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            watcher.poll()
            counts = {topic: watcher.count(topic) for topic in watched}
            settled = scrape(port)
            produced = {
                topic: total(
                    settled, "labelloop_records_produced_total", topic=topic.removeprefix(names.prefix)
                )
                for topic in watched
            }
            if all(produced[topic] == counts[topic] for topic in watched):
                time.sleep(2.0)  # still equal a moment later: nothing was in flight
                watcher.poll()
                if (
                    {topic: watcher.count(topic) for topic in watched}
                    == counts
                    == {topic: int(value) for topic, value in produced.items()}
                ):
                    break
            time.sleep(0.5)
        # Once everything is committed (faust commits every few seconds), the lag is 0 everywhere.
        lag_samples: list[tuple[dict[str, str], float]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            lag_samples = scrape(port).get("labelloop_consumer_lag_records", [])
            if lag_samples and all(value == 0 for _, value in lag_samples):
                break
            time.sleep(1.0)
    finally:
        watcher.close()

    records = {topic: watcher.records[topic] for topic in watched}
    labels = [Label.from_json_bytes(record.value or b"") for record in records[names.labels]]
    answers = [CrowdAnswer.from_json_bytes(record.value or b"") for record in records[names.crowd_answers]]
    produced = {
        topic: total(settled, "labelloop_records_produced_total", topic=topic.removeprefix(names.prefix))
        for topic in watched
    }
    assert produced == {topic: float(len(records[topic])) for topic in watched}, loop.worker_logs()

    # In: the router read every record sent to predictions, valid or not.
    sent = len(stream) + len(poison)
    assert total(settled, "labelloop_records_consumed_total", stage="router", topic="predictions") == sent
    # Every valid event got one routing decision; every poison record one DLQ record, by its kind.
    assert total(settled, "labelloop_router_decisions_total") == len(stream)
    accepted_first = [label for label in labels if label.revision == 1 and label.source == "model"]
    assert total(settled, "labelloop_router_decisions_total", action="accept") == len(accepted_first)
    dlq_kinds = Counter(headers_dict(record.headers)["labelloop.error.kind"] for record in records[names.dlq])
    assert dlq_kinds == Counter(record.expected_error for record in poison)
    assert {
        labels_["reason"]: value
        for labels_, value in settled["labelloop_dlq_records_total"]
        if labels_["stage"] == "router"
    } == {kind: float(count) for kind, count in dlq_kinds.items()}
    # Labels by source and revision, and one time-to-label observation per event's first label.
    by_source = Counter((label.source, "first" if label.revision == 1 else "later") for label in labels)
    assert {
        (labels_["source"], labels_["revision"]): value
        for labels_, value in settled["labelloop_labels_published_total"]
        if value
    } == {key: float(count) for key, count in by_source.items()}
    assert total(settled, "labelloop_time_to_label_seconds_count") == len(stream)
    human_first = [label for label in labels if label.revision == 1 and label.is_human]
    assert total(settled, "labelloop_answers_per_label_count") == len(human_first)
    assert total(settled, "labelloop_answers_per_label_sum") == sum(
        label.provenance.n_answers for label in human_first
    )
    # Answers per pool, exactly as on crowd-answers.
    by_pool = Counter((answer.pool, answer.tier) for answer in answers)
    assert {
        (labels_["pool"], labels_["tier"]): value
        for labels_, value in settled["labelloop_crowd_answers_total"]
    } == {key: float(count) for key, count in by_pool.items()}
    # The gauges are there for every pool, and the consumer lag for the partitions the worker owns.
    assert {labels_["pool"] for labels_, _ in settled["labelloop_pool_workers"]} == {"simulated", "experts"}
    assert settled["labelloop_router_target_backlog_tasks"][0][1] > 0
    lagging = {labels_["topic"] for labels_, _ in lag_samples}
    assert {"predictions", "labels", "label-requests", "crowd-answers"} <= lagging
    assert not [topic for topic in lagging if topic.endswith("-changelog")]  # written, not consumed
    assert all(value == 0 for _, value in lag_samples), lag_samples  # a quiet loop has caught up
    for name in settled:
        assert "event_id" not in str(settled[name][:1])
