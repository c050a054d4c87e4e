"""The broker's configuration files, rendered: server.properties, SCRAM/TLS listeners, log4j2."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from streams.broker.settings import BrokerSettings

_PROPERTY_KEY = re.compile(r"^[A-Za-z0-9._-]+$")
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def server_properties(
    settings: BrokerSettings,
    data_dir: Path,
    extra_properties: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The broker's server.properties; ``extra_properties`` override (e.g. SASL listeners later).

    Examples
    --------
    >>> props = server_properties(BrokerSettings(port=19092, controller_port=19093), Path("/d"))
    >>> props["listeners"]
    'PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093'
    >>> props["auto.create.topics.enable"]
    'false'
    """
    port, controller_port = settings.port, settings.controller_port
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        # Static voters: `format` must then run without --standalone (4.1 rejects the pair).
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        # Every topic comes from the catalogue (faust needs matching partition counts).
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.cleaner.enable": "true",  # the labels topic is compacted
    }
    properties.update(extra_properties or {})
    return properties


def scram_listener_properties(
    settings: BrokerSettings,
    *,
    sasl_plaintext_port: int | None = None,
    sasl_ssl_port: int | None = None,
    ssl_port: int | None = None,
    keystore_pem: Path | None = None,
    truststore_pem: Path | None = None,
) -> dict[str, str]:
    """Extra listeners for :meth:`LocalBroker.start`: SCRAM over SASL_PLAINTEXT and SASL_SSL, mutual TLS.

    The PLAINTEXT listener on ``settings.port`` stays (the controller, the launcher's
    probe and the brokers' own traffic use it). TLS listeners read PEM files:
    ``keystore_pem`` holds the broker's private key (PKCS#8, unencrypted) and its
    certificate chain, ``truststore_pem`` the CA that signed the clients'
    certificates; the ``SSL`` listener requires a client certificate (mutual TLS).

    Examples
    --------
    >>> props = scram_listener_properties(BrokerSettings(port=39800, controller_port=39801),
    ...                                   sasl_plaintext_port=39802)
    >>> props["advertised.listeners"]
    'PLAINTEXT://127.0.0.1:39800,SASL_PLAINTEXT://127.0.0.1:39802'
    >>> props["sasl.enabled.mechanisms"]
    'SCRAM-SHA-256,SCRAM-SHA-512'
    """
    ports = {"SASL_PLAINTEXT": sasl_plaintext_port, "SASL_SSL": sasl_ssl_port, "SSL": ssl_port}
    listeners = [f"PLAINTEXT://127.0.0.1:{settings.port}"]
    listeners += [f"{name}://127.0.0.1:{port}" for name, port in ports.items() if port is not None]
    protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
    protocols += [f"{name}:{name}" for name, port in ports.items() if port is not None]
    properties = {
        "listeners": ",".join([*listeners, f"CONTROLLER://127.0.0.1:{settings.controller_port}"]),
        "advertised.listeners": ",".join(listeners),
        "listener.security.protocol.map": ",".join(protocols),
        "sasl.enabled.mechanisms": ",".join(SCRAM_MECHANISMS),
    }
    for name in ("SASL_PLAINTEXT", "SASL_SSL"):
        if ports[name] is None:
            continue
        for mechanism in SCRAM_MECHANISMS:
            properties[f"listener.name.{name.lower()}.{mechanism.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
    if sasl_ssl_port is not None or ssl_port is not None:
        if keystore_pem is None or truststore_pem is None:
            raise ValueError("TLS listeners need keystore_pem and truststore_pem")
        properties |= {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore_pem),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(truststore_pem),
        }
        if ssl_port is not None:
            properties["listener.name.ssl.ssl.client.auth"] = "required"
    return properties


def log4j2_properties(log_file: Path) -> dict[str, str]:
    """Minimal log4j2 config: INFO to one plain file, noisy packages at WARN.

    The file appends: log4j2 re-initialises while Kafka shuts down, and a truncating
    appender then wipes the run's log. The launcher sets the previous run's log aside.
    """
    properties = {
        "status": "warn",
        # Kafka logs its own shutdown from its shutdown hook; log4j2's hook would stop
        # logging first (and re-initialise, printing a warning to broker.out).
        "shutdownHook": "disable",
        "appender.file.type": "File",
        "appender.file.name": "FILE",
        "appender.file.fileName": str(log_file),
        "appender.file.layout.type": "PatternLayout",
        "appender.file.layout.pattern": "[%d] %p %m (%c)%n",
        "rootLogger.level": "INFO",
        "rootLogger.appenderRef.file.ref": "FILE",
    }
    quiet = {
        "cleaner": "kafka.log.LogCleaner",
        "storage": "org.apache.kafka.storage",
        "request": "kafka.request.logger",
    }
    for name, package in quiet.items():
        properties[f"logger.{name}.name"] = package
        properties[f"logger.{name}.level"] = "WARN"
    return properties


def render_properties(properties: Mapping[str, str], header: str = "") -> str:
    r"""Java .properties text; backslashes escaped, line breaks refused.

    Examples
    --------
    >>> print(render_properties({"log.dirs": r"C:\kafka"}), end="")
    log.dirs=C:\\kafka
    """
    lines = [f"# {line}" for line in header.splitlines()]
    for key, value in properties.items():
        if not _PROPERTY_KEY.match(key):
            raise ValueError(f"invalid property name {key!r}")
        if "\n" in value or "\r" in value:
            raise ValueError(f"property {key} must be one line, got {value!r}")
        lines.append(f"{key}={value.replace(chr(92), chr(92) * 2)}")
    return "\n".join(lines) + "\n"
