"""An instant, perfect crowd in a process of its own, on the topics (for local runs and the F5/F8 bench).

It stands for a remote crowd (Toloka, a vendor's tool): it reads ``label-requests`` with a
consumer group of its own, and for each request answers at once with ``overlap`` answers by
distinct simulated labelers, each the model's own label (no truth side channel: a worker
would have to read one), on ``crowd-answers``. The worker runs with the remote crowd as its crowd
tier (``LABELLOOP_POOLS__REMOTE__ENABLED=true``, :mod:`agents.pools.remote`) and spends no CPU
on labelling. Requests of the expert tier are answered too, unless ``tiers`` says otherwise.

Run: ``python -m agents.simulation.remote_crowd`` with the worker's ``LABELLOOP_*`` settings;
it stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterable

from schemas import CrowdAnswer, LabelRequest, Tier, utc_now
from streams.codec import decode, encode, encode_key
from streams.errors import ContractError
from streams.settings import Settings
from streams.topics import topic_names

log = logging.getLogger(__name__)


def answers_for(request: LabelRequest, pool: str, overlap: int) -> list[CrowdAnswer]:
    """``overlap`` instant answers to ``request``, each the model's own label, by distinct labelers."""
    now = utc_now()
    return [
        CrowdAnswer(
            event_id=request.event_id,
            task_id=f"{pool}-{request.event_id}",
            pool=pool,
            tier="crowd",
            worker_id=f"{pool}-w{index}",
            label=request.prediction.predicted_label,
            time_spent_s=0.0,
            answered_at=now,
            overlap=overlap,
        )
        for index in range(overlap)
    ]


async def serve(
    settings: Settings, *, pool: str, overlap: int, tiers: Iterable[Tier], stop: asyncio.Event
) -> int:
    """Answer every request of ``tiers`` until ``stop`` is set; returns how many requests were answered."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    names = topic_names(settings)
    wanted = set(tiers)
    consumer = AIOKafkaConsumer(
        names.label_requests,
        group_id=f"{settings.app_id}-{pool}-crowd",
        client_id=f"{pool}-crowd",
        enable_auto_commit=True,
        auto_offset_reset="earliest",
        **settings.kafka.reader_options(),
    )
    producer = AIOKafkaProducer(
        client_id=f"{pool}-crowd", acks="all", enable_idempotence=True, **settings.kafka.aiokafka_options()
    )
    await producer.start()
    await consumer.start()
    answered = 0
    try:
        while not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=100)
            sent = []
            for messages in fetched.values():
                for message in messages:
                    try:
                        request = decode(LabelRequest, message.value)
                    except ContractError:
                        continue  # the worker's dispatcher dead-letters it
                    if request.tier not in wanted:
                        continue
                    for answer in answers_for(request, pool, overlap):
                        key = encode_key(answer.event_id)
                        sent.append(await producer.send(names.crowd_answers, encode(answer), key=key))
                    answered += 1
            if sent:
                await asyncio.gather(*sent)
    finally:
        await consumer.stop()
        await producer.stop()
    return answered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pool", default="remote", help="the pool name its answers carry")
    parser.add_argument("--overlap", type=int, default=2, help="answers per request")
    parser.add_argument("--tiers", default="crowd,expert", help="the request tiers it answers")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def run() -> int:
        stop = asyncio.Event()
        running = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                running.add_signal_handler(signum, stop.set)
        tiers: list[Tier] = [tier for tier in ("crowd", "expert") if tier in args.tiers.split(",")]
        answered = await serve(Settings(), pool=args.pool, overlap=args.overlap, tiers=tiers, stop=stop)
        log.info("remote crowd stopped after answering %d requests", answered)
        return 0

    return asyncio.run(run())


if __name__ == "__main__":
    raise SystemExit(main())
