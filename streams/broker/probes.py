"""Is a Kafka broker answering? Metadata probes, bootstrap parsing and port checks."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

from streams.errors import BrokerError

logger = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 2.0


def is_reachable(bootstrap: str, timeout_s: float = _PROBE_TIMEOUT_S) -> bool:
    """True if a Kafka broker at ``bootstrap`` answers a metadata request (TCP probe first)."""
    endpoints = parse_bootstrap(bootstrap)
    if not any(tcp_open(host, port, timeout_s) for host, port in endpoints):
        return False
    # Imported here: kafka-python loads ~200 protocol schemas (0.2 s) at import.
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    timeout_ms = max(int(timeout_s * 1000), 100)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=[join_host_port(host, port) for host, port in endpoints],
            client_id="labelloop-broker-probe",
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
        )
    except (KafkaError, OSError) as exc:
        logger.debug("no Kafka at %s: %s", bootstrap, exc)
        return False
    try:
        admin.list_topics()
    except (KafkaError, OSError) as exc:
        logger.debug("metadata request to %s failed: %s", bootstrap, exc)
        return False
    finally:
        admin.close()
    return True


def wait_until_reachable(bootstrap: str, timeout_s: float) -> None:
    """Block until a broker at ``bootstrap`` (local or external) answers, else raise BrokerError."""
    if not poll_until_reachable(bootstrap, timeout_s, alive=lambda: True):
        raise BrokerError(
            f"no Kafka broker answered a metadata request at {bootstrap} within {timeout_s:g} s"
        )


def poll_until_reachable(bootstrap: str, timeout_s: float, alive: Callable[[], bool]) -> bool:
    """True once a metadata request succeeds; False at the deadline or once ``alive()`` is False."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if is_reachable(bootstrap, timeout_s=min(_PROBE_TIMEOUT_S, max(remaining, 0.1))):
            return True
        if not alive() or time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


def parse_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    endpoints = []
    for entry in bootstrap.split(","):
        address = entry.strip().rpartition("://")[2]  # tolerate kafka://host:port
        if not address:
            continue
        host, colon, port = address.rpartition(":")
        if not colon or "]" in port:  # no port given (bare host or [ipv6])
            host, port = address, "9092"
        endpoints.append((host.strip("[]"), int(port)))
    if not endpoints:
        raise ValueError(f"no host:port in bootstrap {bootstrap!r}")
    return endpoints


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listener_addresses(listeners: str) -> list[tuple[str, int]]:
    """The (host, port) of each entry of a ``listeners`` property.

    Examples
    --------
    >>> listener_addresses("PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093")
    [('127.0.0.1', 19092), ('127.0.0.1', 19093)]
    """
    return parse_bootstrap(listeners)


def can_bind(host: str, port: int) -> bool:
    """True when a listening socket could take ``host:port`` now (as the JVM binds it: SO_REUSEADDR).

    A connect probe misses what blocks a listener most often on a busy machine: a
    client connection whose ephemeral local port happens to be this one.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def tcp_open(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
