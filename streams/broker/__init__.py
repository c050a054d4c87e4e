"""Local broker launcher: the official Apache Kafka (single-node KRaft) run from Maven Central jars.

Machines without a Docker engine still get a real broker: ``broker/pom.xml`` names the
broker's runtime jars, Maven copies them into ``<home>/libs`` and ``kafka.Kafka`` runs
on them as one JVM that is both broker and controller, listening on 127.0.0.1 only.
Everything lives under ``home`` (default ``.labelloop/kafka``)::

    libs/               runtime jars + .labelloop-stamp.json (sha256 of the pom they came from)
    data/               log.dirs (topic partitions and the KRaft metadata log)
    logs/broker.out     the JVM's stdout/stderr
    logs/server.log     the broker's log4j2 log (*.prev: the run before)
    server.properties   log4j2.properties   cluster.id   broker.pid   .lock

POSIX only (signals, sessions, ``fcntl`` locks). One ``LocalBroker`` per thread.

=============  ==============================================================
module         what it holds
=============  ==============================================================
``settings``   :class:`BrokerSettings`, :class:`BrokerStatus`
``config``     server.properties, the SCRAM/TLS listeners, log4j2, rendered
``artifacts``  Java found, the Kafka jars fetched with Maven (and their stamp)
``process``    :class:`LocalBroker`: format, launch, supervise, stop
``probes``     is a broker answering? bootstrap parsing, port checks
``files``      atomic writes, log tails
=============  =============================================================="""

from streams.broker.artifacts import STAMP_NAME, java_major_version
from streams.broker.config import (
    SCRAM_MECHANISMS,
    log4j2_properties,
    render_properties,
    scram_listener_properties,
    server_properties,
)
from streams.broker.probes import is_reachable, listener_addresses, wait_until_reachable
from streams.broker.process import LocalBroker
from streams.broker.settings import BrokerSettings, BrokerStatus
from streams.errors import BrokerError

__all__ = [
    "SCRAM_MECHANISMS",
    "STAMP_NAME",
    "BrokerError",
    "BrokerSettings",
    "BrokerStatus",
    "LocalBroker",
    "is_reachable",
    "java_major_version",
    "listener_addresses",
    "log4j2_properties",
    "render_properties",
    "scram_listener_properties",
    "server_properties",
    "wait_until_reachable",
]
