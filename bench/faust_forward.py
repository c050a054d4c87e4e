"""[F1] The least a faust worker can do per record: one agent that forwards each record's bytes.

The router's ceiling under faust on this machine, measured beside it in ``bench/throughput.py``:
the same app factory (:func:`streams.app.create_app`: our transport, its idempotent acks=all
producer, the bytes fast path of :class:`streams.transport.Topic`, :class:`RawSchema`), one agent
on ``predictions`` that sends every record's key and value to ``labels`` as they are. No decode,
no decision, no table. Run as ``python -m bench.faust_forward`` with the loop's environment
(``LABELLOOP_*``), as the worker is.
"""

from __future__ import annotations

from typing import Any

import faust

from streams.app import create_app
from streams.settings import Settings
from streams.topics import topic_names
from streams.transport import RawSchema


def build(settings: Settings) -> faust.App:
    """A faust app whose one agent copies ``predictions`` to ``labels``, record for record."""
    app = create_app(settings)
    names = topic_names(settings)
    source = app.topic(names.predictions, schema=RawSchema(key_type=bytes, value_type=bytes))
    target = app.topic(names.labels, schema=RawSchema(key_type=bytes, value_type=bytes))

    @app.agent(source, name="forward")
    async def forward(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            await target.send(key=message.key, value=message.value)

    return app


def main() -> None:
    """Run the forwarding worker until SIGTERM (as ``python -m streams.cli worker`` runs)."""
    from mode import Worker

    Worker(build(Settings()), loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
