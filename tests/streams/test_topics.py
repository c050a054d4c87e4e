"""The topic catalogue: co-partitioned event topics, compacted changelogs, prefixes."""

from __future__ import annotations

import pytest

from streams.settings import Settings, TopicSettings
from streams.topics import CATALOGUE, TABLES, TopicNames, catalogue, changelog_name, topic_names

SETTINGS = Settings(
    topics=TopicSettings(prefix="prod.", partitions=6, replication_factor=3), app_id="ll-prod"
)
TOPICS = {topic.name: topic for topic in catalogue(SETTINGS)}


def test_topic_names_are_unique() -> None:
    assert len(TOPICS) == len(catalogue(SETTINGS)) == len(CATALOGUE) + len(TABLES)


def test_event_topics_share_the_configured_partition_count() -> None:
    event_topics = [f"prod.{spec.suffix}" for spec in CATALOGUE if spec.key == "event_id"]
    assert {"prod.predictions", "prod.label-requests", "prod.crowd-answers", "prod.labels"} <= set(
        event_topics
    )
    assert {TOPICS[name].partitions for name in event_topics} == {6}


def test_commands_have_one_partition_for_a_total_order() -> None:
    assert TOPICS["prod.commands"].partitions == 1


def test_every_topic_gets_the_replication_factor() -> None:
    assert {topic.replication_factor for topic in TOPICS.values()} == {3}


def test_latest_value_topics_are_compacted_the_rest_of_the_catalogue_is_not() -> None:
    compacted = {
        topic.name for topic in TOPICS.values() if topic.compacted and "-changelog" not in topic.name
    }
    assert compacted == {
        "prod.labels",
        "prod.simulation.truth",
        "prod.policy-status",
        "prod.worker-skills",
        "prod.batch-state",
        "prod.explorer-actions",
    }
    assert TOPICS["prod.predictions"].configs["cleanup.policy"] == "delete"


@pytest.mark.parametrize(("table", "source"), sorted(TABLES.items()))
def test_every_table_has_a_compacted_changelog_copartitioned_with_its_source(table: str, source: str) -> None:
    changelog = TOPICS[f"ll-prod-{table}-changelog"]
    assert changelog.name == changelog_name(SETTINGS, table)
    assert changelog.compacted
    assert changelog.partitions == TOPICS[f"prod.{source}"].partitions


def test_the_prefix_applies_to_every_catalogue_topic() -> None:
    names = topic_names(SETTINGS)
    assert [names[spec.suffix] for spec in CATALOGUE] == [f"prod.{spec.suffix}" for spec in CATALOGUE]
    assert set(TOPICS) >= {names[spec.suffix] for spec in CATALOGUE}
    assert (names.predictions, names.dlq, names.labels, names.truth, names.commands) == (
        "prod.predictions",
        "prod.predictions.dlq",
        "prod.labels",
        "prod.simulation.truth",
        "prod.commands",
    )


def test_the_default_prefix() -> None:
    assert topic_names(Settings(topics=TopicSettings())).label_requests == "labelloop.label-requests"


def test_an_unknown_topic_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="nope"):
        TopicNames("prod.")["nope"]


def test_a_producer_right_after_creating_the_topics_is_never_told_not_leader(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    """create_topics returns once each fresh partition is served: no NotLeader WARNING per retry."""
    import logging
    import uuid

    from streams.sdk import PredictionPublisher
    from streams.settings import KafkaSettings
    from streams.topic_admin import create_topics, delete_topics
    from tests.factories import prediction

    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
        topics=TopicSettings(prefix=f"leaders.{uuid.uuid4().hex[:8]}."),
    )
    create_topics(settings)
    try:
        with caplog.at_level(logging.WARNING, logger="kafka"), PredictionPublisher(settings) as publisher:
            for number in range(60):
                publisher.publish(prediction(event_id=f"e-{number}"))
            publisher.flush()
    finally:
        delete_topics(settings)
    assert not [record for record in caplog.records if "NotLeader" in record.getMessage()]
