"""The pools agent: starts the pools, reports PoolStatus, applies pool commands."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter

from agents.loop import Loop
from agents.pools.autoscaler import Autoscaler, AutoscalerSettings
from agents.pools.base import Companion, LabelingBackend
from schemas import Command, PoolCommand, Tier
from streams.broadcast import follow
from streams.codec import decode_json
from streams.errors import ContractError
from streams.runtime import Record, run_records

log = logging.getLogger(__name__)
_COMMAND = TypeAdapter[Command](Command)


def apply_command(command: PoolCommand, backends: Mapping[Tier, LabelingBackend]) -> bool:
    """Apply one pool command to the pool it names; False when no such pool runs here."""
    for backend in backends.values():
        if backend.name != command.pool:
            continue
        if command.action == "scale" and command.workers is not None:
            backend.resize(command.workers)
        elif command.action == "pause":
            backend.pause()
        elif command.action == "resume":
            backend.resume()
        log.info(
            "pool %s: %s by %s (%s)",
            command.pool,
            command.action,
            command.issued_by,
            command.reason,
        )
        return True
    return False


def steer(command: PoolCommand, scalers: Mapping[str, Autoscaler]) -> None:
    """An operator's command overrides the pool's autoscaler until released; "set" changes its limits."""
    scaler = scalers.get(command.pool)
    if scaler is None or command.issued_by == "autoscaler":
        return
    if command.action == "release":
        scaler.release()
    elif command.action == "set":
        changes = {
            name: value
            for name, value in (
                ("min_workers", command.min_workers),
                ("max_workers", command.max_workers),
                ("sla_p95_s", command.sla_p95_s),
                ("budget_per_hour", command.budget_per_hour),
            )
            if value is not None
        }
        try:
            scaler.settings = AutoscalerSettings.model_validate({**scaler.settings.model_dump(), **changes})
        except ValueError as error:  # e.g. a new minimum above the current maximum: keep the old limits
            log.warning("pool %s: set by %s refused: %s", command.pool, command.issued_by, error)
    elif command.action == "scale" and command.workers is not None:
        scaler.pin(command.workers)


def register(
    loop: Loop,
    backends: Mapping[Tier, LabelingBackend],
    bots: Companion | None = None,
    warmup_s: Mapping[str, float] | None = None,
) -> None:
    """Add pool lifecycle, status reports and commands to ``loop.app``.

    ``warmup_s``: the pools whose newcomers warm up before they work (name to seconds), so their
    autoscaler counts the warm-up; ``bots`` start after the pools and stop before them.
    """
    names = loop.names
    status = loop.output(names.pool_status)
    commands_out = loop.output(names.commands)
    pools = loop.stages.pools
    # One autoscaler per pool; a pool whose newcomers warm up before they work says so.
    warmups = warmup_s or {}
    scalers = {
        backend.name: Autoscaler(
            pools.autoscaler.model_copy(update={"warmup_s": warmups[backend.name]})
            if backend.name in warmups
            else pools.autoscaler
        )
        for backend in backends.values()
    }
    dead_letters = loop.dead_letters("pools")
    counters = loop.counters
    reporter = loop.worker_id

    @loop.app.task  # type: ignore[untyped-decorator]
    async def start_pools() -> None:
        for backend in backends.values():
            await backend.start()
        if bots is not None:
            bots.start()

    async def stop_pools(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        if bots is not None:
            await bots.stop()
        for backend in backends.values():
            await backend.stop()

    # Before faust flushes its producer: pools stop (the expert page frees its port).
    loop.app.on_before_shutdown.connect(stop_pools)

    @loop.app.timer(loop.stages.pools.status_every_s)  # type: ignore[untyped-decorator]
    async def report_status() -> None:
        now = loop.clock()
        for backend in backends.values():
            report = backend.status(now).model_copy(update={"reporter": reporter})
            command = None
            if pools.autoscaler_enabled:
                scaler = scalers[backend.name]
                command = scaler.decide(report, time.monotonic())
                if scaler.last is not None and report.workers_needed is None:
                    report = report.model_copy(update={"workers_needed": scaler.last.workers})
            await status.send(backend.name, report)
            loop.metrics.observe_pool(report)
            if command is not None:
                # Applied here, to this worker's pool (each worker sizes its own); published on
                # the commands topic so operators and the CLI see every decision and its reason.
                apply_command(command, backends)
                await commands_out.send(command.pool, command)

    async def check_command(record: Record) -> None:
        # The group's consumer owns the topic's DLQ: a malformed command goes there once.
        decode_json(_COMMAND, record.value, "Command")

    async def on_command(record: Record) -> None:
        # Every worker reads every command (no consumer group): each runs its own pools, and an
        # operator's scale, pause or set must reach all of them. Replayed from the beginning, so a
        # restarted worker comes back to the pools' current state.
        try:
            command = decode_json(_COMMAND, record.value, "Command")
        except ContractError:
            return  # dead-lettered by check_command
        if isinstance(command, PoolCommand):
            if command.issued_by == "autoscaler":
                return  # applied by the worker whose autoscaler decided it
            counters["pools.commands"] += 1
            steer(command, scalers)
            apply_command(command, backends)

    @loop.app.agent(loop.topic(names.commands), name="pool-commands")
    async def commands(stream: Any) -> None:
        async for _ in run_records(stream, check_command, dead_letters):
            pass

    @loop.app.task  # type: ignore[untyped-decorator]
    async def follow_commands() -> None:
        await follow(loop.settings, [names.commands], on_command)
