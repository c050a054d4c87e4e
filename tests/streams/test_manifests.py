"""The Kubernetes manifests in deploy/k8s parse and agree with each other and with the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import Settings, TopicSettings
from streams.topics import topic_names

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def _documents() -> dict[str, dict[str, Any]]:
    """Every manifest in deploy/k8s by kind (one document of each kind)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            assert isinstance(document, dict), path
            assert {"apiVersion", "kind", "metadata"} <= document.keys(), path
            assert document["kind"] not in found, f"two {document['kind']} manifests"
            found[document["kind"]] = document
    return found


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    return _documents()


def test_every_manifest_parses(manifests: dict[str, dict[str, Any]]) -> None:
    assert {"ConfigMap", "Secret", "Job", "Deployment", "ScaledObject", "TriggerAuthentication"} <= set(
        manifests
    )


def test_the_configmap_is_valid_settings(manifests: dict[str, dict[str, Any]]) -> None:
    data = manifests["ConfigMap"]["data"]
    assert all(isinstance(value, str) for value in data.values()), "ConfigMap values must be strings"
    assert all(key.startswith("LABELLOOP_") for key in data)
    topics = TopicSettings(
        prefix=data["LABELLOOP_TOPICS__PREFIX"], partitions=int(data["LABELLOOP_TOPICS__PARTITIONS"])
    )
    settings = Settings(topics=topics, app_id=data["LABELLOOP_APP_ID"])
    assert settings.app_id == data["LABELLOOP_APP_ID"]


def test_keda_scales_the_worker_on_the_groups_predictions_lag(manifests: dict[str, dict[str, Any]]) -> None:
    config = manifests["ConfigMap"]["data"]
    scaled = manifests["ScaledObject"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == manifests["Deployment"]["metadata"]["name"]
    assert scaled["minReplicaCount"] == 1
    # More workers than partitions sit idle and only add rebalances: never past the partitions,
    # neither the default count nor the one the ConfigMap creates the topics with.
    assert 1 <= scaled["maxReplicaCount"] <= TopicSettings().partitions
    assert scaled["maxReplicaCount"] <= int(config["LABELLOOP_TOPICS__PARTITIONS"])
    assert scaled["cooldownPeriod"] >= 60, "scale-in right after a burst makes rebalance storms"
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    # The consumer group is the faust app id; the lag that means "work waiting" is the input's.
    assert metadata["consumerGroup"] == config["LABELLOOP_APP_ID"]
    predictions = topic_names(Settings(topics=TopicSettings(prefix=config["LABELLOOP_TOPICS__PREFIX"])))
    assert metadata["topic"] == predictions.predictions
    assert metadata["bootstrapServers"] == config["LABELLOOP_KAFKA__BOOTSTRAP_SERVERS"]
    assert int(metadata["lagThreshold"]) > 0
    assert all(isinstance(value, str) for value in metadata.values()), "trigger metadata are strings"
    assert trigger["authenticationRef"]["name"] == manifests["TriggerAuthentication"]["metadata"]["name"]
    secret = manifests["Secret"]["metadata"]["name"]
    refs = manifests["TriggerAuthentication"]["spec"]["secretTargetRef"]
    assert {ref["name"] for ref in refs} == {secret}
    assert {ref["key"] for ref in refs} <= set(manifests["Secret"]["stringData"])


def test_the_worker_probes_faust_web_and_leaves_the_group_cleanly(
    manifests: dict[str, dict[str, Any]],
) -> None:
    config = manifests["ConfigMap"]["data"]
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    (worker,) = pod["containers"]
    assert worker["command"] == ["labelloop", "worker"]
    assert {"configMapRef": {"name": manifests["ConfigMap"]["metadata"]["name"]}} in worker["envFrom"]
    assert config["LABELLOOP_WEB_ENABLED"] == "true"
    web = next(port for port in worker["ports"] if port["name"] == "faust-web")
    assert web["containerPort"] == int(config["LABELLOOP_WEB_PORT"])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert worker[probe]["httpGet"]["port"] == "faust-web", probe
    # SIGTERM: faust commits, flushes and leaves the group; give it longer than a session timeout.
    assert pod["terminationGracePeriodSeconds"] >= float(config["LABELLOOP_SESSION_TIMEOUT_S"])
    # The SASL password comes from the mounted Secret, never from the ConfigMap.
    assert "LABELLOOP_KAFKA__SASL_PASSWORD" not in config
    mount = next(m for m in worker["volumeMounts"] if m["name"] == "kafka-secret")
    assert config["LABELLOOP_KAFKA__SASL_PASSWORD_FILE"].startswith(mount["mountPath"] + "/")
    secret_volume = next(v for v in pod["volumes"] if v["name"] == "kafka-secret")
    assert secret_volume["secret"]["secretName"] == manifests["Secret"]["metadata"]["name"]
