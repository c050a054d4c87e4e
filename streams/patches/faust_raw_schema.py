"""A faust schema of raw bytes keys and values that hands the streams the message's own bytes."""

from __future__ import annotations

from typing import Any

import faust
from faust.types import Message

from streams.patches.pins import Pin

UPSTREAM = "none filed: a cost of faust-streaming 0.15's decode path, not a bug"
RELIES_ON = (
    Pin(
        "faust:Schema",
        "compile",
        parameters=("self", "app", "on_key_decode_error", "on_value_decode_error", "default_propagate"),
    ),
    Pin("faust.app.base:App", "create_event"),
)


class RawSchema(faust.Schema[bytes, bytes]):
    """A schema of raw bytes keys and values that hands faust's streams the message's own bytes.

    What faust's own ``Schema(key_type=bytes, value_type=bytes)`` gives too, without its decode
    path per record per agent (the serializer registry and the raw codec for key and value:
    3.1 us per delivery here, 1.7 us with this, most of it faust's Event). The stages decode the
    bytes themselves (``streams.codec``). Sending goes faust's way (``streams.patches.faust_topic``
    sends bytes directly).

    >>> import asyncio
    >>> from types import SimpleNamespace
    >>> app = SimpleNamespace(create_event=lambda key, value, headers, message: (key, value, headers))
    >>> decode = RawSchema(key_type=bytes, value_type=bytes).compile(app)
    >>> message = SimpleNamespace(key=b"e-1", value=b"{}", headers=[("h", b"v")])
    >>> asyncio.run(decode(message))
    (b'e-1', b'{}', [('h', b'v')])
    """

    def compile(self, app: Any, **_: Any) -> Any:
        create_event = app.create_event

        async def decode(message: Message, *, propagate: bool = False) -> Any:
            return create_event(message.key, message.value, message.headers, message)

        return decode
