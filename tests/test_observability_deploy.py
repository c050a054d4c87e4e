"""docker compose's Prometheus and Grafana files parse and agree with the code and with each other.

Docker cannot run here, so this is what keeps them honest: Prometheus scrapes the port and path
the worker serves /metrics on, Grafana's dashboard uses the provisioned data source and only
series our registry exports, and every metric family we export has a panel.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.operator_api import OperatorApiSettings
from streams.metrics import LoopMetrics

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SERIES = re.compile(r"\b(labelloop_[a-z0-9_]+)\b")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = _yaml(ROOT / "docker-compose.yml")
    return document


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DEPLOY / "grafana/dashboards/labelloop.json").read_text("utf-8"))
    return document


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    exprs += [item["expr"] for item in dashboard["annotations"]["list"] if "expr" in item]
    return exprs


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repo path of a service's bind mounts."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            found[target] = ROOT / source
    return found


def test_compose_runs_prometheus_and_grafana_with_files_that_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "worker", "prometheus", "grafana"} <= set(services)
    for name in ("prometheus", "grafana"):
        for target, source in _mounts(services[name]).items():
            assert source.exists(), f"{name} mounts {source} at {target}, which is not in the repo"
    assert "/etc/prometheus/prometheus.yml" in _mounts(services["prometheus"])
    assert set(compose["volumes"]) >= {"prometheus-data", "grafana-data"}


def test_prometheus_scrapes_the_port_and_path_of_the_workers_metrics(compose: dict[str, Any]) -> None:
    config = _yaml(DEPLOY / "prometheus/prometheus.yml")
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "labelloop-worker"]
    assert job["metrics_path"] == "/metrics"
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["worker"]
    worker = compose["services"]["worker"]
    assert discovery["port"] == OperatorApiSettings().port  # the worker's web server in the container
    # The web server must listen beyond the container's loopback for Prometheus to reach it.
    assert worker["environment"]["LABELLOOP_OPERATOR__HOST"] == "0.0.0.0"
    assert "LABELLOOP_OPERATOR__PORT" not in worker["environment"]


def test_grafana_is_provisioned_with_the_data_source_and_folder_the_dashboard_uses(
    compose: dict[str, Any], dashboard: dict[str, Any]
) -> None:
    mounts = _mounts(compose["services"]["grafana"])
    provisioning = mounts["/etc/grafana/provisioning"]
    (source,) = _yaml(provisioning / "datasources/prometheus.yml")["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    (provider,) = _yaml(provisioning / "dashboards/labelloop.yml")["providers"]
    assert mounts[provider["options"]["path"]] == DEPLOY / "grafana/dashboards"
    sources = {json.dumps(panel["datasource"], sort_keys=True) for panel in dashboard["panels"]}
    sources |= {
        json.dumps(t["datasource"], sort_keys=True) for p in dashboard["panels"] for t in p["targets"]
    }
    assert sources == {json.dumps({"type": "prometheus", "uid": source["uid"]}, sort_keys=True)}


def test_every_series_in_the_dashboard_exists_and_every_family_has_a_panel(dashboard: dict[str, Any]) -> None:
    exported = LoopMetrics().family_names()
    used = {name for expr in _exprs(dashboard) for name in SERIES.findall(expr)}
    assert used, "the dashboard queries nothing"
    assert used <= exported, f"not in our registry: {sorted(used - exported)}"
    families = {family.name for family in LoopMetrics().families()}
    covered = {family for family in families if any(name.startswith(family) for name in used)}
    assert covered == families, f"no panel for {sorted(families - covered)}"


def test_the_dashboard_marks_drift_alerts_and_has_unique_panel_ids(dashboard: dict[str, Any]) -> None:
    (drift,) = [item for item in dashboard["annotations"]["list"] if item.get("name") == "Drift alerts"]
    assert "labelloop_drift_alerts_total" in drift["expr"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    refs = [[target["refId"] for target in panel["targets"]] for panel in dashboard["panels"]]
    assert all(len(r) == len(set(r)) for r in refs)
    for panel in dashboard["panels"]:
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]


def test_kubernetes_pods_are_scraped_on_the_port_of_the_workers_web_server() -> None:
    (deployment,) = [
        document
        for document in yaml.safe_load_all((DEPLOY / "k8s/deployment.yaml").read_text("utf-8"))
        if document["kind"] == "Deployment"
    ]
    pod = deployment["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    (container,) = pod["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    config = next(
        document
        for document in yaml.safe_load_all((DEPLOY / "k8s/configmap.yaml").read_text("utf-8"))
        if document["kind"] == "ConfigMap"
    )["data"]
    assert int(annotations["prometheus.io/port"]) == ports["web"] == int(config["LABELLOOP_OPERATOR__PORT"])
    assert config["LABELLOOP_OPERATOR__HOST"] == "0.0.0.0"
