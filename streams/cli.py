"""The ``labelloop`` command: broker, topics, worker, produce, consume, demo.

Every command reads the same ``LABELLOOP_*`` settings as the workers, so
pointing the CLI at your own Kafka is one environment variable:
``LABELLOOP_KAFKA__BOOTSTRAP_SERVERS=broker1:9092,broker2:9092``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from streams.errors import LabelloopError

app = typer.Typer(
    help="Labelloop: a streaming human-in-the-loop labeling loop on Apache Kafka.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
broker_app = typer.Typer(
    help="The local Apache Kafka broker (single-node KRaft, from Maven Central).",
    no_args_is_help=True,
)
topics_app = typer.Typer(help="The topic catalogue.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")
app.add_typer(topics_app, name="topics")
console = Console(stderr=True)

PortOption = Annotated[int | None, typer.Option(help="Broker port (default: LABELLOOP_BROKER_PORT or 9092).")]


def _settings() -> object:
    from streams.settings import Settings

    return Settings()


def _local_broker(port: int | None) -> object:
    """The local broker on ``port``; another port than the configured one gets its own data folder.

    So ``labelloop broker stop --port 19092`` can never stop the broker of another port.
    """
    from streams.broker import BrokerSettings, LocalBroker

    configured = BrokerSettings()
    if port is None or port == configured.port:
        return LocalBroker(configured)
    return LocalBroker(
        BrokerSettings(port=port, controller_port=port + 1, home=configured.home.with_name(f"kafka-{port}"))
    )


@broker_app.command("start")
def broker_start(port: PortOption = None) -> None:
    """Fetch Kafka (first time), format storage and start the broker; idempotent."""
    from streams.broker import LocalBroker

    broker = _local_broker(port)
    assert isinstance(broker, LocalBroker)
    started = time.monotonic()
    bootstrap = broker.start()
    console.print(f"[green]Kafka is up[/] at {bootstrap} ({time.monotonic() - started:.1f}s)")
    typer.echo(bootstrap)


@broker_app.command("stop")
def broker_stop(port: PortOption = None) -> None:
    """Stop the local broker (if this project started it)."""
    from streams.broker import LocalBroker

    broker = _local_broker(port)
    assert isinstance(broker, LocalBroker)
    console.print("stopped" if broker.stop() else "no local broker was running")


@broker_app.command("status")
def broker_status(port: PortOption = None) -> None:
    """Say whether the local broker runs and answers."""
    from streams.broker import LocalBroker

    broker = _local_broker(port)
    assert isinstance(broker, LocalBroker)
    status = broker.status()
    console.print(
        f"bootstrap {status.bootstrap}: pid {status.pid or '-'}, "
        f"{'reachable' if status.reachable else 'not reachable'}"
    )
    raise typer.Exit(0 if status.reachable else 1)


@topics_app.command("create")
def topics_create() -> None:
    """Create every topic of the catalogue that is missing and verify the others."""
    from streams.settings import Settings
    from streams.topics import create_topics

    report = create_topics(Settings())
    console.print(f"created {len(report.created)}, verified {len(report.existing)} existing")
    for name in report.created:
        typer.echo(f"created {name}")


@topics_app.command("list")
def topics_list() -> None:
    """Show the catalogue under the current settings."""
    from streams.settings import Settings
    from streams.topics import catalogue

    table = Table("topic", "partitions", "cleanup", "what")
    for topic in catalogue(Settings()):
        table.add_row(topic.name, str(topic.partitions), topic.configs["cleanup.policy"], topic.doc)
    Console().print(table)


@topics_app.command("delete")
def topics_delete(
    yes: Annotated[bool, typer.Option("--yes", help="Really delete.")] = False,
) -> None:
    """Delete every catalogue topic under the current prefix (data is lost)."""
    from streams.settings import Settings
    from streams.topics import delete_topics

    if not yes:
        raise typer.BadParameter("deleting topics loses their data: pass --yes")
    for name in delete_topics(Settings()):
        typer.echo(f"deleted {name}")


@app.command()
def worker(
    loglevel: Annotated[str, typer.Option(help="faust log level.")] = "info",
) -> None:
    """Run a stream worker: every stage of the loop, with the simulated crowd."""
    from faust.worker import Worker

    from agents.settings import StageSettings
    from agents.worker import build_worker
    from streams.settings import Settings

    built = build_worker(Settings(), StageSettings())
    Worker(built.app, loglevel=loglevel, quiet=True).execute_from_commandline()


@app.command()
def produce(
    source: Annotated[Path, typer.Argument(help="JSON lines or a JSON array of predictions; - for stdin.")],
    raw: Annotated[
        bool, typer.Option(help="Send lines as they are, unvalidated (the loop's DLQ judges).")
    ] = False,
) -> None:
    """Publish predictions (validated first unless --raw; invalid ones are reported, not sent)."""
    from pydantic import ValidationError

    from schemas import PredictionEvent
    from streams.sdk import PredictionPublisher
    from streams.settings import Settings

    text = sys.stdin.read() if str(source) == "-" else source.read_text(encoding="utf-8")
    stripped = text.strip()
    items: list[str] = (
        [json.dumps(item) for item in json.loads(stripped)]
        if stripped.startswith("[")
        else [line for line in text.splitlines() if line.strip()]
    )
    rejected = 0
    with PredictionPublisher(Settings()) as publisher:
        for number, item in enumerate(items, start=1):
            if raw:
                key = json.loads(item).get("event_id") if item.lstrip().startswith("{") else None
                publisher.publish_raw(key.encode() if isinstance(key, str) else None, item.encode())
                continue
            try:
                publisher.publish(PredictionEvent.model_validate_json(item))
            except ValidationError as error:
                rejected += 1
                console.print(
                    f"[red]item {number} rejected:[/] {error.errors()[0]['msg']} "
                    f"at {'.'.join(map(str, error.errors()[0]['loc']))}"
                )
    console.print(f"published {publisher.published}, rejected {rejected}")
    raise typer.Exit(1 if rejected else 0)


@app.command()
def consume(
    topic: Annotated[str, typer.Argument(help="Catalogue name: labels, predictions.dlq, pool-status, ...")],
    follow: Annotated[bool, typer.Option(help="Keep reading new records.")] = False,
    idle_s: Annotated[
        float, typer.Option(help="Without --follow: stop after this long with nothing new.")
    ] = 3.0,
) -> None:
    """Print a topic's records as JSON lines (DLQ records with their reason headers)."""
    from streams.codec import headers_dict
    from streams.sdk import read_records
    from streams.settings import Settings
    from streams.topics import topic_names

    settings = Settings()
    name = topic_names(settings)[topic]
    while True:
        for record in read_records(settings, name, idle_s=idle_s):
            line: dict[str, object] = {
                "partition": record.partition,
                "offset": record.offset,
                "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
            }
            try:
                line["value"] = json.loads(record.value) if record.value else None
            except ValueError:
                line["value_text"] = (record.value or b"").decode("utf-8", "replace")[:2_000]
            if record.headers:
                line["headers"] = headers_dict(record.headers)
            typer.echo(json.dumps(line, default=str))
        if not follow:
            return


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="Predictions to replay.")] = 4_000,
    rate: Annotated[float, typer.Option(help="Predictions per second (before the surge).")] = 40.0,
    malformed: Annotated[int, typer.Option(help="Malformed records mixed in.")] = 60,
    timeout_s: Annotated[float, typer.Option(help="Give up after this long.")] = 600.0,
) -> None:
    """The embedded default: broker, topics, a worker, a drifting stream, a live view and a summary."""
    from agents.simulation.demo import DemoSettings, run_demo

    ok = run_demo(DemoSettings(events=events, rate_per_s=rate, malformed=malformed, timeout_s=timeout_s))
    raise typer.Exit(0 if ok else 1)


@app.command("export-schemas")
def export_schemas() -> None:
    """Write the JSON Schema of the public models to schemas/json/."""
    from schemas.export import export

    for path in export():
        typer.echo(f"wrote {path}")


def main() -> None:
    """Console-script entry point: clear one-line errors for the errors we raise on purpose."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app()
    except LabelloopError as error:
        console.print(f"[red]error:[/] {error}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
