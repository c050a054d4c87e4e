"""The transport's consumer: a message fetched before a rebalance never gets its offset committed."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.app import create_app
from streams.settings import Settings
from streams.transport import GenerationSafeConsumer, Topic


def message(offset: int, generation_id: int) -> ConsumerMessage:
    return ConsumerMessage(
        "t.predictions", 0, offset, 0.0, 0, [], b"k", b"v", None, generation_id=generation_id
    )


def test_an_old_generations_message_is_acked_without_becoming_committable(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    app.topics._acking_topics.add("t.predictions")  # as for a topic an agent subscribes to
    consumer = app.consumer
    assert isinstance(consumer, GenerationSafeConsumer)
    app.flow_control.resume()  # as once the worker runs
    app.consumer_generation_id = 3
    tp = TP("t.predictions", 0)
    stale, fresh = message(16, generation_id=2), message(17, generation_id=3)
    consumer._unacked_messages.add(stale)

    assert consumer.ack(stale) is False
    assert stale.acked
    assert stale not in consumer._unacked_messages  # nothing (stream_wait_empty) waits for it
    assert list(consumer._acked[tp]) == []

    assert consumer.ack(fresh) is True
    assert list(consumer._acked[tp]) == [17]


def test_a_message_acked_while_flow_control_is_off_is_not_committable(tmp_path: Path) -> None:
    """During a rebalance's recovery streams drop what reaches them: it is delivered again after."""
    app = create_app(Settings(data_dir=tmp_path))
    app.topics._acking_topics.add("t.predictions")
    consumer = app.consumer
    app.consumer_generation_id = 3
    tp = TP("t.predictions", 0)
    app.flow_control.suspend()
    assert consumer.ack(message(20, generation_id=3)) is False
    app.flow_control.resume()
    assert consumer.ack(message(21, generation_id=3)) is True
    assert list(consumer._acked[tp]) == [21]


def _consumer(tmp_path: Path) -> GenerationSafeConsumer:
    app = create_app(Settings(data_dir=tmp_path))
    app.topics._acking_topics.add("t.predictions")
    consumer = app.consumer
    assert isinstance(consumer, GenerationSafeConsumer)
    app.flow_control.resume()
    app.consumer_generation_id = 3
    return consumer


def _drop(consumer: GenerationSafeConsumer, offset: int) -> None:
    """A delivery a stream drops during a rebalance's recovery (flow control off)."""
    consumer.app.flow_control.suspend()
    assert consumer.ack(message(offset, generation_id=3)) is False
    consumer.app.flow_control.resume()


def test_no_commit_passes_a_dropped_delivery_until_it_is_handled(tmp_path: Path) -> None:
    """faust commits 18 here (nothing committed yet), and a SIGKILL then loses offset 16."""
    consumer = _consumer(tmp_path)
    tp = TP("t.predictions", 0)
    assert consumer.ack(message(16, generation_id=2)) is False  # dropped at the rebalance
    assert consumer.ack(message(17, generation_id=3)) is True
    assert consumer._new_offset(tp) is None
    assert consumer.ack(message(16, generation_id=3)) is True  # its delivery after the seek
    assert consumer._new_offset(tp) == 18
    assert consumer.commit_floor.held() == {}


def test_a_single_dropped_offset_above_the_committed_one_holds_the_commit(tmp_path: Path) -> None:
    """faust lets a run start one above the committed offset: 31 unacked, 32-33 acked gave 34."""
    consumer = _consumer(tmp_path)
    tp = TP("t.predictions", 0)
    consumer._committed_offset[tp] = 31
    _drop(consumer, 31)
    for offset in (32, 33):
        assert consumer.ack(message(offset, generation_id=3)) is True
    assert consumer._new_offset(tp) is None
    assert sorted(consumer._acked[tp]) == [32, 33]  # kept for the commit after 31 is done
    consumer.ack(message(31, generation_id=3))
    assert consumer._new_offset(tp) == 34


def test_no_commit_passes_a_record_a_stream_still_handles(tmp_path: Path) -> None:
    """faust-streaming #606: the slow record at the head, the next ones acked."""
    consumer = _consumer(tmp_path)
    tp = TP("t.predictions", 0)
    consumer._committed_offset[tp] = 40
    slow = message(40, generation_id=3)
    consumer._unacked_messages.add(slow)  # taken by a stream (faust's Stream.__aiter__ tracks it)
    for offset in (41, 42):
        consumer.ack(message(offset, generation_id=3))
    assert consumer._new_offset(tp) is None
    consumer.ack(slow)
    assert consumer._new_offset(tp) == 43


def test_a_dropped_delivery_handled_before_is_not_held(tmp_path: Path) -> None:
    """The second delivery came first: the late ack of the dropped copy holds nothing."""
    consumer = _consumer(tmp_path)
    tp = TP("t.predictions", 0)
    consumer.ack(message(50, generation_id=3))
    assert consumer.ack(message(50, generation_id=2)) is False
    assert consumer.commit_floor.held() == {}
    assert consumer._new_offset(tp) == 51


def test_an_older_generations_record_in_flight_does_not_hold_the_commit(tmp_path: Path) -> None:
    consumer = _consumer(tmp_path)
    tp = TP("t.predictions", 0)
    old = message(60, generation_id=2)
    consumer._unacked_messages.add(old)
    consumer.ack(message(60, generation_id=3))
    assert consumer._new_offset(tp) == 61
    assert old not in consumer.commit_floor.held().get(tp, [])


def test_gaps_below_the_floor_count_as_acked_and_the_rest_stay(tmp_path: Path) -> None:
    """Offsets the fetch loop saw skipped (compaction) are filled as faust does, but not past the floor."""
    consumer = _consumer(tmp_path)
    tp = TP("t.predictions", 0)
    consumer._committed_offset[tp] = 10
    consumer._gap[tp].addi(11, 13)  # 11, 12 compacted away
    consumer._gap[tp].addi(15, 16)  # 15 too
    _drop(consumer, 14)
    for offset in (10, 13, 16):
        consumer.ack(message(offset, generation_id=3))
    assert consumer._new_offset(tp) == 14
    assert sorted(consumer._acked[tp]) == [16]
    assert [(gap.begin, gap.end) for gap in consumer._gap[tp]] == [(15, 16)]
    consumer._committed_offset[tp] = 14  # as the commit records it
    consumer.ack(message(14, generation_id=3))
    assert consumer._new_offset(tp) == 17


def test_a_held_offset_the_log_skipped_is_let_go(tmp_path: Path) -> None:
    """Compacted away after it was dropped: no delivery of it will come, so it holds nothing."""
    consumer = _consumer(tmp_path)
    tp = TP("t.predictions", 0)
    consumer._committed_offset[tp] = 10
    _drop(consumer, 11)
    consumer.ack(message(10, generation_id=3))
    consumer.ack(message(12, generation_id=3))
    assert consumer._new_offset(tp) == 11
    consumer._committed_offset[tp] = 11
    consumer._gap[tp].addi(11, 12)  # the fetch after the seek went from 10 to 12
    assert consumer._new_offset(tp) == 13
    assert consumer.commit_floor.held() == {}


def test_a_delivery_that_finishes_at_once_needs_no_tasks(tmp_path: Path) -> None:
    """faust's fetch loop: ``wait_first(callback(message), suspend_flow.wait())`` for every record."""

    async def main() -> None:
        consumer = _consumer(tmp_path)
        delivered: list[int] = []

        async def callback(offset: int) -> int:
            delivered.append(offset)
            return offset

        flow = consumer.suspend_flow.wait()
        tasks_before = len(asyncio.all_tasks())
        first = callback(7)
        done, results, stopped = await consumer.wait_first(first, flow)
        assert (done, results, stopped) == ([first], [7], False)
        assert delivered == [7]
        assert len(asyncio.all_tasks()) == tasks_before
        assert inspect.getcoroutinestate(flow) == inspect.CORO_CLOSED  # closed, never "not awaited"

    asyncio.run(main())


def test_a_delivery_that_waits_still_races_the_flow_event(tmp_path: Path) -> None:
    """A full buffer: the delivery waits; a rebalance (suspend_flow) interrupts it, as in faust."""

    async def main() -> None:
        consumer = _consumer(tmp_path)
        room: asyncio.Queue[int] = asyncio.Queue()
        cancelled: list[bool] = []

        async def callback() -> int:
            try:
                return await room.get()
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        waiting = callback()
        flow = consumer.suspend_flow.wait()
        racing = asyncio.ensure_future(consumer.wait_first(waiting, flow))
        await asyncio.sleep(0.01)
        assert not racing.done()
        consumer.suspend_flow.set()
        done, results, stopped = await racing
        assert (done, results, stopped) == ([flow], [True], False)
        assert cancelled == [True]

        consumer.suspend_flow.clear()
        waiting = callback()
        racing = asyncio.ensure_future(consumer.wait_first(waiting, consumer.suspend_flow.wait()))
        await asyncio.sleep(0.01)
        room.put_nowait(42)
        done, results, stopped = await racing
        assert (done, results, stopped) == ([waiting], [42], False)  # the caller's own coroutine

    asyncio.run(main())


def test_a_delivery_that_fails_at_once_raises(tmp_path: Path) -> None:
    async def main() -> None:
        consumer = _consumer(tmp_path)

        async def callback() -> None:
            raise ValueError("bad record")

        flow = consumer.suspend_flow.wait()
        with pytest.raises(ValueError, match="bad record"):
            await consumer.wait_first(callback(), flow)
        assert inspect.getcoroutinestate(flow) == inspect.CORO_CLOSED

    asyncio.run(main())


def test_topics_skip_the_producer_stampede_once_it_runs(tmp_path: Path) -> None:
    """``App.maybe_start_producer`` yields to the loop three times per call: not for a running producer."""
    app = create_app(Settings(data_dir=tmp_path))
    topic = app.topic("t.labels", key_type=bytes, value_type=bytes)
    assert isinstance(topic, Topic)
    assert isinstance(app.Table("t-published", partitions=4).changelog_topic, Topic)  # table writes too

    async def main() -> None:
        producer = app.producer
        producer._started.set()  # as once the worker runs
        assert await topic._get_producer() is producer

    asyncio.run(main())


def test_bytes_go_to_the_producer_directly_and_anything_else_through_faust(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    topic = app.topic("t.labels", key_type=bytes, value_type=bytes)
    sent: list[tuple[Any, ...]] = []
    wrapped: list[Any] = []

    async def main() -> None:
        producer = app.producer
        producer._started.set()

        async def send(*args: Any, **kwargs: Any) -> asyncio.Future[None]:
            sent.append((*args, *kwargs.values()))
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        producer.send = send  # type: ignore[method-assign]
        faust_way = topic.as_future_message

        def as_future_message(*args: Any, **kwargs: Any) -> Any:
            wrapped.append(args)
            return faust_way(*args, **kwargs)

        topic.as_future_message = as_future_message  # type: ignore[method-assign]
        await topic.send(key=b"e-1", value=b"{}", headers=[("h", b"1")])
        assert sent == [("t.labels", b"e-1", b"{}", None, None, [("h", b"1")])]
        assert wrapped == []  # no pending message, serializer or sensor on the way
        await topic.send(key="e-2", value=b"{}")  # not bytes: faust serializes it
        assert len(wrapped) == 1
        assert sent[1][:3] == ("t.labels", b"e-2", b"{}")

    asyncio.run(main())


def test_a_stopping_worker_waits_for_an_unacknowledged_record_only_so_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """faust would wait for ever; this waits SHUTDOWN_WAIT_S, then commits only what is done."""
    import time

    from streams.patches import faust_shutdown

    monkeypatch.setattr(faust_shutdown, "SHUTDOWN_WAIT_S", 0.3)
    consumer = _consumer(tmp_path)
    tp = TP("t.predictions", 0)
    consumer._committed_offset[tp] = 60
    stuck = message(60, generation_id=3)
    consumer._unacked_messages.add(stuck)  # taken by a stream that will never acknowledge it
    consumer.ack(message(61, generation_id=3))
    commits: list[int | None] = []

    async def commit(*args: object, **kwargs: object) -> bool:
        commits.append(consumer._new_offset(tp))
        return False

    monkeypatch.setattr(consumer, "commit", commit)
    monkeypatch.setattr(consumer, "commit_and_end_transactions", commit)

    async def no_ack(timeout: float) -> None:  # noqa: ASYNC109 - faust's signature; no ack comes
        await asyncio.sleep(0.05)

    monkeypatch.setattr(consumer, "_wait_for_ack", no_ack)
    started = time.monotonic()
    asyncio.run(consumer.wait_empty())
    assert time.monotonic() - started < 5.0
    assert commits
    assert all(offset is None for offset in commits)  # never past offset 60
    assert stuck in consumer._unacked_messages


def test_a_second_resume_keeps_what_the_streams_have_queued(tmp_path: Path) -> None:
    """faust's recovery resumes the flow for the changelogs, then again once the streams resume."""

    async def run() -> list[int]:
        app = create_app(Settings(data_dir=tmp_path))
        queue = app.topic("t.predictions").clone(is_iterator=True).queue  # an agent's channel
        app.flow_control.resume()  # recovery, to read the changelogs
        queue.put_nowait("a record fetched once the stream partitions resumed")
        app.flow_control.resume()  # Recovery._resume_streams, after its seek
        kept = queue.qsize()
        app.flow_control.suspend()  # a rebalance
        app.flow_control.resume()
        return [kept, queue.qsize()]

    assert asyncio.run(run()) == [1, 0]
