"""The ``labelloop`` command: worker, produce, consume, demo, export and replay; broker, topics, pools.

Every command reads the same ``LABELLOOP_*`` settings as the workers, so
pointing the CLI at your own Kafka is one environment variable:
``LABELLOOP_KAFKA__BOOTSTRAP_SERVERS=broker1:9092,broker2:9092``. The ``broker`` and ``topics``
commands are :mod:`labelloop.broker_commands`, the ``pools`` commands :mod:`labelloop.pools_commands`,
the explorer's :mod:`labelloop.explorer_commands`.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from labelloop.broker_commands import broker_app, topics_app
from labelloop.explorer_commands import explore, explorer_app
from labelloop.pools_commands import pools_app
from streams.errors import LabelloopError

app = typer.Typer(
    help="Labelloop: a streaming human-in-the-loop labeling loop on Apache Kafka.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(broker_app, name="broker")
app.add_typer(topics_app, name="topics")
app.add_typer(pools_app, name="pools")
app.add_typer(explorer_app, name="explorer")
app.command()(explore)
console = Console(stderr=True)


@app.command()
def worker(
    loglevel: Annotated[str, typer.Option(help="faust log level.")] = "info",
) -> None:
    """Run a stream worker: every stage of the loop, with the simulated crowd."""
    from faust.worker import Worker

    from agents.settings import StageSettings
    from agents.worker import build_worker, tune_collector
    from streams.settings import Settings

    settings = Settings()
    built = build_worker(settings, StageSettings())
    tune_collector(settings)
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


@app.command()
def export(
    out: Annotated[Path, typer.Option(help="Folder of snapshots: <out>/<snapshot-id>/.")] = Path("snapshots"),
    topic: Annotated[
        str | None, typer.Option(help="Full topic name to snapshot (default: the labels topic).")
    ] = None,
    every_human_labels: Annotated[
        int | None, typer.Option(min=1, help="Keep running: a new snapshot every N new human labels.")
    ] = None,
    every_s: Annotated[
        float | None, typer.Option(min=1.0, help="Keep running: a new snapshot every this many seconds.")
    ] = None,
) -> None:
    """Snapshot the trusted labels (latest revision per event) as Parquet with a manifest."""
    from streams.settings import Settings
    from streams.snapshot import Snapshot, SnapshotTrigger, export_topic, watch

    def done(path: Path, snapshot: Snapshot) -> None:
        console.print(
            f"{snapshot.manifest['label_count']} labels from {snapshot.manifest['topic']} "
            f"-> snapshot {snapshot.snapshot_id}"
        )
        typer.echo(f"{path} {snapshot.content_hash}")

    if every_human_labels is None and every_s is None:
        done(*export_topic(Settings(), out, topic=topic))
        return
    trigger = SnapshotTrigger(every_human_labels=every_human_labels, every_s=every_s)
    watch(Settings(), out, trigger, topic=topic, on_snapshot=done)


@app.command()
def replay(
    snapshot_dir: Annotated[
        Path,
        typer.Argument(help="A snapshot folder (with manifest.json).", exists=True, file_okay=False),
    ],
    topic: Annotated[str, typer.Option(help="Full name of the topic to republish the labels to.")],
    create: Annotated[
        bool, typer.Option("--create", help="Create the topic (compacted, like labels) if missing.")
    ] = False,
) -> None:
    """Republish a snapshot's Labels (wire JSON, keyed by event_id) to a topic, e.g. to retrain."""
    from streams.settings import Settings
    from streams.snapshot import replay as replay_snapshot

    report = replay_snapshot(Settings(), snapshot_dir, topic, create=create)
    console.print(
        f"replayed {report.published} labels of {report.snapshot_id} to {report.topic}"
        + (" (created)" if report.created_topic else "")
    )
    typer.echo(f"{report.topic} {report.published}")


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
