"""The fetch loop's ``wait_first`` without four tasks per record consumed.

faust's fetch loop hands every record to the streams with
``wait_first(callback(message), self.suspend_flow.wait())``: mode wraps the callback,
the event's wait and the service's stopped and crashed events in four tasks and
cancels three of them, for every record consumed (a profile of the worker under
``bench.throughput``'s load, README F1).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults

from streams.patches.pins import Pin

UPSTREAM = "none filed: a cost of mode's Service.wait_first in faust-streaming 0.15's fetch loop"
RELIES_ON = (
    Pin("faust.transport.drivers.aiokafka:Consumer", "wait_first", parameters=("self", "coros", "timeout")),
    Pin("mode.services:WaitResults", "_fields"),
    Pin("mode.services:Service", "_stopped", assigned_in="__init__"),
    Pin("mode.services:Service", "_crashed", assigned_in="__init__"),
)


class Resumed(Awaitable[Any]):
    """The rest of a coroutine that already ran up to its first wait, as an awaitable for a task.

    ``waiting`` is what the coroutine's first step yielded (the future it waits on). A task
    awaiting this waits on that, then drives the coroutine on, passing in whatever the
    task sends or throws (a cancellation reaches the coroutine as it would have).

    >>> async def twice():
    ...     await asyncio.sleep(0)
    ...     return 2
    >>> async def main():
    ...     coro = twice()
    ...     return await Resumed(coro, coro.send(None))
    >>> asyncio.run(main())
    2
    """

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting: Any) -> None:
        self._coro = coro
        self._waiting = waiting

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, waiting = self._coro, self._waiting
        while True:
            try:
                sent = yield waiting
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as error:  # thrown in by the task: the coroutine decides
                try:
                    waiting = coro.throw(error)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    waiting = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class EagerWaitFirst(faust_aiokafka.Consumer):
    """faust's consumer whose ``wait_first`` runs the first coroutine's first step at once."""

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:  # noqa: ASYNC109 - mode's signature
        """mode's ``wait_first``, without four tasks when the first coroutine finishes at once.

        The callback nearly always finishes without waiting (the streams' buffers have room,
        flow control is on): here its first step runs at once, and when it finishes there, it
        is the winner and the other coroutines are closed unrun. When it has to wait (a full
        buffer, flow control off during a rebalance), the rest of it races the others in mode's
        ``wait_first`` exactly as before, so a rebalance still interrupts a delivery stuck on a
        full buffer.
        """
        first = coros[0] if coros else None
        if (
            timeout is not None
            or not asyncio.iscoroutine(first)
            or self._stopped.is_set()
            or self._crashed.is_set()
        ):
            return await super().wait_first(*coros, timeout=timeout)
        rest = coros[1:]
        try:
            waiting = first.send(None)
        except StopIteration as stop:
            for other in rest:
                if asyncio.iscoroutine(other):
                    other.close()
            return WaitResults([first], [stop.value], False)
        except BaseException:
            for other in rest:
                if asyncio.iscoroutine(other):
                    other.close()
            raise
        resumed = Resumed(first, waiting)
        done, results, stopped = await super().wait_first(resumed, *rest)
        return WaitResults([first if winner is resumed else winner for winner in done], results, stopped)
