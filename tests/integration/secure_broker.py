"""A private broker with SCRAM and mutual-TLS listeners for the security tests, and the certificates it needs.

Certificates come from ``openssl`` (a throwaway CA, a broker certificate for
127.0.0.1, a client certificate whose key is encrypted); the broker reads them
as PEM keystores. SCRAM users are created when its storage is formatted. The
broker runs on ports of its own (298xx), apart from the session's broker and below
the ephemeral range, so no client connection's local port can hold one.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from streams.broker import BrokerSettings, LocalBroker, scram_listener_properties
from streams.settings import KafkaSettings, SecurityProtocol

USER = "labelloop"


@dataclass(frozen=True)
class Certificates:
    """The PEM files of one throwaway CA, the broker and one client."""

    ca: Path
    broker_keystore: Path
    client_cert: Path
    client_key: Path
    client_key_password_file: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(folder: Path) -> Certificates:
    """A CA, a broker certificate for 127.0.0.1/localhost and a client certificate (encrypted key)."""
    folder.mkdir(parents=True, exist_ok=True)
    days = "2"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", days, "-subj", "/CN=labelloop-test-ca", cwd=folder)  # fmt: skip
    (folder / "broker.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
             "-subj", "/CN=127.0.0.1", cwd=folder)  # fmt: skip
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "broker.pem", "-days", days, "-extfile", "broker.ext", cwd=folder)  # fmt: skip
    keystore = folder / "broker-keystore.pem"
    keystore.write_text((folder / "broker.key").read_text() + (folder / "broker.pem").read_text())
    password_file = folder / "client-key-password"
    password_file.write_text(secrets.token_urlsafe(16) + "\n")
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-aes-256-cbc",
             "-pass", f"file:{password_file}", "-out", "client.key", cwd=folder)  # fmt: skip
    _openssl("req", "-new", "-key", "client.key", "-passin", f"file:{password_file}", "-out", "client.csr",
             "-subj", "/CN=labelloop-client", cwd=folder)  # fmt: skip
    _openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "client.pem", "-days", days, cwd=folder)  # fmt: skip
    return Certificates(
        folder / "ca.pem", keystore, folder / "client.pem", folder / "client.key", password_file
    )


@dataclass(frozen=True)
class SecureBroker:
    """A running private broker: its listeners, the SCRAM password (in a file) and the certificates."""

    broker: LocalBroker
    certificates: Certificates
    password_file: Path
    sasl_plaintext: str
    sasl_ssl: str
    mtls: str

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def kafka(self, protocol: SecurityProtocol, **overrides: object) -> KafkaSettings:
        """Client settings for one listener: SCRAM-SHA-512 on the SASL ones, a client certificate on SSL."""
        certs = self.certificates
        options: dict[str, object] = {"security_protocol": protocol, "request_timeout_ms": 15_000}
        if protocol == "SASL_PLAINTEXT":
            options["bootstrap_servers"] = self.sasl_plaintext
        elif protocol == "SASL_SSL":
            options |= {"bootstrap_servers": self.sasl_ssl, "ssl_cafile": certs.ca}
        elif protocol == "SSL":
            options |= {
                "bootstrap_servers": self.mtls,
                "ssl_cafile": certs.ca,
                "ssl_certfile": certs.client_cert,
                "ssl_keyfile": certs.client_key,
                "ssl_key_password_file": certs.client_key_password_file,
            }
        if protocol.startswith("SASL"):
            options |= {
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": USER,
                "sasl_password_file": self.password_file,
            }
        return KafkaSettings.model_validate(options | overrides)

    def env(self, protocol: SecurityProtocol) -> dict[str, str]:
        """The same settings as ``LABELLOOP_KAFKA__*`` variables (for a worker or the CLI)."""
        kafka = self.kafka(protocol)
        env = {}
        for name, value in kafka.model_dump(exclude_none=True).items():
            if name in ("sasl_password", "ssl_key_password"):
                continue  # only ever through their files
            env[f"LABELLOOP_KAFKA__{name.upper()}"] = str(value)
        return env


def start_secure_broker(home: Path, work: Path, first_port: int) -> SecureBroker:
    """Start a fresh broker under ``home`` on ``first_port`` .. ``first_port + 4``."""
    settings = BrokerSettings(port=first_port, controller_port=first_port + 1, home=home)
    broker = LocalBroker(settings)
    broker.stop()  # one left by an interrupted run
    # Fresh storage each time (SCRAM users are written when it is formatted); the jars stay.
    shutil.rmtree(home / "data", ignore_errors=True)
    certificates = make_certificates(work / "certs")
    password_file = work / "kafka-password"
    password_file.write_text(secrets.token_urlsafe(24) + "\n")
    ports = {
        "sasl_plaintext_port": first_port + 2,
        "sasl_ssl_port": first_port + 3,
        "ssl_port": first_port + 4,
    }
    properties = scram_listener_properties(
        settings, keystore_pem=certificates.broker_keystore, truststore_pem=certificates.ca, **ports
    )
    broker.start(properties, scram_users={USER: password_file.read_text().strip()})
    return SecureBroker(
        broker,
        certificates,
        password_file,
        sasl_plaintext=f"127.0.0.1:{ports['sasl_plaintext_port']}",
        sasl_ssl=f"127.0.0.1:{ports['sasl_ssl_port']}",
        mtls=f"127.0.0.1:{ports['ssl_port']}",
    )
