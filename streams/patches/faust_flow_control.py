"""faust's flow control of the stream queues, whose resume clears them only after a suspend."""

from __future__ import annotations

from mode.utils.queues import FlowControlEvent

from streams.patches.pins import Pin

UPSTREAM = "none filed: faust-streaming 0.15's Recovery._resume_streams resumes a resumed flow"
RELIES_ON = (
    Pin("mode.utils.queues:FlowControlEvent", "resume", parameters=("self",)),
    Pin("mode.utils.queues:FlowControlEvent", "is_active", parameters=("self",)),
    Pin("faust.app.base:App", "flow_control"),
)


class FlowControl(FlowControlEvent):
    """faust's flow control of the stream queues, whose resume clears them only after a suspend.

    Resuming clears every stream's queue (faust's channels are ``clear_on_resume``):
    what was queued before the suspend belongs to the previous assignment. But
    faust's recovery resumes the flow twice: for the changelogs, then again in
    ``Recovery._resume_streams`` after it has resumed the stream partitions and
    while it seeks them to their committed offsets. Records fetched in between are
    in the streams' queues, of this assignment, and the second resume wiped them:
    never handled, never acknowledged, and when the seek had run before they were
    drained from the fetch buffer, never fetched again. The partition then sat
    at its end with its commit below them (seen in the restart loop test: the
    records of ``predictions[0]`` from 173 to 487 delivered to the router's queue,
    none handled, until the next restart). Here a resume of a flow that is not
    suspended leaves the queues as they are; after a suspend it clears them as
    faust does.

    >>> import asyncio
    >>> from mode.utils.queues import FlowControlQueue
    >>> async def demo() -> list[int]:
    ...     flow = FlowControl()
    ...     queue = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    ...     flow.resume()
    ...     queue.put_nowait("fetched after the resume")
    ...     flow.resume()                  # again, never suspended: kept
    ...     kept = queue.qsize()
    ...     flow.suspend()
    ...     flow.resume()                  # after a suspend: cleared
    ...     return [kept, queue.qsize()]
    >>> asyncio.run(demo())
    [1, 0]
    """

    def resume(self) -> None:
        if self.is_active():
            return
        super().resume()
