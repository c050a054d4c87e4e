"""The ``labelloop explorer`` commands (feed or rebuild the explorer's index) and ``labelloop explore``."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

explorer_app = typer.Typer(
    help="The record explorer's index: feed it from the topics, or rebuild it.", no_args_is_help=True
)
console = Console(stderr=True)


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
    from agents.settings import StageSettings
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
    explorer = Explorer.from_settings(Settings(), StageSettings().explorer)
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
