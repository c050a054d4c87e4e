"""The ``labelloop`` command: broker, topics, worker, produce, consume, demo, pools.

Every command reads the same ``LABELLOOP_*`` settings as the workers, so
pointing the CLI at your own Kafka is one environment variable:
``LABELLOOP_KAFKA__BOOTSTRAP_SERVERS=broker1:9092,broker2:9092``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

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
pools_app = typer.Typer(
    help="Operator controls: see the pools, scale, pause, resume, set limits, release to the autoscaler.",
    no_args_is_help=True,
)
app.add_typer(broker_app, name="broker")
app.add_typer(topics_app, name="topics")
explorer_app = typer.Typer(
    help="The record explorer's index: feed it from the topics, or rebuild it.", no_args_is_help=True
)
app.add_typer(pools_app, name="pools")
app.add_typer(explorer_app, name="explorer")
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


PoolName = Annotated[str, typer.Argument(help="The pool's name (as in `labelloop pools status`).")]
ReasonOption = Annotated[str, typer.Option(help="Why: recorded with the command on the commands topic.")]
OperatorOption = Annotated[
    str | None, typer.Option(help="Who issues it (issued_by=operator:<name>; default: your login).")
]


def _operator_command(pool: str, action: str, reason: str, operator: str | None, **fields: Any) -> None:
    """Build, send and confirm one operator command; a bad one is refused before anything is sent."""
    import asyncio
    import getpass

    from schemas import utc_now
    from streams.operator import KafkaCommandSender, OperatorCommandError, build_command
    from streams.settings import Settings

    try:
        command = build_command(
            pool, action, operator=operator or getpass.getuser(), reason=reason, now=utc_now(), **fields
        )
    except OperatorCommandError as error:
        console.print(f"[red]refused:[/] {error.message}")
        raise typer.Exit(2) from None

    async def send() -> None:
        async with KafkaCommandSender(Settings()) as sender:
            await sender(command)

    asyncio.run(send())
    typer.echo(command.to_json_bytes().decode())
    console.print(
        f"sent: pool {pool} is back with the autoscaler"
        if action == "release"
        else f"sent {action} for pool {pool}; overrides the autoscaler until `pools release {pool}`"
    )


@pools_app.command("status")
def pools_status(
    once: Annotated[
        bool, typer.Option("--once", help="Print the table once and exit (for scripts).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --once: one JSON line per pool.")] = False,
    refresh_s: Annotated[float, typer.Option(help="Seconds between two refreshes.", min=0.2)] = 2.0,
) -> None:
    """The pools live: backlog, arrivals, capacity, workers, SLA state, cost per hour, who is in control."""
    import asyncio

    from rich.live import Live

    from schemas import utc_now
    from streams.operator import COLUMNS, read_board
    from streams.settings import Settings

    settings = Settings()

    def table() -> Table:
        board = asyncio.run(read_board(settings))
        now = utc_now()
        if as_json:
            for document in board.as_json(now):
                typer.echo(json.dumps(document, default=str))
        shown = Table(*COLUMNS, title=f"pools at {now:%H:%M:%S} UTC")
        for row in board.rows(now):
            shown.add_row(*row.cells())
        return shown

    if once:
        built = table()
        if not as_json:
            out = Console() if sys.stdout.isatty() else Console(width=220)
            out.print(built if built.row_count else "no pool has reported on pool-status yet")
        return
    with Live(table(), console=Console(), auto_refresh=False) as live:
        try:
            while True:
                time.sleep(refresh_s)
                live.update(table(), refresh=True)
        except KeyboardInterrupt:
            pass


@pools_app.command("scale")
def pools_scale(
    pool: PoolName,
    workers: Annotated[int, typer.Argument(help="How many workers the pool should have.")],
    reason: ReasonOption = "scaled by an operator",
    operator: OperatorOption = None,
) -> None:
    """Set a pool's number of workers (overrides the autoscaler until released)."""
    _operator_command(pool, "scale", reason, operator, workers=workers)


@pools_app.command("pause")
def pools_pause(
    pool: PoolName, reason: ReasonOption = "paused by an operator", operator: OperatorOption = None
) -> None:
    """Stop handing tasks to a pool (tasks already out finish)."""
    _operator_command(pool, "pause", reason, operator)


@pools_app.command("resume")
def pools_resume(
    pool: PoolName, reason: ReasonOption = "resumed by an operator", operator: OperatorOption = None
) -> None:
    """Hand tasks to a paused pool again."""
    _operator_command(pool, "resume", reason, operator)


@pools_app.command("set")
def pools_set(
    pool: PoolName,
    min_workers: Annotated[int | None, typer.Option("--min", help="Fewest workers.")] = None,
    max_workers: Annotated[int | None, typer.Option("--max", help="Most workers.")] = None,
    sla_p95_s: Annotated[float | None, typer.Option("--sla", help="Time-to-label SLA, p95 seconds.")] = None,
    budget_per_hour: Annotated[float | None, typer.Option("--budget", help="Most spend per hour.")] = None,
    reason: ReasonOption = "limits set by an operator",
    operator: OperatorOption = None,
) -> None:
    """Change a pool's bounds, SLA or budget (only the options given change)."""
    _operator_command(
        pool,
        "set",
        reason,
        operator,
        min_workers=min_workers,
        max_workers=max_workers,
        sla_p95_s=sla_p95_s,
        budget_per_hour=budget_per_hour,
    )


@pools_app.command("release")
def pools_release(
    pool: PoolName, reason: ReasonOption = "released to the autoscaler", operator: OperatorOption = None
) -> None:
    """Give a pool back to the autoscaler."""
    _operator_command(pool, "release", reason, operator)


@explorer_app.command("run")
def explorer_run() -> None:
    """Feed the explorer's index from the topics until interrupted (one indexer for a shared database)."""
    import asyncio

    from agents.explorer.indexer import Indexer
    from agents.explorer.query import Explorer
    from agents.settings import StageSettings
    from streams.settings import Settings

    settings, explorer_settings = Settings(), StageSettings().explorer
    explorer = Explorer.from_settings(settings, explorer_settings)
    console.print(f"indexing into {explorer.store.engine.url.render_as_string(hide_password=True)}")
    indexer = Indexer(settings, explorer.store, explorer_settings)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(indexer.run())
    console.print(f"{indexer.stats.records} records, skipped {dict(indexer.stats.skipped) or 'none'}")


@explorer_app.command("rebuild")
def explorer_rebuild() -> None:
    """Drop the explorer's index and read it again from the topics (up to their current end)."""
    from agents.explorer.indexer import rebuild
    from agents.explorer.query import Explorer
    from agents.settings import StageSettings
    from streams.settings import Settings

    settings, explorer_settings = Settings(), StageSettings().explorer
    explorer = Explorer.from_settings(settings, explorer_settings)
    stats = rebuild(settings, explorer.store, explorer_settings)
    console.print(
        f"rebuilt: {stats.records} records in {stats.elapsed_s:.1f}s ({stats.records_per_s:,.0f}/s), "
        f"{explorer.store.count()} events, skipped {dict(stats.skipped) or 'none'}"
    )


@app.command()
def explore(
    query: Annotated[str | None, typer.Argument(help="Words to search for (full text).")] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            "-w",
            help="A filter as name=value, e.g. -w task=fraud -w disagree=true -w conf_max=0.7 (repeatable).",
        ),
    ] = None,
    similar: Annotated[str | None, typer.Option(help="List the events most like this event_id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Rows to show.")] = 20,
) -> None:
    """Search the explorer's index from the terminal: a table of matching events and the facet counts."""
    from pydantic import ValidationError

    from agents.explorer.query import Explorer, ExplorerFilter
    from streams.settings import Settings

    params: dict[str, str] = {"per_page": str(limit)}
    for item in where or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r} is not name=value", param_hint="--where")
        params[name.strip()] = value.strip()
    if query:
        params["q"] = query
    try:
        f = ExplorerFilter.from_query(params)
    except ValidationError as error:
        raise typer.BadParameter(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        ) from None
    explorer = Explorer.from_settings(Settings())
    out = Console()
    table = Table(show_lines=False)
    for name in ("event_id", "task", "predicted", "conf", "trusted", "source", "route", "rev", "text"):
        table.add_column(
            name, overflow="ellipsis", no_wrap=name != "text", max_width=60 if name == "text" else None
        )
    if similar is not None:
        hits = explorer.similar(event_id=similar, k=limit)
        rows = [hit.row for hit in hits]
        title = f"{len(rows)} events most like {similar}"
    else:
        page = explorer.search(f)
        rows = page.rows
        title = f"{len(rows)} of {page.total} events"
    for row in rows:
        table.add_row(
            row.event_id,
            row.task,
            row.predicted,
            f"{row.confidence:.2f}",
            row.trusted or "",
            row.source or "",
            row.route or "",
            str(row.n_revisions),
            (row.text or "").replace("\n", " "),
        )
    table.title = title
    out.print(table)
    if similar is None:
        for facet, counts in page.facets.items():
            shown = ", ".join(f"{value} {count}" for value, count in list(counts.items())[:8])
            out.print(f"[bold]{facet}[/]: {shown}")


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
