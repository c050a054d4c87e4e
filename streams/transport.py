"""faust's aiokafka transport with an idempotent, acks=all producer outside transactions too.

faust turns idempotence on only inside exactly_once transactions
(``Producer._settings_extra``); at-least-once workers would otherwise produce
with aiokafka's defaults (acks=1, no idempotence), so a broker retry could
write a Label twice. Registered as the ``labelloop://`` transport through the
``faust.transports`` entry point.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka


class IdempotentProducer(faust_aiokafka.Producer):
    """acks=all with idempotence on every producer faust creates."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport using :class:`IdempotentProducer`."""

    Producer = IdempotentProducer
