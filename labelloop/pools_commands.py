"""``labelloop pools``: the operator's controls: see the pools, scale, pause, resume, set limits, release."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

pools_app = typer.Typer(
    help="Operator controls: see the pools, scale, pause, resume, set limits, release to the autoscaler.",
    no_args_is_help=True,
)
console = Console(stderr=True)


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
