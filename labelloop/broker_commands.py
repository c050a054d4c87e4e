"""``labelloop broker`` and ``labelloop topics``: the local Kafka broker and the topic catalogue."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

broker_app = typer.Typer(
    help="The local Apache Kafka broker (single-node KRaft, from Maven Central).",
    no_args_is_help=True,
)
topics_app = typer.Typer(help="The topic catalogue.", no_args_is_help=True)
console = Console(stderr=True)

PortOption = Annotated[int | None, typer.Option(help="Broker port (default: LABELLOOP_BROKER_PORT or 9092).")]


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
    from streams.topic_admin import create_topics

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
    from streams.topic_admin import delete_topics

    if not yes:
        raise typer.BadParameter("deleting topics loses their data: pass --yes")
    for name in delete_topics(Settings()):
        typer.echo(f"deleted {name}")
