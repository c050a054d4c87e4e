"""``labelloop demo``: the whole loop live on a real broker, with a surge, a drift and bad input.

Starts (or reuses) the local broker, creates a fresh set of topics, runs a
real faust worker as a separate process with the simulated crowd, replays a
drifting stream through the frozen production model, mixes in malformed
records, shows the loop live (in the terminal and on the worker's dashboard) and ends
with a summary (also written as JSON) and a self-contained HTML report of the whole run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from agents.dashboard.report import write_report
from agents.simulation.poison import poison_records
from agents.simulation.stream import SimulatedEvent, StreamSettings, simulate
from schemas import DriftAlert, Label, ModelMetrics, PolicyStatus, PoolStatus, WorkerSkill, utc_now
from streams.sdk import PredictionPublisher
from streams.settings import KafkaSettings, Settings, TopicSettings
from streams.topics import create_topics, topic_names


class DemoSettings(BaseModel):
    """What the demo replays and how the loop is set up for it."""

    model_config = ConfigDict(frozen=True)

    events: int = Field(default=4_000, ge=10)
    rate_per_s: float = Field(default=40.0, gt=0.0)
    #: The surge: the rate is multiplied by ``surge_factor`` between these shares of the run.
    surge_factor: float = Field(default=3.0, ge=1.0)
    surge_from: float = 0.2
    surge_to: float = 0.35
    malformed: int = Field(default=60, ge=0)
    timeout_s: float = Field(default=600.0, gt=0.0)
    accept_threshold: float = 0.7
    crowd_workers: int = 30
    crowd_mean_service_s: float = 1.0
    #: Simulated experts answering escalations and expert audits on the expert page.
    experts: int = Field(default=8, ge=0)
    expert_mean_service_s: float = 1.0
    #: Experts label the control group and the recall audit, so the estimates are not crowd noise.
    measurement_tier: Literal["crowd", "expert"] = "expert"
    #: Where the expert page listens during the demo (open it to answer alongside the bots).
    expert_port: int = Field(default=8765, ge=0, le=65_535)
    #: The worker's web server: the live dashboard and /metrics (another free port if taken).
    web_port: int = Field(default=6067, ge=1, le=65_535)
    #: Seconds between two samples of the dashboard (and of the report's plots).
    sample_every_s: float = Field(default=1.0, gt=0.0)
    seed: int = 42
    home: Path = Path(".labelloop/demo")


@dataclass
class LoopView:
    """What the demo has seen on the output topics (filled by a reader thread)."""

    labels: dict[str, Label] = field(default_factory=dict)
    first_revisions: dict[str, Label] = field(default_factory=dict)
    label_records: int = 0
    #: The latest status of each pool (the crowd and the experts).
    pools: dict[str, PoolStatus] = field(default_factory=dict)
    #: The latest published skill of each labeler.
    skills: dict[str, WorkerSkill] = field(default_factory=dict)
    #: The latest metrics per kind ("online": the River model, "production": precision and recall).
    metrics: dict[str, ModelMetrics] = field(default_factory=dict)
    alerts: list[DriftAlert] = field(default_factory=list)
    #: Every routing policy the router published (at start, then after each command).
    policies: list[PolicyStatus] = field(default_factory=list)
    dlq_kinds: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


#: The online model's figures in the summary (``online_model_<name>``) and their model-metrics names.
ONLINE_FIGURES = {
    "accuracy": "prequential_accuracy",
    "rolling_accuracy": "rolling_accuracy",
    "macro_f1": "prequential_macro_f1",
    "log_loss": "prequential_log_loss",
}


def _reader(settings: Settings, view: LoopView, stop: threading.Event) -> None:
    from kafka import KafkaConsumer

    names = topic_names(settings)
    consumer = KafkaConsumer(
        names.labels,
        names.pool_status,
        names.model_metrics,
        names.drift_alerts,
        names.policy_status,
        names.dlq,
        names.worker_skills,
        group_id=None,
        auto_offset_reset="earliest",
        client_id="labelloop-demo-view",
        **settings.kafka.kafka_python_reader_options(),
    )
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=200).values():
                with view.lock:
                    for record in records:
                        _observe(view, names, record)
    finally:
        consumer.close()


def _observe(view: LoopView, names: Any, record: Any) -> None:
    if record.topic == names.labels:
        label = Label.from_json_bytes(record.value)
        view.label_records += 1
        if label.revision == 1:
            view.first_revisions[label.event_id] = label
        current = view.labels.get(label.event_id)
        if current is None or label.revision >= current.revision:
            view.labels[label.event_id] = label
    elif record.topic == names.pool_status:
        status = PoolStatus.from_json_bytes(record.value)
        view.pools[status.pool] = status
    elif record.topic == names.worker_skills:
        skill = WorkerSkill.from_json_bytes(record.value)
        view.skills[skill.worker_id] = skill
    elif record.topic == names.model_metrics:
        snapshot = ModelMetrics.from_json_bytes(record.value)
        view.metrics[snapshot.kind] = snapshot
    elif record.topic == names.drift_alerts:
        view.alerts.append(DriftAlert.from_json_bytes(record.value))
    elif record.topic == names.policy_status:
        view.policies.append(PolicyStatus.from_json_bytes(record.value))
    elif record.topic == names.dlq:
        headers = {name: value.decode("utf-8", "replace") for name, value in record.headers or ()}
        view.dlq_kinds[headers.get("labelloop.error.kind", "?")] += 1


def _live_table(view: LoopView, published: int, total: int, started: float) -> Group:
    with view.lock:
        labels = list(view.labels.values())
        crowd = [status for status in view.pools.values() if status.tier == "crowd"]
        experts = [status for status in view.pools.values() if status.tier == "expert"]
        flagged = sum(skill.flagged_spammer for skill in view.skills.values())
        pool, expert_pool, metrics, alerts, dlq = (
            crowd[0] if crowd else None,
            experts[0] if experts else None,
            dict(view.metrics),
            list(view.alerts),
            sum(view.dlq_kinds.values()),
        )
        policy = view.policies[-1] if view.policies else None
    by_source = Counter(label.source for label in labels)
    table = Table(title=f"Labelloop demo: {time.monotonic() - started:.0f}s", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("predictions published", f"{published} / {total}")
    revised = sum(label.revision > (2 if label.route == "audit" else 1) for label in labels)
    table.add_row(
        "trusted labels",
        f"{len(labels)} (model {by_source['model']}, crowd {by_source['crowd']}, "
        f"expert {by_source['expert']}; {revised} revised by experts or healing)",
    )
    if pool is not None:
        table.add_row("crowd backlog", f"{pool.backlog} waiting, {pool.in_progress} in progress")
        table.add_row(
            "queue rate vs capacity",
            f"{pool.arrival_rate_per_min:.0f}/min vs {pool.event_capacity_per_min:.0f}/min "
            f"({pool.workers} workers, overlap {pool.overlap})",
        )
    if expert_pool is not None:
        table.add_row(
            "expert page",
            f"{expert_pool.backlog} waiting, {expert_pool.workers} experts active, "
            f"{expert_pool.answers_total} answers",
        )
    table.add_row("labelers flagged unreliable", str(flagged))
    production = metrics.get("production")
    if production is not None and "auto_accept_precision" in production.metrics:
        table.add_row(
            "auto-accept precision (control group)", _estimate(production.metrics["auto_accept_precision"])
        )
    if "online" in metrics:
        accuracy = metrics["online"].metrics.get("rolling_accuracy")
        if accuracy is not None:
            table.add_row("online model accuracy (rolling)", f"{accuracy.value:.3f} over {accuracy.n}")
    table.add_row("drift alerts", "; ".join(alert.message for alert in alerts[-2:]) or "none")
    if policy is not None:
        table.add_row(
            "routing policy",
            f"v{policy.version}: accept >= {policy.accept_threshold:g}, control share "
            f"{policy.control_share:g} ({policy.reason})",
        )
    table.add_row("DLQ records", str(dlq))
    return Group(table)


def _free_port(preferred: int) -> int:
    """``preferred`` if nothing listens there on loopback, else a free port."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_worker(
    settings: Settings, demo: DemoSettings, log_path: Path, web_port: int
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LABELLOOP_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "LABELLOOP_TOPICS__PREFIX": settings.topics.prefix,
        "LABELLOOP_APP_ID": settings.app_id,
        "LABELLOOP_DATA_DIR": str(settings.data_dir),
        "LABELLOOP_ROUTER__ACCEPT_THRESHOLD": str(demo.accept_threshold),
        "LABELLOOP_POOLS__SIMULATED__WORKERS": str(demo.crowd_workers),
        "LABELLOOP_POOLS__SIMULATED__MEAN_SERVICE_S": str(demo.crowd_mean_service_s),
        "LABELLOOP_POOLS__SIMULATED__SEED": str(demo.seed),
        "LABELLOOP_POOLS__EXPERTS__PORT": str(demo.expert_port),
        "LABELLOOP_ROUTER__MEASUREMENT_TIER": demo.measurement_tier,
        "LABELLOOP_POOLS__SIMULATED_EXPERTS__EXPERTS": str(demo.experts),
        "LABELLOOP_POOLS__SIMULATED_EXPERTS__MEAN_SERVICE_S": str(demo.expert_mean_service_s),
        "LABELLOOP_OPERATOR__PORT": str(web_port),
        "LABELLOOP_DASHBOARD__SAMPLE_EVERY_S": str(demo.sample_every_s),
        # The report covers the whole run at this resolution.
        "LABELLOOP_DASHBOARD__MAX_POINTS": str(int(demo.timeout_s * 3 / demo.sample_every_s) + 1_000),
    }
    log_file = log_path.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "info"],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop_worker(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _bootstrap(console: Console) -> str:
    explicit = os.environ.get("LABELLOOP_KAFKA__BOOTSTRAP_SERVERS")
    if explicit:
        console.print(f"using the Kafka at {explicit}")
        return explicit
    from streams.broker import LocalBroker

    console.print("starting the local Apache Kafka broker (first run fetches it from Maven Central)...")
    return LocalBroker().start()


def _publish_stream(
    publisher: PredictionPublisher,
    truth_topic: str,
    stream: list[SimulatedEvent],
    demo: DemoSettings,
    on_progress: Any,
) -> int:
    poison = [
        record for event in stream[:: max(1, len(stream) // 8)] for record in poison_records(event.event)
    ][: demo.malformed]
    poison_every = max(1, len(stream) // max(1, len(poison)))
    started = time.monotonic()
    due = 0.0
    sent_poison = 0
    for position, simulated in enumerate(stream):
        share = position / len(stream)
        rate = demo.rate_per_s * (demo.surge_factor if demo.surge_from <= share < demo.surge_to else 1.0)
        due += 1.0 / rate
        ahead = due - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
        # The production model predicts as the event is published (the stream was scored ahead of
        # time), so time to label is measured from here, as it would be for a real producer.
        event = simulated.event.model_copy(update={"created_at": utc_now()})
        publisher.publish_raw(event.event_id.encode(), json.dumps(simulated.truth).encode(), truth_topic)
        publisher.publish(event)
        if poison and position % poison_every == 0 and sent_poison < len(poison):
            record = poison[sent_poison]
            publisher.publish_raw(record.key, record.value)
            sent_poison += 1
        on_progress(position + 1)
    publisher.flush()
    return sent_poison


def run_demo(demo: DemoSettings, console: Console | None = None) -> bool:
    """Run the demo; True when every event got exactly one trusted label and bad input hit the DLQ."""
    console = console or Console()
    started = time.monotonic()
    run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    home = demo.home / run_id
    home.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=_bootstrap(console)),
        topics=TopicSettings(prefix=f"demo.{run_id}."),
        app_id=f"labelloop-demo-{run_id}",
        data_dir=home / "worker",
    )
    names = topic_names(settings)
    create_topics(settings)
    console.print(f"topics created under prefix [bold]{settings.topics.prefix}[/]; starting a worker")
    web_port = _free_port(demo.web_port)
    worker = _start_worker(settings, demo, home / "worker.log", web_port)
    console.print(f"dashboard: http://127.0.0.1:{web_port}/dashboard (metrics: /metrics)")
    if demo.expert_port:
        console.print(
            f"expert page: http://127.0.0.1:{demo.expert_port}/ "
            f"({demo.experts} simulated experts answer there too)"
        )
    stream_settings = StreamSettings(events=demo.events, seed=demo.seed, run_id=f"demo-{run_id}")
    stream = list(simulate(stream_settings))
    view = LoopView()
    stop = threading.Event()
    reader = threading.Thread(target=_reader, args=(settings, view, stop), daemon=True)
    reader.start()
    published = 0
    sent_poison = 0
    series: dict[str, Any] | None = None
    try:
        with Live(
            _live_table(view, 0, demo.events, started),
            console=console,
            refresh_per_second=2,
            transient=False,
        ) as live:

            def progress(count: int) -> None:
                nonlocal published
                published = count
                if count % 20 == 0:
                    live.update(_live_table(view, published, demo.events, started))

            with PredictionPublisher(settings) as publisher:
                sent_poison = _publish_stream(publisher, names.truth, stream, demo, progress)
            deadline = time.monotonic() + demo.timeout_s
            while time.monotonic() < deadline and worker.poll() is None:
                with view.lock:
                    done = len(view.labels) >= demo.events and sum(view.dlq_kinds.values()) >= sent_poison
                live.update(_live_table(view, published, demo.events, started))
                if done:
                    break
                time.sleep(0.5)
            time.sleep(2.0)  # let the last metrics and statuses arrive
            live.update(_live_table(view, published, demo.events, started))
        series = _run_series(web_port, console)
    finally:
        _stop_worker(worker)
        stop.set()
        reader.join(timeout=5)
    summary = summarize(view, stream, stream_settings, sent_poison, time.monotonic() - started)
    (home / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    _print_summary(console, summary, home)
    if series is not None:
        report = write_report(home / "report.html", series, summary, f"demo report {run_id}")
        console.print(f"report (opens offline): [bold]{report.resolve()}[/]")
    return bool(summary["ok"])


def _run_series(web_port: int, console: Console) -> dict[str, Any] | None:
    """The worker's dashboard series of the whole run (None when its web server did not answer)."""
    import httpx

    try:
        response = httpx.get(f"http://127.0.0.1:{web_port}/dashboard/series.json?minutes=0", timeout=30)
        response.raise_for_status()
    except httpx.HTTPError as error:
        console.print(f"[red]no report: the worker's dashboard did not answer ({error})[/]")
        return None
    series: dict[str, Any] = response.json()
    series["expert_page"] = None  # the page is gone with the worker
    return series


def summarize(
    view: LoopView,
    stream: list[SimulatedEvent],
    stream_settings: StreamSettings,
    sent_poison: int,
    elapsed_s: float,
) -> dict[str, Any]:
    """The demo's figures: routing shares, label accuracy against the truth, drift, DLQ."""
    truth = {simulated.event.event_id: simulated.truth for simulated in stream}
    index = {simulated.event.event_id: simulated.index for simulated in stream}
    labels = [label for event_id, label in view.labels.items() if event_id in truth]
    human = [label for label in labels if label.is_human]
    accepted = [label for label in labels if not label.is_human]

    def accuracy(group: list[Label]) -> float | None:
        return (
            round(sum(label.label == truth[label.event_id] for label in group) / len(group), 4)
            if group
            else None
        )

    model_accuracy = sum(s.event.predicted_label == s.truth for s in stream) / len(stream)
    drift_event = int(stream_settings.events * stream_settings.drift_at)
    online = view.metrics["online"].metrics if "online" in view.metrics else {}
    production = view.metrics["production"].metrics if "production" in view.metrics else {}
    first_labels = {event_id: label for event_id, label in view.first_revisions.items() if event_id in truth}
    model_accepted = [label for label in first_labels.values() if label.route == "accepted"]
    true_precision = (
        sum(label.label == truth[label.event_id] for label in model_accepted) / len(model_accepted)
        if model_accepted
        else None
    )
    routes = Counter(label.route for label in first_labels.values())
    audits = [label for label in labels if label.route == "audit"]
    crowd_first = [label for label in first_labels.values() if label.is_human]
    healed = [
        label for label in labels if label.is_human and label.revision > (2 if label.route == "audit" else 1)
    ]
    return {
        "events": len(stream),
        "labeled": len(labels),
        "label_records": view.label_records,
        "accepted_share": round(len(accepted) / max(1, len(labels)), 4),
        "reviewed_share": round(len(human) / max(1, len(labels)), 4),
        "label_accuracy": accuracy(labels),
        "accepted_accuracy": accuracy(accepted),
        "crowd_accuracy": accuracy(human),
        "human_first_revision_accuracy": accuracy(crowd_first),
        "revised_by_experts_or_healing": len(healed),
        "expert_labels": sum(label.source == "expert" for label in labels),
        "escalated": sum("escalated" in (label.reason or "") for label in view.first_revisions.values()),
        "re_aggregated": sum("re-aggregated" in (label.reason or "") for label in labels),
        "labelers_flagged": sorted(w for w, skill in view.skills.items() if skill.flagged_spammer),
        "production_model_accuracy": round(model_accuracy, 4),
        **{
            f"online_model_{name}": round(online[metric].value, 4) if metric in online else None
            for name, metric in ONLINE_FIGURES.items()
        },
        "routes": dict(routes),
        "shed_by_capacity": sum("not sent" in (label.reason or "") for label in model_accepted),
        "audits": len(audits),
        "audit_corrections": sum(label.label != label.provenance.model_label for label in audits),
        "auto_accept_precision_estimate": (
            _estimate(production["auto_accept_precision"]) if "auto_accept_precision" in production else None
        ),
        "auto_accept_precision_true": round(true_precision, 4) if true_precision is not None else None,
        "recall_estimates": {
            name: _estimate(value) for name, value in production.items() if name.startswith("recall.")
        },
        "drift_injected_at_event": drift_event,
        "drift_alerts": [
            {
                "message": alert.message,
                "observation": alert.observation,
                "after_event": max(
                    (
                        index.get(label.event_id, 0)
                        for label in human
                        if label.decided_at <= alert.detected_at
                    ),
                    default=None,
                ),
            }
            for alert in view.alerts
        ],
        "policy_changes": [
            {
                "version": policy.version,
                "accept_threshold": policy.accept_threshold,
                "control_share": policy.control_share,
                "reason": policy.reason,
            }
            for policy in view.policies[1:]
        ],
        "dlq_records": sum(view.dlq_kinds.values()),
        "dlq_by_kind": dict(view.dlq_kinds),
        "malformed_sent": sent_poison,
        "elapsed_s": round(elapsed_s, 1),
        "ok": len(labels) == len(stream) and sum(view.dlq_kinds.values()) == sent_poison,
    }


def _estimate(estimate: Any) -> str:
    interval = (
        f" [{estimate.lower:.3f}, {estimate.upper:.3f}]"
        if estimate.lower is not None and estimate.upper is not None
        else ""
    )
    return f"{estimate.value:.3f}{interval} (n={estimate.n})"


def _print_summary(console: Console, summary: dict[str, Any], home: Path) -> None:
    table = Table(title="Labelloop demo: summary", show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value")
    for key in (
        "events",
        "labeled",
        "routes",
        "shed_by_capacity",
        "audits",
        "audit_corrections",
        "auto_accept_precision_estimate",
        "auto_accept_precision_true",
        "recall_estimates",
        "accepted_share",
        "reviewed_share",
        "label_accuracy",
        "accepted_accuracy",
        "crowd_accuracy",
        "human_first_revision_accuracy",
        "escalated",
        "expert_labels",
        "revised_by_experts_or_healing",
        "re_aggregated",
        "labelers_flagged",
        "production_model_accuracy",
        "online_model_accuracy",
        "online_model_rolling_accuracy",
        "online_model_macro_f1",
        "online_model_log_loss",
        "drift_injected_at_event",
        "dlq_records",
        "malformed_sent",
        "elapsed_s",
    ):
        table.add_row(key.replace("_", " "), str(summary[key]))
    for alert in summary["drift_alerts"]:
        table.add_row("drift alert", f"{alert['message']} (around event {alert['after_event']})")
    for policy in summary["policy_changes"]:
        table.add_row(f"routing policy v{policy['version']}", policy["reason"])
    console.print(Panel(table, border_style="green" if summary["ok"] else "red"))
    console.print(f"summary written to {home / 'summary.json'}; worker log {home / 'worker.log'}")
    if not summary["ok"]:
        console.print("[red]not every event got its label, or the DLQ count differs from what was sent[/]")
