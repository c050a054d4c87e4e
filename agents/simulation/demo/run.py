"""The demo's run: broker, fresh topics, a worker, the replay with a surge and bad input, the ending."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.live import Live

from agents.dashboard.report import write_report
from agents.simulation.demo.render import live_table, print_summary
from agents.simulation.demo.settings import DemoSettings
from agents.simulation.demo.summary import summarize
from agents.simulation.demo.view import LoopView, read_into
from agents.simulation.demo.worker import free_port, start_worker, stop_worker
from agents.simulation.poison import poison_records
from agents.simulation.stream import SimulatedEvent, StreamSettings, simulate
from schemas import utc_now
from streams.sdk import PredictionPublisher
from streams.settings import KafkaSettings, Settings, TopicSettings
from streams.topic_admin import create_topics
from streams.topics import topic_names


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
    web_port = free_port(demo.web_port)
    worker = start_worker(settings, demo, home / "worker.log", web_port)
    console.print(f"dashboard: http://127.0.0.1:{web_port}/dashboard (metrics: /metrics)")
    console.print(
        f"record explorer: http://127.0.0.1:{web_port}/explorer/ (search, record pages, more like this;"
        f" afterwards: LABELLOOP_DATA_DIR={settings.data_dir} labelloop explore QUERY)"
    )
    if demo.expert_port:
        console.print(
            f"expert page: http://127.0.0.1:{demo.expert_port}/ "
            f"({demo.experts} simulated experts answer there too)"
        )
    stream_settings = StreamSettings(events=demo.events, seed=demo.seed, run_id=f"demo-{run_id}")
    stream = list(simulate(stream_settings))
    view = LoopView()
    stop = threading.Event()
    reader = threading.Thread(target=read_into, args=(settings, view, stop), daemon=True)
    reader.start()
    published = 0
    sent_poison = 0
    series: dict[str, Any] | None = None
    try:
        with Live(
            live_table(view, 0, demo.events, started),
            console=console,
            refresh_per_second=2,
            transient=False,
        ) as live:

            def progress(count: int) -> None:
                nonlocal published
                published = count
                if count % 20 == 0:
                    live.update(live_table(view, published, demo.events, started))

            with PredictionPublisher(settings) as publisher:
                sent_poison = _publish_stream(publisher, names.truth, stream, demo, progress)
            deadline = time.monotonic() + demo.timeout_s
            while time.monotonic() < deadline and worker.poll() is None:
                with view.lock:
                    done = len(view.labels) >= demo.events and sum(view.dlq_kinds.values()) >= sent_poison
                live.update(live_table(view, published, demo.events, started))
                if done:
                    break
                time.sleep(0.5)
            time.sleep(2.0)  # let the last metrics and statuses arrive
            live.update(live_table(view, published, demo.events, started))
        series = _run_series(web_port, console)
    finally:
        stop_worker(worker)
        stop.set()
        reader.join(timeout=5)
    summary = summarize(view, stream, stream_settings, sent_poison, time.monotonic() - started)
    (home / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print_summary(console, summary, home)
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
